//! Crash safety, lost responses, leader hand-over, credentials.

use crate::support::*;
use crate::{instance, instance_id};
use cvm_operator::sim::{self, Faults, LostFault, LostMode, SimAccount};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

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
    const ROTATED_PASSWORD: &str = "R0tated-Secret-Passw0rd!";
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
    // What was applied is kept as salted fingerprints, never the values.
    let applied = o.status.clone().unwrap().applied.unwrap();
    assert!(applied.user_data.is_some() && applied.password.is_some());

    // Rotating the user data in its Secret (no spec change) is applied: the
    // resource looks at its Secrets at least once per poll interval.
    let before = env.stats().calls("ModifyInstancesAttribute");
    let rotated = json!({"stringData": {"cloud-init": "#!/bin/sh\necho rotated-user-data"}});
    secrets
        .patch("login", &PatchParams::default(), &Patch::Merge(&rotated))
        .await
        .unwrap();
    let o = env
        .wait_for(
            "tenant-vm",
            Duration::from_secs(40),
            "the rotated user data applied",
            |o| {
                let now = o.status.as_ref().and_then(|s| s.applied.clone());
                now.is_some_and(|a| {
                    a.user_data != applied.user_data && a.password == applied.password
                })
            },
        )
        .await;
    assert_eq!(env.stats().calls("ModifyInstancesAttribute"), before + 1);
    let events = env.events("tenant-vm").await;
    assert!(
        events.iter().any(|(r, _)| r == "UpdatingUserData"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|(r, _)| r == "DriftDetected"),
        "a new Secret value is not drift of the instance: {events:?}"
    );

    // Rotating the password in its Secret resets it, in one stop window.
    let before = env.stats();
    let rotated = json!({"stringData": {"password": ROTATED_PASSWORD}});
    secrets
        .patch("login", &PatchParams::default(), &Patch::Merge(&rotated))
        .await
        .unwrap();
    let applied = o.status.clone().unwrap().applied.unwrap();
    let o = env
        .wait_for(
            "tenant-vm",
            Duration::from_secs(40),
            "the rotated password applied, running again",
            |o| {
                let now = o.status.as_ref().and_then(|s| s.applied.clone());
                now.is_some_and(|a| a.password != applied.password)
                    && condition(o, "Ready").is_some_and(|c| c.0 == "True")
                    && condition(o, "Synced").is_some_and(|c| c.0 == "True")
            },
        )
        .await;
    let after = env.stats();
    for action in ["ResetInstancesPassword", "StopInstances", "StartInstances"] {
        assert_eq!(after.calls(action) - before.calls(action), 1, "{action}");
    }

    // A wrong password Secret key is a clear condition, not a leak.
    let mut m = base_manifest("bad-ref");
    m["spec"]["loginSettings"] = json!({"passwordSecretRef": {"name": "login", "key": "nope"}});
    env.create(m).await;
    let bad = env
        .wait_for(
            "bad-ref",
            Duration::from_secs(20),
            "CredentialsNotFound",
            |o| condition(o, "Synced").is_some_and(|c| c.1 == "CredentialsNotFound"),
        )
        .await;
    assert!(
        condition(&bad, "Synced")
            .unwrap()
            .2
            .contains("(needs key nope)")
    );

    let everything = format!(
        "{}\n{}\n{:?}\n{}",
        serde_json::to_string(&o).unwrap(),
        serde_json::to_string(&bad).unwrap(),
        env.events("tenant-vm").await,
        op.log_text()
    );
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho rotated-user-data");
    for secret in [
        TENANT_KEY,
        PASSWORD,
        "echo hi",
        "rotated-user-data",
        &encoded,
    ] {
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
