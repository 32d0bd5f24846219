//! The status a reconcile reports: observed fields, the last operation, and
//! the `Ready`/`Synced` conditions. Pure; the reconciler writes it (only when
//! it changed) by server-side apply.

use super::credentials::CredentialsError;
use super::observe::Observation;
use super::plan::{CloudAction, Observed, Wait};
use crate::api::{CvmInstance, CvmInstanceStatus, LastOperation, RunState};
use crate::cloud::model::InstanceState;
use crate::cloud::{CloudError, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";

/// In-memory annotation of a cached object: the hash of the full status the
/// apiserver returned, kept when the cache drops the bulky status fields.
/// Never written to the apiserver.
pub const STATUS_HASH: &str = "cvm.tencentcloud.io/cached-status-hash";

/// A stable fingerprint of a status (to skip writes that change nothing).
pub fn status_hash(s: &CvmInstanceStatus) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(s).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The fingerprint of the status `obj` carries: the cached one, or computed.
pub fn current_status_hash(obj: &CvmInstance) -> Option<String> {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_HASH).cloned())
        .or_else(|| obj.status.as_ref().map(status_hash))
}

/// What the cache keeps of a status: what the reconciler reads (the instance
/// id, the last operation, the generation, and each condition's type, status,
/// reason and transition time), with the fingerprint of the full status.
/// Everything else is rebuilt from the observation on every reconcile.
pub fn slim(mut full: CvmInstanceStatus) -> (String, CvmInstanceStatus) {
    let hash = status_hash(&full);
    let kept = CvmInstanceStatus {
        instance_id: full.instance_id.take(),
        last_operation: full.last_operation.take(),
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
    (hash, kept)
}

/// How this reconcile ended, for `Synced`.
#[derive(Debug)]
pub enum Outcome<'a> {
    Acted {
        action: &'a CloudAction,
        request_id: &'a str,
    },
    Waiting(&'a Wait),
    CloudFailed {
        action: &'a str,
        error: &'a CloudError,
        /// `None`: not retried until the spec changes.
        retry_in: Option<Duration>,
    },
    Credentials(&'a CredentialsError),
    /// A create was sent; its answer is not in yet.
    Creating,
    /// Deleting; the message says what is being waited for.
    Deleting(String),
}

struct Cond {
    status: bool,
    reason: &'static str,
    message: String,
}

fn ready(obj: &CvmInstance, deleting: bool, observed: &Observed<'_>) -> Cond {
    let c = |status, reason, message: String| Cond {
        status,
        reason,
        message,
    };
    if deleting {
        return c(false, "Deleting", "the resource is being deleted".into());
    }
    let o: &Observation = match observed {
        Observed::NotCreated => {
            return c(
                false,
                "Creating",
                "the instance has not been created yet".into(),
            );
        }
        Observed::Missing { instance_id } => {
            return c(
                false,
                "InstanceNotFound",
                format!(
                    "instance {instance_id} does not exist in {}; it was deleted outside Kubernetes (the operator never recreates it: delete this resource, or recreate it without status)",
                    obj.spec.region
                ),
            );
        }
        Observed::Present(o) => o,
    };
    let want_running = obj.spec.run_state == RunState::Running;
    match &o.state {
        InstanceState::Running if o.operating => c(
            false,
            "Updating",
            format!("{} in progress", o.latest_operation),
        ),
        InstanceState::Running if want_running => {
            c(true, "Available", format!("instance {} is running", o.id))
        }
        InstanceState::Running => c(
            false,
            "Running",
            "the instance is running; spec.runState is Stopped".into(),
        ),
        InstanceState::Stopped if !want_running && !o.operating => c(
            true,
            "Stopped",
            format!("instance {} is stopped, as spec.runState asks", o.id),
        ),
        InstanceState::Stopped => c(false, "Stopped", "the instance is stopped".into()),
        InstanceState::Pending => c(
            false,
            "Creating",
            "the instance is being created (PENDING)".into(),
        ),
        InstanceState::Starting => c(false, "Starting", "the instance is starting".into()),
        InstanceState::Stopping => c(false, "Stopping", "the instance is stopping".into()),
        InstanceState::Rebooting => c(false, "Rebooting", "the instance is rebooting".into()),
        InstanceState::Terminating => c(false, "Terminating", "the instance is terminating".into()),
        InstanceState::Shutdown => c(
            false,
            "RecycleBin",
            "the instance is in the recycle bin (SHUTDOWN); renew or terminate it in the console"
                .into(),
        ),
        InstanceState::LaunchFailed => c(
            false,
            "LaunchFailed",
            format!(
                "the launch failed and is not retried: {} (delete and recreate the resource to try again)",
                o.latest_operation_error_msg
            ),
        ),
        other => c(false, "Unavailable", format!("the instance is {other}")),
    }
}

fn error_text(error: &CloudError) -> String {
    match error.request_id() {
        Some(rid) if !rid.is_empty() => {
            format!("{}: {} (RequestId: {rid})", error.code(), error.message())
        }
        _ => format!("{}: {}", error.code(), error.message()),
    }
}

fn synced(outcome: &Outcome<'_>, last: Option<&LastOperation>) -> Cond {
    let c = |status, reason, message: String| Cond {
        status,
        reason,
        message,
    };
    match outcome {
        Outcome::Acted { action, request_id } => c(
            false,
            "Reconciling",
            format!("{} sent (RequestId: {request_id}): {}", action.api_action(), action.describe()),
        ),
        Outcome::Deleting(msg) => c(false, "Deleting", msg.clone()),
        Outcome::Creating => c(false, "Reconciling", "RunInstances sent; waiting for the instance id".into()),
        Outcome::Credentials(e) => c(false, e.reason(), e.to_string()),
        Outcome::CloudFailed { action, error, retry_in } => {
            let reason = match error.class() {
                ErrorClass::Auth => "CredentialsRejected",
                _ => "ReconcileError",
            };
            let tail = match retry_in {
                Some(d) => format!("retrying in {}s", d.as_secs().max(1)),
                None => "not retried until the spec changes".into(),
            };
            c(false, reason, format!("{action} failed: {}; {tail}", error_text(error)))
        }
        Outcome::Waiting(w) => match w {
            Wait::InSync => c(true, "ReconcileSuccess", "the instance matches the spec".into()),
            Wait::Transitioning { state } => c(false, "Reconciling", format!("waiting: the instance is {state}")),
            Wait::OperationInProgress { operation } => {
                c(false, "Reconciling", format!("waiting: {operation} is still in progress"))
            }
            Wait::Paused { pending } => c(
                false,
                "ReconcilePaused",
                format!("paused by cvm.tencentcloud.io/paused; next step would be {}", pending.describe()),
            ),
            Wait::ObserveOnly => c(
                false,
                "DriftDetected",
                "managementPolicy is ObserveOnly: differences are reported, not corrected".into(),
            ),
            Wait::ResizeRequiresStop => c(
                false,
                "ResizeRequiresStop",
                "spec.instanceType differs, but resizePolicy is Never and a resize needs a power cycle: stop the instance (spec.runState: Stopped) or allow StopAndStart".into(),
            ),
            Wait::LaunchFailed { message } => c(false, "LaunchFailed", format!("the launch failed: {message}")),
            Wait::NotFound { instance_id } => c(
                false,
                "InstanceNotFound",
                match instance_id {
                    Some(id) => format!("instance {id} does not exist"),
                    None => "no instance to observe (ObserveOnly needs spec.instanceId or an instance tagged with this resource's UID)".into(),
                },
            ),
            Wait::Blocked { action } => {
                let detail = last
                    .filter(|l| &l.action == action)
                    .map(|l| {
                        format!(
                            "{}: {}{}",
                            l.code.as_deref().unwrap_or("?"),
                            l.message.as_deref().unwrap_or(""),
                            l.request_id.as_deref().map(|r| format!(" (RequestId: {r})")).unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                c(
                    false,
                    "ReconcileError",
                    format!("{action} failed: {detail}; not retried until the spec changes"),
                )
            }
            Wait::RecycleBin => c(false, "RecycleBin", "the instance is in the recycle bin (SHUTDOWN)".into()),
            Wait::TerminationProtected => c(
                false,
                "TerminationProtected",
                "deletion waits: the instance has termination protection; set spec.disableApiTermination: false (or deletionPolicy: Retain)".into(),
            ),
        },
    }
}

fn condition(
    prev: &[Condition],
    type_: &str,
    c: Cond,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if c.status { "True" } else { "False" };
    // lastTransitionTime moves only when the status flips.
    let ltt = prev
        .iter()
        .find(|p| p.type_ == type_ && p.status == status)
        .map(|p| p.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    let mut message = c.message;
    message.truncate(4096);
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: c.reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: ltt,
    }
}

/// The full status for this reconcile.
pub fn build(
    obj: &CvmInstance,
    observed: &Observed<'_>,
    deleting: bool,
    outcome: &Outcome<'_>,
    last_operation: Option<LastOperation>,
    now: &Time,
) -> CvmInstanceStatus {
    let prev = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let mut s = CvmInstanceStatus {
        instance_id: obj.spec.instance_id.clone().or(prev.instance_id.clone()),
        observed_generation: generation,
        last_operation,
        ..Default::default()
    };
    match observed {
        Observed::Present(o) => {
            s.instance_id = Some(o.id.clone());
            s.instance_state = Some(o.state.as_str().to_string());
            s.instance_type = Some(o.instance_type.clone()).filter(|t| !t.is_empty());
            s.instance_name = Some(o.name.clone()).filter(|t| !t.is_empty());
            s.zone = Some(o.zone.clone()).filter(|t| !t.is_empty());
            s.private_ip_addresses = o.private_ips.clone();
            s.public_ip_addresses = o.public_ips.clone();
            s.internet_max_bandwidth_out = Some(o.bandwidth_out);
            s.security_group_ids = o.security_group_ids.clone();
            s.created_time = Some(o.created_time.clone()).filter(|t| !t.is_empty());
        }
        Observed::Missing { instance_id } => s.instance_id = Some(instance_id.to_string()),
        Observed::NotCreated => {}
    }
    let r = ready(obj, deleting, observed);
    let y = synced(outcome, s.last_operation.as_ref());
    s.conditions = vec![
        condition(&prev.conditions, READY, r, generation, now),
        condition(&prev.conditions, SYNCED, y, generation, now),
    ];
    s
}

pub fn condition_of<'a>(
    status: Option<&'a CvmInstanceStatus>,
    type_: &str,
) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

/// The conditions to report when nothing could be observed: `Ready` is
/// unknown, `Synced` says why.
pub fn unobserved_conditions(
    obj: &CvmInstance,
    outcome: &Outcome<'_>,
    now: &Time,
) -> Vec<Condition> {
    let prev = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let mut ready = condition(
        prev,
        READY,
        Cond {
            status: false,
            reason: "Unobserved",
            message: "the instance cannot be observed; see the Synced condition".into(),
        },
        generation,
        now,
    );
    ready.status = "Unknown".into();
    if let Some(p) = prev
        .iter()
        .find(|c| c.type_ == READY && c.status == "Unknown")
    {
        ready.last_transition_time = p.last_transition_time.clone();
    }
    let last = obj.status.as_ref().and_then(|s| s.last_operation.as_ref());
    vec![
        ready,
        condition(prev, SYNCED, synced(outcome, last), generation, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CvmInstance;

    fn resource() -> CvmInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web", "namespace": "default", "generation": 3},
            "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r", "instanceType": "S5.SMALL1"}
        }))
        .unwrap()
    }

    fn observation() -> Observation {
        Observation {
            instance_type: "S5.SMALL1".into(),
            public_ips: vec!["43.128.0.1".into()],
            created_time: "2026-11-26T10:00:00Z".into(),
            ..Observation::fixture()
        }
    }

    #[test]
    fn ready_and_synced_with_observed_generation() {
        let obj = resource();
        let o = observation();
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let s = build(
            &obj,
            &Observed::Present(&o),
            false,
            &Outcome::Waiting(&Wait::InSync),
            None,
            &now,
        );
        assert_eq!(s.instance_state.as_deref(), Some("RUNNING"));
        assert_eq!(s.public_ip_addresses, ["43.128.0.1"]);
        assert_eq!(s.observed_generation, Some(3));
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Available")
        );
        assert_eq!(ready.observed_generation, Some(3));
        // lastTransitionTime survives a rebuild with the same status…
        let mut again = obj.clone();
        again.status = Some(s.clone());
        let later = Time(jiff::Timestamp::from_second(1_800_000_100).unwrap());
        let s2 = build(
            &again,
            &Observed::Present(&o),
            false,
            &Outcome::Waiting(&Wait::InSync),
            None,
            &later,
        );
        assert_eq!(
            s2, s,
            "an unchanged status is identical, so it is not rewritten"
        );
        // …and moves when the status flips.
        let stopping = Observation {
            state: InstanceState::Stopping,
            ..o
        };
        let s3 = build(
            &again,
            &Observed::Present(&stopping),
            false,
            &Outcome::Waiting(&Wait::InSync),
            None,
            &later,
        );
        let ready3 = s3.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready3.status.as_str(), ready3.last_transition_time.clone()),
            ("False", later)
        );
    }

    #[test]
    fn slim_cache_keeps_what_reconciles_read_and_the_fingerprint() {
        let mut obj = resource();
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let full = build(
            &obj,
            &Observed::Present(&observation()),
            false,
            &Outcome::Waiting(&Wait::InSync),
            Some(LastOperation {
                action: "RunInstances".into(),
                state: "Succeeded".into(),
                ..Default::default()
            }),
            &now,
        );
        // What comes back from the apiserver deserialises to the same hash.
        let round: CvmInstanceStatus =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(status_hash(&round), status_hash(&full));
        let (hash, slimmed) = slim(round);
        obj.status = Some(slimmed);
        obj.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(STATUS_HASH.into(), hash);
        let st = obj.status.as_ref().unwrap();
        assert_eq!(st.instance_id.as_deref(), Some("ins-abcdefgh"));
        assert_eq!(st.last_operation.as_ref().unwrap().action, "RunInstances");
        assert!(
            st.instance_state.is_none() && st.public_ip_addresses.is_empty(),
            "observed fields dropped"
        );
        assert!(
            st.conditions
                .iter()
                .all(|c| c.message.is_empty() && !c.reason.is_empty())
        );
        assert_eq!(current_status_hash(&obj), Some(status_hash(&full)));
        // A rebuild from the slim cache yields the same full status.
        let rebuilt = build(
            &obj,
            &Observed::Present(&observation()),
            false,
            &Outcome::Waiting(&Wait::InSync),
            st.last_operation.clone(),
            &now,
        );
        assert_eq!(status_hash(&rebuilt), status_hash(&full));
    }
}
