//! Examples, the CRD, the Helm chart, the chart's environment, import.

use crate::chart_rbac;
use crate::support::{self, *};
use crate::{create_outside, give_to, mutations};
use cvm_operator::sim;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_apply_and_become_ready() {
    let env = TestEnv::new("examples").await;
    let _op = env.operator(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    // examples/account.yaml is the cluster-wide `CvmAccount default` (the
    // tests share one of their own, for every namespace): the apiserver
    // accepts it as written, and it selects the demo's namespace only.
    let account = format!("{dir}/account.yaml");
    let dry = env.cp.run_tool(
        "kubectl",
        &["apply", "--dry-run=server", "-o", "json", "-f", &account],
        None,
    );
    let a: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(a["metadata"]["name"], "default");
    assert_eq!(a["spec"]["credentials"]["source"], "Environment");
    assert_eq!(
        a["spec"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "default"
    );
    let mut out = String::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        if path.file_name().is_some_and(|n| n == "account.yaml") {
            continue;
        }
        let file = path.display().to_string();
        out += &env
            .cp
            .run_tool("kubectl", &["apply", "-n", &env.ns, "-f", &file], None);
    }
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
    cp.run_tool("kubectl", &["create", "namespace", &ns], None);
    // With credentials from a Secret the rendering is valid for the apiserver,
    // and no pod annotation is derived from key material.
    let rendered = cp.run_tool(
        "helm",
        &[
            "template",
            "cvm-operator",
            &chart,
            "-n",
            &ns,
            "--set",
            CHART_IMAGE,
            "--set",
            "credentials.secretId=AKIDexample",
            "--set",
            "credentials.secretKey=example-secret-key",
        ],
        None,
    );
    cp.run_tool(
        "kubectl",
        &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
        Some(&rendered),
    );
    assert!(!rendered.contains("checksum/"), "{rendered}");
    // No default image: this project publishes none a user could pull, so
    // the install says what to set instead of leaving an ImagePullBackOff.
    let install = ["install", "cvm-operator", &chart, "-n", &ns, "--skip-crds"];
    let refused = cp.try_tool("helm", &install);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("--set image.repository=REGISTRY/cvm-operator")),
        "{refused:?}"
    );
    // The default install: no values but the image.
    cp.run_tool(
        "helm",
        &[&install[..], &["--set", CHART_IMAGE]].concat(),
        None,
    );
    let objects = cp.run_tool(
        "kubectl",
        &[
            "get",
            "deployment,serviceaccount,service,secret",
            "-n",
            &ns,
            "-l",
            "app.kubernetes.io/instance=cvm-operator",
            "-o",
            "name",
        ],
        None,
    );
    let mut objects: Vec<&str> = objects.lines().collect();
    objects.sort();
    assert_eq!(
        objects,
        [
            "deployment.apps/cvm-operator",
            "service/cvm-operator-metrics",
            "serviceaccount/cvm-operator",
        ],
        "no Secret by default"
    );
    let deploy = cp.run_tool(
        "kubectl",
        &["get", "deployment", "cvm-operator", "-n", &ns, "-o", "json"],
        None,
    );
    let d: serde_json::Value = serde_json::from_str(&deploy).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["args"][0], "run");
    // No credentials of the operator's own by default.
    let env_names: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        !env_names.iter().any(|n| n.starts_with("TENCENTCLOUD_")),
        "{env_names:?}"
    );
    chart_rbac::default_install_is_least_privilege(cp, &ns);
}

/// Starts this binary's `run` as the chart's Deployment would (its args and
/// env, rendered with `values`), plus `vars` (which win). Killed on drop.
struct ChartOperator(std::process::Child, u16);

