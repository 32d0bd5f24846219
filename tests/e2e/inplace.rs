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
    let o = env.wait_synced("web").await;
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
    let o = env.wait_synced("web").await;
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
    env.wait_synced("web").await;
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
    let id = instance_id(&env.wait_synced("web").await);
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
    env.wait_synced("web").await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.host_name.as_deref(), Some("web-2"));
    assert_eq!(
        i.instance_state,
        Some(cvm_operator::cloud::model::InstanceState::Stopped)
    );
}

/// Calls of `action` since `before`.
fn delta(env: &TestEnv, before: &cvm_operator::sim::Stats, action: &str) -> u64 {
    env.stats().calls(action) - before.calls(action)
}

async fn secret(env: &TestEnv, name: &str, data: serde_json::Value) {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
}

/// The brief's proof: four fields that need (or wait for) a stopped
/// instance, changed in one edit, cost exactly one StopInstances and one
/// StartInstances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_changes_needing_a_stop_share_one_stop_window() {
    let env = TestEnv::new("window").await;
    secret(
        &env,
        "login",
        json!({"first": "Fir5t-Passw0rd!", "second": "Sec0nd-Passw0rd!"}),
    )
    .await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["loginSettings"] = json!({"passwordSecretRef": {"name": "login", "key": "first"}});
    m["spec"]["vpc"] = json!({"vpcId": "vpc-gz000001", "subnetId": "subnet-gz000003"});
    m["spec"]["systemDisk"] = json!({"diskType": "CLOUD_PREMIUM", "diskSize": 50});
    m["spec"]["dataDisks"] = json!([{"diskType": "CLOUD_PREMIUM", "diskSize": 100}]);
    env.create(m).await;
    let o = env.wait_synced("web").await;
    let id = instance_id(&o);
    let password_before = o.status.unwrap().applied.unwrap().password;
    let before = env.stats();

    env.patch_spec(
        "web",
        json!({
            "loginSettings": {"passwordSecretRef": {"name": "login", "key": "second"}},
            "vpc": {"vpcId": "vpc-gz000002", "subnetId": "subnet-gz200003"},
            "systemDisk": {"diskType": "CLOUD_PREMIUM", "diskSize": 60},
            "dataDisks": [{"diskType": "CLOUD_PREMIUM", "diskSize": 200}],
        }),
    )
    .await;
    let o = env.wait_synced("web").await;
    assert_eq!(delta(&env, &before, "StopInstances"), 1, "one stop");
    assert_eq!(delta(&env, &before, "StartInstances"), 1, "one start");
    for (action, n) in [
        ("ResetInstancesPassword", 1),
        ("ModifyInstancesVpcAttribute", 1),
        ("ResizeInstanceDisks", 2),
    ] {
        assert_eq!(delta(&env, &before, action), n, "{action}");
    }
    let i = instance(&env, &id).await.unwrap();
    let net = i.virtual_private_cloud.unwrap();
    assert_eq!(net.subnet_id.as_deref(), Some("subnet-gz200003"));
    assert_eq!(i.system_disk.unwrap().disk_size, Some(60));
    assert_eq!(i.data_disks.unwrap()[0].disk_size, Some(200));
    assert_eq!(
        i.instance_state,
        Some(cvm_operator::cloud::model::InstanceState::Running)
    );
    let s = o.status.unwrap();
    assert_ne!(
        s.applied.unwrap().password,
        password_before,
        "the new password is recorded"
    );
    assert!(
        s.private_ip_addresses[0].starts_with("10.2.3."),
        "{:?}",
        s.private_ip_addresses
    );
    let events = env.events("web").await;
    let stop = events
        .iter()
        .find(|(r, _)| r == "StoppingForChanges")
        .expect("the window's stop");
    for field in [
        "spec.loginSettings.passwordSecretRef",
        "spec.vpc",
        "spec.systemDisk.diskSize",
        "spec.dataDisks[].diskSize",
    ] {
        assert!(stop.1.contains(field), "{field}: {}", stop.1);
    }
    let log = env.events("web").await;
    assert!(!format!("{log:?}").contains("Sec0nd-Passw0rd"));
}

