//! The report of one reconcile, and what it turns into: the status to write,
//! the events to publish, the error to count and when to look again.
//!
//! Every exit of a reconcile — acted, waiting, failed, released — is one
//! [`Report`] built here; `finish` in `reconcile.rs` carries it out. Pure:
//! the table below tests report → status, events and requeue without an
//! apiserver.

use super::observation::{Observed, Timing};
use super::plan::{CREATE, CloudAction, Drift, Mode, PendingChange, Release, Wait};
use super::status::{self, Facts, Outcome};
use crate::api::pending::{PENDING_CHANGES_MAX, PendingChangeStatus};
use crate::api::price::PriceStatus;
use crate::api::{
    AppliedValues, CvmInstance, CvmInstanceStatus, Failure, LastOperation, ManagementPolicy,
    RESTARTED_AT_ANNOTATION, RestartState, RestartStatus,
};
use crate::cloud::model::{self, Action as _};
use crate::cloud::{CloudError, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes event about the resource being reconciled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: &'static str,
    /// What was being done (`RunInstances`, `Delete`, `Observe`, …).
    pub action: &'static str,
    pub note: String,
}

/// Event reasons (an interface: people and alerts match on them). An
/// accepted in-place action's reason is [`CloudAction::event_reason`].
pub mod event_reason {
    pub const CREATING: &str = "Creating";
    /// An adopted instance is tagged with the resource's UID.
    pub const ADOPTING: &str = "Adopting";
    /// The API booted an instance the spec wants stopped (ResetInstancesType
    /// does, as documented); the operator stops it again.
    pub const UNPLANNED_BOOT: &str = "UnplannedBoot";
    /// A restart asked for while the instance is (to stay) stopped.
    pub const RESTART_SKIPPED: &str = "RestartSkipped";
    /// A restart found to have happened before a crash hid the answer.
    pub const RESTARTED: &str = "Restarted";
    pub const CLOUD_API_ERROR: &str = "CloudAPIError";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const RETAINED: &str = "Retained";
    pub const DELETED: &str = "Deleted";
    pub const RELEASED: &str = "Released";
    pub const ORPHANED_INSTANCE: &str = "OrphanedInstance";
}

/// Event actions that are not CVM API actions.
pub mod event_action {
    pub const RESOLVE_CREDENTIALS: &str = "ResolveCredentials";
    /// Deciding what to do (a change held back by the disruption policy).
    pub const PLAN: &str = "Plan";
    pub const DELETE: &str = "Delete";
    pub const OBSERVE: &str = "Observe";
}

/// When to reconcile again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing scheduled: the sweep wakes the resource when its instance
    /// changes, the watch when its spec, labels or annotations do. Not
    /// keeping a timer per settled resource is what lets 10,000 resources
    /// fit in a small operator.
    AwaitChange,
    /// After exactly this long.
    After(Duration),
    /// After about this long (±20 %), so that many resources spread out.
    Around(Duration),
    /// After the resource's next exponential backoff from `base` (each
    /// failure in a row doubles it), never later than `at_most`.
    Backoff {
        base: Duration,
        at_most: Option<Duration>,
    },
}

impl Requeue {
    pub fn backoff(base: Duration) -> Self {
        Requeue::Backoff {
            base,
            at_most: None,
        }
    }
}

/// The backoff base a failed call earns, by error class; `None`: a
/// permanent error, not retried until the spec changes.
pub fn retry_base(class: ErrorClass) -> Option<Duration> {
    match class {
        ErrorClass::Permanent => None,
        ErrorClass::Busy | ErrorClass::NotFound => Some(Duration::from_secs(2)),
        ErrorClass::Throttled | ErrorClass::Transient => Some(Duration::from_secs(5)),
        ErrorClass::Auth | ErrorClass::ClockSkew => Some(Duration::from_secs(30)),
        // A backstop: the observer wakes whoever waits when the API answers.
        ErrorClass::Unreachable => Some(Duration::from_secs(30)),
    }
}

