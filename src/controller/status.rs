//! The status a reconcile reports: observed fields, the last operation, and
//! the `Ready`/`Synced`/`Stalled` conditions with every message they carry. Pure; the
//! reconciler writes the result (only when it changed) by server-side apply.

use super::observation::{Observation, Observed};
use super::plan::{Disruption, Mode, Refused, Wait};
use crate::api::limits::{STATUS_LIST_MAX, STATUS_MESSAGE_MAX, clipped};
use crate::api::{
    AppliedValues, CvmInstance, CvmInstanceStatus, Failure, LastOperation, RestartStatus, RunState,
};
use crate::cloud::ErrorClass;
use crate::cloud::model::InstanceState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
/// kstatus' abnormal-true condition: True when the operator can make no
/// further progress until a person acts (a spec change, a fixed Secret, the
/// console). Flux reports such a resource as Failed, the Argo CD health check
/// (deploy/argocd/health.lua) as Degraded. Carries `Synced`'s reason.
pub const STALLED: &str = "Stalled";

/// Condition reasons (an interface: users and alerts match on them).
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const STOPPED: &str = "Stopped";
    pub const RUNNING: &str = "Running";
    pub const CREATING: &str = "Creating";
    pub const STARTING: &str = "Starting";
    pub const STOPPING: &str = "Stopping";
    pub const REBOOTING: &str = "Rebooting";
    pub const TERMINATING: &str = "Terminating";
    pub const UPDATING: &str = "Updating";
    pub const UNAVAILABLE: &str = "Unavailable";
    pub const UNOBSERVED: &str = "Unobserved";
    pub const LAUNCH_FAILED: &str = "LaunchFailed";
    pub const INSTANCE_NOT_FOUND: &str = "InstanceNotFound";
    pub const RECYCLE_BIN: &str = "RecycleBin";
    pub const DELETING: &str = "Deleting";
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
    pub const RECONCILING: &str = "Reconciling";
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    pub const RECONCILE_PAUSED: &str = "ReconcilePaused";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const STOP_REQUIRED: &str = "StopRequired";
    pub const INSTANCE_TYPE_UNAVAILABLE: &str = "InstanceTypeUnavailable";
    pub const REBOOT_REQUIRED: &str = "RebootRequired";
    pub const REINSTALL_REQUIRED: &str = "ReinstallRequired";
    pub const TERMINATION_PROTECTED: &str = "TerminationProtected";
    /// No credentials, or a Secret missing, forbidden or without a key the
    /// spec needs: one reason and one text for all (no oracle for tenants).
    pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
    /// The apiserver did not answer a Secret read (transient).
    pub const CREDENTIALS_UNREADABLE: &str = "CredentialsUnreadable";
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    /// An account's source cannot give credentials as configured (say a
    /// malformed role), or they act in another account than its `spec.uin`.
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    /// No `CvmAccount` to use (the named one, or `default`, does not exist).
    pub const NO_ACCOUNT: &str = "NoAccount";
    /// The account does not select the resource's namespace.
    pub const ACCOUNT_NOT_ALLOWED: &str = "AccountNotAllowed";
    /// The credentials act in another account than the one the instance
    /// was created or adopted in.
    pub const CREDENTIALS_ACCOUNT_CHANGED: &str = "CredentialsAccountChanged";
    /// The API refused the requests' timestamps: the node's clock is off
    /// (not the credentials); the message names the measured skew.
    pub const CLOCK_SKEW: &str = "ClockSkew";
    /// `status.instanceId` names an instance without this resource's UID tag.
    pub const INSTANCE_NOT_OWNED: &str = "InstanceNotOwned";
    /// `spec.instanceId` names an instance without the adoption proof (the
    /// namespace tag) for this namespace.
    pub const ADOPTION_REFUSED: &str = "AdoptionRefused";
    /// The instance carries the UID tag of another live resource.
    pub const INSTANCE_CLAIMED: &str = "InstanceClaimed";
    /// The CVM API does not answer (refused, timed out, 5xx); the resource
    /// is reconciled again as soon as it does.
    pub const CLOUD_UNREACHABLE: &str = "CloudUnreachable";
    pub const NOT_STALLED: &str = "NotStalled";
    /// A `CvmAccount`'s credentials were obtained and verified.
    pub const VERIFIED: &str = "Verified";
}

