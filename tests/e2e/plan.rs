//! `cvm-operator plan` (and `kubectl cvm plan`) against the real apiserver
//! and the simulator: what a merge would do, its disruption, its price, what
//! admission refuses — and never a mutating call (counted at the
//! simulator), never a write to the cluster.

use crate::support::*;
use cvm_operator::sim::{self, Stats};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The actions a plan may call: reads only.
fn read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("InquiryPrice")
}

/// Calls made since `before`, by action.
fn since(before: &Stats, after: &Stats) -> BTreeMap<String, u64> {
    after
        .calls
        .iter()
        .map(|(a, n)| (a.clone(), n - before.calls(a)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Bandwidth billed by the Mbps-hour (its price follows the bandwidth).
fn by_bandwidth(mbps: i64) -> Value {
    json!({"internetChargeType": "BANDWIDTH_POSTPAID_BY_HOUR", "internetMaxBandwidthOut": mbps})
}

/// A manifest of `name` in the test's namespace: the base manifest, billed
/// by bandwidth, with `spec` laid over.
fn manifest(env: &TestEnv, name: &str, spec: Value) -> Value {
    let mut m = base_manifest(name);
    m["spec"]["internetAccessible"] = by_bandwidth(1);
    m["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    m["kind"] = "CvmInstance".into();
    m["metadata"]["namespace"] = env.ns.clone().into();
    for (k, v) in spec.as_object().unwrap() {
        m["spec"][k] = v.clone();
    }
    m
}

fn yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap()))
        .collect()
}

struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// The one resource's plan.
    fn resource(&self, name: &str) -> Value {
        let j = self.json();
        j["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {j}"))
    }
}

