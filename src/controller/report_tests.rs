//! Report → (status, events, requeue, error), for every kind of exit of a
//! reconcile, with no apiserver: what `finish` writes is exactly what these
//! functions return.

use super::*;
use crate::api::OperationState;
use crate::controller::observation::Observation;
use crate::controller::status::{READY, SYNCED, reason};
use std::sync::Arc;

const FAST: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_secs(300);

fn timing() -> Timing {
    Timing {
        poll_interval: POLL,
        fast_interval: FAST,
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000).unwrap())
}

fn resource() -> CvmInstance {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 2},
        "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r",
                 "instanceType": "S5.MEDIUM4", "internetAccessible": {"internetMaxBandwidthOut": 5},
                 "securityGroupIds": ["sg-gz000001"]}
    }))
    .unwrap()
}

fn present(o: Observation) -> Observed {
    Observed::Present(Arc::new(o))
}

fn api_error(code: &str) -> CloudError {
    CloudError::Api {
        action: "X".into(),
        code: code.into(),
        message: "it went wrong".into(),
        request_id: "req-9".into(),
    }
}

/// (status, reason, message) of a condition.
fn condition(conditions: &[Condition], type_: &str) -> (String, String, String) {
    let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// The full status the report writes.
fn applied(report: &Report, obj: &CvmInstance, next: Option<Duration>) -> CvmInstanceStatus {
    match report.status_write(obj, next, &now()) {
        Some(StatusWrite::Apply(s)) => *s,
        other => panic!("expected a full status, got {other:?}"),
    }
}

fn reasons(report: &Report) -> Vec<(EventType, &'static str)> {
    report.events.iter().map(|e| (e.type_, e.reason)).collect()
}

#[test]
fn in_sync_writes_ready_and_synced_and_schedules_nothing() {
    let obj = resource();
    let r = Report::waiting(
        Mode::Apply,
        present(Observation::fixture()),
        Wait::InSync,
        None,
        timing(),
    );
    let s = applied(&r, &obj, None);
    assert_eq!(condition(&s.conditions, READY).1, reason::AVAILABLE);
    assert_eq!(
        condition(&s.conditions, SYNCED),
        (
            "True".into(),
            reason::RECONCILE_SUCCESS.into(),
            "the instance matches the spec".into()
        )
    );
    assert_eq!(s.instance_id.as_deref(), Some("ins-abcdefgh"));
    assert_eq!(s.observed_generation, Some(2));
    assert!(r.events.is_empty() && r.error.is_none() && !r.release);
    assert_eq!(
        r.requeue,
        Requeue::AwaitChange,
        "the sweeps and the watch wake it"
    );
}

#[test]
fn waits_poll_by_how_soon_they_end() {
    let moving = Wait::Transitioning {
        state: "STOPPING".into(),
    };
    let o = || present(Observation::fixture());
    let t = timing();
    let cases = [
        (Mode::Apply, moving.clone(), Requeue::Around(FAST * 3)),
        (Mode::Apply, Wait::NotAllowed(vec![]), Requeue::AwaitChange),
        // Sold out now, maybe not later.
        (
            Mode::Apply,
            Wait::TypeUnavailable {
                instance_type: "S6.LARGE16".into(),
                why: "sold out".into(),
            },
            Requeue::Around(POLL),
        ),
        (Mode::Delete, moving, Requeue::Around(FAST)),
        (
            Mode::Delete,
            Wait::TerminationProtected,
            Requeue::After(POLL / 10),
        ),
    ];
    for (mode, wait, want) in cases {
        let r = Report::waiting(mode, o(), wait.clone(), None, t);
        assert_eq!(r.requeue, want, "{mode:?} {wait:?}");
    }
}

#[test]
fn deletion_waits_say_deleting_except_termination_protection() {
    let obj = resource();
    let o = || present(Observation::fixture());
    let moving = Wait::OperationInProgress {
        operation: "StopInstances".into(),
    };
    let r = Report::waiting(Mode::Delete, o(), moving, None, timing());
    let s = applied(&r, &obj, None);
    assert_eq!(condition(&s.conditions, READY).1, reason::DELETING);
    let (_, why, msg) = condition(&s.conditions, SYNCED);
    assert_eq!(
        (why.as_str(), msg.as_str()),
        (
            reason::DELETING,
            "waiting: StopInstances is still in progress"
        )
    );
    let r = Report::waiting(
        Mode::Delete,
        o(),
        Wait::TerminationProtected,
        None,
        timing(),
    );
    let s = applied(&r, &obj, None);
    let (_, why, msg) = condition(&s.conditions, SYNCED);
    assert_eq!(why, reason::TERMINATION_PROTECTED);
    assert!(msg.contains("spec.disableApiTermination: false"), "{msg}");
}

#[test]
fn a_create_records_the_new_id_before_it_is_observed() {
    let obj = resource();
    let done = Done::create("ins-new00001", "req-1");
    let last = LastOperation::succeeded(CREATE, "req-1", Some(2), "t".into());
    let r = Report::acted(
        Mode::Apply,
        Observed::NotCreated,
        done,
        last.clone(),
        timing(),
    );
    let s = applied(&r, &obj, None);
    assert_eq!(s.instance_id.as_deref(), Some("ins-new00001"));
    assert_eq!(s.last_operation, Some(last));
    assert_eq!(condition(&s.conditions, READY).1, reason::CREATING);
    let (_, why, msg) = condition(&s.conditions, SYNCED);
    assert_eq!(why, reason::RECONCILING);
    assert_eq!(
        msg,
        "RunInstances sent (RequestId: req-1): creating the instance"
    );
    assert_eq!(
        r.events,
        [Event {
            type_: EventType::Normal,
            reason: event_reason::CREATING,
            action: "RunInstances",
            note: "ins-new00001: creating the instance (RequestId: req-1)".into(),
        }]
    );
    assert_eq!(r.requeue, Requeue::Around(FAST));
    assert!(r.error.is_none(), "a success resets the backoff");
}

#[test]
fn an_action_while_deleting_reports_deleting() {
    let obj = resource();
    let done = Done::action(&CloudAction::Terminate, "ins-abcdefgh", "req-2");
    let last = LastOperation::succeeded("TerminateInstances", "req-2", Some(2), "t".into());
    let r = Report::acted(
        Mode::Delete,
        present(Observation::fixture()),
        done,
        last,
        timing(),
    );
    let s = applied(&r, &obj, None);
    let (_, why, msg) = condition(&s.conditions, SYNCED);
    assert_eq!(why, reason::DELETING);
    assert_eq!(msg, "terminating the instance (RequestId: req-2)");
    assert_eq!(reasons(&r), [(EventType::Normal, "Terminating")]);
}

#[test]
fn a_permanent_failure_blocks_and_is_said_once() {
    let obj = resource();
    let error = api_error("InvalidParameterValue.InstanceTypeNotFound");
    let last = LastOperation::failed("ResetInstancesType", failure(&error), Some(2), "t".into());
    let r = Report::cloud_failed(
        Mode::Apply,
        present(Observation::fixture()),
        "ResetInstancesType",
        error,
        Some(last.clone()),
        timing(),
    );
    assert_eq!(
        r.requeue,
        Requeue::Around(POLL),
        "no retry before the spec changes"
    );
    assert_eq!(r.error, Some(ErrorClass::Permanent));
    let s = applied(&r, &obj, Some(POLL));
    assert_eq!(
        s.last_operation.as_ref().map(|l| l.state),
        Some(OperationState::Failed)
    );
    let (status, why, msg) = condition(&s.conditions, SYNCED);
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", reason::RECONCILE_ERROR)
    );
    assert_eq!(
        msg,
        "ResetInstancesType failed: InvalidParameterValue.InstanceTypeNotFound: it went wrong (RequestId: req-9); not retried until the spec changes"
    );
    assert_eq!(r.events.len(), 1);
    let e = &r.events[0];
    assert_eq!(
        (e.type_, e.reason, e.action),
        (
            EventType::Warning,
            event_reason::CLOUD_API_ERROR,
            "ResetInstancesType"
        )
    );
    assert!(
        e.note.contains("InstanceTypeNotFound") && e.note.contains("req-9"),
        "{}",
        e.note
    );
}

