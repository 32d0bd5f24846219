//! The operator end to end: a real kube-apiserver + etcd (tests/support),
//! the CVM simulator, and the `cvm-operator` binary.

mod support;

use cvm_operator::cloud::model;
use cvm_operator::sim::{self, Faults, LostFault, LostMode, SimAccount};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

const MUTATIONS: &[&str] = &[
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "RebootInstances",
    "TerminateInstances",
    "ResetInstancesType",
    "ResetInstancesInternetMaxBandwidth",
    "ModifyInstancesAttribute",
];

fn mutations(s: &sim::Stats) -> u64 {
    MUTATIONS.iter().map(|a| s.calls(a)).sum()
}

async fn instance(env: &TestEnv, id: &str) -> Option<model::Instance> {
    env.cloud()
        .describe_instances_by_ids(&env.creds(), REGION, &[id.to_string()])
        .await
        .unwrap()
        .into_iter()
        .next()
}

fn instance_id(o: &cvm_operator::api::CvmInstance) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.instance_id.clone())
        .expect("status.instanceId")
}

/// Creates an instance directly in the cloud (as a person would).
async fn create_outside(env: &TestEnv, name: &str, instance_type: &str) -> String {
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some(ZONE.into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some(instance_type.into()),
        instance_name: Some(name.into()),
        ..Default::default()
    };
    let id = env
        .cloud()
        .call::<model::RunInstances>(&env.creds(), REGION, &req)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap()
        .remove(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = instance(env, &id).await.unwrap();
        if i.instance_state == Some(model::InstanceState::Running) && !i.operating() {
            return id;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_becomes_ready_with_ips_then_delete_terminates() {
    let env = TestEnv::new("create").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("web")).await;
    let o = env.wait_ready("web").await;
    let s = o.status.clone().unwrap();
    let id = instance_id(&o);
    assert_eq!(s.instance_state.as_deref(), Some("RUNNING"));
    assert_eq!(s.instance_type.as_deref(), Some("S5.SMALL1"));
    assert_eq!(s.zone.as_deref(), Some(ZONE));
    assert_eq!(s.private_ip_addresses.len(), 1);
    assert_eq!(s.public_ip_addresses.len(), 1);
    assert_eq!(s.observed_generation, o.metadata.generation);
    assert!(
        o.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&"cvm.tencentcloud.io/finalizer".to_string())
    );
    // The instance carries the UID tag and the resource name.
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.tag("cvm.tencentcloud.io/uid"), o.metadata.uid.as_deref());
    assert_eq!(i.instance_name.as_deref(), Some("web"));
    assert_eq!(env.stats().calls("RunInstances"), 1);
    let events = env.events("web").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Creating" && m.contains(&id)),
        "{events:?}"
    );

    env.delete("web").await;
    env.wait_gone("web", Duration::from_secs(30)).await;
    assert!(
        instance(&env, &id).await.is_none(),
        "the instance must be terminated"
    );
    assert_eq!(env.stats().instances, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_through_run_state() {
    let env = TestEnv::new("power").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("vm");
    m["spec"]["stopType"] = "HARD".into();
    m["spec"]["stoppedMode"] = "STOP_CHARGING".into();
    env.create(m).await;
    let id = instance_id(&env.wait_ready("vm").await);
    env.patch_spec("vm", json!({"runState": "Stopped"})).await;
    let o = env
        .wait_for("vm", Duration::from_secs(30), "stopped and ready", |o| {
            o.status.as_ref().and_then(|s| s.instance_state.as_deref()) == Some("STOPPED")
                && condition(o, "Ready").is_some_and(|c| c.0 == "True" && c.1 == "Stopped")
        })
        .await;
    assert_eq!(instance_id(&o), id);
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(
        i.stop_charging_mode.as_deref(),
        Some("STOP_CHARGING"),
        "stoppedMode is passed through"
    );
    env.patch_spec("vm", json!({"runState": "Running"})).await;
    env.wait_for("vm", Duration::from_secs(30), "running", |o| {
        o.status.as_ref().and_then(|s| s.instance_state.as_deref()) == Some("RUNNING")
            && condition(o, "Ready").is_some_and(|c| c.0 == "True" && c.1 == "Available")
    })
    .await;
    let s = env.stats();
    assert_eq!(
        (s.calls("StopInstances"), s.calls("StartInstances")),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_while_running_with_both_policies() {
    let env = TestEnv::new("resize").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("grow")).await;
    let mut never = base_manifest("fixed");
    never["spec"]["resizePolicy"] = "Never".into();
    env.create(never).await;
    env.wait_ready("grow").await;
    env.wait_ready("fixed").await;

    // StopAndStart: stop, resize, start again.
    env.patch_spec("grow", json!({"instanceType": "S5.MEDIUM4"}))
        .await;
    let o = env
        .wait_for(
            "grow",
            Duration::from_secs(40),
            "resized and running",
            |o| {
                let s = o.status.as_ref().unwrap();
                s.instance_type.as_deref() == Some("S5.MEDIUM4")
                    && s.instance_state.as_deref() == Some("RUNNING")
                    && condition(o, "Synced").is_some_and(|c| c.0 == "True")
            },
        )
        .await;
    let i = instance(&env, &instance_id(&o)).await.unwrap();
    assert_eq!((i.cpu, i.memory), (Some(2), Some(4)));
    let reasons: Vec<String> = env.events("grow").await.into_iter().map(|e| e.0).collect();
    for r in ["StoppingForResize", "Resizing", "Starting"] {
        assert!(reasons.contains(&r.to_string()), "{reasons:?}");
    }

    // Never: reported, and nothing is stopped.
    let before = env.stats();
    env.patch_spec("fixed", json!({"instanceType": "S5.MEDIUM4"}))
        .await;
    let o = env
        .wait_for(
            "fixed",
            Duration::from_secs(20),
            "ResizeRequiresStop",
            |o| condition(o, "Synced").is_some_and(|c| c.1 == "ResizeRequiresStop"),
        )
        .await;
    assert_eq!(
        o.status.as_ref().unwrap().instance_state.as_deref(),
        Some("RUNNING")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = env.stats();
    assert_eq!(after.calls("StopInstances"), before.calls("StopInstances"));
    assert_eq!(
        after.calls("ResetInstancesType"),
        before.calls("ResetInstancesType")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_name_and_security_groups_change_in_place() {
    let env = TestEnv::new("attrs").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("app")).await;
    let id = instance_id(&env.wait_ready("app").await);
    env.patch_spec(
        "app",
        json!({
            "internetAccessible": {"internetMaxBandwidthOut": 20},
            "instanceName": "app-renamed",
            "securityGroupIds": ["sg-gz000002", "sg-gz000003"],
        }),
    )
    .await;
    env.wait_for("app", Duration::from_secs(30), "updated", |o| {
        let s = o.status.as_ref().unwrap();
        s.internet_max_bandwidth_out == Some(20)
            && s.instance_name.as_deref() == Some("app-renamed")
            && s.security_group_ids == ["sg-gz000002", "sg-gz000003"]
            && condition(o, "Synced").is_some_and(|c| c.0 == "True")
    })
    .await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.bandwidth_out(), Some(20));
    assert_eq!(i.instance_name.as_deref(), Some("app-renamed"));
    let s = env.stats();
    // One attribute per ModifyInstancesAttribute call, as the API requires.
    assert_eq!(s.calls("ModifyInstancesAttribute"), 2);
    assert_eq!(s.calls("ResetInstancesInternetMaxBandwidth"), 1);
    assert_eq!(
        s.calls("StopInstances"),
        0,
        "in-place changes never stop the instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_by_instance_id_and_observe_only() {
    let env = TestEnv::new("adopt").await;
    let existing = create_outside(&env, "legacy", "S5.SMALL2").await;
    let watched = create_outside(&env, "watched", "S5.SMALL2").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("legacy");
    m["spec"]["instanceId"] = existing.clone().into();
    m["spec"]["instanceType"] = "S5.SMALL2".into();
    m["spec"]["instanceName"] = "legacy".into();
    m["spec"]
        .as_object_mut()
        .unwrap()
        .remove("internetAccessible");
    env.create(m).await;
    let o = env.wait_ready("legacy").await;
    assert_eq!(instance_id(&o), existing);

    // ObserveOnly: a different spec is reported, never applied.
    let base = env.stats();
    let mut m = base_manifest("watched");
    m["spec"]["instanceId"] = watched.clone().into();
    m["spec"]["instanceType"] = "S5.LARGE8".into();
    m["spec"]["managementPolicy"] = "ObserveOnly".into();
    env.create(m).await;
    let o = env
        .wait_for("watched", Duration::from_secs(20), "drift reported", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "DriftDetected")
        })
        .await;
    assert_eq!(
        o.status.as_ref().unwrap().instance_type.as_deref(),
        Some("S5.SMALL2")
    );
    assert!(condition(&o, "Ready").is_some_and(|c| c.0 == "True"));
    // Deleting an ObserveOnly resource leaves the instance alone.
    env.delete("watched").await;
    env.wait_gone("watched", Duration::from_secs(20)).await;
    assert!(instance(&env, &watched).await.is_some());
    assert_eq!(
        mutations(&env.stats()),
        mutations(&base),
        "ObserveOnly never mutates"
    );
    assert_eq!(
        env.stats().calls("RunInstances"),
        2,
        "only the two made outside Kubernetes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_never_mutates_until_resumed() {
    let env = TestEnv::new("pause").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("held");
    m["metadata"]["annotations"] = json!({"cvm.tencentcloud.io/paused": "true"});
    env.create(m).await;
    env.wait_for("held", Duration::from_secs(20), "paused", |o| {
        condition(o, "Synced").is_some_and(|c| c.1 == "ReconcilePaused")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mutations(&env.stats()), 0, "paused: not even the create");
    env.api()
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"cvm.tencentcloud.io/paused": null}}}),
            ),
        )
        .await
        .unwrap();
    env.wait_ready("held").await;
    // Pause again, change the spec: nothing happens.
    env.api()
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cvm.tencentcloud.io/paused": "true"}}, "spec": {"runState": "Stopped"}})),
        )
        .await
        .unwrap();
    env.wait_for("held", Duration::from_secs(20), "paused", |o| {
        condition(o, "Synced").is_some_and(|c| c.1 == "ReconcilePaused")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.stats();
    assert_eq!(s.calls("StopInstances"), 0);
    assert_eq!(mutations(&s), 1);
    // An explicit delete still proceeds.
    env.delete("held").await;
    env.wait_gone("held", Duration::from_secs(30)).await;
    assert_eq!(env.stats().instances, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_instance() {
    let env = TestEnv::new("retain").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("keep");
    m["spec"]["deletionPolicy"] = "Retain".into();
    env.create(m).await;
    let id = instance_id(&env.wait_ready("keep").await);
    env.delete("keep").await;
    env.wait_gone("keep", Duration::from_secs(20)).await;
    let i = instance(&env, &id).await.expect("retained");
    assert_eq!(i.instance_state, Some(model::InstanceState::Running));
    assert_eq!(env.stats().calls("TerminateInstances"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_removed_behind_our_back_is_reported_not_recreated() {
    let env = TestEnv::new("vanish").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("lost")).await;
    let id = instance_id(&env.wait_ready("lost").await);
    env.cloud()
        .call::<model::TerminateInstances>(
            &env.creds(),
            REGION,
            &model::TerminateInstancesRequest {
                instance_ids: vec![id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The slow sweep (5 s here) notices.
    let o = env
        .wait_for("lost", Duration::from_secs(30), "InstanceNotFound", |o| {
            condition(o, "Ready").is_some_and(|c| c.1 == "InstanceNotFound")
        })
        .await;
    assert!(condition(&o, "Ready").unwrap().2.contains(&id));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.stats().calls("RunInstances"),
        1,
        "never silently recreated"
    );
    // Deleting it does not get stuck.
    env.delete("lost").await;
    env.wait_gone("lost", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_outside_kubernetes_is_corrected_with_an_event() {
    let env = TestEnv::new("drift").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("steady")).await;
    let id = instance_id(&env.wait_ready("steady").await);
    // Someone stops it in the console.
    env.cloud()
        .call::<model::StopInstances>(
            &env.creds(),
            REGION,
            &model::StopInstancesRequest {
                instance_ids: vec![id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ev = env.events("steady").await;
        let started = env.stats().calls("StartInstances") >= 1;
        if started
            && ev
                .iter()
                // Seen stopping or stopped, depending on the sweep's timing.
                .any(|(r, m)| r == "DriftDetected" && m.contains("state is STOPP"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "drift not corrected: {ev:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.wait_ready("steady").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_instance_type_is_reported_with_the_code_and_never_hot_loops() {
    let env = TestEnv::new("badtype").await;
    let op = env.operator(&[]);
    let mut m = base_manifest("bad");
    m["spec"]["instanceType"] = "S5.HUGE999".into();
    env.create(m).await;
    let o = env
        .wait_for("bad", Duration::from_secs(20), "failed", |o| {
            condition(o, "Synced").is_some_and(|c| c.0 == "False" && c.1 == "ReconcileError")
        })
        .await;
    let (_, _, msg) = condition(&o, "Synced").unwrap();
    assert!(
        msg.contains("InvalidParameterValue.InstanceTypeNotFound"),
        "{msg}"
    );
    assert!(msg.contains("RequestId: "), "{msg}");
    let last = o.status.as_ref().unwrap().last_operation.clone().unwrap();
    assert_eq!(last.state, "Failed");
    assert_eq!(
        last.code.as_deref(),
        Some("InvalidParameterValue.InstanceTypeNotFound")
    );
    let events = env.events("bad").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "CloudAPIError" && m.contains("InstanceTypeNotFound"))
    );
    // Over the next 12 s (more than two poll intervals): no more calls at all.
    let before = env.stats();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = env.stats();
    assert_eq!(
        after.calls("RunInstances"),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(
        after.requests, before.requests,
        "a blocked resource costs no API calls"
    );
    // Fixing the spec retries at once.
    env.patch_spec("bad", json!({"instanceType": "S5.SMALL1"}))
        .await;
    env.wait_ready("bad").await;
    assert_eq!(env.stats().instances, 1);
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_failure_is_reported_once_and_deletion_releases() {
    let env = TestEnv::new("launch").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("broken");
    m["spec"]["imageId"] = "img-brokenz1".into();
    env.create(m).await;
    let o = env
        .wait_for("broken", Duration::from_secs(20), "LaunchFailed", |o| {
            condition(o, "Ready").is_some_and(|c| c.1 == "LaunchFailed")
        })
        .await;
    assert!(condition(&o, "Ready").unwrap().2.contains("img-brokenz1"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.stats().calls("RunInstances"), 1);
    env.delete("broken").await;
    env.wait_gone("broken", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepaid_deletion_goes_through_the_recycle_bin() {
    let env = TestEnv::new("prepaid").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("monthly");
    m["spec"]["instanceChargeType"] = "PREPAID".into();
    m["spec"]["prepaid"] = json!({"period": 1, "renewFlag": "NOTIFY_AND_AUTO_RENEW"});
    env.create(m).await;
    let id = instance_id(&env.wait_ready("monthly").await);
    env.delete("monthly").await;
    env.wait_gone("monthly", Duration::from_secs(40)).await;
    assert!(instance(&env, &id).await.is_none());
    assert_eq!(
        env.stats().calls("TerminateInstances"),
        2,
        "SHUTDOWN first, then destroyed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_rejects_immutable_changes_naming_the_field() {
    let env = TestEnv::new("cel").await;
    env.create(base_manifest("pinned")).await;
    let err = env
        .api()
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"zone": "ap-guangzhou-4"}})),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("spec.zone is immutable"), "{msg}");
    // Schema validation at create: a malformed image id names the field.
    let mut bad = base_manifest("malformed");
    bad["spec"]["imageId"] = "ubuntu".into();
    bad["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    bad["kind"] = "CvmInstance".into();
    let obj: cvm_operator::api::CvmInstance = serde_json::from_value(bad).unwrap();
    let err = env
        .api()
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.imageId"), "{err}");
    // And a zone outside the region is refused by the root rule.
    let mut off = base_manifest("offzone");
    off["spec"]["zone"] = "ap-shanghai-2".into();
    off["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    off["kind"] = "CvmInstance".into();
    let obj: cvm_operator::api::CvmInstance = serde_json::from_value(off).unwrap();
    let err = env
        .api()
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.zone must be a zone of spec.region"),
        "{err}"
    );
}

/// Sim: RunInstances executes, then its answer is held for 60 s. The operator
/// is killed while waiting, restarted, and must adopt, not create again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_create_never_makes_a_second_instance() {
    let env = TestEnv::new("crash").await;
    env.sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("RunInstances".into()),
            rate: 1.0,
            mode: LostMode::Hang,
            hold_ms: 60_000,
            remaining: Some(1),
        }],
        ..Faults::default()
    });
    let mut op = env.operator(&[]);
    env.create(base_manifest("once")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.stats().calls("RunInstances") == 0 {
        assert!(Instant::now() < deadline, "the create was never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    op.kill_hard();
    let o = env.api().get("once").await.unwrap();
    assert!(
        o.status
            .as_ref()
            .and_then(|s| s.instance_id.clone())
            .is_none(),
        "the crash happened before the id was known"
    );
    assert_eq!(
        o.status
            .as_ref()
            .unwrap()
            .last_operation
            .as_ref()
            .unwrap()
            .state,
        "Pending"
    );
    let _op2 = env.operator(&[]);
    let o = env.wait_ready("once").await;
    let s = env.stats();
    assert_eq!(s.instances, 1, "exactly one instance");
    assert_eq!(s.states.get("RUNNING"), Some(&1));
    let i = instance(&env, &instance_id(&o)).await.unwrap();
    assert_eq!(i.tag("cvm.tencentcloud.io/uid"), o.metadata.uid.as_deref());
}

/// Sim: every answer to RunInstances is lost (the client's retries too); the
/// next reconcile finds the instance by its UID tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_responses_never_make_a_second_instance() {
    let env = TestEnv::new("lost").await;
    env.sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("RunInstances".into()),
            rate: 1.0,
            mode: LostMode::Drop,
            hold_ms: 0,
            remaining: Some(4),
        }],
        ..Faults::default()
    });
    let _op = env.operator(&[]);
    env.create(base_manifest("one")).await;
    env.wait_ready("one").await;
    let s = env.stats();
    assert_eq!(s.instances, 1, "exactly one instance: {s:?}");
    assert!(s.lost.get("RunInstances").copied().unwrap_or(0) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_only_the_leader_acts_and_handover_works() {
    let env = TestEnv::new("ha").await;
    let lease = [
        "--leader-election",
        "true",
        "--lease-name",
        "cvm-op",
        "--lease-duration",
        "3",
    ];
    let mut args: Vec<&str> = lease.to_vec();
    args.extend([
        "--lease-namespace",
        env.ns.as_str(),
        "--pod-name",
        "replica-a",
    ]);
    let mut a = env.operator(&args);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut args: Vec<&str> = lease.to_vec();
    args.extend([
        "--lease-namespace",
        env.ns.as_str(),
        "--pod-name",
        "replica-b",
    ]);
    let mut b = env.operator(&args);
    env.create(base_manifest("ha")).await;
    env.wait_ready("ha").await;
    let (la, lb) = (
        a.metric_sum("cvm_operator_leader", "").await,
        b.metric_sum("cvm_operator_leader", "").await,
    );
    assert_eq!(la + lb, 1.0, "exactly one leader: a={la} b={lb}");
    let (leader, standby) = if la == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let standby_calls = standby
        .metric_sum("cvm_operator_cloud_calls_total", "action=\"RunInstances\"")
        .await
        + standby
            .metric_sum(
                "cvm_operator_cloud_calls_total",
                "action=\"DescribeInstances\"",
            )
            .await;
    assert_eq!(standby_calls, 0.0, "the standby never calls the cloud");
    assert_eq!(env.stats().calls("RunInstances"), 1);
    // The leader dies; the standby takes over and applies the next change.
    leader.kill_hard();
    env.patch_spec("ha", json!({"instanceName": "after-handover"}))
        .await;
    env.wait_for(
        "ha",
        Duration::from_secs(30),
        "renamed by the new leader",
        |o| o.status.as_ref().and_then(|s| s.instance_name.as_deref()) == Some("after-handover"),
    )
    .await;
    assert_eq!(standby.metric_sum("cvm_operator_leader", "").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_resource_credentials_and_no_secret_in_status_events_or_logs() {
    const TENANT_ID: &str = "AKIDTENANT00000000000000000000001";
    const TENANT_KEY: &str = "tenant-secret-key-must-not-leak-42";
    const PASSWORD: &str = "Sup3r-Secret-Passw0rd!";
    let mut cfg = fast_sim();
    cfg.accounts.push(SimAccount::new(TENANT_ID, TENANT_KEY));
    let env = TestEnv::with_sim("secrets", cfg).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let secret = |name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "tenant",
                json!({"SecretId": TENANT_ID, "SecretKey": TENANT_KEY}),
            ),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "login",
                json!({"password": PASSWORD, "cloud-init": "#!/bin/sh\necho hi"}),
            ),
        )
        .await
        .unwrap();
    let op = env.operator(&[]);
    let mut m = base_manifest("tenant-vm");
    m["spec"]["credentialsSecretRef"] = json!({"name": "tenant"});
    m["spec"]["loginSettings"] = json!({"passwordSecretRef": {"name": "login", "key": "password"}});
    m["spec"]["userDataSecretRef"] = json!({"name": "login", "key": "cloud-init"});
    env.create(m).await;
    let o = env.wait_ready("tenant-vm").await;
    // The instance lives in the tenant's account, not the operator's.
    let tenant = cvm_operator::cloud::Credentials::new(TENANT_ID, TENANT_KEY, None).unwrap();
    let found = env
        .cloud()
        .describe_instances_by_ids(&tenant, REGION, &[instance_id(&o)])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        instance(&env, &instance_id(&o)).await.is_none(),
        "not visible to the operator's account"
    );

    // A wrong password Secret key is a clear condition, not a leak.
    let mut m = base_manifest("bad-ref");
    m["spec"]["loginSettings"] = json!({"passwordSecretRef": {"name": "login", "key": "nope"}});
    env.create(m).await;
    let bad = env
        .wait_for(
            "bad-ref",
            Duration::from_secs(20),
            "CredentialsInvalid",
            |o| condition(o, "Synced").is_some_and(|c| c.1 == "CredentialsInvalid"),
        )
        .await;
    assert!(condition(&bad, "Synced").unwrap().2.contains("nope"));

    let everything = format!(
        "{}\n{}\n{:?}\n{}",
        serde_json::to_string(&o).unwrap(),
        serde_json::to_string(&bad).unwrap(),
        env.events("tenant-vm").await,
        op.log_text()
    );
    for secret in [TENANT_KEY, PASSWORD, "echo hi"] {
        assert!(!everything.contains(secret), "{secret:?} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_never_deadlocks_when_credentials_are_gone() {
    let env = TestEnv::new("orphan").await;
    // No operator credentials survive: the resource uses a Secret that is
    // deleted before the resource, and the operator restarts in between.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {
        "SecretId": sim::DEFAULT_SECRET_ID, "SecretKey": sim::DEFAULT_SECRET_KEY}}))
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let mut op = env.operator(&["--orphan-grace", "3"]);
    let mut m = base_manifest("doomed");
    m["spec"]["credentialsSecretRef"] = json!({"name": "creds"});
    env.create(m).await;
    env.wait_ready("doomed").await;
    op.kill_hard();
    secrets.delete("creds", &Default::default()).await.unwrap();
    let _op = env.operator(&["--orphan-grace", "3"]);
    env.delete("doomed").await;
    env.wait_gone("doomed", Duration::from_secs(30)).await;
    let events = env.events("doomed").await;
    assert!(
        events.iter().any(|(r, _)| r == "OrphanedInstance"),
        "{events:?}"
    );
    // With its Secret gone, the operator's own (simulator) credentials would
    // have been the wrong account; it did not guess.
    assert_eq!(env.stats().calls("TerminateInstances"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_apply_and_become_ready() {
    let env = TestEnv::new("examples").await;
    let _op = env.operator(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = env
        .cp
        .run_tool("kubectl", &["apply", "-n", &env.ns, "-f", dir], None);
    let names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix("cvminstance.cvm.tencentcloud.io/"))
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 3, "examples/: {out}");
    for n in &names {
        env.wait_for(n, Duration::from_secs(60), "Ready", |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await;
    }
    let table = env
        .cp
        .run_tool("kubectl", &["get", "cvm", "-n", &env.ns], None);
    for col in [
        "INSTANCE ID",
        "STATE",
        "TYPE",
        "ZONE",
        "PUBLIC IP",
        "READY",
        "AGE",
    ] {
        assert!(table.contains(col), "{table}");
    }
}

#[test]
fn crd_is_established_and_explained() {
    let cp = support::control_plane::ControlPlane::shared();
    install_crds(cp);
    // The apiserver publishes a new CRD's OpenAPI a moment after it is
    // Established; explain needs that.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        match cp.try_tool("kubectl", &["explain", "cvminstance.spec.runState"]) {
            Ok(out) => break out,
            Err(e) if Instant::now() > deadline => panic!("kubectl explain: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    assert!(out.contains("Desired power state"), "{out}");
    let out = cp.run_tool(
        "kubectl",
        &[
            "get",
            "crd",
            "cvminstances.cvm.tencentcloud.io",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
        None,
    );
    assert_eq!(out.trim(), "True");
}

#[test]
fn helm_chart_lints_renders_and_installs() {
    let cp = support::control_plane::ControlPlane::shared();
    install_crds(cp);
    let root = env!("CARGO_MANIFEST_DIR");
    let chart = format!("{root}/deploy/helm/cvm-operator");
    // The chart's CRDs are the generated ones; the plain manifests are current.
    let sync = std::process::Command::new("bash")
        .args([&format!("{root}/hack/sync-crds.sh"), "--check"])
        .output()
        .unwrap();
    assert!(
        sync.status.success(),
        "chart CRDs are stale: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let helm = cp.assets.as_ref().map(|a| a.join("helm")).unwrap();
    let render = std::process::Command::new("bash")
        .args([&format!("{root}/hack/render-manifests.sh"), "--check"])
        .env("HELM", &helm)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "deploy/manifests is stale (run hack/render-manifests.sh): {}{}",
        String::from_utf8_lossy(&render.stdout),
        String::from_utf8_lossy(&render.stderr)
    );
    cp.run_tool("helm", &["lint", "--strict", &chart], None);
    let ns = format!("helm-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let rendered = cp.run_tool(
        "helm",
        &[
            "template",
            "cvm-operator",
            &chart,
            "-n",
            &ns,
            "--set",
            "credentials.existingSecret=cvm-creds",
        ],
        None,
    );
    cp.run_tool("kubectl", &["create", "namespace", &ns], None);
    cp.run_tool(
        "kubectl",
        &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
        Some(&rendered),
    );
    cp.run_tool(
        "helm",
        &[
            "install",
            "cvm-operator",
            &chart,
            "-n",
            &ns,
            "--set",
            "credentials.existingSecret=cvm-creds",
            "--skip-crds",
        ],
        None,
    );
    let objects = cp.run_tool(
        "kubectl",
        &[
            "get",
            "deployment,serviceaccount,service,role,rolebinding",
            "-n",
            &ns,
            "-o",
            "name",
        ],
        None,
    );
    for want in [
        "deployment.apps/cvm-operator",
        "serviceaccount/cvm-operator",
        "service/cvm-operator-metrics",
    ] {
        assert!(objects.contains(want), "{objects}");
    }
    let deploy = cp.run_tool(
        "kubectl",
        &["get", "deployment", "cvm-operator", "-n", &ns, "-o", "json"],
        None,
    );
    let d: serde_json::Value = serde_json::from_str(&deploy).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["args"][0], "run");
    // The operator's RBAC suffices for what it does.
    let sa = format!("system:serviceaccount:{ns}:cvm-operator");
    for (verb, resource) in [
        ("watch", "cvminstances.cvm.tencentcloud.io"),
        ("patch", "cvminstances.cvm.tencentcloud.io/status"),
        ("create", "events.events.k8s.io"),
        ("get", "secrets"),
    ] {
        let out = cp.run_tool(
            "kubectl",
            &["auth", "can-i", verb, resource, "--as", &sa, "-n", &ns],
            None,
        );
        assert_eq!(out.trim(), "yes", "{verb} {resource}");
    }
    let out = cp
        .tool("kubectl")
        .args([
            "auth",
            "can-i",
            "delete",
            "cvminstances.cvm.tencentcloud.io",
            "--as",
            &sa,
            "-n",
            &ns,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no",
        "least privilege"
    );
}

/// The chart's Deployment runs this binary's `run` with the chart's env: the
/// operator started with exactly that environment reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_with_the_charts_environment() {
    let env = TestEnv::new("chartenv").await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/cvm-operator");
    let rendered = env.cp.run_tool(
        "helm",
        &[
            "template",
            "cvm-operator",
            chart,
            "-n",
            &env.ns,
            "--set",
            &format!("endpoint={}", env.sim.endpoint()),
            "--set",
            &format!("watchNamespace={}", env.ns),
            "--set",
            "leaderElection.enabled=false",
            "--show-only",
            "templates/deployment.yaml",
        ],
        None,
    );
    let docs: Vec<serde_json::Value> = rendered
        .split("\n---")
        .filter(|d| d.contains("kind: Deployment"))
        .map(|d| serde_saphyr::from_str::<serde_json::Value>(d).unwrap())
        .collect();
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    let mut cmd = std::process::Command::new(operator_bin());
    cmd.args(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()),
    );
    cmd.arg("--kubeconfig").arg(&env.cp.kubeconfig);
    for e in container["env"].as_array().unwrap() {
        if let Some(v) = e["value"].as_str() {
            cmd.env(e["name"].as_str().unwrap(), v);
        }
    }
    let port = free_port();
    cmd.env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("TENCENTCLOUD_SECRET_ID", sim::DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", sim::DEFAULT_SECRET_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    env.create(base_manifest("from-chart")).await;
    env.wait_ready("from-chart").await;
    let health = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_prints_manifests_that_adopt_existing_instances() {
    let env = TestEnv::new("import").await;
    let a = create_outside(&env, "legacy-api", "S5.SMALL2").await;
    let b = create_outside(&env, "legacy-db", "S5.MEDIUM4").await;
    let out = std::process::Command::new(operator_bin())
        .args([
            "import",
            "--endpoint",
            &env.sim.endpoint(),
            "--region",
            REGION,
            "--namespace",
            &env.ns,
        ])
        .env("TENCENTCLOUD_SECRET_ID", sim::DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", sim::DEFAULT_SECRET_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains(&a) && yaml.contains(&b), "{yaml}");
    env.cp
        .run_tool("kubectl", &["apply", "-f", "-"], Some(&yaml));
    let _op = env.operator(&[]);
    let list = env.api().list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    for o in &list.items {
        let o = env.wait_ready(&o.metadata.name.clone().unwrap()).await;
        assert_eq!(
            o.spec.deletion_policy,
            cvm_operator::api::DeletionPolicy::Retain
        );
    }
    let s = env.stats();
    assert_eq!(s.calls("RunInstances"), 2, "adopted, not created");
    assert_eq!(
        mutations(&s),
        2,
        "the imported spec matches: nothing to change"
    );
}