/// A failed call as status records it.
pub fn failure(error: &CloudError) -> Failure {
    Failure {
        code: error.code().to_string(),
        message: error.message(),
        request_id: error.request_id().map(str::to_string),
    }
}

/// Credentials that cannot be had are retried from this base.
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(10);
/// A deletion refused permanently is still retried (the resource must go),
/// from this base.
pub const DELETE_RETRY: Duration = Duration::from_secs(30);
/// A terminate answered "not found" looks again this soon: it is gone.
pub const GONE_RECHECK: Duration = Duration::from_millis(100);

/// What a reconcile has to say about the status.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusReport {
    /// Everything: what was observed, how it ended, the last operation.
    Full {
        observed: Observed,
        outcome: Outcome,
        last_operation: Option<LastOperation>,
        /// An id RunInstances just returned (not observed yet).
        launched: Option<String>,
    },
    /// Nothing could be observed: only the conditions change (the last
    /// observed fields stay as they are).
    ConditionsOnly(Outcome),
    /// Nothing to write.
    Unchanged,
}

/// A status to write.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    /// The whole status, by server-side apply.
    Apply(Box<CvmInstanceStatus>),
    /// The conditions and observed generation only, by merge patch.
    Conditions(Vec<Condition>),
}

/// One reconcile's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub mode: Mode,
    pub status: StatusReport,
    pub events: Vec<Event>,
    pub requeue: Requeue,
    /// Counted in `reconcile_errors_total`; every failure sets it, and a
    /// report without one resets the resource's backoff.
    pub error: Option<ErrorClass>,
    /// The deletion is complete: drop the finalizer.
    pub release: bool,
    /// A new `status.restart` (otherwise the last one is kept).
    pub restart: Option<RestartStatus>,
    /// A new `status.applied` (otherwise the last one is kept).
    pub applied: Option<AppliedValues>,
    /// A new `status.price` (otherwise the last one is kept).
    pub price: Option<PriceStatus>,
    /// `status.pendingChanges`: set when the operator will not act on
    /// changes it sees (empty otherwise, which clears the list).
    pub pending: Vec<PendingChangeStatus>,
}

/// An accepted call.
#[derive(Debug, Clone)]
pub struct Done {
    pub api_action: &'static str,
    pub what: String,
    pub event_reason: &'static str,
    pub instance_id: String,
    pub request_id: String,
}

impl Done {
    pub fn create(instance_id: &str, request_id: &str) -> Self {
        Done {
            api_action: CREATE,
            what: "creating the instance".into(),
            event_reason: event_reason::CREATING,
            instance_id: instance_id.into(),
            request_id: request_id.into(),
        }
    }

    /// The tag write that makes an adopted instance the resource's.
    pub fn adopt(instance_id: &str, request_id: &str) -> Self {
        Done {
            api_action: crate::cloud::tag::ModifyResourceTags::NAME,
            what: "adopting the instance (tagging it with this resource's UID)".into(),
            event_reason: event_reason::ADOPTING,
            instance_id: instance_id.into(),
            request_id: request_id.into(),
        }
    }

    pub fn action(action: &CloudAction, instance_id: &str, request_id: &str) -> Self {
        Done {
            api_action: action.api_action(),
            what: action.describe(),
            event_reason: action.event_reason(),
            instance_id: instance_id.into(),
            request_id: request_id.into(),
        }
    }
}

fn event(type_: EventType, reason: &'static str, action: &'static str, note: String) -> Event {
    Event {
        type_,
        reason,
        action,
        note,
    }
}

impl Report {
    fn new(mode: Mode, status: StatusReport, requeue: Requeue) -> Self {
        Report {
            mode,
            status,
            events: Vec::new(),
            requeue,
            error: None,
            release: false,
            restart: None,
            applied: None,
            price: None,
            pending: Vec::new(),
        }
    }