/// How this reconcile ended, for `Synced`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A cloud call was accepted.
    Acted {
        api_action: &'static str,
        /// What it does, in words.
        what: String,
        request_id: String,
    },
    Waiting(Wait),
    CloudFailed {
        api_action: &'static str,
        class: ErrorClass,
        failure: Failure,
        /// False: not retried until the spec changes.
        retried: bool,
    },
    /// The credentials (or a Secret the spec references) could not be had.
    Credentials {
        reason: &'static str,
        message: String,
    },
    /// A create is about to be sent; its answer is not in yet.
    Creating,
    /// Deleting, and a create sent moments ago may not be visible yet.
    AwaitingCreate,
    /// An action whose intent is recorded first is about to be sent.
    Sending {
        api_action: &'static str,
        what: String,
    },
}

struct Cond {
    status: bool,
    reason: &'static str,
    message: String,
}

fn cond(status: bool, reason: &'static str, message: impl Into<String>) -> Cond {
    Cond {
        status,
        reason,
        message: message.into(),
    }
}

fn ready(obj: &CvmInstance, mode: Mode, observed: &Observed) -> Cond {
    if mode == Mode::Delete {
        return cond(false, reason::DELETING, "the resource is being deleted");
    }
    match observed {
        Observed::NotCreated => cond(
            false,
            reason::CREATING,
            "the instance has not been created yet",
        ),
        Observed::Missing { instance_id } => cond(
            false,
            reason::INSTANCE_NOT_FOUND,
            format!(
                "instance {instance_id} does not exist in {}; it was deleted outside Kubernetes (the operator never recreates it: delete this resource, or recreate it without status)",
                obj.spec.region
            ),
        ),
        Observed::Present(o) => ready_instance(o, obj.spec.run_state == RunState::Running),
    }
}

fn ready_instance(o: &Observation, want_running: bool) -> Cond {
    match &o.state {
        InstanceState::Running if o.operating => cond(
            false,
            reason::UPDATING,
            format!("{} in progress", o.latest_operation),
        ),
        InstanceState::Running if want_running => cond(
            true,
            reason::AVAILABLE,
            format!("instance {} is running", o.id),
        ),
        InstanceState::Running => cond(
            false,
            reason::RUNNING,
            "the instance is running; spec.runState is Stopped",
        ),
        InstanceState::Stopped if !want_running && !o.operating => cond(
            true,
            reason::STOPPED,
            format!("instance {} is stopped, as spec.runState asks", o.id),
        ),
        InstanceState::Stopped => cond(false, reason::STOPPED, "the instance is stopped"),
        InstanceState::Pending => cond(
            false,
            reason::CREATING,
            "the instance is being created (PENDING)",
        ),
        InstanceState::Starting => cond(false, reason::STARTING, "the instance is starting"),
        InstanceState::Stopping => cond(false, reason::STOPPING, "the instance is stopping"),
        InstanceState::Rebooting => cond(false, reason::REBOOTING, "the instance is rebooting"),
        InstanceState::Terminating => {
            cond(false, reason::TERMINATING, "the instance is terminating")
        }
        InstanceState::Shutdown => cond(
            false,
            reason::RECYCLE_BIN,
            "the instance is in the recycle bin (SHUTDOWN); renew or terminate it in the console",
        ),
        InstanceState::LaunchFailed => cond(
            false,
            reason::LAUNCH_FAILED,
            format!(
                "the launch failed and is not retried: {} (delete and recreate the resource to try again)",
                o.latest_operation_error_msg
            ),
        ),
        other => cond(
            false,
            reason::UNAVAILABLE,
            format!("the instance is {other}"),
        ),
    }
}

