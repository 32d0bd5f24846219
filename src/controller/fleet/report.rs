//! What a set's pass ends with: the status (counts, selector, journal,
//! `Ready`/`Synced`/`Progressing`/`Stalled`), the events, the error to count and when
//! to look again. Pure.

use super::rollout::{Member, Plan, Update};
use crate::api::set::{CvmInstanceSet, CvmInstanceSetStatus};
use crate::cloud::{CloudError, ErrorClass};
use crate::controller::report::{
    CREDENTIALS_RETRY, DELETE_RETRY, Event, EventType, Requeue, retry_base,
};
use crate::controller::status::{READY, STALLED, SYNCED, reason, transition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

pub const PROGRESSING: &str = "Progressing";

/// Condition and event reasons of a set (an interface, like the instance's).
pub mod set_reason {
    pub const COMPLETE: &str = "Complete";
    pub const SCALING_UP: &str = "ScalingUp";
    pub const SCALING_DOWN: &str = "ScalingDown";
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    pub const LAUNCHING: &str = "Launching";
    pub const LAUNCHED: &str = "Launched";
    pub const MEMBERS_NOT_READY: &str = "MembersNotReady";
    pub const MEMBER_ERROR: &str = "MemberError";
    pub const DELETING: &str = "Deleting";
}

/// Something that stopped part of a pass.
#[derive(Debug, Clone)]
pub enum Problem {
    /// No credentials (or a Secret the template needs).
    Credentials {
        reason: &'static str,
        message: String,
    },
    /// A cloud call failed.
    Cloud {
        action: &'static str,
        error: CloudError,
    },
    /// The apiserver refused or failed a member write.
    Members { message: String },
}

impl Problem {
    fn class(&self) -> ErrorClass {
        match self {
            Problem::Credentials { .. } => ErrorClass::Auth,
            Problem::Cloud { error, .. } => error.class(),
            Problem::Members { .. } => ErrorClass::Transient,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Problem::Credentials { reason, .. } => reason,
            Problem::Cloud { .. } => reason::RECONCILE_ERROR,
            Problem::Members { .. } => set_reason::MEMBER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Problem::Credentials { message, .. } | Problem::Members { message } => message.clone(),
            Problem::Cloud { action, error } => {
                format!("{action} failed: {}: {}", error.code(), error.message())
            }
        }
    }

    /// Waits for a person, not for time (the instance's rule, see
    /// [`STALLED`]): credentials that cannot be had or are refused, a
    /// request the API refuses whatever the retry.
    fn stalls(&self) -> bool {
        match self {
            Problem::Credentials { reason, .. } => !matches!(
                *reason,
                reason::CREDENTIALS_UNREADABLE | reason::CLOUD_UNREACHABLE
            ),
            Problem::Cloud { error, .. } => matches!(
                error.class(),
                ErrorClass::Permanent | ErrorClass::Auth | ErrorClass::ClockSkew
            ),
            Problem::Members { .. } => false,
        }
    }

    /// When to try again.
    fn retry(&self) -> Duration {
        match self {
            Problem::Credentials { .. } => CREDENTIALS_RETRY,
            Problem::Cloud { error, .. } => retry_base(error.class()).unwrap_or(DELETE_RETRY),
            Problem::Members { .. } => Duration::from_secs(2),
        }
    }
}

/// The member counts of a status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
}

pub fn counts(members: &[Member]) -> Counts {
    let live = || members.iter().filter(|m| !m.deleting);
    let n = |f: &dyn Fn(&Member) -> bool| live().filter(|m| f(m)).count() as i32;
    Counts {
        replicas: n(&|_| true),
        ready: n(&|m| m.ready),
        updated: n(&|m| m.update == Update::Current),
        available: n(&|m| m.available && m.update == Update::Current),
    }
}

/// One pass's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SetReport {
    pub status: CvmInstanceSetStatus,
    pub events: Vec<Event>,
    pub error: Option<ErrorClass>,
    pub requeue: Requeue,
    /// The deletion is complete: release the finalizer.
    pub release: bool,
}

/// What the pass saw and did.
pub struct Facts<'a> {
    pub counts: Counts,
    pub plan: &'a Plan,
    pub problems: &'a [Problem],
    pub events: Vec<Event>,
    pub deleting: bool,
}