    /// The planner says wait.
    pub fn waiting(
        mode: Mode,
        observed: Observed,
        wait: Wait,
        last: Option<LastOperation>,
        timing: Timing,
    ) -> Self {
        let requeue = match (mode, wait.is_transient()) {
            // Sold out now, maybe not later: look again now and then.
            (Mode::Apply, _) if matches!(wait, Wait::TypeUnavailable { .. }) => {
                Requeue::Around(timing.poll_interval)
            }
            // The fast sweep wakes us on each change; this is a backstop.
            (Mode::Apply, true) => Requeue::Around(timing.fast_interval * 3),
            // Settled, or waiting for a person.
            (Mode::Apply, false) => Requeue::AwaitChange,
            (Mode::Delete, true) => Requeue::Around(timing.fast_interval),
            (Mode::Delete, false) => Requeue::After(timing.poll_interval / 10),
        };
        let refusal = status::refusal(&wait);
        let status = StatusReport::Full {
            observed,
            outcome: Outcome::Waiting(wait),
            last_operation: last,
            launched: None,
        };
        let mut report = Report::new(mode, status, requeue);
        if let Some((reason, note)) = refusal {
            let e = event(EventType::Warning, reason, event_action::PLAN, note);
            report.events.push(e);
        }
        report
    }

    /// A status to write before `api_action` is sent (a restart's intent).
    pub fn intent(
        mode: Mode,
        observed: Observed,
        action: &CloudAction,
        last: Option<LastOperation>,
        restart: RestartStatus,
    ) -> Self {
        let status = StatusReport::Full {
            observed,
            outcome: Outcome::Sending {
                api_action: action.api_action(),
                what: action.describe(),
            },
            last_operation: last,
            launched: None,
        };
        let mut report = Report::new(mode, status, Requeue::AwaitChange);
        report.restart = Some(restart);
        report
    }

    /// Records `restart` in status, with the event a record made without a
    /// call deserves (skipped, or found done after a crash).
    pub fn with_restart(mut self, restart: RestartStatus) -> Self {
        let at = &restart.requested_at;
        let note = match restart.state {
            RestartState::Skipped => Some((
                event_reason::RESTART_SKIPPED,
                format!(
                    "{RESTARTED_AT_ANNOTATION}: {at}: the instance is stopped (spec.runState: Stopped); a restart never starts it"
                ),
            )),
            RestartState::Rebooted if self.events.is_empty() => Some((
                event_reason::RESTARTED,
                format!(
                    "{RESTARTED_AT_ANNOTATION}: {at}: RebootInstances had reached the cloud (RequestId: {}); not sent again",
                    restart.request_id.as_deref().unwrap_or("-")
                ),
            )),
            _ => None,
        };
        if let Some((reason, note)) = note {
            let e = event(
                EventType::Normal,
                reason,
                model::RebootInstances::NAME,
                note,
            );
            self.events.push(e);
        }
        self.restart = Some(restart);
        self
    }

    /// Records what the instance costs now.
    pub fn with_price(mut self, price: PriceStatus) -> Self {
        self.price = Some(price);
        self
    }

    /// Lists the changes the operator sees but will not make now, when
    /// this report says it will not (paused, ObserveOnly, a disruption the
    /// policy refuses, a permanent failure, an unavailable type): the rest
    /// of the time the list is empty.
    pub fn with_pending(mut self, pending: &[PendingChange]) -> Self {
        if self.holds_changes() {
            self.pending = pending
                .iter()
                .take(PENDING_CHANGES_MAX)
                .map(|p| {
                    let d = p.disruption.as_str();
                    PendingChangeStatus::new(p.field, p.from.clone(), p.to.clone(), d)
                })
                .collect();
        }
        self
    }