fn verbs(r: &Value) -> Vec<String> {
    r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["verb"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `program` (the binary, or kubectl) with the cloud pointed at the
/// simulator and its keys in the environment (unless `no_keys`).
fn run(env: &TestEnv, mut cmd: Command, args: &[&str], no_keys: bool) -> Run {
    let home = tempfile::tempdir().unwrap();
    cmd.args(args)
        .args(["--endpoint", &env.sim.endpoint()])
        .env("HOME", home.path())
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env_remove("TENCENTCLOUD_SECRET_KEY");
    if !no_keys {
        cmd.env("TENCENTCLOUD_SECRET_ID", sim::DEFAULT_SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", sim::DEFAULT_SECRET_KEY);
    }
    let out = cmd.output().expect("run plan");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn plan(env: &TestEnv, file: &Path, extra: &[&str]) -> Run {
    let kubeconfig = env.cp.kubeconfig.display().to_string();
    let path = file.display().to_string();
    let mut args = vec!["plan", "-f", &path, "--kubeconfig", &kubeconfig];
    args.extend_from_slice(extra);
    run(
        env,
        Command::new(operator_bin()),
        &args,
        extra.contains(&"none"),
    )
}

fn write(dir: &Path, name: &str, docs: &[Value]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml(docs)).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_says_what_a_merge_does_and_only_reads() {
    let env = TestEnv::new("plan").await;
    let mut op = env.operator(&[]);
    let mut web = base_manifest("web");
    web["spec"]["internetAccessible"] = by_bandwidth(1);
    env.create(web).await;
    env.wait_synced("web").await;
    // The plan alone talks to the simulator from here on.
    op.kill_hard();
    let live_before = env.api().get("web").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = env.stats();

    // Unchanged: exit 0.
    let same = write(dir.path(), "same.yaml", &[manifest(&env, "web", json!({}))]);
    let r = plan(&env, &same, &["-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(web["verdict"], "unchanged");
    assert_eq!(web["observedFrom"], "cloud");
    assert_eq!(web["instanceState"], "RUNNING");

    // Bandwidth: exit 2, no disruption, the new price.
    let wider = json!({"internetAccessible": by_bandwidth(5)});
    let bw = write(dir.path(), "bw.yaml", &[manifest(&env, "web", wider)]);
    let r = plan(&env, &bw, &["-o", "json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(verbs(&web), ["set-bandwidth"]);
    assert_eq!(web["actions"][0]["disruption"], "none");
    assert_eq!(web["disruptive"], false);
    let change = &web["changes"][0];
    assert_eq!((&change["from"], &change["to"]), (&json!("1"), &json!("5")));
    let price = &web["price"];
    assert_eq!(price["before"]["action"], "InquiryPriceRunInstances");
    assert_eq!(
        price["after"]["action"],
        "InquiryPriceResetInstancesInternetMaxBandwidth"
    );
    assert_ne!(price["after"]["bandwidth"], price["before"]["bandwidth"]);
    assert_eq!(price["after"]["instance"], price["before"]["instance"]);
    let text = plan(&env, &bw, &[]);
    assert_eq!(text.code, 2);
    assert!(
        text.stdout.contains(": set-bandwidth — no disruption"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1. set-bandwidth (ResetInstancesInternetMaxBandwidth): setting the outbound bandwidth to 5 Mbps  [no disruption]"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("price: "), "{}", text.stdout);

    // A type change on a running instance: exit 3, stop, resize, start.
    let bigger = json!({"instanceType": "S5.MEDIUM4"});
    let resize = write(dir.path(), "type.yaml", &[manifest(&env, "web", bigger)]);
    let r = plan(&env, &resize, &["-o", "json"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(verbs(&web), ["stop", "resize", "start"]);
    assert_eq!(web["actions"][0]["disruption"], "stop");
    assert_eq!(
        web["actions"][2]["apiAction"],
        Value::Null,
        "the API starts it"
    );
    assert_eq!(web["disruptive"], true);
    assert_eq!(
        web["price"]["after"]["action"],
        "InquiryPriceResetInstancesType"
    );
    assert_ne!(
        web["price"]["after"]["instance"],
        web["price"]["before"]["instance"]
    );
    let text = plan(&env, &resize, &[]);
    assert!(
        text.stdout
            .contains(": stop, resize, start — disrupts the running instance"),
        "{}",
        text.stdout
    );

    // A zone change: refused by admission, naming the field.
    let moved = json!({"zone": "ap-guangzhou-4"});
    let zone = write(dir.path(), "zone.yaml", &[manifest(&env, "web", moved)]);
    let r = plan(&env, &zone, &["-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(web["verdict"], "refused");
    let refused = web["refused"].to_string();
    assert!(refused.contains("spec.zone is immutable"), "{refused}");
    assert_eq!(web["changes"][0]["field"], "spec.zone");
    assert_eq!(web["changes"][0]["disruption"], "replace-refused");
    assert!(web["actions"].as_array().unwrap().is_empty());

    // A new resource: its create and its price; the policy refusing a stop:
    // held, not disruptive (exit 2).
    let new = manifest(&env, "new", json!({}));
    let held = manifest(
        &env,
        "web",
        json!({"instanceType": "S5.MEDIUM4", "disruptionPolicy": {"stopStart": "Never"}}),
    );
    let both = write(dir.path(), "both.yaml", &[new, held]);
    let r = plan(&env, &both, &["-o", "json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let created = r.resource("new");
    assert_eq!(created["verdict"], "create");
    assert_eq!(verbs(&created), ["create"]);
    assert_eq!(
        created["price"]["after"]["action"],
        "InquiryPriceRunInstances"
    );
    assert!(created["price"]["after"]["instance"]["unitPrice"].is_string());
    let web = r.resource("web");
    assert_eq!(web["verdict"], "held");
    assert_eq!(web["held"]["reason"], "StopRequired");
    assert_eq!(web["changes"][0]["disruption"], "stop");

    // Nothing but reads reached the cloud, and nothing changed in the cluster.
    let calls = since(&before, &env.stats());
    assert!(calls.keys().all(|a| read_only(a)), "{calls:?}");
    assert!(calls.contains_key("DescribeInstances"), "{calls:?}");
    assert!(calls.contains_key("InquiryPriceRunInstances"), "{calls:?}");
    assert_eq!(
        env.stats().calls("RunInstances"),
        1,
        "only the operator's create"
    );
    let live_after = env.api().get("web").await.unwrap();
    assert_eq!(
        live_after.metadata.generation,
        live_before.metadata.generation
    );
    assert_eq!(live_after.spec, live_before.spec);
    assert!(
        env.api().get_opt("new").await.unwrap().is_none(),
        "a dry run"
    );

    // Without credentials: from the live object's status, and no call at all.
    let quiet = env.stats();
    let r = plan(&env, &bw, &["-o", "json", "--credentials", "none"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(web["observedFrom"], "status");
    assert_eq!(verbs(&web), ["set-bandwidth"]);
    assert!(
        r.json()["notes"]
            .to_string()
            .contains("live objects' status")
    );
    assert!(since(&quiet, &env.stats()).is_empty());

    // As the kubectl plugin: `kubectl cvm plan`, found on PATH as kubectl-cvm.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(operator_bin(), bin.path().join("kubectl-cvm")).unwrap();
    let mut kubectl = env.cp.tool("kubectl");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    kubectl.env("PATH", path);
    let same_path = same.display().to_string();
    let r = run(
        &env,
        kubectl,
        &["cvm", "plan", "-f", &same_path, "-o", "json"],
        false,
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.resource("web")["verdict"], "unchanged");
}

fn set_plan(env: &TestEnv, dir: &Path, name: &str, spec: Value) -> Run {
    let mut m = crate::fleet::set_manifest("web", 2);
    m["metadata"]["namespace"] = env.ns.clone().into();
    for (k, v) in spec.as_object().unwrap() {
        m["spec"][k] = v.clone();
    }
    let file = write(dir, name, &[m]);
    plan(env, &file, &["-o", "json"])
}

fn described(r: &Value) -> String {
    r["actions"][0]["description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_a_set_launches_deletes_and_rolls_like_the_set_controller() {
    let env = TestEnv::new("plan-set").await;
    let mut op = env.operator(&[]);
    crate::fleet::create_set(&env, crate::fleet::set_manifest("web", 2)).await;
    crate::fleet::wait_settled(&env, "web", 2, std::time::Duration::from_secs(60)).await;
    op.kill_hard();
    let dir = tempfile::tempdir().unwrap();
    let before = env.stats();

    let r = set_plan(&env, dir.path(), "same.yaml", json!({}));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.resource("web")["verdict"], "unchanged");

    let r = set_plan(&env, dir.path(), "up.yaml", json!({"replicas": 3}));
    assert_eq!(r.code, 2, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(verbs(&web), ["launch"]);
    assert!(
        described(&web).starts_with("launching 1 instance as new members"),
        "{web}"
    );
    assert_eq!(web["price"]["after"]["action"], "InquiryPriceRunInstances");

    let r = set_plan(&env, dir.path(), "down.yaml", json!({"replicas": 1}));
    assert_eq!(r.code, 3, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(verbs(&web), ["delete"]);
    assert!(
        described(&web).ends_with(": web-1"),
        "the newest goes: {web}"
    );

    let mut template = crate::fleet::set_manifest("web", 2)["spec"]["template"].clone();
    template["spec"]["instanceType"] = "S5.MEDIUM4".into();
    let r = set_plan(&env, dir.path(), "type.yaml", json!({"template": template}));
    assert_eq!(r.code, 3, "{}", r.stdout);
    let web = r.resource("web");
    assert_eq!(verbs(&web), ["update"]);
    let d = described(&web);
    assert!(
        d.starts_with("updating 2 members in place, at most 1 out of service at a time; each: stop, resize, start"),
        "{d}"
    );
    assert_eq!(
        web["changes"][0]["field"],
        "spec.template.spec.instanceType"
    );
    assert_eq!(web["disruptive"], true);

    let calls = since(&before, &env.stats());
    assert!(calls.keys().all(|a| read_only(a)), "{calls:?}");
    assert_eq!(crate::fleet::live_instances(&env), 2);
}
