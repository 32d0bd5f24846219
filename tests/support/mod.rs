//! Shared by the integration tests: the real control plane, the CVM
//! simulator (in-process, one per test), and the operator binary.
#![allow(dead_code)]

pub mod control_plane;
pub mod processes;

use control_plane::ControlPlane;
use cvm_operator::api::{CvmAccount, CvmInstance};
use cvm_operator::cloud::{ClientConfig, Credentials, CvmClient, Endpoint, RetryPolicy};
use cvm_operator::sim::{self, RunningSimulator, SimConfig, Simulator};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "ap-guangzhou";
pub const ZONE: &str = "ap-guangzhou-3";

/// The `cvm-test` label of the shared `CvmAccount default`. Every test's
/// operator serves only the accounts labelled for it (`--account-selector`),
/// so no operator verifies another test's accounts against its simulator.
pub const SHARED_ACCOUNTS: &str = "shared";

/// The `--set` every rendering and install of the chart needs: it has no
/// default image repository. This is the name `make image` gives the image
/// (`tests/e2e/image.rs` runs what it builds).
pub const CHART_IMAGE: &str = "image.repository=localhost/cvm-operator";

/// Installs crds/ into the shared plane, once per test binary, and the
/// shared `CvmAccount default`: the operator's own credentials for every
/// namespace (tests of accounts start their operator with an
/// `--account-selector` that leaves it out).
pub fn install_crds(cp: &ControlPlane) {
    cp.installed.call_once(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
        cp.run_tool("kubectl", &["apply", "--server-side", "-f", dir], None);
        cp.run_tool(
            "kubectl",
            &[
                "wait",
                "--for=condition=Established",
                "crd/cvminstances.cvm.tencentcloud.io",
                "crd/cvmaccounts.cvm.tencentcloud.io",
                "crd/cvminstancesets.cvm.tencentcloud.io",
                "--timeout=60s",
            ],
            None,
        );
        let mut account = account_manifest(
            "default",
            serde_json::json!({"source": "Environment"}),
            serde_json::json!({"allNamespaces": true}),
        );
        account["metadata"]["labels"] = serde_json::json!({"cvm-test": SHARED_ACCOUNTS});
        let yaml = serde_json::to_string(&account).unwrap();
        cp.run_tool("kubectl", &["apply", "-f", "-"], Some(&yaml));
    });
}

/// A `CvmAccount` manifest: `credentials` and the namespaces it selects
/// (`{"allNamespaces": true}` or `{"namespaceSelector": …}`).
pub fn account_manifest(
    name: &str,
    credentials: serde_json::Value,
    selection: serde_json::Value,
) -> serde_json::Value {
    let mut spec = serde_json::json!({ "credentials": credentials });
    for (k, v) in selection.as_object().expect("an object") {
        spec[k] = v.clone();
    }
    serde_json::json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1",
        "kind": "CvmAccount",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Selects exactly the namespaces named.
pub fn namespaces_named(names: &[&str]) -> serde_json::Value {
    serde_json::json!({"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}
    ]}})
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Simulator settings for tests: transitions 10× faster than the defaults.
pub fn fast_sim() -> SimConfig {
    SimConfig {
        time_scale: 10.0,
        ..SimConfig::default()
    }
}

pub struct TestEnv {
    pub cp: &'static ControlPlane,
    pub client: kube::Client,
    pub ns: String,
    pub sim: RunningSimulator,
}

impl TestEnv {
    pub async fn new(name: &str) -> Self {
        Self::with_sim(name, fast_sim()).await
    }

    pub async fn with_sim(name: &str, sim_config: SimConfig) -> Self {
        Self::on(ControlPlane::shared(), name, sim_config).await
    }

    /// On a plane of the test's own (one it may restart).
    pub async fn on(cp: &'static ControlPlane, name: &str, sim_config: SimConfig) -> Self {
        install_crds(cp);
        let client = cp.client().await;
        let ns = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let nss: Api<Namespace> = Api::all(client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.clone());
        nss.create(&PostParams::default(), &n)
            .await
            .expect("create namespace");
        let sim = Simulator::new(sim_config)
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator");
        Self {
            cp,
            client,
            ns,
            sim,
        }
    }

