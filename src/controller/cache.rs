//! What the operator's watch cache keeps of each `CvmInstance`.
//!
//! With thousands of resources the reflector is most of the operator's
//! memory, and a decoded `CvmInstance` is 1.4 KB before its strings. The
//! cache therefore keeps the metadata the controller needs, the spec as its
//! JSON text, and a slim status (what reconciles read, plus a fingerprint of
//! the full status so unchanged statuses are never rewritten). A reconcile
//! rebuilds the full object from this in microseconds.

use super::metrics::Readiness;
use super::ownership::AccountChoice;
use super::status::READY;
use crate::api::{self, CvmInstance, CvmInstanceSpec, CvmInstanceStatus, LocalObjectRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::Resource;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cached form of a `CvmInstance` (same kind, group and version).
#[derive(Resource, Clone, Debug, Deserialize, Serialize)]
#[resource(inherit = "CvmInstance")]
pub struct CachedInstance {
    pub metadata: ObjectMeta,
    spec: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<RawValue>>,
}

/// The slim status as cached: the fingerprint and what reconciles read.
#[derive(Serialize, Deserialize)]
struct SlimStatus {
    hash: Fingerprint,
    status: CvmInstanceStatus,
}

/// A fingerprint of a whole status, to skip writes that change nothing and
/// to tell whether the cache shows our last write. `DefaultHasher` is stable
/// within one process only, which is all this needs: fingerprints are never
/// stored outside memory (the cache holds them, the apiserver never sees them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(s: &CvmInstanceStatus) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_vec(s).unwrap_or_default().hash(&mut h);
        Fingerprint(format!("{:016x}", h.finish()))
    }
}

/// What the cache keeps of a status: what the reconciler reads (the instance
/// id, the last operation, the restart record, the fingerprints of what
/// was applied, the price, the generation, and each
/// condition's type, status,
/// reason and transition time), with the fingerprint of the full status.
/// Everything else is rebuilt from the observation on every reconcile.
fn slim_status(mut full: CvmInstanceStatus) -> SlimStatus {
    let hash = Fingerprint::of(&full);
    let status = CvmInstanceStatus {
        instance_id: full.instance_id.take(),
        last_operation: full.last_operation.take(),
        restart: full.restart.take(),
        account: full.account.take(),
        applied: full.applied.take(),
        price: full.price.take(),
        observed_generation: full.observed_generation,
        conditions: std::mem::take(&mut full.conditions)
            .into_iter()
            .map(|c| Condition {
                message: String::new(),
                ..c
            })
            .collect(),
        ..Default::default()
    };
    SlimStatus { hash, status }
}

impl CachedInstance {
    /// Drops what the operator never reads: managed fields, labels,
    /// annotations (but the pause switch and the restart request), and the
    /// bulky part of the status.
    pub fn slim(&mut self) {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.labels = None;
        // Only a set's controller reference (its members' ownership proof).
        if let Some(refs) = &mut meta.owner_references {
            refs.retain(|r| r.controller == Some(true) && r.kind == "CvmInstanceSet");
            if refs.is_empty() {
                meta.owner_references = None;
            }
        }
        // Only the annotations reconciles read.
        let kept: std::collections::BTreeMap<String, String> = meta
            .annotations
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k == api::PAUSED_ANNOTATION || k == api::RESTARTED_AT_ANNOTATION)
            .collect();
        meta.annotations = (!kept.is_empty()).then_some(kept);
        let Some(raw) = self.status.take() else {
            return;
        };
        // Already slim (the reflector may hand an object back twice).
        if let Ok(s) = serde_json::from_str::<SlimStatus>(raw.get()) {
            self.status = serde_json::value::to_raw_value(&s).ok();
            return;
        }
        if let Ok(full) = serde_json::from_str::<CvmInstanceStatus>(raw.get()) {
            self.status = serde_json::value::to_raw_value(&slim_status(full)).ok();
        }
    }

    /// Its `Ready` condition, for the readiness gauges: the status and since
    /// when (the transition time, or the creation when there is none yet).
    /// Reads the conditions alone: the gauges ask this of every cached
    /// resource every few seconds, and decoding whole statuses took tens of
    /// milliseconds at 10,000 resources.
    pub fn readiness(&self) -> Readiness {
        #[derive(Deserialize)]
        struct Slim {
            status: Conditions,
        }
        #[derive(Deserialize)]
        struct Conditions {
            #[serde(default)]
            conditions: Vec<Ready>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ready {
            #[serde(rename = "type")]
            type_: Box<str>,
            status: String,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
        }
        let ready = self
            .status
            .as_ref()
            .and_then(|raw| serde_json::from_str::<Slim>(raw.get()).ok())
            .and_then(|s| s.status.conditions.into_iter().find(|c| &*c.type_ == READY));
        match ready {
            Some(c) => Readiness {
                ready: Some(c.status),
                since: Some(c.last_transition_time.0),
            },
            None => Readiness {
                ready: None,
                since: self.metadata.creation_timestamp.as_ref().map(|t| t.0),
            },
        }
    }

    /// The account the resource uses, read from the cached spec without
    /// decoding the rest of it (an account's change wakes its users).
    pub fn account_choice(&self) -> Option<AccountChoice> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Refs {
            account_ref: Option<LocalObjectRef>,
            credentials_secret_ref: Option<LocalObjectRef>,
        }
        let refs: Refs = serde_json::from_str(self.spec.get()).ok()?;
        Some(AccountChoice::from_refs(
            refs.account_ref.as_ref().map(|r| r.name.as_str()),
            refs.credentials_secret_ref
                .as_ref()
                .map(|r| r.name.as_str()),
        ))
    }

    /// The object for a reconcile (status slim), and the fingerprint of the
    /// full status the apiserver holds (`None`: no status yet).
    pub fn expand(&self) -> Result<(CvmInstance, Option<Fingerprint>), serde_json::Error> {
        let spec: CvmInstanceSpec = serde_json::from_str(self.spec.get())?;
        let mut obj = CvmInstance::new(self.metadata.name.as_deref().unwrap_or_default(), spec);
        obj.metadata = self.metadata.clone();
        let Some(raw) = &self.status else {
            return Ok((obj, None));
        };
        let slim: SlimStatus = serde_json::from_str(raw.get())?;
        obj.status = Some(slim.status);
        Ok((obj, Some(slim.hash)))
    }
}