#[test]
fn retried_failures_back_off_by_error_class_and_quote_the_delay() {
    let obj = resource();
    let fail = |mode, code: &str| {
        let o = present(Observation::fixture());
        Report::cloud_failed(mode, o, "StopInstances", api_error(code), None, timing())
    };
    let backoff = |secs| Requeue::backoff(Duration::from_secs(secs));
    assert_eq!(
        fail(Mode::Apply, "RequestLimitExceeded").requeue,
        backoff(5)
    );
    assert_eq!(fail(Mode::Apply, "InternalError").requeue, backoff(5));
    assert_eq!(
        fail(Mode::Apply, "OperationDenied.InstanceOperationInProgress").requeue,
        backoff(2)
    );
    // Deleting: even a permanent refusal is retried (the resource must go).
    let r = fail(Mode::Delete, "InvalidParameterValue");
    assert_eq!(r.requeue, Requeue::backoff(DELETE_RETRY));
    let s = applied(&r, &obj, Some(Duration::from_secs(31)));
    assert!(
        condition(&s.conditions, SYNCED)
            .2
            .ends_with("; retrying in 31s")
    );
    // Refused credentials have their own reason.
    let r = fail(Mode::Apply, "AuthFailure.SecretIdNotFound");
    assert_eq!(r.error, Some(ErrorClass::Auth));
    let s = applied(&r, &obj, Some(Duration::from_secs(30)));
    assert_eq!(
        condition(&s.conditions, SYNCED).1,
        reason::CREDENTIALS_REJECTED
    );
}