    pub fn api(&self) -> Api<CvmInstance> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn creds(&self) -> Credentials {
        Credentials::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY, None).unwrap()
    }

    /// A CVM client to act "outside Kubernetes" (a person in the console).
    pub fn cloud(&self) -> CvmClient {
        CvmClient::new(ClientConfig {
            endpoint: Endpoint::parse(&self.sim.endpoint()).unwrap(),
            retry: RetryPolicy::none(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    pub fn stats(&self) -> sim::Stats {
        self.sim.sim.stats()
    }

    /// The operator binary watching this test's namespace.
    pub fn operator(&self, extra: &[&str]) -> Operator {
        Operator::start(self, extra)
    }

    /// The label that marks this test's `CvmAccount`s.
    pub fn account_label(&self) -> String {
        format!("cvm-test={}", self.ns)
    }

    /// An operator serving only this test's `CvmAccount`s (not the shared
    /// `default` one).
    pub fn operator_with_own_accounts(&self, extra: &[&str]) -> Operator {
        let selector = self.account_label();
        let mut args = vec!["--account-selector", selector.as_str()];
        args.extend_from_slice(extra);
        Operator::start(self, &args)
    }

    pub fn accounts(&self) -> Api<CvmAccount> {
        Api::all(self.client.clone())
    }

    /// Creates (or replaces) this test's `CvmAccount` `<ns>-<suffix>`, and
    /// returns its name.
    pub async fn account(
        &self,
        suffix: &str,
        credentials: serde_json::Value,
        selection: serde_json::Value,
    ) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let mut manifest = account_manifest(&name, credentials, selection);
        manifest["metadata"]["labels"] = serde_json::json!({"cvm-test": self.ns});
        let account: CvmAccount = serde_json::from_value(manifest).expect("a CvmAccount");
        let params = PatchParams::apply("cvm-tests").force();
        self.accounts()
            .patch(&name, &params, &Patch::Apply(&account))
            .await
            .expect("apply CvmAccount");
        name
    }

    /// Creates (or replaces) a Secret holding keys in `namespace`.
    pub async fn key_secret(&self, namespace: &str, name: &str, id: &str, key: &str) {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"SecretId": id, "SecretKey": key},
        }))
        .unwrap();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply("cvm-tests").force();
        api.patch(name, &params, &Patch::Apply(&secret))
            .await
            .expect("apply Secret");
    }

    /// Another namespace for this test, `<ns>-<suffix>`.
    pub async fn namespace(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(name.clone());
        nss.create(&PostParams::default(), &n)
            .await
            .expect("create namespace");
        name
    }

    /// Waits until `account` says Ready (and returns its UIN).
    pub async fn wait_account_ready(&self, account: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let a = self.accounts().get(account).await.expect("the account");
            let status = a.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready && let Some(uin) = status.uin {
                return uin;
            }
            assert!(
                Instant::now() < deadline,
                "account {account} not Ready: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn create(&self, manifest: serde_json::Value) -> CvmInstance {
        let mut manifest = manifest;
        manifest["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
        manifest["kind"] = "CvmInstance".into();
        manifest["metadata"]["namespace"] = self.ns.clone().into();
        let obj: CvmInstance = serde_json::from_value(manifest).expect("a CvmInstance");
        self.api()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create CvmInstance")
    }

    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patch spec");
    }

    pub async fn delete(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Polls until `pred` holds, or panics with the last object seen.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&CvmInstance) -> bool,
    ) -> CvmInstance {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(o) = self.api().get(name).await {
                if pred(&o) {
                    return o;
                }
                last = Some(o);
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {name} to be {what}; last: {}",
                    serde_json::to_string_pretty(&last.map(|o| o.status)).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn wait_gone(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.api().get_opt(name).await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "{name} was not deleted within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn wait_ready(&self, name: &str) -> CvmInstance {
        self.wait_for(name, Duration::from_secs(60), "Ready and Synced", |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
                && condition(o, "Synced").is_some_and(|c| c.0 == "True")
        })
        .await
    }

    /// Waits until the operator has seen the current generation and the
    /// instance matches it (Ready and Synced for this generation).
    pub async fn wait_synced(&self, name: &str) -> CvmInstance {
        self.wait_for(
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

    /// Events of one resource: (reason, message).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

/// (status, reason, message) of a condition.
pub fn condition(o: &CvmInstance, type_: &str) -> Option<(String, String, String)> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn base_manifest(name: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "zone": ZONE,
            "imageId": "img-pi0ii46r",
            "instanceType": "S5.SMALL1",
            "internetAccessible": {"internetMaxBandwidthOut": 1},
        }
    })
}

