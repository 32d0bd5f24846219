//! A real Kubernetes control plane for tests: etcd + kube-apiserver started
//! from `KUBEBUILDER_ASSETS` (built by `hack/setup-envtest.sh`), like
//! controller-runtime's envtest. Token authentication, RBAC, a self-signed
//! serving certificate, free loopback ports, a temporary directory.
//!
//! One plane per test binary (`ControlPlane::shared()`); every test works in
//! its own namespace. Set `CVM_TEST_USE_EXISTING_CLUSTER=1` to run the same
//! tests against the cluster `KUBECONFIG` points at (kind, a real cluster).

use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct ControlPlane {
    /// Path of a kubeconfig for kube-rs, kubectl and helm.
    pub kubeconfig: PathBuf,
    /// Where kubectl and helm live (None against an existing cluster).
    pub assets: Option<PathBuf>,
    dir: Option<tempfile::TempDir>,
    children: Vec<(String, Child)>,
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

fn tail(path: &Path, lines: usize) -> String {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = content.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `bin` in its own process group, output to `log`; it is killed when
/// the spawning thread exits (PR_SET_PDEATHSIG), so a killed test runner
/// leaves no orphans.
fn spawn(bin: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let f = std::fs::File::create(log)?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .process_group(0);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
}

fn stop(child: &mut Child) {
    let pgid = -(child.id() as i32);
    unsafe { libc::kill(pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(pgid, libc::SIGKILL) };
    let _ = child.wait();
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
        let d = dir.path();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let token = uuid::Uuid::new_v4().simple().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cp = ControlPlane {
            kubeconfig: d.join("kubeconfig"),
            assets: Some(assets.to_path_buf()),
            children: Vec::new(),
            dir: None,
        };
        let etcd = spawn(
            &assets.join("etcd"),
            &[
                format!("--data-dir={}", d.join("etcd").display()),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
            ],
            &d.join("etcd.log"),
        )
        .map_err(|e| format!("cannot start etcd: {e}"))?;
        cp.children.push(("etcd".into(), etcd));
        std::fs::write(
            d.join("tokens.csv"),
            format!("{token},admin,admin-uid,system:masters\n"),
        )
        .map_err(|e| e.to_string())?;
        let pki = d.join("pki");
        let apiserver = spawn(
            &assets.join("kube-apiserver"),
            &[
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
            ],
            &d.join("apiserver.log"),
        )
        .map_err(|e| format!("cannot start kube-apiserver: {e}"))?;
        cp.children.push(("kube-apiserver".into(), apiserver));

        // Ready when /readyz answers "ok" with our token.
        let url = format!("https://127.0.0.1:{api_port}/readyz");
        let deadline = started + START_TIMEOUT;
        loop {
            for (name, child) in &mut cp.children {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = d.join(if name == "etcd" {
                        "etcd.log"
                    } else {
                        "apiserver.log"
                    });
                    return Err(format!(
                        "{name} exited ({status}); log tail:\n{}",
                        tail(&log, 30)
                    ));
                }
            }
            let out = Command::new("curl")
                .args([
                    "-fsk",
                    "-m",
                    "2",
                    "-H",
                    &format!("Authorization: Bearer {token}"),
                    &url,
                ])
                .output();
            if out
                .as_ref()
                .is_ok_and(|o| o.status.success() && o.stdout == b"ok")
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "kube-apiserver not ready after {START_TIMEOUT:?}; apiserver log tail:\n{}",
                    tail(&d.join("apiserver.log"), 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        use base64::Engine as _;
        let ca = std::fs::read(pki.join("apiserver.crt"))
            .map_err(|e| format!("no serving cert: {e}"))?;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: admin\n    namespace: default\ncurrent-context: envtest\n"
        );
        std::fs::write(&cp.kubeconfig, kubeconfig).map_err(|e| e.to_string())?;
        eprintln!(
            "control plane ready in {:.1?} at https://127.0.0.1:{api_port}",
            started.elapsed()
        );
        cp.dir = Some(dir);
        Ok(cp)
    }

    /// The plane shared by every test of this binary: an existing cluster when
    /// `CVM_TEST_USE_EXISTING_CLUSTER=1`, otherwise one started on first use.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            if std::env::var("CVM_TEST_USE_EXISTING_CLUSTER").as_deref() == Ok("1") {
                let kubeconfig = std::env::var_os("KUBECONFIG")
                    .map(PathBuf::from)
                    .expect("CVM_TEST_USE_EXISTING_CLUSTER=1 needs KUBECONFIG");
                return ControlPlane {
                    kubeconfig,
                    assets: assets_dir().ok(),
                    dir: None,
                    children: Vec::new(),
                };
            }
            // Spawn from a thread that lives as long as the process, so the
            // children's parent-death signal fires only when the runner exits.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(ControlPlane::start()).ok();
                loop {
                    std::thread::park();
                }
            });
            match rx.recv().expect("control plane thread") {
                Ok(cp) => cp,
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
        // apiserver first, then etcd.
        while let Some((_, mut child)) = self.children.pop() {
            stop(&mut child);
        }
    }
}

/// Reads lines of a child's stdout until one matches.
pub fn wait_for_line(reader: &mut impl BufRead, pred: impl Fn(&str) -> bool) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if pred(&line) {
            return Some(line.trim().to_string());
        }
    }
}
