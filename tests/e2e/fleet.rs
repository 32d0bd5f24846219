//! CvmInstanceSet fleets end to end: exactly the right number of instances
//! at every step of a scale, through `kubectl scale`, across crashes and
//! lost answers; template changes rolled within `maxUnavailable`; deleting
//! the set terminates every member.

use crate::support::*;
use cvm_operator::api::CvmInstance;
use cvm_operator::api::set::{CvmInstanceSet, SET_LABEL, TEMPLATE_HASH_LABEL as SET_HASH};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub fn sets(env: &TestEnv) -> Api<CvmInstanceSet> {
    Api::namespaced(env.client.clone(), &env.ns)
}

pub fn set_manifest(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1",
        "kind": "CvmInstanceSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": base_manifest("unused")["spec"].clone(),
            },
        },
    })
}

pub async fn create_set(env: &TestEnv, manifest: Value) -> CvmInstanceSet {
    let mut manifest = manifest;
    manifest["metadata"]["namespace"] = env.ns.clone().into();
    let set: CvmInstanceSet = serde_json::from_value(manifest).expect("a CvmInstanceSet");
    sets(env)
        .create(&PostParams::default(), &set)
        .await
        .expect("create set")
}

pub async fn scale(env: &TestEnv, name: &str, replicas: i32) {
    let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
    sets(env)
        .patch(name, &PatchParams::default(), &patch)
        .await
        .expect("scale");
}

/// Instances at the simulator that are not on their way out.
pub fn live_instances(env: &TestEnv) -> usize {
    let s = env.stats();
    s.instances - s.states.get("TERMINATING").copied().unwrap_or(0)
}

