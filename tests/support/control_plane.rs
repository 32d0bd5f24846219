//! A real Kubernetes control plane for tests: etcd + kube-apiserver started
//! from `KUBEBUILDER_ASSETS` (built by `hack/setup-envtest.sh`), like
//! controller-runtime's envtest. Token authentication, RBAC, a self-signed
//! serving certificate, free loopback ports, a temporary directory.
//!
//! One plane per test binary (`ControlPlane::shared()`); every test works in
//! its own namespace. Set `CVM_TEST_USE_EXISTING_CLUSTER=1` to run the same
//! tests against the cluster `KUBECONFIG` points at (kind, a real cluster).
//!
//! A plane of its own (`ControlPlane::start()`) can be restarted under a
//! running operator — etcd and kube-apiserver stopped (gracefully or
//! killed) and started again with the same data, ports and certificates, so
//! every watch connection is cut — and etcd compacted, so a watch's
//! resourceVersion expires.

use super::processes::{Component, Spawner, Stop, tail};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

pub const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct ControlPlane {
    /// Path of a kubeconfig for kube-rs, kubectl and helm.
    pub kubeconfig: PathBuf,
    /// Where kubectl and helm live (None against an existing cluster).
    pub assets: Option<PathBuf>,
    dir: Option<tempfile::TempDir>,
    /// etcd, then kube-apiserver (empty against an existing cluster).
    components: Mutex<Vec<Component>>,
    spawner: Option<Spawner>,
    etcd_url: String,
    api_url: String,
    token: String,
    /// The CRDs and the shared account went in (tests/support).
    pub(crate) installed: Once,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the binaries are: `KUBEBUILDER_ASSETS`, else the setup script's cache.
pub fn assets_dir() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("KUBEBUILDER_ASSETS") {
        Some(d) => vec![PathBuf::from(d)],
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_default()
                .join("cvm-operator/envtest");
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cache)
                .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            dirs.sort();
            dirs.reverse();
            dirs
        }
    };
    for d in &candidates {
        if ["etcd", "kube-apiserver"]
            .iter()
            .all(|b| d.join(b).is_file())
        {
            return Ok(d.clone());
        }
    }
    Err(format!(
        "kube-apiserver and etcd not found (looked in {candidates:?}). Run `hack/setup-envtest.sh` and export \
         KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh), or use `make test`."
    ))
}

