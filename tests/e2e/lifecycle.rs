//! The lifecycle: create, power, resize, in-place changes, adoption, pause, drift, errors, admission.

use crate::support::*;
use crate::{create_outside, give_to, instance, instance_id, mutations};
use cvm_operator::api::DeletionPolicy;
use cvm_operator::cloud::model;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

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

    // StopAndStart: stop, resize; the instance comes back RUNNING by itself
    // (documented for ResetInstancesType), so nothing needs starting.
    let before = env.stats();
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
    for r in ["StoppingForChanges", "Resizing"] {
        assert!(reasons.contains(&r.to_string()), "{reasons:?}");
    }
    let after = env.stats();
    assert_eq!(
        after.calls("StopInstances") - before.calls("StopInstances"),
        1
    );
    assert_eq!(
        after.calls("StartInstances"),
        before.calls("StartInstances"),
        "{reasons:?}"
    );

    // Never: reported, and nothing is stopped.
    let before = env.stats();
    env.patch_spec("fixed", json!({"instanceType": "S5.MEDIUM4"}))
        .await;
    let o = env
        .wait_for("fixed", Duration::from_secs(20), "StopRequired", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "StopRequired")
        })
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
    give_to(&env, &existing, &env.ns).await;
    give_to(&env, &watched, &env.ns).await;
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
    // Adopted: tagged with the resource's UID, kept on deletion by default.
    let i = instance(&env, &existing).await.unwrap();
    assert_eq!(i.tag("cvm.tencentcloud.io/uid"), o.metadata.uid.as_deref());
    assert_eq!(i.tag("cvm.tencentcloud.io/name"), Some("legacy"));
    assert_eq!(o.spec.effective_deletion_policy(), DeletionPolicy::Retain);
    let adopting = env.events("legacy").await;
    assert!(
        adopting.iter().any(|(r, _)| r == "Adopting"),
        "{adopting:?}"
    );
    let tag_writes = env.stats().calls("ModifyResourceTags");

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
    assert_eq!(
        env.stats().calls("ModifyResourceTags"),
        tag_writes,
        "ObserveOnly claims nothing"
    );
    let i = instance(&env, &watched).await.unwrap();
    assert_eq!(i.tag("cvm.tencentcloud.io/uid"), None);
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
        "a blocked resource costs no API calls: {before:?} {after:?}"
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
