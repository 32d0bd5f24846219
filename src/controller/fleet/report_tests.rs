use super::*;
use crate::api::set::{BatchState, LaunchBatch};
use serde_json::json;

fn set(replicas: i32) -> CvmInstanceSet {
    serde_json::from_value(json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstanceSet",
        "metadata": {"name": "web", "namespace": "team-a", "uid": "u", "generation": 4},
        "spec": {"replicas": replicas, "template": {"spec": {
            "region": "ap-guangzhou", "zone": "ap-guangzhou-3",
            "imageId": "img-pi0ii46r", "instanceType": "S5.MEDIUM4"}}},
    }))
    .unwrap()
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000).unwrap())
}

fn member(i: i64, ready: bool, update: Update) -> Member {
    Member {
        name: format!("web-{i}"),
        index: i,
        deleting: false,
        ready,
        available: ready,
        update,
    }
}

fn cond<'a>(r: &'a SetReport, t: &str) -> (&'a str, &'a str) {
    let c = r.status.conditions.iter().find(|c| c.type_ == t).unwrap();
    (c.status.as_str(), c.reason.as_str())
}

fn facts<'a>(members: &[Member], plan: &'a Plan, problems: &'a [Problem]) -> Facts<'a> {
    Facts {
        counts: counts(members),
        plan,
        problems,
        events: vec![],
        deleting: false,
    }
}

#[test]
fn a_complete_set_is_ready_and_waits_for_changes() {
    let members: Vec<Member> = (0..3).map(|i| member(i, true, Update::Current)).collect();
    let plan = Plan::default();
    let r = report(
        &set(3),
        CvmInstanceSetStatus::default(),
        facts(&members, &plan, &[]),
        &now(),
    );
    assert_eq!(cond(&r, READY), ("True", set_reason::COMPLETE));
    assert_eq!(cond(&r, SYNCED), ("True", reason::RECONCILE_SUCCESS));
    assert_eq!(cond(&r, PROGRESSING), ("False", set_reason::COMPLETE));
    assert_eq!(cond(&r, STALLED), ("False", reason::NOT_STALLED));
    assert_eq!(
        (
            r.status.replicas,
            r.status.ready_replicas,
            r.status.updated_replicas,
            r.status.available_replicas
        ),
        (3, 3, 3, 3)
    );
    assert_eq!(
        r.status.selector.as_deref(),
        Some("cvm.tencentcloud.io/set=web")
    );
    assert_eq!(r.status.observed_generation, Some(4));
    assert_eq!(r.requeue, Requeue::AwaitChange);
    assert!(!r.release && r.error.is_none());
}

#[test]
fn launches_in_flight_and_rollouts_are_progress() {
    let members: Vec<Member> = (0..2).map(|i| member(i, true, Update::Current)).collect();
    let journal = CvmInstanceSetStatus {
        batches: vec![LaunchBatch {
            seq: 1,
            count: 1,
            state: BatchState::Pending,
            ..Default::default()
        }],
        last_batch: 1,
        next_index: 3,
        ..Default::default()
    };
    let plan = Plan::default();
    let r = report(&set(3), journal, facts(&members, &plan, &[]), &now());
    assert_eq!(cond(&r, READY), ("False", set_reason::MEMBERS_NOT_READY));
    assert_eq!(cond(&r, PROGRESSING), ("True", set_reason::LAUNCHING));
    assert_eq!(
        (
            r.status.last_batch,
            r.status.next_index,
            r.status.batches.len()
        ),
        (1, 3, 1),
        "the journal is kept"
    );
    assert!(matches!(r.requeue, Requeue::Around(_)));
    // An old template on one member: a rolling update.
    let members = vec![
        member(0, true, Update::Current),
        member(1, true, Update::Disruptive),
    ];
    let r = report(
        &set(2),
        CvmInstanceSetStatus::default(),
        facts(&members, &plan, &[]),
        &now(),
    );
    assert_eq!(cond(&r, PROGRESSING), ("True", set_reason::ROLLING_UPDATE));
    assert_eq!(
        (r.status.updated_replicas, r.status.available_replicas),
        (1, 1)
    );
}