/// `curl -fsS -m 2 [args…] url`: the body, or None.
fn curl(args: &[&str], url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-fsS", "-m", "2"])
        .args(args)
        .arg(url)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn etcd_args(d: &Path, etcd_url: &str, peer_url: &str) -> Vec<String> {
    vec![
        format!("--data-dir={}", d.join("etcd").display()),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
        format!("--listen-client-urls={etcd_url}"),
        format!("--advertise-client-urls={etcd_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=default={peer_url}"),
    ]
}

fn apiserver_args(d: &Path, etcd_url: &str, api_port: u16) -> Vec<String> {
    let pki = d.join("pki");
    vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={api_port}"),
        format!("--cert-dir={}", pki.display()),
        format!("--token-auth-file={}", d.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        // The zero-PKI trick: the self-generated serving key doubles as SA key.
        format!(
            "--service-account-signing-key-file={}",
            pki.join("apiserver.key").display()
        ),
        format!(
            "--service-account-key-file={}",
            pki.join("apiserver.key").display()
        ),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--endpoint-reconciler-type=none".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
    ]
}

impl ControlPlane {
    /// Starts a fresh plane (retrying on port clashes).
    pub fn start() -> Result<Self, String> {
        let assets = assets_dir()?;
        let mut last = String::new();
        for attempt in 1..=3 {
            match Self::try_start(&assets) {
                Ok(cp) => return Ok(cp),
                Err(e) => {
                    eprintln!("control plane start attempt {attempt} failed: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn try_start(assets: &Path) -> Result<Self, String> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("cvm-envtest-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().to_path_buf();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let token = uuid::Uuid::new_v4().simple().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        std::fs::write(
            d.join("tokens.csv"),
            format!("{token},admin,admin-uid,system:masters\n"),
        )
        .map_err(|e| e.to_string())?;
        let etcd = Component::new(
            "etcd",
            assets.join("etcd"),
            etcd_args(&d, &etcd_url, &peer_url),
            d.join("etcd.log"),
        );
        let apiserver = Component::new(
            "kube-apiserver",
            assets.join("kube-apiserver"),
            apiserver_args(&d, &etcd_url, api_port),
            d.join("apiserver.log"),
        );
        let cp = ControlPlane {
            kubeconfig: d.join("kubeconfig"),
            assets: Some(assets.to_path_buf()),
            dir: Some(dir),
            components: Mutex::new(vec![etcd, apiserver]),
            spawner: Some(Spawner::new()),
            etcd_url,
            api_url: format!("https://127.0.0.1:{api_port}"),
            token,
            installed: Once::new(),
        };
        cp.start_component("etcd")?;
        cp.start_component("kube-apiserver")?;
        cp.write_kubeconfig(&d)?;
        eprintln!(
            "control plane ready in {:.1?} at {}",
            started.elapsed(),
            cp.api_url
        );
        Ok(cp)
    }

    fn write_kubeconfig(&self, d: &Path) -> Result<(), String> {
        use base64::Engine as _;
        let ca = std::fs::read(d.join("pki/apiserver.crt"))
            .map_err(|e| format!("no serving cert: {e}"))?;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: admin\n    namespace: default\ncurrent-context: envtest\n",
            self.api_url, self.token
        );
        std::fs::write(&self.kubeconfig, kubeconfig).map_err(|e| e.to_string())
    }

    fn with_component<T>(&self, name: &str, f: impl FnOnce(&mut Component) -> T) -> T {
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        let c = components
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"));
        f(c)
    }

    /// Stops `name` (`etcd` or `kube-apiserver`); its data stays.
    pub fn stop(&self, name: &str, how: Stop) {
        self.with_component(name, |c| c.stop(how));
    }

    /// Starts `name` with the arguments, data and ports it had, and waits
    /// until it serves (etcd: `/health`; the apiserver: `/readyz`).
    pub fn start_component(&self, name: &str) -> Result<(), String> {
        let spawner = self.spawner.as_ref().ok_or("not a plane of our own")?;
        self.with_component(name, |c| spawner.launch(c))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (exited, log) = self.with_component(name, |c| (c.exited(), c.log.clone()));
            if let Some(status) = exited {
                return Err(format!(
                    "{name} exited ({status}); log tail:\n{}",
                    tail(&log, 30)
                ));
            }
            if self.serves(name) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} not ready after {START_TIMEOUT:?}; log tail:\n{}",
                    tail(&log, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn serves(&self, name: &str) -> bool {
        if name == "etcd" {
            let health = curl(&[], &format!("{}/health", self.etcd_url));
            return health.is_some_and(|h| h.contains("\"health\":\"true\""));
        }
        let auth = format!("Authorization: Bearer {}", self.token);
        curl(&["-k", "-H", &auth], &format!("{}/readyz", self.api_url)).as_deref() == Some("ok")
    }

    /// Stops `name` and starts it again; how long it was away.
    pub fn restart(&self, name: &str, how: Stop, down_for: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.stop(name, how);
        std::thread::sleep(down_for);
        self.start_component(name)?;
        Ok(t0.elapsed())
    }

    /// etcd's current revision (its gRPC gateway, `/v3/kv/range`).
    pub fn etcd_revision(&self) -> Result<i64, String> {
        let body = r#"{"key":"AA==","limit":1}"#;
        let url = format!("{}/v3/kv/range", self.etcd_url);
        let out = curl(&["-X", "POST", "-d", body], &url).ok_or("etcd range failed")?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        v["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("no revision in {out}"))
    }

    /// Compacts etcd's history up to its current revision (`/v3/kv/compaction`):
    /// a watch from any older resourceVersion can no longer be resumed from
    /// etcd. Returns the revision.
    pub fn compact_etcd(&self) -> Result<i64, String> {
        let revision = self.etcd_revision()?;
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        let url = format!("{}/v3/kv/compaction", self.etcd_url);
        curl(&["-X", "POST", "-d", &body], &url).ok_or("etcd compaction failed")?;
        Ok(revision)
    }

    /// Kills every component and removes the data (the shared plane at
    /// exit; a plane of a test's own when it is dropped).
    pub fn shutdown(&self) {
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        // The apiserver first, then etcd.
        for c in components.iter_mut().rev() {
            c.stop(Stop::Kill);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }

    /// The plane shared by every test of this binary: an existing cluster when
    /// `CVM_TEST_USE_EXISTING_CLUSTER=1`, otherwise one started on first use
    /// (removed when the test process exits).
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        extern "C" fn remove_shared() {
            if let Some(cp) = SHARED.get() {
                cp.shutdown();
            }
        }
        SHARED.get_or_init(|| {
            if std::env::var("CVM_TEST_USE_EXISTING_CLUSTER").as_deref() == Ok("1") {
                let kubeconfig = std::env::var_os("KUBECONFIG")
                    .map(PathBuf::from)
                    .expect("CVM_TEST_USE_EXISTING_CLUSTER=1 needs KUBECONFIG");
                return ControlPlane {
                    kubeconfig,
                    assets: assets_dir().ok(),
                    dir: None,
                    components: Mutex::new(Vec::new()),
                    spawner: None,
                    etcd_url: String::new(),
                    api_url: String::new(),
                    token: String::new(),
                    installed: Once::new(),
                };
            }
            match ControlPlane::start() {
                Ok(cp) => {
                    // A static is never dropped: without this, every test
                    // run left its etcd data (~125 MB) in the temp dir.
                    unsafe { libc::atexit(remove_shared) };
                    cp
                }
                Err(e) => panic!("cannot start the test control plane: {e}"),
            }
        })
    }

    /// A new client (one per test: clients are bound to a runtime).
    pub async fn client(&self) -> kube::Client {
        let yaml = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig is usable");
        kube::Client::try_from(cfg).expect("client")
    }

    /// A client acting as `user` (impersonated by the admin; in the group
    /// `system:authenticated` only): what that user may do is what RBAC
    /// grants them.
    pub async fn client_as(&self, user: &str) -> kube::Client {
        let yaml = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let mut kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
        for named in &mut kc.auth_infos {
            if let Some(a) = named.auth_info.as_mut() {
                a.impersonate = Some(user.to_string());
                a.impersonate_groups = Some(vec!["system:authenticated".into()]);
            }
        }
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig is usable");
        kube::Client::try_from(cfg).expect("client")
    }

    /// A command for a cluster binary (kubectl, helm) with this kubeconfig.
    pub fn tool(&self, name: &str) -> Command {
        let bin = self
            .assets
            .as_ref()
            .map(|a| a.join(name))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(name));
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs a tool without input: stdout, or stderr on failure.
    #[allow(dead_code)] // not every test binary uses it
    pub fn try_tool(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .tool(name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Runs a tool and returns stdout, panicking with stderr on failure.
    pub fn run_tool(&self, name: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = self.tool(name);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn log_tail(&self, which: &str, lines: usize) -> String {
        match &self.dir {
            Some(d) => tail(&d.path().join(which), lines),
            None => String::new(),
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