/// Members of set `name` (as the apiserver lists them), but those being
/// deleted.
pub async fn members(env: &TestEnv, name: &str) -> Vec<CvmInstance> {
    let api: Api<CvmInstance> = env.api();
    let lp = ListParams::default().labels(&format!("{SET_LABEL}={name}"));
    let all = api.list(&lp).await.unwrap().items;
    all.into_iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Waits until the set reports `n` members, all ready and up to date, and
/// the simulator holds exactly `n` live instances.
pub async fn wait_settled(env: &TestEnv, name: &str, n: i32, timeout: Duration) -> CvmInstanceSet {
    let deadline = Instant::now() + timeout;
    loop {
        let set = sets(env).get(name).await.unwrap();
        let st = set.status.clone().unwrap_or_default();
        let ready = st
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let done = set.spec.replicas == n
            && ready
            && st.replicas == n
            && st.ready_replicas == n
            && st.updated_replicas == n
            && st.observed_generation == set.metadata.generation;
        if done && live_instances(env) == n as usize && env.stats().instances == n as usize {
            return set;
        }
        assert!(
            Instant::now() < deadline,
            "set {name} did not settle at {n} within {timeout:?}: status {}, instances {:?}",
            serde_json::to_string(&st).unwrap(),
            env.stats().states
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_set_launches_in_one_call_scales_and_goes() {
    let env = TestEnv::new("fleet-small").await;
    let _op = env.operator(&[]);
    create_set(&env, set_manifest("web", 3)).await;
    wait_settled(&env, "web", 3, Duration::from_secs(60)).await;
    assert_eq!(
        env.stats().calls("RunInstances"),
        1,
        "three instances, one call"
    );
    assert_eq!(
        env.stats().calls("ModifyResourceTags"),
        0,
        "members own their instances by the set's tag: no tag write each"
    );
    let m = members(&env, "web").await;
    let mut names: Vec<String> = m.iter().map(|m| m.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    for member in &m {
        let id = member
            .spec
            .instance_id
            .clone()
            .expect("adopts its instance");
        let i = crate::instance(&env, &id).await.unwrap();
        assert_eq!(i.instance_name.as_deref(), member.metadata.name.as_deref());
    }
    sets(&env)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sets(&env).get_opt("web").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "set not gone: {:?}",
            env.stats().states
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The set went last: no member, no instance left.
    assert!(members(&env, "web").await.is_empty());
    assert_eq!(env.stats().instances, 0);
}

/// Samples the simulator's state counts every 20 ms until dropped.
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<std::collections::BTreeMap<String, usize>>>,
}

impl Sampler {
    pub fn start(env: &TestEnv) -> Self {
        let sim = env.sim.sim.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(sim.stats().states);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        });
        Sampler { stop, task }
    }

    /// The samples: instances per state.
    pub async fn finish(self) -> Vec<std::collections::BTreeMap<String, usize>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

fn live(states: &std::collections::BTreeMap<String, usize>) -> usize {
    states
        .iter()
        .filter(|(s, _)| s.as_str() != "TERMINATING")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_0_250_40_0_with_exact_instance_counts_at_every_step() {
    let env = TestEnv::new("fleet-scale").await;
    let _op = env.operator(&[]);
    create_set(&env, set_manifest("web", 0)).await;
    wait_settled(&env, "web", 0, Duration::from_secs(30)).await;

    // 0 → 250: three launches (100 + 100 + 50), never one instance more.
    let sampler = Sampler::start(&env);
    scale(&env, "web", 250).await;
    wait_settled(&env, "web", 250, Duration::from_secs(120)).await;
    let most = sampler.finish().await.iter().map(live).max().unwrap_or(0);
    assert_eq!(most, 250, "never more than 250 instances");
    let s = env.stats();
    assert_eq!(s.calls("RunInstances"), 3, "{:?}", s.calls);
    assert_eq!(members(&env, "web").await.len(), 250);

    // 250 → 40: 210 members go, batched; never fewer than 40 left.
    env.sim.sim.reset_stats();
    let sampler = Sampler::start(&env);
    scale(&env, "web", 40).await;
    wait_settled(&env, "web", 40, Duration::from_secs(120)).await;
    let fewest = sampler.finish().await.iter().map(live).min().unwrap_or(0);
    assert_eq!(fewest, 40, "never fewer than 40 instances");
    let s = env.stats();
    let terminates = s.calls("TerminateInstances");
    eprintln!("250 → 40: {terminates} TerminateInstances");
    assert!(terminates <= 10, "210 terminations in {terminates} calls");
    assert_eq!(s.calls("RunInstances"), 0);
    let mut left: Vec<i64> = members(&env, "web")
        .await
        .iter()
        .map(|m| m.metadata.name.as_deref().unwrap()[4..].parse().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, (0..40).collect::<Vec<_>>(), "the newest went first");

    // 40 → 0.
    scale(&env, "web", 0).await;
    wait_settled(&env, "web", 0, Duration::from_secs(60)).await;
    assert!(members(&env, "web").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_drives_the_set_and_kubectl_lists_it() {
    let env = TestEnv::new("fleet-kubectl").await;
    let _op = env.operator(&[]);
    create_set(&env, set_manifest("api", 2)).await;
    wait_settled(&env, "api", 2, Duration::from_secs(60)).await;
    let ns = env.ns.as_str();
    env.cp.run_tool(
        "kubectl",
        &["scale", "-n", ns, "cvmset/api", "--replicas=5"],
        None,
    );
    let set = wait_settled(&env, "api", 5, Duration::from_secs(60)).await;
    assert_eq!(
        set.status.as_ref().unwrap().selector.as_deref(),
        Some("cvm.tencentcloud.io/set=api")
    );
    let table = env
        .cp
        .run_tool("kubectl", &["get", "cvmset", "-n", ns], None);
    for col in ["DESIRED", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(table.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(4).eq(["api", "5", "5", "5"])),
        "{table}"
    );
    let scale = env.cp.run_tool(
        "kubectl",
        &[
            "get",
            "--raw",
            &format!(
                "/apis/cvm.tencentcloud.io/v1alpha1/namespaces/{ns}/cvminstancesets/api/scale"
            ),
        ],
        None,
    );
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["status"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "cvm.tencentcloud.io/set=api");
    let listed = env.cp.run_tool(
        "kubectl",
        &[
            "get",
            "cvm",
            "-n",
            ns,
            "-l",
            "cvm.tencentcloud.io/set=api",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(listed.lines().count(), 5, "{listed}");
    env.cp.run_tool(
        "kubectl",
        &["scale", "-n", ns, "cvmset/api", "--replicas=1"],
        None,
    );
    wait_settled(&env, "api", 1, Duration::from_secs(60)).await;
}

/// Patches the set's template spec.
async fn patch_template(env: &TestEnv, name: &str, spec: Value) {
    let patch = Patch::Merge(json!({"spec": {"template": {"spec": spec}}}));
    sets(env)
        .patch(name, &PatchParams::default(), &patch)
        .await
        .expect("patch template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_that_stops_members_rolls_one_at_a_time() {
    let env = TestEnv::new("fleet-roll").await;
    let _op = env.operator(&[]);
    let mut manifest = set_manifest("web", 4);
    manifest["spec"]["updateStrategy"] = json!({"maxUnavailable": 1});
    create_set(&env, manifest).await;
    wait_settled(&env, "web", 4, Duration::from_secs(60)).await;
    env.sim.sim.reset_stats();
    let sampler = Sampler::start(&env);
    patch_template(&env, "web", json!({"instanceType": "S5.MEDIUM2"})).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = members(&env, "web").await;
        let resized = m.iter().all(|m| {
            m.status.as_ref().and_then(|s| s.instance_type.as_deref()) == Some("S5.MEDIUM2")
        });
        let set = sets(&env).get("web").await.unwrap();
        let ready = set
            .status
            .as_ref()
            .is_some_and(|s| s.updated_replicas == 4 && s.ready_replicas == 4);
        if resized && ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not finish: {:?}",
            set.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wait = wait_settled(&env, "web", 4, Duration::from_secs(30)).await;
    let samples = sampler.finish().await;
    let most_down = samples
        .iter()
        .map(|s| 4 - s.get("RUNNING").copied().unwrap_or(0))
        .max()
        .unwrap();
    assert_eq!(
        most_down, 1,
        "exactly one member out of RUNNING at a time (maxUnavailable 1)"
    );
    let s = env.stats();
    assert_eq!(
        s.calls("StopInstances"),
        4,
        "one stop per member: {:?}",
        s.calls
    );
    assert_eq!(s.calls("ResetInstancesType"), 4);
    assert_eq!(s.calls("RunInstances"), 0, "changed in place, not replaced");
    let hash = wait.status.unwrap().template_hash.unwrap();
    for m in members(&env, "web").await {
        assert_eq!(
            m.metadata.labels.unwrap()[SET_HASH],
            hash,
            "every member has the new template"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_template_change_reaches_every_member_at_once_in_shared_calls() {
    let env = TestEnv::new("fleet-quiet").await;
    let _op = env.operator(&[]);
    let mut manifest = set_manifest("web", 6);
    manifest["spec"]["updateStrategy"] = json!({"maxUnavailable": 1});
    create_set(&env, manifest).await;
    wait_settled(&env, "web", 6, Duration::from_secs(60)).await;
    env.sim.sim.reset_stats();
    patch_template(&env, "web", json!({"disableApiTermination": true})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = members(&env, "web").await;
        let mut protected = 0;
        for member in &m {
            let id = member.spec.instance_id.clone().unwrap();
            if crate::instance(&env, &id)
                .await
                .unwrap()
                .disable_api_termination
                == Some(true)
            {
                protected += 1;
            }
        }
        if protected == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{protected} of 6 protected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The first two go at once, the rest of the burst shares a call.
    let calls = env.stats().calls("ModifyInstancesAttribute");
    assert!(
        calls <= 3,
        "six members, {calls} ModifyInstancesAttribute (batched, all at once)"
    );
    assert_eq!(env.stats().calls("StopInstances"), 0);
    patch_template(&env, "web", json!({"disableApiTermination": false})).await;
    wait_settled(&env, "web", 6, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_a_member_cannot_take_replaces_members_within_max_unavailable() {
    let env = TestEnv::new("fleet-replace").await;
    let _op = env.operator(&[]);
    let mut manifest = set_manifest("web", 3);
    manifest["spec"]["updateStrategy"] = json!({"maxUnavailable": 1, "maxSurge": 0});
    create_set(&env, manifest).await;
    wait_settled(&env, "web", 3, Duration::from_secs(60)).await;
    let before: Vec<String> = members(&env, "web")
        .await
        .iter()
        .filter_map(|m| m.spec.instance_id.clone())
        .collect();
    let sampler = Sampler::start(&env);
    patch_template(&env, "web", json!({"zone": "ap-guangzhou-4"})).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = members(&env, "web").await;
        let moved = m.len() == 3
            && m.iter().all(|m| {
                m.spec.zone == "ap-guangzhou-4" && m.metadata.deletion_timestamp.is_none()
            });
        if moved {
            break;
        }
        assert!(Instant::now() < deadline, "replacement did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_settled(&env, "web", 3, Duration::from_secs(60)).await;
    let most = sampler.finish().await.iter().map(live).max().unwrap();
    assert!(
        most <= 3,
        "maxSurge 0: never more than 3 instances ({most})"
    );
    for m in members(&env, "web").await {
        assert!(
            !before.contains(m.spec.instance_id.as_ref().unwrap()),
            "a new instance"
        );
        let i = crate::instance(&env, m.spec.instance_id.as_ref().unwrap())
            .await
            .unwrap();
        assert_eq!(i.placement.unwrap().zone.as_deref(), Some("ap-guangzhou-4"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_many_separate_instances_costs_a_few_terminate_calls() {
    let env = TestEnv::new("batch-delete").await;
    let _op = env.operator(&[]);
    let n = 60;
    for i in 0..n {
        env.create(base_manifest(&format!("vm-{i}"))).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.stats().states.get("RUNNING").copied().unwrap_or(0) < n {
        assert!(Instant::now() < deadline, "{:?}", env.stats().states);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..n {
        env.wait_ready(&format!("vm-{i}")).await;
    }
    env.sim.sim.reset_stats();
    let api = env.api();
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "not all deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = env.stats();
    assert_eq!(s.instances, 0);
    let calls = s.calls("TerminateInstances");
    eprintln!("{n} deletions: {calls} TerminateInstances");
    // One call per resource before; calls of many ids now (how many share a
    // call depends on how fast the reconciles reach it: 2 on an idle
    // machine, more when other tests share its two cores).
    assert!(calls <= 10, "{n} deletions took {calls} TerminateInstances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_is_not_a_member_cannot_take_a_sets_instance() {
    let env = TestEnv::new("fleet-own").await;
    let _op = env.operator(&[]);
    create_set(&env, set_manifest("web", 1)).await;
    wait_settled(&env, "web", 1, Duration::from_secs(60)).await;
    let id = members(&env, "web").await[0]
        .spec
        .instance_id
        .clone()
        .unwrap();
    // Same namespace (the proof tag matches), but no owner reference to the set.
    let mut thief = base_manifest("thief");
    thief["spec"]["instanceId"] = id.clone().into();
    thief["spec"]["runState"] = "Stopped".into();
    env.create(thief).await;
    let o = env
        .wait_for("thief", Duration::from_secs(30), "refused", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "InstanceClaimed")
        })
        .await;
    let status = o.status.unwrap();
    assert!(
        status.instance_state.is_none(),
        "nothing of the instance reported"
    );
    let i = crate::instance(&env, &id).await.unwrap();
    assert_eq!(
        i.instance_state,
        Some(cvm_operator::cloud::model::InstanceState::Running)
    );
    assert_eq!(env.stats().calls("StopInstances"), 0);
    assert_eq!(env.stats().calls("ModifyResourceTags"), 0);
    wait_settled(&env, "web", 1, Duration::from_secs(10)).await;
}