    /// Whether the operator will not act on the differences it sees until
    /// something changes (a person, the spec).
    fn holds_changes(&self) -> bool {
        if self.mode != Mode::Apply {
            return false;
        }
        let outcome = match &self.status {
            StatusReport::Full { outcome, .. } => outcome,
            _ => return false,
        };
        match outcome {
            Outcome::Waiting(w) => matches!(
                w,
                Wait::Paused { .. }
                    | Wait::ObserveOnly
                    | Wait::NotAllowed(_)
                    | Wait::Blocked(_)
                    | Wait::TypeUnavailable { .. }
            ),
            Outcome::CloudFailed { retried, .. } => !retried,
            _ => false,
        }
    }

    /// Records what was applied of the write-only values.
    pub fn with_applied(mut self, applied: AppliedValues) -> Self {
        self.applied = Some(applied);
        self
    }

    /// The API boots the instance for this action although the spec wants
    /// it stopped: say so (it is stopped again next).
    pub fn with_unplanned_boot(mut self, api_action: &'static str) -> Self {
        let note = format!(
            "{api_action} boots the instance (documented API behaviour); it is stopped again because spec.runState is Stopped"
        );
        let e = event(
            EventType::Warning,
            event_reason::UNPLANNED_BOOT,
            api_action,
            note,
        );
        self.events.push(e);
        self
    }

    /// A call was accepted; `last` records it.
    pub fn acted(
        mode: Mode,
        observed: Observed,
        done: Done,
        last: LastOperation,
        timing: Timing,
    ) -> Self {
        let note = format!(
            "{}: {} (RequestId: {})",
            done.instance_id, done.what, done.request_id
        );
        let launched = (done.api_action == CREATE).then(|| done.instance_id.clone());
        let status = StatusReport::Full {
            observed,
            outcome: Outcome::Acted {
                api_action: done.api_action,
                what: done.what,
                request_id: done.request_id,
            },
            last_operation: Some(last),
            launched,
        };
        let mut report = Report::new(mode, status, Requeue::Around(timing.fast_interval));
        let e = event(EventType::Normal, done.event_reason, done.api_action, note);
        report.events.push(e);
        report
    }

    /// A call failed. `last` is what `lastOperation` says now (the failure
    /// itself when it is permanent).
    pub fn cloud_failed(
        mode: Mode,
        observed: Observed,
        api_action: &'static str,
        error: CloudError,
        last: Option<LastOperation>,
        timing: Timing,
    ) -> Self {
        let class = error.class();
        let requeue = match (retry_base(class), mode) {
            (Some(base), _) => Requeue::backoff(base),
            (None, Mode::Delete) => Requeue::backoff(DELETE_RETRY),
            // Blocked until the spec changes; a slow look now and then.
            (None, Mode::Apply) => Requeue::Around(timing.poll_interval),
        };
        let retried = !matches!(requeue, Requeue::Around(_));
        let note = format!(
            "{api_action} failed: {}: {} (RequestId: {})",
            error.code(),
            error.message(),
            error.request_id().unwrap_or("-")
        );
        let status = StatusReport::Full {
            observed,
            outcome: Outcome::CloudFailed {
                api_action,
                class,
                failure: failure(&error),
                retried,
            },
            last_operation: last,
            launched: None,
        };
        let mut report = Report::new(mode, status, requeue);
        // An outage is the operator's, not the resource's: the condition
        // says it once, the log once per outage, no event per retry.
        if class != ErrorClass::Unreachable {
            let e = event(
                EventType::Warning,
                event_reason::CLOUD_API_ERROR,
                api_action,
                note,
            );
            report.events.push(e);
        }
        report.error = Some(class);
        report
    }

    /// The instance could not be observed (DescribeInstances failed).
    pub fn unobservable(mode: Mode, error: CloudError, timing: Timing) -> Self {
        Report::failed_unobserved(mode, model::DescribeInstances::NAME, error, timing)
    }