/// `code: message (RequestId: …)`, the way conditions quote a cloud error.
fn error_text(f: &Failure) -> String {
    match f.request_id.as_deref() {
        Some(rid) if !rid.is_empty() => format!("{}: {} (RequestId: {rid})", f.code, f.message),
        _ => format!("{}: {}", f.code, f.message),
    }
}

/// What `Synced` says; `next_attempt` is when the operator looks again.
fn synced(
    outcome: &Outcome,
    mode: Mode,
    last: Option<&LastOperation>,
    next_attempt: Option<Duration>,
) -> Cond {
    match outcome {
        Outcome::Acted {
            api_action,
            what,
            request_id,
        } => match mode {
            Mode::Apply => cond(
                false,
                reason::RECONCILING,
                format!("{api_action} sent (RequestId: {request_id}): {what}"),
            ),
            Mode::Delete => cond(
                false,
                reason::DELETING,
                format!("{what} (RequestId: {request_id})"),
            ),
        },
        Outcome::Creating => cond(
            false,
            reason::RECONCILING,
            "RunInstances sent; waiting for the instance id",
        ),
        Outcome::AwaitingCreate => cond(
            false,
            reason::DELETING,
            "waiting for a create that was in flight to become visible",
        ),
        Outcome::Sending { api_action, what } => cond(
            false,
            reason::RECONCILING,
            format!("sending {api_action}: {what}"),
        ),
        Outcome::Credentials { reason, message } => cond(false, reason, message.clone()),
        Outcome::CloudFailed {
            api_action,
            class,
            failure,
            retried,
        } => {
            let reason = match class {
                ErrorClass::Auth => reason::CREDENTIALS_REJECTED,
                ErrorClass::ClockSkew => reason::CLOCK_SKEW,
                ErrorClass::Unreachable => reason::CLOUD_UNREACHABLE,
                _ => reason::RECONCILE_ERROR,
            };
            let tail = match (retried, next_attempt) {
                // Woken when the API answers: no countdown, so the message
                // (and the status) stays the same through the outage.
                _ if *class == ErrorClass::Unreachable => "retried when it answers again".into(),
                (true, Some(d)) => format!("retrying in {}s", d.as_secs().max(1)),
                (true, None) => "retrying".into(),
                (false, _) => "not retried until the spec changes".into(),
            };
            let text = error_text(failure);
            cond(
                false,
                reason,
                format!("{api_action} failed: {text}; {tail}"),
            )
        }
        Outcome::Waiting(w) => {
            let c = waiting(w, last);
            // While deleting, a wait is part of the deletion (except the
            // one a person must resolve, which keeps its own reason).
            if mode == Mode::Delete && c.reason != reason::TERMINATION_PROTECTED {
                return cond(false, reason::DELETING, c.message);
            }
            c
        }
    }
}

