//! Kubernetes events (events.k8s.io/v1) for every cloud mutation and error.
//!
//! kube's `Recorder` keeps every event it sent for six minutes to aggregate
//! series; with thousands of resources that cache dominated the operator's
//! memory. This publisher keeps only a small fingerprint per recent event and
//! drops exact repeats within a minute (a retried error emits once).

use super::report::{Event, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REPEAT_WINDOW: Duration = Duration::from_secs(60);
const MAX_FINGERPRINTS: usize = 4096;

pub struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<u64, Instant>>,
}

impl Publisher {
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// True when this exact event was sent within the repeat window.
    fn is_repeat(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (regarding.uid.as_deref(), type_, reason, note).hash(&mut h);
        let key = h.finish();
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= MAX_FINGERPRINTS {
            recent.retain(|_, t| now.duration_since(*t) < REPEAT_WINDOW);
        }
        match recent.get(&key) {
            Some(t) if now.duration_since(*t) < REPEAT_WINDOW => true,
            _ => {
                recent.insert(key, now);
                false
            }
        }
    }

    /// Publishes an event about `regarding`. Failures are logged, never
    /// returned: a terminating namespace refuses events, and that must not
    /// block a reconcile or a deletion.
    pub async fn publish(&self, regarding: ObjectReference, event: &Event) {
        let Event {
            type_,
            reason,
            action,
            note,
        } = event;
        let type_ = *type_;
        if self.is_repeat(&regarding, type_, reason, note) {
            return;
        }
        let mut note = note.to_string();
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let now = jiff::Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("cvm-operator"),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(note),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, "cannot publish event");
        }
    }
}