    /// `api_action` failed before the instance was known to be the
    /// resource's (an adoption's tag write): only the conditions say it.
    pub fn failed_unobserved(
        mode: Mode,
        api_action: &'static str,
        error: CloudError,
        timing: Timing,
    ) -> Self {
        let class = error.class();
        let requeue = match retry_base(class) {
            Some(base) => Requeue::backoff(base),
            None => Requeue::After(timing.poll_interval),
        };
        let outcome = Outcome::CloudFailed {
            api_action,
            class,
            failure: failure(&error),
            retried: true,
        };
        let mut report = Report::new(mode, StatusReport::ConditionsOnly(outcome), requeue);
        report.error = Some(class);
        report
    }

    /// Credentials (or a Secret the spec references) could not be had
    /// while doing `action`.
    pub fn credentials_failed(
        mode: Mode,
        reason: &'static str,
        message: String,
        action: &'static str,
    ) -> Self {
        let e = event(EventType::Warning, reason, action, message.clone());
        let unreachable = reason == status::reason::CLOUD_UNREACHABLE;
        let outcome = Outcome::Credentials { reason, message };
        let requeue = Requeue::backoff(CREDENTIALS_RETRY);
        let mut report = Report::new(mode, StatusReport::ConditionsOnly(outcome), requeue);
        if unreachable {
            // Verifying the keys needs the API: an outage, said by the
            // condition alone (see `cloud_failed`).
            report.error = Some(ErrorClass::Unreachable);
            return report;
        }
        report.events.push(e);
        report.error = Some(ErrorClass::Auth);
        report
    }

    /// Deleting, and a create sent moments ago may not be visible yet.
    pub fn awaiting_create(last: Option<LastOperation>, timing: Timing) -> Self {
        let status = StatusReport::Full {
            observed: Observed::NotCreated,
            outcome: Outcome::AwaitingCreate,
            last_operation: last,
            launched: None,
        };
        Report::new(Mode::Delete, status, Requeue::After(timing.fast_interval))
    }

    /// A terminate answered "not found": the instance is already gone; the
    /// next observation says so.
    pub fn already_gone(error: &CloudError) -> Self {
        let requeue = Requeue::After(GONE_RECHECK);
        let mut report = Report::new(Mode::Delete, StatusReport::Unchanged, requeue);
        report.error = Some(error.class());
        report
    }

    /// The deletion is complete; `instance_id` is the instance it concerned.
    pub fn released(why: Release, instance_id: Option<&str>) -> Self {
        let mut report = Report::new(Mode::Delete, StatusReport::Unchanged, Requeue::AwaitChange);
        report.release = true;
        let normal =
            |reason, note: String| event(EventType::Normal, reason, event_action::DELETE, note);
        let note = match (why, instance_id) {
            (_, None) | (Release::NeverCreated, _) => None,
            (Release::Retained, Some(id)) => Some(normal(
                event_reason::RETAINED,
                format!("instance {id} is left as it is (deletionPolicy Retain or ObserveOnly)"),
            )),
            (Release::Gone, Some(id)) => Some(normal(
                event_reason::DELETED,
                format!("instance {id} is gone"),
            )),
            (Release::NeverLaunched, Some(id)) => Some(normal(
                event_reason::RELEASED,
                format!(
                    "instance {id} never launched (LAUNCH_FAILED) and cannot be terminated; it is not billed"
                ),
            )),
        };
        report.events.extend(note);
        report
    }

    /// Deleting a resource whose known instance is not its own (and none
    /// carries its UID tag): the finalizer goes, the instance is left alone.
    pub fn released_not_owned(instance_id: &str, why: &str) -> Self {
        let mut report = Report::released(Release::NeverCreated, None);
        let note = format!("instance {instance_id} is left as it is: {why}");
        let reason = event_reason::RELEASED;
        let e = event(EventType::Normal, reason, event_action::DELETE, note);
        report.events.push(e);
        report
    }

    /// Deleting without any credentials past the grace: the finalizer goes,
    /// and a Warning names the instance that may still exist.
    pub fn orphaned(instance_id: Option<&str>, why: &str, grace: Duration) -> Self {
        let mut report = Report::released(Release::NeverCreated, None);
        let note = format!(
            "cannot terminate instance {}: {why}; released after {}s so the deletion can finish — the instance may still exist",
            instance_id.unwrap_or("(unknown id)"),
            grace.as_secs()
        );
        let reason = event_reason::ORPHANED_INSTANCE;
        report.events.push(event(
            EventType::Warning,
            reason,
            event_action::DELETE,
            note,
        ));
        report
    }

