//! GitOps: Argo CD's health check (deploy/argocd/health.lua, run in Lua 5.4)
//! and Flux's kstatus (hack/kstatus) on objects as the apiserver serves them;
//! the chart's alert rules and dashboard (promtool, and every metric they use
//! is served by a running operator); plain-text logs.

use crate::support::*;
use cvm_operator::sim::{EngineConfig, SimConfig, Timings};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Argo CD's verdict on `obj`: (health status, message).
fn argocd_health(obj: &Value) -> (String, String) {
    run_health_script("health.lua", obj)
}

/// The verdict of `deploy/argocd/<script>` on `obj`, as Argo CD runs it
/// (the object as the global `obj`, a table with status and message back).
pub fn run_health_script(script: &str, obj: &Value) -> (String, String) {
    use mlua::LuaSerdeExt;
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/argocd/{script}")).unwrap();
    let lua = mlua::Lua::new();
    lua.globals()
        .set("obj", lua.to_value(obj).unwrap())
        .unwrap();
    let hs: mlua::Table = lua.load(&text).set_name(script).eval().unwrap();
    (hs.get("status").unwrap(), hs.get("message").unwrap())
}

/// A tool built by hack/setup-tools.sh (cached; `make test` builds it first).
fn tool(name: &str) -> PathBuf {
    let out = Command::new(format!("{ROOT}/hack/setup-tools.sh"))
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "hack/setup-tools.sh {name} failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// kstatus' verdict on `obj`, as Flux computes it: (status, message).
pub fn kstatus(obj: &Value) -> (String, String) {
    let mut child = Command::new(tool("kstatus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(obj.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kstatus failed on {obj}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |k: &str| line[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("message"))
}

/// The object as kubectl, Argo CD and Flux read it.
fn live(env: &TestEnv, name: &str) -> Value {
    let args = ["get", "cvm", name, "-n", &env.ns, "-o", "json"];
    serde_json::from_str(&env.cp.run_tool("kubectl", &args, None)).unwrap()
}

/// Both verdicts on the live object, with the object for failure messages.
fn verdicts(env: &TestEnv, name: &str) -> ((String, String), (String, String), Value) {
    let obj = live(env, name);
    (argocd_health(&obj), kstatus(&obj), obj)
}

fn reason_is(
    type_: &'static str,
    reason: &'static str,
) -> impl Fn(&cvm_operator::api::CvmInstance) -> bool {
    move |o| {
        condition(o, type_).is_some_and(|c| c.1 == reason)
            && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
    }
}

/// Without the operator's `Stalled` condition (as an older operator wrote
/// the object), the health checks decide from the Synced reason.
pub fn without_stalled(obj: &Value) -> Value {
    let mut o = obj.clone();
    o["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["type"] != "Stalled");
    o
}

/// A simulator whose launches take 6 s, so "converging" lasts long enough
/// to be read.
pub fn slow_launches() -> SimConfig {
    SimConfig {
        engine: EngineConfig {
            timings: Timings {
                launch: Duration::from_secs(6),
                ..Timings::default()
            },
            ..EngineConfig::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_health_and_kstatus_follow_live_objects() {
    let env = TestEnv::with_sim("gitops", slow_launches()).await;
    let op = env.operator(&[]);
    let mut web = base_manifest("web");
    web["metadata"]["annotations"] = json!({"example.com/keep": "x"});
    env.create(web).await;

    // Converging: created, not running yet.
    env.wait_for(
        "web",
        Duration::from_secs(20),
        "Creating",
        reason_is("Ready", "Creating"),
    )
    .await;
    let (argo, ks, obj) = verdicts(&env, "web");
    assert_eq!(argo.0, "Progressing", "{argo:?} {obj}");
    assert!(argo.1.contains("Creating"), "{argo:?}");
    assert_eq!(ks.0, "InProgress", "{ks:?} {obj}");

    // Ready.
    env.wait_ready("web").await;
    let (argo, ks, obj) = verdicts(&env, "web");
    assert_eq!(
        argo,
        (
            "Healthy".into(),
            format!(
                "Available: instance {} is running",
                obj["status"]["instanceId"].as_str().unwrap()
            )
        )
    );
    assert_eq!(ks.0, "Current", "{ks:?} {obj}");
    assert_eq!(argocd_health(&without_stalled(&obj)).0, "Healthy");

    // A spec change the operator has not seen yet (it is down).
    drop(op);
    env.patch_spec(
        "web",
        json!({"internetAccessible": {"internetMaxBandwidthOut": 5}}),
    )
    .await;
    let (argo, ks, obj) = verdicts(&env, "web");
    assert_eq!(argo.0, "Progressing", "{argo:?} {obj}");
    assert!(argo.1.contains("generation 2"), "{argo:?}");
    assert_eq!(ks.0, "InProgress", "{ks:?}");
    assert!(ks.1.contains("generation is 2"), "{ks:?}");

    // Paused: Argo CD shows Suspended; kstatus has no such state and goes by
    // Ready (the instance is up).
    env.cp.run_tool(
        "kubectl",
        &[
            "annotate",
            "cvm",
            "web",
            "-n",
            &env.ns,
            "cvm.tencentcloud.io/paused=true",
        ],
        None,
    );
    let _op = env.operator(&[]);
    env.wait_for(
        "web",
        Duration::from_secs(20),
        "paused",
        reason_is("Synced", "ReconcilePaused"),
    )
    .await;
    let (argo, ks, obj) = verdicts(&env, "web");
    assert_eq!(argo.0, "Suspended", "{argo:?} {obj}");
    assert!(argo.1.contains("next step would be"), "{argo:?}");
    assert_eq!(ks.0, "Current", "{ks:?}");

    // A permanent error: Degraded and Failed, saying why.
    let mut bad = base_manifest("bad");
    bad["spec"]["instanceType"] = "S5.HUGE999".into();
    env.create(bad).await;
    env.wait_for(
        "bad",
        Duration::from_secs(20),
        "failed",
        reason_is("Synced", "ReconcileError"),
    )
    .await;
    let (argo, ks, obj) = verdicts(&env, "bad");
    assert_eq!(argo.0, "Degraded", "{argo:?} {obj}");
    assert!(
        argo.1.starts_with(
            "ReconcileError: RunInstances failed: InvalidParameterValue.InstanceTypeNotFound"
        ),
        "{argo:?}"
    );
    assert_eq!(ks.0, "Failed", "{ks:?} {obj}");
    assert!(ks.1.contains("InstanceTypeNotFound"), "{ks:?}");
    // An object from an operator without the Stalled condition: the same.
    assert_eq!(argocd_health(&without_stalled(&obj)), argo);

    // The instance is deleted outside Kubernetes: Degraded.
    env.cp.run_tool(
        "kubectl",
        &[
            "annotate",
            "cvm",
            "web",
            "-n",
            &env.ns,
            "cvm.tencentcloud.io/paused-",
        ],
        None,
    );
    env.wait_ready("web").await;
    let id = crate::instance_id(&env.api().get("web").await.unwrap());
    env.cloud()
        .call::<cvm_operator::cloud::model::TerminateInstances>(
            &env.creds(),
            REGION,
            &cvm_operator::cloud::model::TerminateInstancesRequest {
                instance_ids: vec![id],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    env.wait_for(
        "web",
        Duration::from_secs(60),
        "not found",
        reason_is("Ready", "InstanceNotFound"),
    )
    .await;
    let (argo, ks, obj) = verdicts(&env, "web");
    assert_eq!(argo.0, "Degraded", "{argo:?} {obj}");
    assert!(argo.1.starts_with("InstanceNotFound"), "{argo:?}");
    assert_eq!(ks.0, "Failed", "{ks:?}");
}

/// The chart's PrometheusRule and Grafana dashboard, rendered by helm.
fn render(cp: &control_plane::ControlPlane, template: &str, set: &str) -> Value {
    let chart = format!("{ROOT}/deploy/helm/cvm-operator");
    let args = [
        "template",
        "cvm-operator",
        &chart,
        "-n",
        "cvm-system",
        "--set",
        CHART_IMAGE,
        "--set",
        set,
        "--show-only",
        template,
    ];
    serde_saphyr::from_str(&cp.run_tool("helm", &args, None)).unwrap()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

/// `cvm_operator_*` names in a text, as written (`_total`, `_bucket`, …).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("cvm_operator_"))
        .map(str::to_string)
        .collect()
}

/// The series names a /metrics page serves: samples, and what each
/// `# TYPE` line declares (a counter's `_total`, a histogram's parts).
fn served_names(page: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for l in page.lines() {
        if let Some(decl) = l.strip_prefix("# TYPE ") {
            let mut it = decl.split_whitespace();
            let (name, kind) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !l.starts_with('#') {
            names.insert(l.split(['{', ' ']).next().unwrap_or_default().to_string());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_and_dashboard_check_out_and_use_only_served_metrics() {
    let env = TestEnv::new("alerts").await;
    let op = env.operator(&[]);
    let mut bad = base_manifest("bad");
    bad["spec"]["instanceType"] = "S5.HUGE999".into();
    env.create(bad).await;
    env.create(base_manifest("good")).await;

    // The rules: promtool's syntax check and unit tests (tests/prometheus).
    let rule = render(
        env.cp,
        "templates/prometheusrule.yaml",
        "prometheusRule.enabled=true",
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rule["spec"].to_string()).unwrap();
    std::fs::copy(
        format!("{ROOT}/tests/prometheus/alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .unwrap();
    let promtool = tool("promtool");
    let out = run_ok(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
    run_ok(
        Command::new(&promtool)
            .args(["test", "rules", "alerts_test.yaml"])
            .current_dir(dir.path()),
    );

    // The dashboard: every panel queries Prometheus, and each query is valid
    // PromQL (checked by promtool as a recording rule, Grafana's variables
    // filled in).
    let cm = render(
        env.cp,
        "templates/grafana-dashboard.yaml",
        "grafanaDashboard.enabled=true",
    );
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["cvm-operator.json"].as_str().unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let recording: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"record": format!("dashboard:panel{i}"), "expr": e.replace("$__rate_interval", "1m").replace("$job", ".*")}))
        .collect();
    let panels = dir.path().join("panels.yaml");
    std::fs::write(
        &panels,
        json!({"groups": [{"name": "dashboard", "rules": recording}]}).to_string(),
    )
    .unwrap();
    run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&panels),
    );

    // Every metric they use is served by a running operator.
    env.wait_for("bad", Duration::from_secs(20), "failed", |o| {
        condition(o, "Stalled").is_some_and(|c| c.0 == "True")
    })
    .await;
    env.wait_ready("good").await;
    let mut used = metric_names(&rule.to_string());
    used.extend(exprs.iter().flat_map(|e| metric_names(e)));
    assert!(used.len() >= 8, "{used:?}");
    // The gauges are refreshed every 5 s: one Ready resource with a running
    // instance, one not Ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ready = op
            .metric_sum("cvm_operator_resources", "ready=\"true\"")
            .await;
        let not_ready = op
            .metric_sum("cvm_operator_resources", "ready=\"false\"")
            .await;
        let running = op.metric_sum("cvm_operator_instances", "RUNNING").await;
        if (ready, not_ready, running) == (1.0, 1.0, 1.0) {
            break;
        }
        let page = op.metrics().await;
        assert!(std::time::Instant::now() < deadline, "{page:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let page = op.metrics().await.unwrap();
    let served = served_names(&page);
    let missing: Vec<_> = used.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "used but not served: {missing:?}\n{page}"
    );
    assert!(
        op.metric_sum("cvm_operator_resource_not_ready_max_seconds", "")
            .await
            > 0.0,
        "{page}"
    );
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let mut child = Command::new(operator_bin())
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("CVM simulator listening"), "{line:?}");
    assert!(line.contains(" INFO ") || line.contains("INFO"), "{line:?}");
    assert!(
        !line.contains('\x1b'),
        "escape codes in a piped log: {line:?}"
    );
}