/// A running `cvm-operator run` process; killed on drop. Its log is kept in
/// a file and printed when a test fails.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_port: u16,
    _dir: tempfile::TempDir,
}

/// The binary under test: this build's, or `CVM_OPERATOR_BIN` (as for
/// hack/python-sdk-test.sh), e.g. the image's static one,
/// `target/image/context/rootfs/cvm-operator` after `make image`.
pub fn operator_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("CVM_OPERATOR_BIN") {
        Ok(bin) if !bin.is_empty() => {
            let bin = std::fs::canonicalize(&bin)
                .unwrap_or_else(|e| panic!("CVM_OPERATOR_BIN={bin}: {e}"));
            bin.display().to_string()
        }
        _ => env!("CARGO_BIN_EXE_cvm-operator").to_string(),
    })
}

impl Operator {
    pub fn start(env: &TestEnv, extra: &[&str]) -> Self {
        Self::start_logging(env, extra, "info,cvm_operator=debug")
    }

    /// As [`start`](Self::start) with a given `RUST_LOG` (benchmarks log less).
    pub fn start_logging(env: &TestEnv, extra: &[&str], rust_log: &str) -> Self {
        Self::spawn(env, extra, rust_log, &[])
    }

    /// As [`start`](Self::start) with environment variables set (or, with
    /// an empty value, removed): other credentials of its own, say.
    pub fn start_with_env(env: &TestEnv, extra: &[&str], vars: &[(&str, &str)]) -> Self {
        Self::spawn(env, extra, "info,cvm_operator=debug", vars)
    }

    fn spawn(env: &TestEnv, extra: &[&str], rust_log: &str, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let metrics_port = free_port();
        let f = std::fs::File::create(&log).unwrap();
        // Later flags win, so `extra` can override these defaults.
        let mut args: Vec<String> = vec![
            "run".into(),
            "--kubeconfig".into(),
            env.cp.kubeconfig.display().to_string(),
            "--endpoint".into(),
            env.sim.endpoint(),
            "--watch-namespace".into(),
            env.ns.clone(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--poll-interval".into(),
            "5".into(),
            "--fast-poll-ms".into(),
            "300".into(),
            "--observe-window-ms".into(),
            "20".into(),
            "--account-selector".into(),
            format!("cvm-test={SHARED_ACCOUNTS}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(operator_bin());
        cmd.args(&args)
            .env("TENCENTCLOUD_SECRET_ID", sim::DEFAULT_SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", sim::DEFAULT_SECRET_KEY)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1");
        for (k, v) in vars {
            match v {
                &"" => cmd.env_remove(k),
                v => cmd.env(k, v),
            };
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start the operator");
        Operator {
            child: Some(child),
            log,
            metrics_port,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!("the operator exited ({status}):\n{}", self.log_text());
        }
    }

    /// SIGKILL: no chance to clean up (a crash).
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Resident set size in KiB (Linux), if the process is alive.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The /metrics text, if the operator is up.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        reqwest::get(url).await.ok()?.text().await.ok()
    }

    /// Sum of a metric's samples whose label set contains `filter`.
    pub async fn metric_sum(&self, name: &str, filter: &str) -> f64 {
        self.metrics()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("---- operator log tail ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.kill_hard();
    }
}