#[test]
fn an_unobservable_instance_changes_only_the_conditions_and_only_once() {
    let mut obj = resource();
    let r = Report::unobservable(Mode::Apply, api_error("InternalError"), timing());
    assert_eq!(r.requeue, Requeue::backoff(Duration::from_secs(5)));
    assert_eq!(r.error, Some(ErrorClass::Transient));
    assert!(r.events.is_empty());
    let next = Some(Duration::from_secs(6));
    let Some(StatusWrite::Conditions(conditions)) = r.status_write(&obj, next, &now()) else {
        panic!("conditions only");
    };
    let (status, why, _) = condition(&conditions, READY);
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("Unknown", reason::UNOBSERVED)
    );
    let (_, why, msg) = condition(&conditions, SYNCED);
    assert_eq!(why, reason::RECONCILE_ERROR);
    assert!(
        msg.starts_with("DescribeInstances failed: InternalError"),
        "{msg}"
    );
    // The cache shows it (slim: messages dropped): the same failure again
    // writes nothing, whatever the delay it quotes.
    obj.status = Some(CvmInstanceStatus {
        observed_generation: Some(2),
        conditions: conditions
            .into_iter()
            .map(|c| Condition {
                message: String::new(),
                ..c
            })
            .collect(),
        ..Default::default()
    });
    assert_eq!(
        r.status_write(&obj, Some(Duration::from_secs(12)), &now()),
        None
    );
    // A new generation is reported again.
    obj.metadata.generation = Some(3);
    assert!(r.status_write(&obj, next, &now()).is_some());
}

#[test]
fn missing_credentials_are_handled_the_same_way_in_both_modes() {
    let obj = resource();
    for mode in [Mode::Apply, Mode::Delete] {
        let r = Report::credentials_failed(
            mode,
            reason::CREDENTIALS_NOT_FOUND,
            "Secret default/creds not found".into(),
            event_action::RESOLVE_CREDENTIALS,
        );
        assert_eq!(r.error, Some(ErrorClass::Auth), "{mode:?}");
        assert_eq!(r.requeue, Requeue::backoff(CREDENTIALS_RETRY), "{mode:?}");
        assert_eq!(
            reasons(&r),
            [(EventType::Warning, reason::CREDENTIALS_NOT_FOUND)]
        );
        let Some(StatusWrite::Conditions(c)) = r.status_write(&obj, None, &now()) else {
            panic!("conditions only");
        };
        assert_eq!(
            condition(&c, SYNCED),
            (
                "False".into(),
                reason::CREDENTIALS_NOT_FOUND.into(),
                "Secret default/creds not found".into()
            )
        );
    }
}

