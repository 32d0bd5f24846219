//! A set's launches across crashes and lost answers: killed with a launch
//! in flight, with a launch recorded but never executed, after the launch
//! and before its members, and halfway through creating them — each time
//! exactly the right number of instances, and every one a member.

use crate::fleet::{create_set, members, set_manifest, sets, wait_settled};
use crate::support::*;
use cvm_operator::api::set::BatchState;
use cvm_operator::sim::{ErrorFault, Faults, LostFault, LostMode};
use std::time::{Duration, Instant};

/// Waits until the set's journal satisfies `pred`.
async fn wait_journal(
    env: &TestEnv,
    name: &str,
    what: &str,
    pred: impl Fn(&[cvm_operator::api::set::LaunchBatch]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let set = sets(env).get(name).await.unwrap();
        let batches = set.status.map(|s| s.batches).unwrap_or_default();
        if pred(&batches) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "journal never {what}: {batches:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every instance at the simulator is a member's, and each member's once.
async fn every_instance_is_a_member(env: &TestEnv, name: &str, n: usize) {
    let ids: std::collections::HashSet<String> = members(env, name)
        .await
        .iter()
        .filter_map(|m| m.spec.instance_id.clone())
        .collect();
    assert_eq!(ids.len(), n, "one instance per member");
    let wanted: Vec<String> = ids.iter().cloned().collect();
    let found = env
        .cloud()
        .describe_instances_by_ids(&env.creds(), REGION, &wanted)
        .await
        .unwrap();
    assert_eq!(found.len(), n, "every member's instance exists");
    assert_eq!(env.stats().instances, n, "and no other instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_a_launch_in_flight_never_makes_extra_instances() {
    let env = TestEnv::new("fleet-crash-flight").await;
    // The first launch is executed but its answer never comes back.
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
    create_set(&env, set_manifest("web", 150)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.stats().instances < 100 {
        assert!(Instant::now() < deadline, "the launches were never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_journal(&env, "web", "showing a launch without ids", |b| {
        b.iter().any(|b| b.state == BatchState::Pending)
    })
    .await;
    op.kill_hard();
    let _op = env.operator(&[]);
    wait_settled(&env, "web", 150, Duration::from_secs(90)).await;
    every_instance_is_a_member(&env, "web", 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_recording_a_launch_that_never_took_effect_launches_it_once() {
    let env = TestEnv::new("fleet-crash-never").await;
    // Every RunInstances fails before it is executed (the outcome is unknown
    // to the operator: transient).
    env.sim.sim.set_faults(Faults {
        errors: vec![ErrorFault {
            action: Some("RunInstances".into()),
            code: "InternalError".into(),
            rate: 1.0,
            remaining: None,
        }],
        ..Faults::default()
    });
    let mut op = env.operator(&[]);
    create_set(&env, set_manifest("web", 30)).await;
    wait_journal(&env, "web", "recording the launch", |b| {
        b.len() == 1 && b[0].state == BatchState::Pending
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.stats().calls("RunInstances") == 0 {
        assert!(Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    op.kill_hard();
    assert_eq!(env.stats().instances, 0, "nothing was created");
    env.sim.sim.set_faults(Faults::default());
    let _op = env.operator(&[]);
    wait_settled(&env, "web", 30, Duration::from_secs(60)).await;
    every_instance_is_a_member(&env, "web", 30).await;
    let set = sets(&env).get("web").await.unwrap();
    assert_eq!(
        set.status.unwrap().last_batch,
        1,
        "the same launch, replayed"
    );
}

/// Holds back the creation of CvmInstances in the test namespace whose
/// names `cel` selects (a ValidatingAdmissionPolicy), until dropped.
struct HoldMembers<'a> {
    env: &'a TestEnv,
    name: String,
}

impl<'a> HoldMembers<'a> {
    async fn new(env: &'a TestEnv, cel: &str) -> Self {
        let name = format!("hold-{}", env.ns);
        let yaml = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": name},
             "spec": {"failurePolicy": "Fail",
                      "matchConstraints": {"resourceRules": [{"apiGroups": ["cvm.tencentcloud.io"],
                          "apiVersions": ["v1alpha1"], "operations": ["CREATE"], "resources": ["cvminstances"]}]},
                      "validations": [{"expression": format!("!({cel})"), "message": "held back by the test"}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
             "metadata": {"name": name},
             "spec": {"policyName": name, "validationActions": ["Deny"],
                      "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": env.ns}}}}},
        ]});
        env.cp
            .run_tool("kubectl", &["apply", "-f", "-"], Some(&yaml.to_string()));
        // The policy takes effect a moment after it is stored.
        let probe: cvm_operator::api::CvmInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web-2", "namespace": env.ns}, "spec": base_manifest("x")["spec"]}))
        .unwrap();
        let dry_run = kube::api::PostParams {
            dry_run: true,
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while env.api().create(&dry_run, &probe).await.is_ok() {
            assert!(Instant::now() < deadline, "the policy never took effect");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        HoldMembers { env, name }
    }
}

impl Drop for HoldMembers<'_> {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = self
                .env
                .cp
                .try_tool("kubectl", &["delete", kind, &self.name, "--wait"]);
        }
        // Gone from the apiserver's admission a moment later.
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_and_halfway_through_creating_members_adopts_every_instance() {
    let env = TestEnv::new("fleet-crash-members").await;
    let count = |_: &()| env.stats().calls("RunInstances");
    // No member can be created: the launch is recorded with its ids.
    let hold = HoldMembers::new(&env, "object.metadata.name.startsWith('web-')").await;
    let mut op = env.operator(&[]);
    create_set(&env, set_manifest("web", 5)).await;
    wait_journal(&env, "web", "launched", |b| {
        b.len() == 1 && b[0].state == BatchState::Launched && b[0].instance_ids.len() == 5
    })
    .await;
    op.kill_hard();
    drop(hold);
    assert!(members(&env, "web").await.is_empty());
    // Members 2-4 cannot be created: killed with 0 and 1 made.
    let hold = HoldMembers::new(&env, "object.metadata.name in ['web-2', 'web-3', 'web-4']").await;
    let mut op = env.operator(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while members(&env, "web").await.len() < 2 {
        assert!(Instant::now() < deadline, "members 0 and 1 never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.kill_hard();
    drop(hold);
    let _op = env.operator(&[]);
    wait_settled(&env, "web", 5, Duration::from_secs(60)).await;
    every_instance_is_a_member(&env, "web", 5).await;
    assert_eq!(count(&()), 1, "one launch for all of it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_launch_answers_never_make_extra_instances() {
    let env = TestEnv::new("fleet-lost").await;
    // Every answer to RunInstances lost, the client's retries' too, six times.
    env.sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("RunInstances".into()),
            rate: 1.0,
            mode: LostMode::Drop,
            hold_ms: 0,
            remaining: Some(6),
        }],
        ..Faults::default()
    });
    let _op = env.operator(&[]);
    create_set(&env, set_manifest("web", 120)).await;
    wait_settled(&env, "web", 120, Duration::from_secs(90)).await;
    every_instance_is_a_member(&env, "web", 120).await;
    let s = env.stats();
    assert!(
        s.lost.get("RunInstances").copied().unwrap_or(0) >= 6,
        "{:?}",
        s.lost
    );
}