    /// Adds the DriftDetected event: the instance changed while the spec
    /// did not.
    pub fn with_drift(mut self, drift: &[Drift], obj: &CvmInstance) -> Self {
        if drift.is_empty() {
            return self;
        }
        let what: Vec<String> = drift.iter().map(ToString::to_string).collect();
        let verdict = if obj.spec.management_policy == ManagementPolicy::ObserveOnly {
            "reported only (ObserveOnly)"
        } else if obj.is_paused() {
            "not corrected while paused"
        } else {
            "correcting"
        };
        let note = format!(
            "the instance was changed outside Kubernetes: {}; {verdict}",
            what.join("; ")
        );
        let reason = event_reason::DRIFT_DETECTED;
        let drifted = event(EventType::Warning, reason, event_action::OBSERVE, note);
        // First: it explains what follows (a correcting action, say).
        self.events.insert(0, drifted);
        self
    }

    /// What `lastOperation` becomes (`None`: the report writes no full
    /// status).
    pub fn last_operation(&self) -> Option<Option<&LastOperation>> {
        match &self.status {
            StatusReport::Full { last_operation, .. } => Some(last_operation.as_ref()),
            _ => None,
        }
    }

    /// The status to write for `obj`, given when the operator looks next
    /// (`next_attempt`, quoted in a failure's message). `None`: nothing
    /// changes. (A full status is compared with the cached one by the
    /// writer, which holds the fingerprint.)
    pub fn status_write(
        &self,
        obj: &CvmInstance,
        next_attempt: Option<Duration>,
        now: &Time,
    ) -> Option<StatusWrite> {
        match &self.status {
            StatusReport::Unchanged => None,
            StatusReport::ConditionsOnly(outcome) => {
                let conditions =
                    status::unobserved_conditions(obj, self.mode, outcome, next_attempt, now);
                (!same_conditions(obj, &conditions)).then_some(StatusWrite::Conditions(conditions))
            }
            StatusReport::Full {
                observed,
                outcome,
                last_operation,
                launched,
            } => {
                let facts = Facts {
                    mode: self.mode,
                    observed,
                    outcome,
                    last_operation: last_operation.clone(),
                    launched: launched.as_deref(),
                    next_attempt,
                    restart: self.restart.clone(),
                    applied: self.applied.clone(),
                };
                let mut status = status::build(obj, facts, now);
                if let Some(price) = &self.price {
                    status.price = Some(price.clone());
                }
                status.pending_changes = self.pending.clone();
                Some(StatusWrite::Apply(Box::new(status)))
            }
        }
    }
}

/// The cache keeps each condition's type, status and reason: when those are
/// what we would write (for this generation), a retry of the same failure
/// writes nothing.
fn same_conditions(obj: &CvmInstance, conditions: &[Condition]) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == obj.metadata.generation
            && s.conditions.len() == conditions.len()
            && s.conditions
                .iter()
                .zip(conditions)
                .all(|(a, b)| a.type_ == b.type_ && a.status == b.status && a.reason == b.reason)
    })
}

/// The status of a create's intent, written before RunInstances is sent.
pub fn intent_status(
    obj: &CvmInstance,
    pending: LastOperation,
    applied: Option<AppliedValues>,
    price: Option<PriceStatus>,
    now: &Time,
) -> CvmInstanceStatus {
    let facts = Facts {
        mode: Mode::Apply,
        observed: &Observed::NotCreated,
        outcome: &Outcome::Creating,
        last_operation: Some(pending),
        launched: None,
        next_attempt: None,
        restart: None,
        applied,
    };
    let mut status = status::build(obj, facts, now);
    status.price = price.or(status.price);
    status
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