/// Keys and the type in one edit: one stop; ResetInstancesType brings the
/// instance back RUNNING (documented), so nothing is started; the type is
/// checked before the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_type_in_one_stop_and_the_api_restarts_it() {
    let env = TestEnv::new("keys").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["loginSettings"] = json!({"keyIds": ["skey-gz000001"]});
    env.create(m).await;
    let id = instance_id(&env.wait_synced("web").await);
    let before = env.stats();
    env.patch_spec(
        "web",
        json!({"loginSettings": {"keyIds": ["skey-gz000002", "skey-gz000003"]}, "instanceType": "S5.MEDIUM4"}),
    )
    .await;
    env.wait_synced("web").await;
    for (action, n) in [
        ("StopInstances", 1),
        ("StartInstances", 0),
        ("DisassociateInstancesKeyPairs", 1),
        ("AssociateInstancesKeyPairs", 1),
        ("ResetInstancesType", 1),
    ] {
        assert_eq!(delta(&env, &before, action), n, "{action}");
    }
    assert!(delta(&env, &before, "DescribeInstancesModification") >= 1);
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.instance_type.as_deref(), Some("S5.MEDIUM4"));
    let mut keys = i.login_settings.unwrap().key_ids.unwrap();
    keys.sort();
    assert_eq!(keys, ["skey-gz000002", "skey-gz000003"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_type_is_reported_without_a_stop() {
    let env = TestEnv::new("notype").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("web")).await;
    let o = env.wait_synced("web").await;
    assert_eq!(
        o.status.unwrap().applied,
        None,
        "no user data or password: nothing to fingerprint"
    );
    let before = env.stats();
    // A GPU type, offered in Beijing only.
    env.patch_spec("web", json!({"instanceType": "GN7.2XLARGE32"}))
        .await;
    let o = env
        .wait_for(
            "web",
            Duration::from_secs(30),
            "InstanceTypeUnavailable",
            |o| condition(o, "Synced").is_some_and(|c| c.1 == "InstanceTypeUnavailable"),
        )
        .await;
    let (_, _, message) = condition(&o, "Synced").unwrap();
    assert!(message.contains("nothing was stopped"), "{message}");
    assert_eq!(condition(&o, "Stalled").unwrap().0, "True");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(delta(&env, &before, "StopInstances"), 0);
    assert_eq!(delta(&env, &before, "ResetInstancesType"), 0);
    assert!(delta(&env, &before, "DescribeInstancesModification") >= 1);
    assert_eq!(o.status.unwrap().instance_state.as_deref(), Some("RUNNING"));
}

/// Project, billing (postpaid → prepaid, then the renew flag), a disk grown
/// online and a placement group: no stop at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_billing_disk_and_placement_group_change_without_a_stop() {
    let env = TestEnv::new("billing").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["systemDisk"] = json!({"diskType": "CLOUD_PREMIUM", "diskSize": 50});
    env.create(m).await;
    let id = instance_id(&env.wait_synced("web").await);
    let before = env.stats();
    env.patch_spec(
        "web",
        json!({
            "projectId": 1000001,
            "instanceChargeType": "PREPAID",
            "prepaid": {"period": 1, "renewFlag": "NOTIFY_AND_MANUAL_RENEW"},
            "systemDisk": {"diskType": "CLOUD_PREMIUM", "diskSize": 80},
            "disasterRecoverGroupIds": ["ps-gz000001"],
        }),
    )
    .await;
    let o = env.wait_synced("web").await;
    // The hourly price recorded at create no longer holds, and says so.
    let price = o.status.unwrap().price.unwrap();
    assert_eq!(price.instance, None);
    let why = price.unknown_reason.unwrap_or_default();
    assert!(why.contains("became PREPAID"), "{why}");
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.placement.as_ref().unwrap().project_id, Some(1000001));
    assert_eq!(i.instance_charge_type.as_deref(), Some("PREPAID"));
    assert_eq!(i.renew_flag.as_deref(), Some("NOTIFY_AND_MANUAL_RENEW"));
    assert_eq!(i.system_disk.unwrap().disk_size, Some(80));
    assert_eq!(
        i.disaster_recover_group_ids.as_deref(),
        Some(&["ps-gz000001".to_string()][..])
    );
    for action in ["StopInstances", "StartInstances"] {
        assert_eq!(delta(&env, &before, action), 0, "{action}");
    }
    let events = env.events("web").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "GrowingDisk" && m.contains("online")),
        "{events:?}"
    );
    // Then the renew flag alone.
    env.patch_spec(
        "web",
        json!({"prepaid": {"period": 1, "renewFlag": "NOTIFY_AND_AUTO_RENEW"}}),
    )
    .await;
    env.wait_synced("web").await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.renew_flag.as_deref(), Some("NOTIFY_AND_AUTO_RENEW"));
    assert_eq!(delta(&env, &before, "ModifyInstancesChargeType"), 1);
    assert_eq!(delta(&env, &before, "ModifyInstancesRenewFlag"), 1);
    // And back to postpaid is refused at admission, saying why.
    let err = env
        .api()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"instanceChargeType": "POSTPAID_BY_HOUR", "prepaid": null}}),
            ),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a PREPAID instance cannot become postpaid"),
        "{err}"
    );
}