/// The report of an apply or delete pass; `journal` is the status as the
/// pass left it (counters and launches).
pub fn report(
    set: &CvmInstanceSet,
    journal: CvmInstanceSetStatus,
    facts: Facts<'_>,
    now: &Time,
) -> SetReport {
    let c = facts.counts;
    let want = set.spec.replicas;
    let complete = !facts.deleting
        && c.replicas == want
        && c.ready == want
        && c.updated == want
        && journal.batches.is_empty();
    let status = CvmInstanceSetStatus {
        replicas: c.replicas,
        ready_replicas: c.ready,
        updated_replicas: c.updated,
        available_replicas: c.available,
        selector: Some(set.selector_string()),
        template_hash: Some(crate::api::set::template_hash(&set.spec.template)),
        observed_generation: set.metadata.generation,
        conditions: conditions(set, &journal, &facts, complete, now),
        ..journal
    };
    let mut events = facts.events;
    let requeue = match facts.problems.first() {
        Some(p) => {
            events.push(Event {
                type_: EventType::Warning,
                reason: p.reason(),
                action: "Reconcile",
                note: p.message(),
            });
            Requeue::backoff(p.retry())
        }
        // Member changes wake the set; this is a backstop.
        None if !complete => Requeue::Around(Duration::from_secs(30)),
        None => Requeue::AwaitChange,
    };
    let release =
        facts.deleting && c.replicas == 0 && status.batches.is_empty() && facts.problems.is_empty();
    SetReport {
        error: facts.problems.first().map(Problem::class),
        status,
        events,
        requeue,
        release,
    }
}

/// `Ready`, `Synced`, `Progressing` and `Stalled` (kstatus' "a person must
/// act", carrying `Synced`'s reason: Flux reports the set Failed, the Argo
/// CD check Degraded).
fn conditions(
    set: &CvmInstanceSet,
    journal: &CvmInstanceSetStatus,
    facts: &Facts<'_>,
    complete: bool,
    now: &Time,
) -> Vec<Condition> {
    let (generation, want, c) = (set.metadata.generation, set.spec.replicas, facts.counts);
    let prev = set
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let ready = if complete {
        let message = format!("all {want} members are ready and up to date");
        (true, set_reason::COMPLETE, message)
    } else if facts.deleting {
        let message = format!("deleting: {} members left", c.replicas);
        (false, set_reason::DELETING, message)
    } else {
        let message = format!(
            "{} of {want} members ready, {} up to date",
            c.ready, c.updated
        );
        (false, set_reason::MEMBERS_NOT_READY, message)
    };
    let synced = match facts.problems.first() {
        None => (
            true,
            reason::RECONCILE_SUCCESS,
            "the last pass succeeded".to_string(),
        ),
        Some(p) => (false, p.reason(), p.message()),
    };
    let stalled = match facts.problems.first() {
        Some(p) if p.stalls() => (true, p.reason(), p.message()),
        _ => (
            false,
            reason::NOT_STALLED,
            "nothing waits for a person".to_string(),
        ),
    };
    let (why, message) = progress(set, journal, facts, complete);
    vec![
        transition(&prev, READY, ready, generation, now),
        transition(&prev, SYNCED, synced, generation, now),
        transition(
            &prev,
            PROGRESSING,
            (!complete, why, message),
            generation,
            now,
        ),
        transition(&prev, STALLED, stalled, generation, now),
    ]
}

/// `Progressing`'s reason and message.
fn progress(
    set: &CvmInstanceSet,
    journal: &CvmInstanceSetStatus,
    facts: &Facts<'_>,
    complete: bool,
) -> (&'static str, String) {
    let want = set.spec.replicas;
    let c = facts.counts;
    if complete {
        return (
            set_reason::COMPLETE,
            format!("{want} members, all up to date"),
        );
    }
    let launching: i64 = journal.batches.iter().map(|b| i64::from(b.count)).sum();
    if facts.deleting {
        (set_reason::DELETING, "deleting the members".into())
    } else if launching > 0 {
        (
            set_reason::LAUNCHING,
            format!(
                "launching {launching} instances ({} members of {want})",
                c.replicas
            ),
        )
    } else if c.updated < c.replicas {
        (
            set_reason::ROLLING_UPDATE,
            format!(
                "{} of {} members have the current template",
                c.updated, c.replicas
            ),
        )
    } else if c.replicas > want || !facts.plan.delete.is_empty() {
        (
            set_reason::SCALING_DOWN,
            format!("{} members, {want} wanted", c.replicas),
        )
    } else {
        (
            set_reason::SCALING_UP,
            format!("{} of {want} members ready", c.ready),
        )
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