#[test]
fn a_problem_is_not_synced_warned_and_backed_off() {
    let error = CloudError::Api {
        action: "RunInstances".into(),
        code: "LimitExceeded.InstanceQuota".into(),
        message: "quota".into(),
        request_id: "r".into(),
    };
    let problems = [Problem::Cloud {
        action: "RunInstances",
        error,
    }];
    let plan = Plan::default();
    let r = report(
        &set(3),
        CvmInstanceSetStatus::default(),
        facts(&[], &plan, &problems),
        &now(),
    );
    assert_eq!(cond(&r, SYNCED), ("False", reason::RECONCILE_ERROR));
    let synced = r
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == SYNCED)
        .unwrap();
    assert!(
        synced.message.contains("LimitExceeded.InstanceQuota"),
        "{}",
        synced.message
    );
    assert_eq!(r.error, Some(ErrorClass::Permanent));
    assert_eq!(r.requeue, Requeue::backoff(DELETE_RETRY));
    assert_eq!(r.events[0].type_, EventType::Warning);
    // The same request cannot succeed: a person must act.
    assert_eq!(cond(&r, STALLED), ("True", reason::RECONCILE_ERROR));
}

#[test]
fn stalled_only_when_a_person_must_act() {
    let cloud = |code: &str| Problem::Cloud {
        action: "RunInstances",
        error: CloudError::Api {
            action: "RunInstances".into(),
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
        },
    };
    let creds = |reason| Problem::Credentials {
        reason,
        message: "m".into(),
    };
    let cases = [
        (None, false),
        (
            Some(cloud("InvalidParameterValue.InstanceTypeNotFound")),
            true,
        ),
        (Some(cloud("AuthFailure.SecretIdNotFound")), true),
        (Some(cloud("RequestLimitExceeded")), false),
        (Some(cloud("InternalError")), false),
        (Some(creds(reason::CREDENTIALS_NOT_FOUND)), true),
        (Some(creds(reason::CREDENTIALS_REJECTED)), true),
        (Some(creds(reason::CREDENTIALS_UNREADABLE)), false),
        (
            Some(Problem::Members {
                message: "conflict".into(),
            }),
            false,
        ),
    ];
    let plan = Plan::default();
    for (problem, stalled) in cases {
        let problems: Vec<Problem> = problem.iter().cloned().collect();
        let r = report(
            &set(3),
            CvmInstanceSetStatus::default(),
            facts(&[], &plan, &problems),
            &now(),
        );
        let (status, why) = cond(&r, STALLED);
        assert_eq!(status == "True", stalled, "{problems:?}: {status} {why}");
        if stalled {
            assert_eq!(why, cond(&r, SYNCED).1, "Stalled carries Synced's reason");
        } else {
            assert_eq!(why, reason::NOT_STALLED);
        }
    }
}

#[test]
fn a_deletion_releases_only_when_nothing_is_left() {
    let plan = Plan::default();
    let deleting = |journal: CvmInstanceSetStatus, members: &[Member]| {
        let f = Facts {
            deleting: true,
            ..facts(members, &plan, &[])
        };
        report(&set(3), journal, f, &now())
    };
    let r = deleting(
        CvmInstanceSetStatus::default(),
        &[member(0, true, Update::Current)],
    );
    assert!(!r.release);
    assert_eq!(cond(&r, READY), ("False", set_reason::DELETING));
    let pending = CvmInstanceSetStatus {
        batches: vec![LaunchBatch {
            seq: 1,
            count: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(!deleting(pending, &[]).release, "a launch may still appear");
    assert!(deleting(CvmInstanceSetStatus::default(), &[]).release);
}
