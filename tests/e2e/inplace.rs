//! In-place changes, the disruption policy, the one stop window, and
//! restart on request (`cvm.tencentcloud.io/restartedAt`).

use crate::support::*;
use crate::{instance, instance_id};
use cvm_operator::api::{CvmInstance, RestartState};
use cvm_operator::sim::{Faults, LostFault, LostMode};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const RESTARTED_AT: &str = "cvm.tencentcloud.io/restartedAt";

async fn annotate(env: &TestEnv, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    env.api()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("annotate");
}

fn restart_state(o: &CvmInstance, at: &str) -> Option<RestartState> {
    let r = o.status.as_ref()?.restart.as_ref()?;
    (r.requested_at == at).then_some(r.state)
}

async fn wait_restart(env: &TestEnv, name: &str, at: &str, want: RestartState) -> CvmInstance {
    env.wait_for(name, Duration::from_secs(30), &format!("{want:?}"), |o| {
        restart_state(o, at) == Some(want)
    })
    .await
}

/// Waits until the instance is RUNNING with no operation in flight.
async fn wait_running_idle(env: &TestEnv, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let i = instance(env, id).await.unwrap();
        if i.instance_state == Some(cvm_operator::cloud::model::InstanceState::Running)
            && !i.operating()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{id} did not settle RUNNING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reboots_a_running_instance_once_per_value() {
    let env = TestEnv::new("restart").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["stopType"] = "HARD".into();
    env.create(m).await;
    let id = instance_id(&env.wait_ready("web").await);

    annotate(&env, "web", RESTARTED_AT, "2026-12-01T10:00:00Z").await;
    let o = wait_restart(&env, "web", "2026-12-01T10:00:00Z", RestartState::Rebooted).await;
    assert!(o.status.unwrap().restart.unwrap().request_id.is_some());
    assert_eq!(env.stats().calls("RebootInstances"), 1);
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.latest_operation.as_deref(), Some("RebootInstances"));
    env.wait_ready("web").await;
    // Other edits and re-reconciles never reboot again for the same value.
    annotate(&env, "web", "unrelated", "x").await;
    env.patch_spec("web", json!({"instanceName": "renamed"}))
        .await;
    env.wait_for("web", Duration::from_secs(20), "renamed", |o| {
        o.status.as_ref().and_then(|s| s.instance_name.as_deref()) == Some("renamed")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.stats().calls("RebootInstances"), 1);
    // A new value: one more.
    annotate(&env, "web", RESTARTED_AT, "2026-12-01T11:00:00Z").await;
    wait_restart(&env, "web", "2026-12-01T11:00:00Z", RestartState::Rebooted).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.stats().calls("RebootInstances"), 2);
    let events = env.events("web").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Restarting" && m.contains("2026-12-01T11:00:00Z")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_never_starts_a_stopped_instance() {
    let env = TestEnv::new("restart-stopped").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("idle");
    m["spec"]["runState"] = "Stopped".into();
    env.create(m).await;
    let o = env.wait_ready("idle").await;
    assert_eq!(
        o.status.as_ref().unwrap().instance_state.as_deref(),
        Some("STOPPED")
    );
    let before = env.stats();
    annotate(&env, "idle", RESTARTED_AT, "2026-12-01T10:00:00Z").await;
    let o = wait_restart(&env, "idle", "2026-12-01T10:00:00Z", RestartState::Skipped).await;
    assert_eq!(
        o.status.as_ref().unwrap().instance_state.as_deref(),
        Some("STOPPED")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = env.stats();
    for action in ["RebootInstances", "StartInstances"] {
        assert_eq!(after.calls(action), before.calls(action), "{action}");
    }
    let events = env.events("idle").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "RestartSkipped" && m.contains("never starts it")),
        "{events:?}"
    );
}

/// Sim: RebootInstances executes, then its answer is held for 60 s. The
/// operator is killed while waiting (after the call, before the status
/// write), restarted, and must not reboot a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_reboot_and_status_write_never_reboots_twice() {
    let env = TestEnv::new("restart-crash").await;
    let mut op = env.operator(&[]);
    env.create(base_manifest("once")).await;
    let id = instance_id(&env.wait_ready("once").await);
    env.sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("RebootInstances".into()),
            rate: 1.0,
            mode: LostMode::Hang,
            hold_ms: 60_000,
            remaining: Some(1),
        }],
        ..Faults::default()
    });
    let at = "2026-12-01T10:00:00Z";
    annotate(&env, "once", RESTARTED_AT, at).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.stats().calls("RebootInstances") == 0 {
        assert!(Instant::now() < deadline, "the reboot was never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    op.kill_hard();
    // The intent was written before the call; the outcome never was.
    let o = env.api().get("once").await.unwrap();
    assert_eq!(restart_state(&o, at), Some(RestartState::Pending));
    wait_running_idle(&env, &id).await;
    let _op2 = env.operator(&[]);
    let o = wait_restart(&env, "once", at, RestartState::Rebooted).await;
    assert!(o.status.unwrap().restart.unwrap().request_id.is_some());
    env.wait_ready("once").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.stats().calls("RebootInstances"),
        1,
        "exactly one reboot"
    );
    let events = env.events("once").await;
    assert!(events.iter().any(|(r, _)| r == "Restarted"), "{events:?}");
}