#[test]
fn releases_say_why_and_write_no_status() {
    let obj = resource();
    let cases = [
        (Release::Retained, Some(event_reason::RETAINED)),
        (Release::Gone, Some(event_reason::DELETED)),
        (Release::NeverLaunched, Some(event_reason::RELEASED)),
        (Release::NeverCreated, None),
    ];
    for (why, want) in cases {
        let r = Report::released(why, Some("ins-abcdefgh"));
        assert!(r.release && r.error.is_none(), "{why:?}");
        assert_eq!(r.status_write(&obj, None, &now()), None, "{why:?}");
        let got: Vec<_> = r.events.iter().map(|e| (e.type_, e.reason)).collect();
        assert_eq!(
            got,
            want.map(|w| (EventType::Normal, w))
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert!(r.events.iter().all(|e| e.note.contains("ins-abcdefgh")));
    }
    // Nothing to name, nothing to say.
    assert!(Report::released(Release::Retained, None).events.is_empty());
}

#[test]
fn an_orphaned_instance_is_released_with_a_warning_naming_it() {
    let r = Report::orphaned(
        Some("ins-abcdefgh"),
        "Secret ns/creds not found",
        Duration::from_secs(300),
    );
    assert!(r.release);
    assert_eq!(
        reasons(&r),
        [(EventType::Warning, event_reason::ORPHANED_INSTANCE)]
    );
    let note = &r.events[0].note;
    assert!(
        note.contains("ins-abcdefgh") && note.contains("300s"),
        "{note}"
    );
}

#[test]
fn drift_is_reported_first_with_what_happens_next() {
    let drift = [Drift::PowerState {
        want: "RUNNING".into(),
        have: "STOPPED".into(),
    }];
    let mut obj = resource();
    let o = present(Observation::fixture());
    let done = Done::action(&CloudAction::Start, "ins-abcdefgh", "req-3");
    let last = LastOperation::succeeded("StartInstances", "req-3", Some(2), "t".into());
    let r = Report::acted(Mode::Apply, o.clone(), done, last, timing()).with_drift(&drift, &obj);
    assert_eq!(
        reasons(&r),
        [
            (EventType::Warning, event_reason::DRIFT_DETECTED),
            (EventType::Normal, "Starting")
        ]
    );
    assert!(
        r.events[0]
            .note
            .ends_with("state is STOPPED, spec wants RUNNING; correcting")
    );
    obj.spec.management_policy = ManagementPolicy::ObserveOnly;
    let r =
        Report::waiting(Mode::Apply, o, Wait::ObserveOnly, None, timing()).with_drift(&drift, &obj);
    assert!(r.events[0].note.ends_with("reported only (ObserveOnly)"));
    let quiet = Report::waiting(
        Mode::Apply,
        present(Observation::fixture()),
        Wait::InSync,
        None,
        timing(),
    );
    assert!(quiet.with_drift(&[], &obj).events.is_empty());
}

#[test]
fn deleting_an_instance_already_gone_just_looks_again() {
    let r = Report::already_gone(&api_error("InvalidInstanceId.NotFound"));
    assert_eq!(r.requeue, Requeue::After(GONE_RECHECK));
    assert_eq!(r.error, Some(ErrorClass::NotFound));
    assert!(r.events.is_empty() && !r.release);
    assert_eq!(r.status_write(&resource(), None, &now()), None);
}

#[test]
fn a_create_in_flight_holds_the_deletion() {
    let pending = LastOperation::pending(CREATE, Some(2), "t".into());
    let r = Report::awaiting_create(Some(pending.clone()), timing());
    assert_eq!(r.requeue, Requeue::After(FAST));
    let s = applied(&r, &resource(), None);
    assert_eq!(s.last_operation, Some(pending));
    assert_eq!(
        condition(&s.conditions, SYNCED).2,
        "waiting for a create that was in flight to become visible"
    );
}

#[test]
fn the_intent_records_a_pending_create() {
    let pending = LastOperation::pending(CREATE, Some(2), "t".into());
    let price = PriceStatus {
        summary: Some("0.35 CNY/HOUR".into()),
        ..Default::default()
    };
    let s = intent_status(&resource(), pending, None, Some(price.clone()), &now());
    assert_eq!(
        s.price,
        Some(price.clone()),
        "the price goes with the intent"
    );
    // Every later status keeps it, until a change records another.
    let mut obj = resource();
    obj.status = Some(s.clone());
    let o = present(Observation::fixture());
    let waiting = Report::waiting(Mode::Apply, o.clone(), Wait::InSync, None, timing());
    assert_eq!(applied(&waiting, &obj, None).price, Some(price));
    let newer = PriceStatus {
        summary: Some("0.7 CNY/HOUR".into()),
        ..Default::default()
    };
    let repriced = waiting.with_price(newer.clone());
    assert_eq!(applied(&repriced, &obj, None).price, Some(newer));
    let last = s.last_operation.as_ref().unwrap();
    assert_eq!(
        (last.action.as_str(), last.state),
        ("RunInstances", OperationState::Pending)
    );
    assert_eq!(s.instance_id, None);
    assert_eq!(
        condition(&s.conditions, SYNCED).2,
        "RunInstances sent; waiting for the instance id"
    );
}

#[test]
fn an_outage_is_said_once_by_the_condition_not_by_events() {
    let obj = resource();
    let unreachable = || CloudError::Unreachable {
        action: "StopInstances".into(),
        host: "cvm.tencentcloudapi.com".into(),
        since: "2026-11-30T10:00:00Z".parse().unwrap(),
        last_error: "ClientError.Timeout: timed out".into(),
    };
    let o = present(Observation::fixture());
    let r = Report::cloud_failed(
        Mode::Apply,
        o,
        "StopInstances",
        unreachable(),
        None,
        timing(),
    );
    assert!(r.events.is_empty(), "no event per retry: {:?}", r.events);
    assert_eq!(r.error, Some(ErrorClass::Unreachable));
    // The message does not count down, so retries rewrite nothing.
    let s1 = applied(&r, &obj, Some(Duration::from_secs(30)));
    let s2 = applied(&r, &obj, Some(Duration::from_secs(60)));
    assert_eq!(s1, s2);
    let (status, why, msg) = condition(&s1.conditions, SYNCED);
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", reason::CLOUD_UNREACHABLE)
    );
    assert!(
        msg.contains("has not answered since 2026-11-30T10:00:00Z"),
        "{msg}"
    );
    assert!(msg.ends_with("retried when it answers again"), "{msg}");
    let stalled = condition(&s1.conditions, crate::controller::status::STALLED);
    assert_eq!(stalled.0, "False", "time, not a person, ends an outage");
    // Not observable for the same reason: conditions only, no event.
    let r = Report::unobservable(Mode::Apply, unreachable(), timing());
    assert!(r.events.is_empty());
    let Some(StatusWrite::Conditions(c)) = r.status_write(&obj, None, &now()) else {
        panic!("conditions only");
    };
    assert_eq!(condition(&c, SYNCED).1, reason::CLOUD_UNREACHABLE);
    // Keys that cannot be verified for want of an answer: the same.
    let r = Report::credentials_failed(
        Mode::Apply,
        reason::CLOUD_UNREACHABLE,
        "not answered".into(),
        "ResolveCredentials",
    );
    assert!(r.events.is_empty());
    assert_eq!(r.error, Some(ErrorClass::Unreachable));
}