fn waiting(w: &Wait, last: Option<&LastOperation>) -> Cond {
    match w {
        Wait::InSync => cond(true, reason::RECONCILE_SUCCESS, "the instance matches the spec"),
        Wait::Transitioning { state } => cond(
            false,
            reason::RECONCILING,
            format!("waiting: the instance is {state}"),
        ),
        Wait::OperationInProgress { operation } => cond(
            false,
            reason::RECONCILING,
            format!("waiting: {operation} is still in progress"),
        ),
        Wait::Paused { pending } => cond(
            false,
            reason::RECONCILE_PAUSED,
            format!(
                "paused by cvm.tencentcloud.io/paused; next step would be {}",
                pending.describe()
            ),
        ),
        Wait::ObserveOnly => cond(
            false,
            reason::DRIFT_DETECTED,
            "managementPolicy is ObserveOnly: differences are reported, not corrected",
        ),
        Wait::NotAllowed(refused) => not_allowed(refused),
        Wait::TypeUnavailable { instance_type, why } => cond(
            false,
            reason::INSTANCE_TYPE_UNAVAILABLE,
            format!(
                "spec.instanceType {instance_type} cannot be applied: {why}; nothing was stopped. Choose a type the instance can change to (or wait, if it is sold out)"
            ),
        ),
        Wait::LaunchFailed { message } => cond(
            false,
            reason::LAUNCH_FAILED,
            format!("the launch failed: {message}"),
        ),
        Wait::NotFound { instance_id } => cond(
            false,
            reason::INSTANCE_NOT_FOUND,
            match instance_id {
                Some(id) => format!("instance {id} does not exist"),
                None => "no instance to observe (ObserveOnly needs spec.instanceId or an instance tagged with this resource's UID)".into(),
            },
        ),
        Wait::Blocked(blocked) => {
            let action = blocked.api_action();
            let detail = last
                .filter(|l| l.action == action)
                .map(|l| {
                    let rid = l.request_id.as_deref().map(|r| format!(" (RequestId: {r})"));
                    format!(
                        "{}: {}{}",
                        l.code.as_deref().unwrap_or("?"),
                        l.message.as_deref().unwrap_or(""),
                        rid.unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            cond(
                false,
                reason::RECONCILE_ERROR,
                format!("{action} failed: {detail}; not retried until the spec changes"),
            )
        }
        Wait::RecycleBin => cond(
            false,
            reason::RECYCLE_BIN,
            "the instance is in the recycle bin (SHUTDOWN)",
        ),
        Wait::TerminationProtected => cond(
            false,
            reason::TERMINATION_PROTECTED,
            "deletion waits: the instance has termination protection; set spec.disableApiTermination: false (or deletionPolicy: Retain)",
        ),
    }
}

/// The reason and message `Synced` carries while the operator waits (what
/// `plan` prints where the operator would stop short).
pub fn explain(w: &Wait, last: Option<&LastOperation>) -> (&'static str, String) {
    let c = waiting(w, last);
    (c.reason, c.message)
}

/// The waits that deserve a Warning event besides their condition: a
/// change not made (its disruption is not allowed, its type cannot be had).
/// Their (reason, message).
pub fn refusal(w: &Wait) -> Option<(&'static str, String)> {
    matches!(w, Wait::NotAllowed(_) | Wait::TypeUnavailable { .. }).then(|| {
        let c = waiting(w, None);
        (c.reason, c.message)
    })
}

/// Changes the disruption policy holds back: the first one's disruption
/// names the reason; the message lists each with what a person can do.
fn not_allowed(refused: &[Refused]) -> Cond {
    let first = refused.first().map_or(Disruption::Stop, |r| r.disruption);
    let reason = match first {
        Disruption::Reboot => reason::REBOOT_REQUIRED,
        Disruption::Reinstall => reason::REINSTALL_REQUIRED,
        Disruption::Stop | Disruption::None => reason::STOP_REQUIRED,
    };
    let each: Vec<String> = refused
        .iter()
        .map(|r| {
            let what = match r.disruption {
                Disruption::Reboot => "a reboot, and disruptionPolicy.reboot is Never: stop the instance yourself (spec.runState: Stopped) or allow disruptionPolicy.reboot",
                Disruption::Reinstall => "a reinstall that formats the system disk, and disruptionPolicy.reinstall is Never: set it to Allowed to reinstall, or restore the previous value",
                Disruption::Stop | Disruption::None => "the instance stopped, and disruptionPolicy.stopStart is Never: stop it yourself (spec.runState: Stopped) or allow disruptionPolicy.stopStart",
            };
            format!("{} needs {what}", r.field)
        })
        .collect();
    cond(false, reason, format!("not applied: {}", each.join("; ")))
}

/// Whether `outcome` waits for a person rather than for time: see [`STALLED`].
fn is_stalled(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::CloudFailed { class, retried, .. } => {
            !retried || matches!(class, ErrorClass::Auth | ErrorClass::ClockSkew)
        }
        Outcome::Credentials { reason, .. } => !matches!(
            *reason,
            reason::CREDENTIALS_UNREADABLE | reason::CLOUD_UNREACHABLE
        ),
        Outcome::Waiting(w) => matches!(
            w,
            Wait::NotAllowed(_)
                | Wait::TypeUnavailable { .. }
                | Wait::LaunchFailed { .. }
                | Wait::NotFound { .. }
                | Wait::Blocked(_)
                | Wait::RecycleBin
                | Wait::TerminationProtected
        ),
        Outcome::Acted { .. }
        | Outcome::Creating
        | Outcome::AwaitingCreate
        | Outcome::Sending { .. } => false,
    }
}

/// `Stalled`, from the outcome and what `Synced` says of it (a deletion's
/// waits are part of the deletion, but for the one a person must resolve).
fn stalled(outcome: &Outcome, synced: &Cond) -> Cond {
    if is_stalled(outcome) && synced.reason != reason::DELETING {
        cond(true, synced.reason, synced.message.clone())
    } else {
        cond(false, reason::NOT_STALLED, "nothing waits for a person")
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
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: c.reason.into(),
        message: clipped(c.message, STATUS_MESSAGE_MAX),
        observed_generation: generation,
        last_transition_time: ltt,
    }
}

/// A `CvmAccount`'s `Ready` condition: its credentials (from `source`) act
/// in account `uin`, or the reason and message of why they cannot be had.
pub fn account_ready(
    prev: &[Condition],
    verified: Result<&str, (&'static str, String)>,
    source: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let c = match verified {
        Ok(uin) => cond(
            true,
            reason::VERIFIED,
            format!("{source} act in account {uin}"),
        ),
        Err((reason, message)) => cond(false, reason, message),
    };
    condition(prev, READY, c, generation, now)
}

/// A condition for another resource's status (a set's): its
/// `lastTransitionTime` moves only when its status flips.
pub fn transition(
    prev: &[Condition],
    type_: &str,
    (status, reason, message): (bool, &'static str, String),
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    condition(prev, type_, cond(status, reason, message), generation, now)
}

/// What one status carries besides the conditions.
pub struct Facts<'a> {
    pub mode: Mode,
    pub observed: &'a Observed,
    pub outcome: &'a Outcome,
    pub last_operation: Option<LastOperation>,
    /// An id just returned by RunInstances (not observed yet).
    pub launched: Option<&'a str>,
    /// When the operator looks again (quoted by failures).
    pub next_attempt: Option<Duration>,
    /// A new `status.restart` (`None`: the last one stays).
    pub restart: Option<RestartStatus>,
    /// A new `status.applied` (`None`: the last one stays).
    pub applied: Option<AppliedValues>,
}

/// The full status for this reconcile.
pub fn build(obj: &CvmInstance, facts: Facts<'_>, now: &Time) -> CvmInstanceStatus {
    let prev = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let mut s = CvmInstanceStatus {
        instance_id: facts
            .launched
            .map(str::to_string)
            .or_else(|| obj.known_instance_id().map(str::to_string)),
        observed_generation: generation,
        last_operation: facts.last_operation,
        restart: facts.restart.or(prev.restart),
        // Once recorded, the account stays (see `ownership::account_change`).
        account: prev.account.clone(),
        applied: facts.applied.or(prev.applied),
        // The price stays until a create or a change asks it again.
        price: prev.price,
        ..Default::default()
    };
    match facts.observed {
        Observed::Present(o) => {
            s.instance_id = Some(o.id.clone());
            s.instance_state = Some(o.state.as_str().to_string());
            s.instance_type = Some(o.instance_type.to_string()).filter(|t| !t.is_empty());
            s.instance_name = Some(clipped(o.name.clone(), 128)).filter(|t| !t.is_empty());
            s.zone = Some(o.zone.to_string()).filter(|t| !t.is_empty());
            // The CRD bounds status lists; an instance never comes near.
            let bounded = |l: &[String]| l.iter().take(STATUS_LIST_MAX).cloned().collect();
            s.private_ip_addresses = bounded(&o.private_ips);
            s.public_ip_addresses = bounded(&o.public_ips);
            s.internet_max_bandwidth_out = Some(o.bandwidth_out);
            s.security_group_ids = bounded(&o.security_group_ids);
            s.created_time = Some(o.created_time.clone()).filter(|t| !t.is_empty());
        }
        Observed::Missing { instance_id } => s.instance_id = Some(instance_id.clone()),
        Observed::NotCreated => {}
    }
    let r = ready(obj, facts.mode, facts.observed);
    let last = s.last_operation.as_ref();
    let y = synced(facts.outcome, facts.mode, last, facts.next_attempt);
    let st = stalled(facts.outcome, &y);
    s.conditions = vec![
        condition(&prev.conditions, READY, r, generation, now),
        condition(&prev.conditions, SYNCED, y, generation, now),
        condition(&prev.conditions, STALLED, st, generation, now),
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
    mode: Mode,
    outcome: &Outcome,
    next_attempt: Option<Duration>,
    now: &Time,
) -> Vec<Condition> {
    let prev = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let unknown = cond(
        false,
        reason::UNOBSERVED,
        "the instance cannot be observed; see the Synced condition",
    );
    let mut ready = condition(prev, READY, unknown, generation, now);
    ready.status = "Unknown".into();
    if let Some(p) = prev
        .iter()
        .find(|c| c.type_ == READY && c.status == "Unknown")
    {
        ready.last_transition_time = p.last_transition_time.clone();
    }
    let last = obj.status.as_ref().and_then(|s| s.last_operation.as_ref());
    let synced = synced(outcome, mode, last, next_attempt);
    let st = stalled(outcome, &synced);
    vec![
        ready,
        condition(prev, SYNCED, synced, generation, now),
        condition(prev, STALLED, st, generation, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CvmInstance;
    use std::sync::Arc;

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

    fn in_sync(obj: &CvmInstance, o: &Observation, now: &Time) -> CvmInstanceStatus {
        let facts = Facts {
            mode: Mode::Apply,
            observed: &Observed::Present(Arc::new(o.clone())),
            outcome: &Outcome::Waiting(Wait::InSync),
            last_operation: None,
            launched: None,
            next_attempt: None,
            restart: None,
            applied: None,
        };
        build(obj, facts, now)
    }

    #[test]
    fn ready_and_synced_with_observed_generation() {
        let obj = resource();
        let o = observation();
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let s = in_sync(&obj, &o, &now);
        assert_eq!(s.instance_state.as_deref(), Some("RUNNING"));
        assert_eq!(s.public_ip_addresses, ["43.128.0.1"]);
        assert_eq!(s.observed_generation, Some(3));
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::AVAILABLE)
        );
        assert_eq!(ready.observed_generation, Some(3));
        // lastTransitionTime survives a rebuild with the same status…
        let mut again = obj.clone();
        again.status = Some(s.clone());
        let later = Time(jiff::Timestamp::from_second(1_800_000_100).unwrap());
        let s2 = in_sync(&again, &o, &later);
        assert_eq!(
            s2, s,
            "an unchanged status is identical, so it is not rewritten"
        );
        // …and moves when the status flips.
        let stopping = Observation {
            state: InstanceState::Stopping,
            ..o
        };
        let s3 = in_sync(&again, &stopping, &later);
        let ready3 = s3.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready3.status.as_str(), ready3.last_transition_time.clone()),
            ("False", later)
        );
    }

    #[test]
    fn a_rebuild_from_the_slim_cache_matches_the_stored_fingerprint() {
        use crate::controller::cache::{CachedInstance, Fingerprint};
        let obj = resource();
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let observed = Observed::Present(Arc::new(observation()));
        let waiting = Outcome::Waiting(Wait::InSync);
        let facts = |last: Option<LastOperation>| Facts {
            mode: Mode::Apply,
            observed: &observed,
            outcome: &waiting,
            last_operation: last,
            launched: None,
            next_attempt: None,
            restart: None,
            applied: None,
        };
        let done = LastOperation::succeeded("RunInstances", "req-1", Some(3), "t".into());
        let full = build(&obj, facts(Some(done)), &now);
        // What the watch delivers: the object with the full status, slimmed.
        let mut json = serde_json::to_value(&obj).unwrap();
        json["metadata"]["uid"] = "u-1".into();
        json["status"] = serde_json::to_value(&full).unwrap();
        let mut cached: CachedInstance = serde_json::from_value(json).unwrap();
        cached.slim();
        let (slim, fingerprint) = cached.expand().unwrap();
        assert_eq!(fingerprint, Some(Fingerprint::of(&full)));
        let last = slim.status.as_ref().unwrap().last_operation.clone();
        let rebuilt = build(&slim, facts(last), &now);
        assert_eq!(
            Fingerprint::of(&rebuilt),
            Fingerprint::of(&full),
            "an unchanged status rebuilt from the cache is not rewritten"
        );
    }

    #[test]
    fn stalled_is_true_exactly_when_a_person_must_act() {
        let obj = resource();
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let fail = |class, retried| Outcome::CloudFailed {
            api_action: "RunInstances",
            class,
            failure: Failure {
                code: "C".into(),
                message: "m".into(),
                request_id: Some("r".into()),
            },
            retried,
        };
        let waiting = |w| Outcome::Waiting(w);
        let launch = Wait::LaunchFailed {
            message: "no stock".into(),
        };
        let creds = |reason| Outcome::Credentials {
            reason,
            message: "m".into(),
        };
        let cases = [
            (
                Mode::Apply,
                fail(ErrorClass::Permanent, false),
                Some(reason::RECONCILE_ERROR),
            ),
            (
                Mode::Apply,
                fail(ErrorClass::Auth, true),
                Some(reason::CREDENTIALS_REJECTED),
            ),
            (
                Mode::Apply,
                fail(ErrorClass::ClockSkew, true),
                Some(reason::CLOCK_SKEW),
            ),
            (Mode::Apply, fail(ErrorClass::Throttled, true), None),
            (Mode::Apply, waiting(launch), Some(reason::LAUNCH_FAILED)),
            (
                Mode::Apply,
                waiting(Wait::NotAllowed(vec![Refused {
                    field: "spec.instanceType",
                    disruption: Disruption::Stop,
                }])),
                Some(reason::STOP_REQUIRED),
            ),
            (
                Mode::Apply,
                waiting(Wait::RecycleBin),
                Some(reason::RECYCLE_BIN),
            ),
            (Mode::Apply, waiting(Wait::ObserveOnly), None),
            (Mode::Apply, waiting(Wait::InSync), None),
            (
                Mode::Apply,
                creds(reason::CREDENTIALS_NOT_FOUND),
                Some(reason::CREDENTIALS_NOT_FOUND),
            ),
            (Mode::Apply, creds(reason::CREDENTIALS_UNREADABLE), None),
            (Mode::Apply, Outcome::Creating, None),
            (
                Mode::Delete,
                waiting(Wait::TerminationProtected),
                Some(reason::TERMINATION_PROTECTED),
            ),
            (Mode::Delete, waiting(Wait::RecycleBin), None),
        ];
        for (mode, outcome, want) in cases {
            let facts = Facts {
                mode,
                observed: &Observed::NotCreated,
                outcome: &outcome,
                last_operation: None,
                launched: None,
                next_attempt: None,
                restart: None,
                applied: None,
            };
            let s = build(&obj, facts, &now);
            let get = |t| s.conditions.iter().find(|c| c.type_ == t).unwrap();
            let (st, synced) = (get(STALLED), get(SYNCED));
            match want {
                Some(reason) => {
                    let got = (st.status.as_str(), st.reason.as_str());
                    assert_eq!(got, ("True", reason), "{mode:?} {outcome:?}");
                    assert_eq!(st.message, synced.message);
                }
                None => assert_eq!(st.status, "False", "{mode:?} {outcome:?}"),
            }
            assert_eq!(st.observed_generation, Some(3));
        }
        // Reported before anything could be observed, too.
        let outcome = creds(reason::CREDENTIALS_NOT_FOUND);
        let c = unobserved_conditions(&obj, Mode::Apply, &outcome, None, &now);
        let st = c.iter().find(|c| c.type_ == STALLED).unwrap();
        let got = (st.status.as_str(), st.reason.as_str());
        assert_eq!(got, ("True", reason::CREDENTIALS_NOT_FOUND));
    }
}