/// Waits until the operator has seen the current generation and the
/// instance matches it (Ready and Synced for this generation).
async fn wait_synced(env: &TestEnv, name: &str) -> CvmInstance {
    env.wait_for(
        name,
        Duration::from_secs(60),
        "synced with its generation",
        |o| {
            let s = o.status.as_ref();
            s.and_then(|s| s.observed_generation) == o.metadata.generation
                && condition(o, "Synced").is_some_and(|c| c.0 == "True")
                && condition(o, "Ready").is_some_and(|c| c.0 == "True")
        },
    )
    .await
}

fn reasons(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(r, _)| r.as_str()).collect()
}

/// Host name (a reboot), user data (used at the next boot), CAM role, tags
/// and the order of security groups: one edit, all applied in place, with
/// no stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_tags_and_user_data_change_in_place_without_a_stop() {
    let env = TestEnv::new("attrs2").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["hostName"] = "web-1".into();
    m["spec"]["userData"] = "ZWNobyBvbmU=".into();
    m["spec"]["securityGroupIds"] = json!(["sg-gz000001", "sg-gz000002"]);
    m["spec"]["tags"] = json!({"team": "a", "env": "dev", "old": "x"});
    env.create(m).await;
    let o = wait_synced(&env, "web").await;
    let id = instance_id(&o);
    let first = o.status.unwrap().applied.unwrap().user_data.unwrap();
    let before = env.stats();

    env.patch_spec(
        "web",
        json!({
            "hostName": "web-2",
            "userData": "ZWNobyB0d28=",
            "camRoleName": "CVM_QcsRole",
            "securityGroupIds": ["sg-gz000002", "sg-gz000001"],
            "tags": {"team": "b", "env": "dev", "new": "y", "old": null},
        }),
    )
    .await;
    let o = wait_synced(&env, "web").await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.host_name.as_deref(), Some("web-2"));
    assert_eq!(i.cam_role_name.as_deref(), Some("CVM_QcsRole"));
    assert_eq!(
        i.security_group_ids.as_deref(),
        Some(&["sg-gz000002".to_string(), "sg-gz000001".to_string()][..]),
        "the order is the priority"
    );
    for (k, v) in [("team", "b"), ("env", "dev"), ("new", "y")] {
        assert_eq!(i.tag(k), Some(v), "{k}");
    }
    assert_eq!(i.tag("old"), None);
    assert_eq!(i.tag("cvm.tencentcloud.io/uid"), o.metadata.uid.as_deref());
    let applied = o.status.unwrap().applied.unwrap().user_data.unwrap();
    assert_ne!(applied, first, "the new user data is recorded");
    assert!(!applied.contains("ZWNobyB0d28"));
    let after = env.stats();
    for action in ["StopInstances", "StartInstances", "RebootInstances"] {
        assert_eq!(after.calls(action), before.calls(action), "{action}");
    }
    assert_eq!(
        after.calls("ModifyResourceTags") - before.calls("ModifyResourceTags"),
        1
    );
    let events = env.events("web").await;
    let got = reasons(&events);
    for r in [
        "UpdatingHostName",
        "UpdatingUserData",
        "UpdatingCamRole",
        "UpdatingTags",
        "UpdatingSecurityGroups",
    ] {
        assert!(got.contains(&r), "{r}: {got:?}");
    }
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "UpdatingUserData" && m.contains("next boot")),
        "{events:?}"
    );
    // Nothing more happens once in sync: the user data is not sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = env.stats();
    assert_eq!(
        later.calls("ModifyInstancesAttribute"),
        after.calls("ModifyInstancesAttribute")
    );
    // Unbinding the role.
    env.patch_spec("web", json!({"camRoleName": ""})).await;
    wait_synced(&env, "web").await;
    assert_eq!(instance(&env, &id).await.unwrap().cam_role_name, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_the_policy_refuses_is_reported_and_applied_once_stopped() {
    let env = TestEnv::new("noreboot").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["hostName"] = "web-1".into();
    m["spec"]["disruptionPolicy"] = json!({"reboot": "Never"});
    env.create(m).await;
    let id = instance_id(&wait_synced(&env, "web").await);
    let before = env.stats();
    env.patch_spec(
        "web",
        json!({"hostName": "web-2", "instanceName": "renamed"}),
    )
    .await;
    let o = env
        .wait_for("web", Duration::from_secs(30), "RebootRequired", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "RebootRequired")
        })
        .await;
    let (_, _, message) = condition(&o, "Synced").unwrap();
    assert!(
        message.contains("spec.hostName needs a reboot"),
        "{message}"
    );
    assert_eq!(condition(&o, "Stalled").unwrap().0, "True");
    // The rename went through; the host name did not.
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.instance_name.as_deref(), Some("renamed"));
    assert_eq!(i.host_name.as_deref(), Some("web-1"));
    assert_eq!(
        env.stats().calls("RebootInstances"),
        before.calls("RebootInstances")
    );
    let events = env.events("web").await;
    assert!(reasons(&events).contains(&"RebootRequired"), "{events:?}");
    // Stopped by its owner: applied without a reboot.
    env.patch_spec("web", json!({"runState": "Stopped"})).await;
    wait_synced(&env, "web").await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.host_name.as_deref(), Some("web-2"));
    assert_eq!(
        i.instance_state,
        Some(cvm_operator::cloud::model::InstanceState::Stopped)
    );
}