impl Drop for ChartOperator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_as_the_chart(env: &TestEnv, values: &[String], vars: &[(&str, String)]) -> ChartOperator {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/cvm-operator");
    let mut args: Vec<String> = vec![
        "template".into(),
        "cvm-operator".into(),
        chart.into(),
        "-n".into(),
        env.ns.clone(),
        "--show-only".into(),
        "templates/deployment.yaml".into(),
    ];
    let defaults = [
        CHART_IMAGE.to_string(),
        format!("endpoint={}", env.sim.endpoint()),
        format!("watchNamespace={}", env.ns),
        "leaderElection.enabled=false".into(),
    ];
    for v in defaults.iter().chain(values) {
        args.extend(["--set".to_string(), v.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rendered = env.cp.run_tool("helm", &args, None);
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
        .env("ACCOUNT_SELECTOR", format!("cvm-test={SHARED_ACCOUNTS}"))
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env_remove("TENCENTCLOUD_SECRET_KEY");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    ChartOperator(cmd.spawn().unwrap(), port)
}

/// The chart's Deployment runs this binary's `run` with the chart's env: the
/// operator started with exactly that environment reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_with_the_charts_environment() {
    let env = TestEnv::new("chartenv").await;
    let keys = [
        ("TENCENTCLOUD_SECRET_ID", sim::DEFAULT_SECRET_ID.to_string()),
        (
            "TENCENTCLOUD_SECRET_KEY",
            sim::DEFAULT_SECRET_KEY.to_string(),
        ),
    ];
    let op = run_as_the_chart(&env, &[], &keys);
    env.create(base_manifest("from-chart")).await;
    env.wait_ready("from-chart").await;
    let health = reqwest::get(format!("http://127.0.0.1:{}/readyz", op.1))
        .await
        .unwrap();
    assert!(health.status().is_success());
}

/// TKE workload identity with no Secret at all: the chart projects the
/// ServiceAccount token and sets the TKE_* variables; the operator exchanges
/// the token for a role's credentials, which a CvmAccount with source
/// Environment (the operator's own) then uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_with_workload_identity_and_no_secret() {
    use cvm_operator::cloud::Secret;
    use cvm_operator::sim::{SimRole, SimWebIdentityTrust, StsConfig};
    let env = TestEnv::new("chartwi").await;
    let role = "qcs::cam::uin/200000000009:roleName/cvm-operator";
    env.sim.sim.set_sts(StsConfig {
        roles: vec![SimRole {
            arn: role.into(),
            web_identity: Some(SimWebIdentityTrust {
                provider_id: "tke-oidc".into(),
                tokens: vec![Secret::new("projected-sa-token")],
            }),
            ..SimRole::default()
        }],
        instance_role: None,
    });
    let values = [
        "credentials.workloadIdentity.enabled=true".to_string(),
        format!("credentials.workloadIdentity.roleArn={role}"),
        "credentials.workloadIdentity.providerId=tke-oidc".into(),
    ];
    // Installed: no Secret, the token projected for STS.
    let release = format!("wi-{}", &env.ns[env.ns.len() - 6..]);
    let mut install = vec![
        "install",
        &release,
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/cvm-operator"),
        "-n",
        &env.ns,
        "--skip-crds",
        "--set",
        CHART_IMAGE,
    ];
    for v in &values {
        install.extend(["--set", v]);
    }
    env.cp.run_tool("helm", &install, None);
    let selector = format!("app.kubernetes.io/instance={release}");
    let secrets = env.cp.run_tool(
        "kubectl",
        &[
            "get", "secrets", "-n", &env.ns, "-l", &selector, "-o", "name",
        ],
        None,
    );
    assert_eq!(secrets.trim(), "", "no Secret");
    let pod = &pod_spec(&env, &release);
    let projected = &pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tke-oidc-token")
        .unwrap()["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(projected["audience"], "sts.cloud.tencent.com");
    // Run with that environment (the projected token is a file here).
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "projected-sa-token").unwrap();
    let vars = [
        ("TKE_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
        ("ACCOUNT_SELECTOR", env.account_label()),
    ];
    let _op = run_as_the_chart(&env, &values, &vars);
    let account = env
        .account(
            "own",
            serde_json::json!({"source": "Environment"}),
            namespaces_named(&[&env.ns]),
        )
        .await;
    let mut m = base_manifest("by-role");
    m["spec"]["accountRef"] = serde_json::json!({"name": account});
    env.create(m).await;
    let o = env.wait_ready("by-role").await;
    assert_eq!(
        o.status.as_ref().unwrap().account.as_ref().unwrap().uin,
        "200000000009"
    );
    assert!(env.stats().calls("AssumeRoleWithWebIdentity") >= 1);
}

/// The pod spec of the Deployment `helm install` made for `release` in the
/// test's namespace, as the apiserver has it.
pub fn pod_spec(env: &TestEnv, release: &str) -> serde_json::Value {
    let selector = format!("app.kubernetes.io/instance={release}");
    let deploy = env.cp.run_tool(
        "kubectl",
        &[
            "get",
            "deployment",
            "-n",
            &env.ns,
            "-l",
            &selector,
            "-o",
            "json",
        ],
        None,
    );
    let mut d: serde_json::Value = serde_json::from_str(&deploy).unwrap();
    d["items"][0]["spec"]["template"]["spec"].take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_prints_manifests_that_adopt_existing_instances() {
    let env = TestEnv::new("import").await;
    let a = create_outside(&env, "legacy-api", "S5.SMALL2").await;
    let b = create_outside(&env, "legacy-db", "S5.MEDIUM4").await;
    let theirs = create_outside(&env, "their-cache", "S5.SMALL2").await;
    give_to(&env, &theirs, "someone-else").await;
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
    // The import gives what it prints to the namespace (the adoption
    // proof), and leaves what another namespace was given.
    for id in [&a, &b] {
        let i = crate::instance(&env, id).await.unwrap();
        assert_eq!(
            i.tag("cvm.tencentcloud.io/namespace"),
            Some(env.ns.as_str())
        );
    }
    assert!(
        yaml.contains(&format!(
            "# {theirs} skipped: given to namespace someone-else"
        )),
        "{yaml}"
    );
    assert!(!yaml.contains(&format!("instanceId: {theirs}")), "{yaml}");
    env.cp
        .run_tool("kubectl", &["apply", "-f", "-"], Some(&yaml));
    let _op = env.operator(&[]);
    let list = env.api().list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    for o in &list.items {
        let o = env.wait_ready(&o.metadata.name.clone().unwrap()).await;
        assert_eq!(
            o.spec.deletion_policy,
            Some(cvm_operator::api::DeletionPolicy::Retain)
        );
    }
    let s = env.stats();
    assert_eq!(s.calls("RunInstances"), 3, "adopted, not created");
    assert_eq!(
        mutations(&s),
        3,
        "the imported spec matches: nothing to change"
    );
}