#[test]
fn a_change_held_back_is_said_by_its_condition_and_a_warning() {
    use crate::controller::plan::{Disruption, Refused};
    let refused = Wait::NotAllowed(vec![
        Refused {
            field: "spec.hostName",
            disruption: Disruption::Reboot,
        },
        Refused {
            field: "spec.imageId",
            disruption: Disruption::Reinstall,
        },
    ]);
    let o = present(Observation::fixture());
    let r = Report::waiting(Mode::Apply, o.clone(), refused, None, timing());
    assert_eq!(reasons(&r), [(EventType::Warning, reason::REBOOT_REQUIRED)]);
    let s = applied(&r, &resource(), None);
    let (status, why, message) = condition(&s.conditions, SYNCED);
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", reason::REBOOT_REQUIRED)
    );
    assert!(
        message.contains("spec.hostName needs a reboot"),
        "{message}"
    );
    assert!(
        message.contains("spec.imageId needs a reinstall"),
        "{message}"
    );
    assert_eq!(
        r.events[0].note, message,
        "the event says what the condition says"
    );
    let unavailable = Wait::TypeUnavailable {
        instance_type: "GN7.2XLARGE32".into(),
        why: "not offered".into(),
    };
    let r = Report::waiting(Mode::Apply, o, unavailable, None, timing());
    assert_eq!(
        reasons(&r),
        [(EventType::Warning, reason::INSTANCE_TYPE_UNAVAILABLE)]
    );
}