/// A new image: reported until reinstalling is allowed, then one
/// ResetInstance that sets the login and user data with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_reinstalls_only_when_allowed() {
    let env = TestEnv::new("reinstall").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["loginSettings"] = json!({"keyIds": ["skey-gz000001"]});
    m["spec"]["userData"] = "ZWNobyBvbmU=".into();
    env.create(m).await;
    let o = env.wait_synced("web").await;
    let id = instance_id(&o);
    let user_data_before = o.status.unwrap().applied.unwrap().user_data;
    env.patch_spec(
        "web",
        json!({"imageId": "img-487zeit5", "userData": "ZWNobyB0d28=", "loginSettings": {"keyIds": ["skey-gz000002"]}}),
    )
    .await;
    let o = env
        .wait_for("web", Duration::from_secs(30), "ReinstallRequired", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "ReinstallRequired")
        })
        .await;
    let (_, _, message) = condition(&o, "Synced").unwrap();
    assert!(
        message.contains("spec.imageId needs a reinstall"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = env.stats();
    for action in [
        "ResetInstance",
        "StopInstances",
        "AssociateInstancesKeyPairs",
        "ModifyInstancesAttribute",
    ] {
        assert_eq!(
            stats.calls(action),
            0,
            "{action}: nothing rides ahead of the reinstall"
        );
    }
    env.patch_spec("web", json!({"disruptionPolicy": {"reinstall": "Allowed"}}))
        .await;
    let o = env.wait_synced("web").await;
    let stats = env.stats();
    assert_eq!(stats.calls("ResetInstance"), 1);
    assert_eq!(stats.calls("StopInstances"), 0);
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(i.image_id.as_deref(), Some("img-487zeit5"));
    assert_eq!(
        i.login_settings.unwrap().key_ids.unwrap(),
        ["skey-gz000002"]
    );
    assert_ne!(
        o.status.unwrap().applied.unwrap().user_data,
        user_data_before
    );
    let events = env.events("web").await;
    assert!(reasons(&events).contains(&"Reinstalling"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_the_policy_refuses_is_reported_and_applied_once_stopped() {
    let env = TestEnv::new("nostop").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("web");
    m["spec"]["loginSettings"] = json!({"keyIds": ["skey-gz000001"]});
    m["spec"]["disruptionPolicy"] = json!({"stopStart": "Never"});
    env.create(m).await;
    let id = instance_id(&env.wait_synced("web").await);
    env.patch_spec(
        "web",
        json!({"loginSettings": {"keyIds": ["skey-gz000002"]}}),
    )
    .await;
    let o = env
        .wait_for("web", Duration::from_secs(30), "StopRequired", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "StopRequired")
        })
        .await;
    let (_, _, message) = condition(&o, "Synced").unwrap();
    assert!(
        message.contains("spec.loginSettings.keyIds needs the instance stopped"),
        "{message}"
    );
    assert_eq!(env.stats().calls("StopInstances"), 0);
    env.patch_spec("web", json!({"runState": "Stopped"})).await;
    env.wait_synced("web").await;
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(
        i.login_settings.unwrap().key_ids.unwrap(),
        ["skey-gz000002"]
    );
    assert_eq!(
        env.stats().calls("StopInstances"),
        1,
        "the owner's stop only"
    );
}

/// The apiserver refuses what the API cannot change, naming the field and
/// what to do instead (the same rules `api::tests` checks in-process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_what_the_api_cannot_change() {
    let env = TestEnv::new("celx").await;
    let mut m = base_manifest("fixed");
    m["spec"]["systemDisk"] = json!({"diskType": "CLOUD_PREMIUM", "diskSize": 50});
    m["spec"]["dataDisks"] =
        json!([{"diskSize": 100}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]);
    m["spec"]["vpc"] = json!({"vpcId": "vpc-gz000001", "subnetId": "subnet-gz000003"});
    m["spec"]["instanceChargeType"] = "SPOTPAID".into();
    env.create(m).await;
    let refused = |spec: serde_json::Value, message: &'static str| {
        let api = env.api();
        async move {
            let err = api
                .patch(
                    "fixed",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{spec}: {err}");
        }
    };
    refused(
        json!({"systemDisk": {"diskType": "CLOUD_PREMIUM", "diskSize": 40}}),
        "spec.systemDisk.diskSize can only grow",
    )
    .await;
    refused(
        json!({"systemDisk": {"diskType": "CLOUD_SSD", "diskSize": 50}}),
        "spec.systemDisk.diskType is immutable",
    )
    .await;
    refused(
        json!({"dataDisks": [{"diskSize": 100}]}),
        "the number of spec.dataDisks cannot change",
    )
    .await;
    refused(
        json!({"dataDisks": [{"diskSize": 90}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]}),
        "spec.dataDisks[].diskSize can only grow",
    )
    .await;
    refused(
        json!({"dataDisks": [{"diskSize": 100}, {"diskType": "LOCAL_BASIC", "diskSize": 200}]}),
        "spec.dataDisks[].diskSize of a local disk cannot change",
    )
    .await;
    refused(json!({"vpc": null}), "spec.vpc cannot be added or removed").await;
    refused(
        json!({"instanceChargeType": "POSTPAID_BY_HOUR"}),
        "SPOTPAID is fixed at purchase",
    )
    .await;
    // What may change does.
    env.api()
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "systemDisk": {"diskType": "CLOUD_PREMIUM", "diskSize": 60},
                "dataDisks": [{"diskSize": 110}, {"diskType": "LOCAL_BASIC", "diskSize": 100}],
                "vpc": {"vpcId": "vpc-gz000002", "subnetId": "subnet-gz200003", "privateIpAddress": "10.2.3.9"},
                "imageId": "img-487zeit5",
                "projectId": 1000002,
            }})),
        )
        .await
        .expect("in-place fields are admitted");
}