/// Our own status writes that the watch cache may not show yet. A reconcile
/// that starts from a copy older than our last write would act on stale
/// status — for instance retry a create that has just failed permanently —
/// so it waits for the watch (whose event wakes the resource anyway), for at
/// most `max_wait`: after that the cache is trusted, say because someone
/// else rewrote the status.
pub struct OwnWrites {
    max_wait: Duration,
    written: Mutex<HashMap<String, (Fingerprint, Instant)>>,
}

impl OwnWrites {
    pub fn new(max_wait: Duration) -> Self {
        Self {
            max_wait,
            written: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Fingerprint, Instant)>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the status the apiserver answered our write with.
    pub fn wrote(&self, uid: &str, status: &CvmInstanceStatus) {
        self.lock()
            .insert(uid.to_string(), (Fingerprint::of(status), Instant::now()));
    }

    /// True while the cached copy (its status fingerprint) is not the one
    /// we wrote last. Forgets the write once the cache shows it.
    pub fn cache_is_behind(&self, uid: &str, cached: Option<&Fingerprint>) -> bool {
        let mut written = self.lock();
        let Some((hash, at)) = written.get(uid) else {
            return false;
        };
        if cached != Some(hash) && at.elapsed() < self.max_wait {
            return true;
        }
        written.remove(uid);
        false
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_then_expand_keeps_spec_and_what_reconciles_read() {
        let json = serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "generation": 2,
                         "labels": {"team": "a"},
                         "annotations": {"cvm.tencentcloud.io/paused": "true", "cvm.tencentcloud.io/restartedAt": "2026-12-01T10:00:00Z",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r",
                     "instanceType": "S5.SMALL1", "runState": "Stopped", "tags": {"a": "b"}},
            "status": {"instanceId": "ins-abcdefgh", "instanceState": "RUNNING", "observedGeneration": 2,
                       "publicIpAddresses": ["1.2.3.4"],
                       "lastOperation": {"action": "RunInstances", "state": "Succeeded", "requestId": "r"},
                       "restart": {"requestedAt": "2026-12-01T10:00:00Z", "state": "Pending", "previousOperation": "r"},
                       "conditions": [{"type": "Synced", "status": "True", "reason": "ReconcileSuccess",
                                       "message": "long text", "lastTransitionTime": "2026-11-26T10:00:00Z"}]}
        });
        let full_status: CvmInstanceStatus =
            serde_json::from_value(json["status"].clone()).unwrap();
        let mut cached: CachedInstance = serde_json::from_value(json.clone()).unwrap();
        cached.slim();
        cached.slim(); // idempotent
        assert!(cached.metadata.labels.is_none() && cached.metadata.managed_fields.is_none());
        let (obj, fingerprint) = cached.expand().unwrap();
        assert!(obj.is_paused());
        assert_eq!(obj.spec.run_state, api::RunState::Stopped);
        assert_eq!(obj.spec.tags.as_ref().unwrap()["a"], "b");
        let st = obj.status.as_ref().unwrap();
        assert_eq!(st.instance_id.as_deref(), Some("ins-abcdefgh"));
        assert_eq!(
            st.last_operation.as_ref().unwrap().request_id.as_deref(),
            Some("r")
        );
        assert_eq!(st.conditions[0].reason, "ReconcileSuccess");
        assert!(st.conditions[0].message.is_empty());
        assert!(st.public_ip_addresses.is_empty());
        assert_eq!(fingerprint, Some(Fingerprint::of(&full_status)));
        assert_eq!(obj.restart_requested(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(
            st.restart.as_ref().map(|r| r.state),
            Some(api::RestartState::Pending)
        );
        assert!(
            obj.metadata
                .annotations
                .as_ref()
                .is_none_or(|a| a.len() == 2),
            "nothing but the pause switch and the restart request travel in the annotations"
        );
    }
    #[test]
    fn readiness_comes_from_the_slim_ready_condition_or_the_creation() {
        let object = |status: Option<serde_json::Value>| {
            let mut json = serde_json::json!({
                "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
                "metadata": {"name": "web", "namespace": "ns", "uid": "u-1",
                             "creationTimestamp": "2026-11-26T09:00:00Z"},
                "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3",
                         "imageId": "img-pi0ii46r", "instanceType": "S5.SMALL1"},
            });
            if let Some(s) = status {
                json["status"] = s;
            }
            let mut cached: CachedInstance = serde_json::from_value(json).unwrap();
            cached.slim();
            cached.readiness()
        };
        let condition = |type_: &str, status: &str, at: &str| {
            serde_json::json!({"type": type_, "status": status, "reason": "Creating",
                               "message": "m", "lastTransitionTime": at})
        };
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let r = object(Some(serde_json::json!({"instanceId": "ins-1",
            "price": {"summary": "0.35 CNY/HOUR"},
            "conditions": [condition("Synced", "True", "2026-11-26T10:00:00Z"),
                           condition("Ready", "False", "2026-11-26T11:00:00Z")]})));
        assert_eq!(r.ready.as_deref(), Some("False"));
        assert_eq!(r.since, Some(at("2026-11-26T11:00:00Z")));
        let r = object(Some(
            serde_json::json!({"instanceId": "ins-1", "conditions": []}),
        ));
        assert_eq!((r.ready, r.since), (None, Some(at("2026-11-26T09:00:00Z"))));
        let r = object(None);
        assert_eq!((r.ready, r.since), (None, Some(at("2026-11-26T09:00:00Z"))));
    }

    #[test]
    fn own_writes_hold_reconciles_until_the_cache_shows_them() {
        let writes = OwnWrites::new(Duration::from_millis(200));
        let pending = CvmInstanceStatus {
            instance_state: Some("PENDING".into()),
            ..Default::default()
        };
        let failed = CvmInstanceStatus {
            instance_state: Some("LAUNCH_FAILED".into()),
            ..Default::default()
        };
        let (old, new) = (Fingerprint::of(&pending), Fingerprint::of(&failed));
        // Nothing written: never behind.
        assert!(!writes.cache_is_behind("u", Some(&old)));
        writes.wrote("u", &failed);
        // The cache still has the previous status (or none): behind.
        assert!(writes.cache_is_behind("u", Some(&old)));
        assert!(writes.cache_is_behind("u", None));
        assert!(!writes.cache_is_behind("other", Some(&old)));
        // The watch delivered our write: fresh, and the entry is dropped.
        assert!(!writes.cache_is_behind("u", Some(&new)));
        assert!(writes.written.lock().unwrap().is_empty());
        // Someone else rewrote the status: trusted after max_wait.
        writes.wrote("u", &failed);
        assert!(writes.cache_is_behind("u", Some(&old)));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!writes.cache_is_behind("u", Some(&old)));
        writes.wrote("u", &failed);
        writes.forget("u");
        assert!(!writes.cache_is_behind("u", Some(&old)));
    }

    #[test]
    fn a_members_set_reference_survives_the_slimming() {
        let owner = |kind: &str, uid: &str, controller: bool| {
            serde_json::json!({"apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": kind,
                               "name": "web", "uid": uid, "controller": controller})
        };
        let json = serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web-3", "namespace": "ns", "uid": "u-3",
                         "ownerReferences": [owner("CvmInstanceSet", "set-uid", true),
                                             owner("ConfigMap", "cm-uid", false)]},
            "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3",
                     "imageId": "img-pi0ii46r", "instanceType": "S5.SMALL1"},
        });
        let mut cached: CachedInstance = serde_json::from_value(json).unwrap();
        cached.slim();
        let (obj, _) = cached.expand().unwrap();
        assert_eq!(obj.controlling_set(), Some("set-uid"));
        assert_eq!(
            obj.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
    }
}