#[test]
fn restart_records_carry_their_events_and_stay_in_status() {
    use crate::api::{RestartState, RestartStatus};
    let record = |state| RestartStatus {
        requested_at: "2026-12-01T10:00:00Z".into(),
        state,
        previous_operation: None,
        request_id: Some("req-7".into()),
    };
    let o = || present(Observation::fixture());
    let quiet = || Report::waiting(Mode::Apply, o(), Wait::InSync, None, timing());
    let r = quiet().with_restart(record(RestartState::Skipped));
    assert_eq!(
        reasons(&r),
        [(EventType::Normal, event_reason::RESTART_SKIPPED)]
    );
    assert!(r.events[0].note.contains("never starts it"));
    let r = quiet().with_restart(record(RestartState::Rebooted));
    assert_eq!(reasons(&r), [(EventType::Normal, event_reason::RESTARTED)]);
    assert!(r.events[0].note.contains("req-7"), "{}", r.events[0].note);
    let s = applied(&r, &resource(), None);
    assert_eq!(s.restart, Some(record(RestartState::Rebooted)));
    // A later report without a record keeps the one in status.
    let mut obj = resource();
    obj.status = Some(s);
    let kept = applied(&quiet(), &obj, None);
    assert_eq!(kept.restart, Some(record(RestartState::Rebooted)));
    // The reboot's own event says it already: no second one.
    let action = CloudAction::Restart {
        requested_at: "2026-12-01T10:00:00Z".into(),
        stop_type: crate::api::StopType::SOFT,
    };
    let done = Done::action(&action, "ins-abcdefgh", "req-7");
    let last = LastOperation::succeeded("RebootInstances", "req-7", Some(2), "t".into());
    let r = Report::acted(Mode::Apply, o(), done, last, timing())
        .with_restart(record(RestartState::Rebooted));
    assert_eq!(reasons(&r), [(EventType::Normal, "Restarting")]);
}

#[test]
fn an_action_that_boots_a_stopped_instance_says_so() {
    let action = CloudAction::ResetType {
        instance_type: "S5.LARGE8".into(),
    };
    let done = Done::action(&action, "ins-abcdefgh", "req-8");
    let last = LastOperation::succeeded("ResetInstancesType", "req-8", Some(2), "t".into());
    let o = present(Observation::fixture());
    let r = Report::acted(Mode::Apply, o, done, last, timing())
        .with_unplanned_boot(action.api_action());
    assert_eq!(
        reasons(&r),
        [
            (EventType::Normal, "Resizing"),
            (EventType::Warning, event_reason::UNPLANNED_BOOT)
        ]
    );
    assert!(r.events[1].note.contains("stopped again"));
}

fn pending_type_change() -> Vec<PendingChange> {
    vec![PendingChange {
        field: "spec.instanceType",
        from: "S5.MEDIUM4".into(),
        to: "S5.LARGE8".into(),
        disruption: crate::controller::plan::Disruption::Stop,
    }]
}

#[test]
fn pending_changes_are_listed_exactly_when_the_operator_will_not_act() {
    use crate::controller::plan::{Blocked, Refused, Step};
    let obj = resource();
    let o = || present(Observation::fixture());
    let waiting = |w| Report::waiting(Mode::Apply, o(), w, None, timing());
    let refused = vec![Refused {
        field: "spec.instanceType",
        disruption: crate::controller::plan::Disruption::Stop,
    }];
    let paused = Wait::Paused {
        pending: Box::new(Step::Act(CloudAction::Start)),
    };
    let held = [
        waiting(Wait::ObserveOnly),
        waiting(paused),
        waiting(Wait::NotAllowed(refused)),
        waiting(Wait::Blocked(Blocked::Action("ResetInstancesType".into()))),
        waiting(Wait::TypeUnavailable {
            instance_type: "S5.LARGE8".into(),
            why: "sold out".into(),
        }),
        Report::cloud_failed(
            Mode::Apply,
            o(),
            "ResetInstancesType",
            api_error("InvalidParameterValue"),
            None,
            timing(),
        ),
    ];
    for r in held {
        let s = applied(&r.clone().with_pending(&pending_type_change()), &obj, None);
        let listed: Vec<(&str, &str, &str, &str)> = s
            .pending_changes
            .iter()
            .map(|p| {
                (
                    p.field.as_str(),
                    p.from.as_str(),
                    p.to.as_str(),
                    p.disruption.as_str(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [("spec.instanceType", "S5.MEDIUM4", "S5.LARGE8", "Stop")],
            "{:?}",
            r.status
        );
    }
    let acting = [
        waiting(Wait::InSync),
        waiting(Wait::Transitioning {
            state: "STOPPING".into(),
        }),
        Report::cloud_failed(
            Mode::Apply,
            o(),
            "ResetInstancesType",
            api_error("RequestLimitExceeded"),
            None,
            timing(),
        ),
        Report::waiting(Mode::Delete, o(), Wait::ObserveOnly, None, timing()),
    ];
    for r in acting {
        let s = applied(&r.clone().with_pending(&pending_type_change()), &obj, None);
        assert!(s.pending_changes.is_empty(), "{:?}", r.status);
    }
}