/// ResetInstancesType starts the instance when done (documented): one the
/// spec keeps stopped is stopped again, and an event says it booted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_of_a_stopped_instance_keeps_it_stopped_and_says_it_booted() {
    let env = TestEnv::new("unplanned").await;
    let _op = env.operator(&[]);
    let mut m = base_manifest("idle");
    m["spec"]["runState"] = "Stopped".into();
    env.create(m).await;
    let id = instance_id(&env.wait_synced("idle").await);
    let before = env.stats();
    env.patch_spec("idle", json!({"instanceType": "S5.MEDIUM4"}))
        .await;
    let o = env
        .wait_for(
            "idle",
            Duration::from_secs(40),
            "resized and stopped",
            |o| {
                let s = o.status.as_ref().unwrap();
                s.instance_type.as_deref() == Some("S5.MEDIUM4")
                    && s.instance_state.as_deref() == Some("STOPPED")
                    && s.observed_generation == o.metadata.generation
                    && condition(o, "Synced").is_some_and(|c| c.0 == "True")
            },
        )
        .await;
    assert_eq!(condition(&o, "Ready").unwrap().1, "Stopped");
    for (action, n) in [
        ("ResetInstancesType", 1),
        ("StopInstances", 1),
        ("StartInstances", 0),
    ] {
        assert_eq!(delta(&env, &before, action), n, "{action}");
    }
    let i = instance(&env, &id).await.unwrap();
    assert_eq!(
        i.instance_state,
        Some(cvm_operator::cloud::model::InstanceState::Stopped)
    );
    let events = env.events("idle").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "UnplannedBoot" && m.contains("ResetInstancesType")),
        "{events:?}"
    );
}
