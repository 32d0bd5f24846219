//! The container image `make image` builds (`hack/image.sh`): inspected as a
//! registry and a kubelet see it (skopeo, umoci), and its own binary — taken
//! out of the unpacked image, not the host build — run inside the image's
//! root filesystem as user 65532 with the command, arguments and environment
//! the chart gives the pod, against the real apiserver and the simulator,
//! until a `CvmInstance` is Ready. Containers cannot run here (cgroups), so
//! the image's rootfs is entered with chroot(8) as root, which also shows the
//! binary needs nothing the image lacks (no libc, no /etc/passwd).
//!
//! Outside a pod there is no ServiceAccount token mount: the binary gets a
//! kubeconfig through `KUBECONFIG` (the chart sets no such variable, and the
//! operator reads it before trying in-cluster config) that impersonates the
//! chart's ServiceAccount, so it runs with the chart's RBAC. The simulator is
//! the chart's `endpoint` value.

use crate::support::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// What a node pulls (the compressed layers) may not exceed this. Measured:
/// 10.6 MiB (a 26.8 MiB static binary and the CA bundle).
const SIZE_BUDGET_MIB: f64 = 16.0;
/// The image's user and group: the chart's `runAsUser`/`runAsGroup`.
const USER: &str = "65532:65532";
/// The labels (and manifest annotations) of the OCI annotation convention the
/// image carries.
const LABELS: [&str; 7] = [
    "title",
    "description",
    "licenses",
    "version",
    "revision",
    "created",
    "source",
];

/// `make image`'s archive: hack/image.sh runs once per test binary (seconds
/// when its inputs are unchanged: `make test` runs it just before the tests).
/// In a worktree that never built it, the first run builds the musl binary
/// cold (~7 min on 2 cores), at a lower priority than the other tests.
fn archive() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        run_ok(Command::new("nice").arg(format!("{ROOT}/hack/image.sh")));
        PathBuf::from(format!("{ROOT}/target/image/cvm-operator.oci.tar"))
    })
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `skopeo inspect --raw` of the archive (the manifest), or with `--config`.
fn inspect(config: bool) -> Value {
    let image = format!("oci-archive:{}", archive().display());
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]);
    if config {
        cmd.arg("--config");
    }
    serde_json::from_str(&run_ok(cmd.arg(&image))).unwrap()
}

/// The image unpacked by umoci, as a runtime would lay it out; its rootfs.
fn unpack(dir: &Path) -> PathBuf {
    let layout = format!("oci:{}:image", dir.join("layout").display());
    let image = format!("oci-archive:{}", archive().display());
    run_ok(Command::new("skopeo").args(["copy", "--quiet", &image, &layout]));
    let bundle = dir.join("bundle");
    let mut umoci = Command::new("umoci");
    umoci.arg("unpack");
    if !is_root() {
        umoci.arg("--rootless");
    }
    let source = format!("{}:image", dir.join("layout").display());
    run_ok(umoci.args(["--image", &source]).arg(&bundle));
    bundle.join("rootfs")
}

fn is_root() -> bool {
    run_ok(Command::new("id").arg("-u")).trim() == "0"
}

/// Every regular file and symlink under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Whether an ELF executable asks for a program interpreter (a dynamic
/// loader): a PT_INTERP program header. A static binary has none.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let word = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&elf[at..at + n]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn the_image_is_static_minimal_labelled_and_non_root() {
    let config = inspect(true);
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/cvm-operator"]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]));
    assert_eq!(c["User"], USER);
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some(arch()))
    );

    // The labels, and the same as the manifest's annotations.
    let manifest = inspect(false);
    let label = |k: &str| c["Labels"][format!("org.opencontainers.image.{k}")].as_str();
    for k in LABELS {
        let l = label(k).unwrap_or_else(|| panic!("label {k}: {c}"));
        assert!(!l.is_empty() || k == "source", "label {k} is empty");
        let a = &manifest["annotations"][format!("org.opencontainers.image.{k}")];
        assert!(k == "description" || a == l, "annotation {k}: {a} != {l}");
    }
    let chart =
        std::fs::read_to_string(format!("{ROOT}/deploy/helm/cvm-operator/Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&chart).unwrap();
    assert_eq!(label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(
        label("version"),
        chart["appVersion"].as_str(),
        "the chart's default tag is the image's version"
    );
    assert_eq!(label("licenses"), Some(env!("CARGO_PKG_LICENSE")));
    let head = run_ok(Command::new("git").args(["-C", ROOT, "rev-parse", "HEAD"]));
    assert!(label("revision").unwrap().starts_with(head.trim()), "{c}");
    label("created")
        .unwrap()
        .parse::<jiff::Timestamp>()
        .expect("created is RFC 3339");
    // The repository's URL when the build knows it (IMAGE_SOURCE, or a
    // remote `origin` on a forge); empty otherwise.
    let source = label("source").unwrap();
    assert!(source.is_empty() || source.starts_with("https://"), "{c}");

    let layers: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    let mib = layers as f64 / 1048576.0;
    assert!(
        mib < SIZE_BUDGET_MIB,
        "the image is {mib:.1} MiB, over its budget of {SIZE_BUDGET_MIB} MiB"
    );

    // Nothing but the binary and the CA bundle: no shell, no libc.
    let dir = tempfile::tempdir().unwrap();
    let rootfs = unpack(dir.path());
    assert_eq!(
        files(&rootfs),
        ["cvm-operator", "etc/ssl/certs/ca-certificates.crt"]
    );
    assert!(!rootfs.join("bin/sh").exists());
    let bin = std::fs::read(rootfs.join("cvm-operator")).unwrap();
    assert!(!has_interpreter(&bin), "the binary is dynamically linked");
    let cas = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        cas.matches("-----BEGIN CERTIFICATE-----").count() > 100,
        "a CA bundle"
    );
}

/// The Dockerfile, the recipe for Docker users, ends in Containerfile's stage:
/// the same instructions, the rootfs from its builder stage instead of the
/// context hack/image.sh stages.
#[test]
fn the_dockerfile_builds_the_same_layout() {
    let stage = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(format!("{ROOT}/{file}")).unwrap();
        let last = text.rfind("\nFROM ").expect("a FROM");
        text[last..]
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let docker: Vec<String> = stage("Dockerfile")
        .into_iter()
        .map(|l| l.replace("COPY --from=builder /rootfs/ /", "COPY rootfs/ /"))
        .collect();
    assert_eq!(docker, stage("Containerfile"));
}

/// The operator running inside the unpacked image; killed on drop, its log
/// printed when the test fails.
struct InImage {
    child: std::process::Child,
    log: PathBuf,
}

impl InImage {
    /// Resolves when the process exits (it should not), with its status.
    async fn exited(&mut self) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl Drop for InImage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- the image's operator:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// The container's environment as a kubelet would give it: values as they
/// are, the downward API's pod name and namespace, Secret keys read from the
/// apiserver (an optional one may be missing).
async fn pod_env(env: &TestEnv, container: &Value, pod: &str) -> Vec<(String, String)> {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let mut vars = Vec::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            Some(v.to_string())
        } else if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some(match field {
                "metadata.name" => pod.to_string(),
                "metadata.namespace" => env.ns.clone(),
                other => panic!("fieldRef {other}"),
            })
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let secret = secrets.get(r["name"].as_str().unwrap()).await.unwrap();
            let data = secret.data.unwrap_or_default();
            let v = data.get(r["key"].as_str().unwrap());
            assert!(v.is_some() || r["optional"] == true, "{name}: {r}");
            v.map(|b| String::from_utf8(b.0.clone()).unwrap())
        };
        vars.extend(value.map(|v| (name, v)));
    }
    vars
}

/// The container's command and arguments, run in the image's rootfs as its
/// user (chroot(8), as root; else straight from the rootfs) with the image's
/// environment (PATH) and nothing of the test's.
fn in_image(rootfs: &Path, container: &Value) -> Command {
    let argv: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut cmd = if is_root() {
        let mut c = Command::new("chroot");
        c.arg(format!("--userspec={USER}")).arg(rootfs).args(&argv);
        c
    } else {
        let mut c = Command::new(rootfs.join(argv[0].trim_start_matches('/')));
        c.args(&argv[1..]);
        c
    };
    // A container's environment: the image's (PATH), then the pod's.
    let image_env = inspect(true)["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect::<Vec<_>>();
    cmd.env_clear().envs(image_env);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_binary_reconciles_with_the_charts_arguments_and_environment() {
    let env = TestEnv::new("image").await;
    let dir = tempfile::tempdir().unwrap();
    let rootfs = unpack(dir.path());

    // The chart installed (its RBAC, its Secret) with the test's values.
    let release = format!("img-{}", &env.ns[env.ns.len() - 6..]);
    let port = free_port();
    let values = [
        CHART_IMAGE.to_string(),
        format!("endpoint={}", env.sim.endpoint()),
        format!("watchNamespace={}", env.ns),
        format!("accountSelector=cvm-test={SHARED_ACCOUNTS}"),
        format!("containerPort={port}"),
        format!(
            "credentials.secretId={}",
            cvm_operator::sim::DEFAULT_SECRET_ID
        ),
        format!(
            "credentials.secretKey={}",
            cvm_operator::sim::DEFAULT_SECRET_KEY
        ),
    ];
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let sa = crate::chart_rbac::install(env.cp, &release, &env.ns, &values);
    let pod_spec = crate::deploy::pod_spec(&env, &release);
    let container = &pod_spec["containers"][0];
    // The pod runs the image make image built.
    let index = run_ok(
        Command::new("tar")
            .arg("-xOf")
            .arg(archive())
            .arg("index.json"),
    );
    let index: Value = serde_json::from_str(&index).unwrap();
    assert_eq!(
        container["image"],
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    );
    assert_eq!(container["securityContext"]["runAsUser"], 65532);

    // A kubeconfig as the chart's ServiceAccount, where the pod has /tmp.
    let kc = std::fs::read_to_string(&env.cp.kubeconfig).unwrap();
    let mut kc: Value = serde_saphyr::from_str(&kc).unwrap();
    kc["users"][0]["user"]["as"] = sa.into();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::write(rootfs.join("tmp/kubeconfig"), kc.to_string()).unwrap();
    run_ok(
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(rootfs.join("tmp")),
    );

    let pod = format!("{release}-cvm-operator-0");
    let vars = pod_env(&env, container, &pod).await;
    let lease = vars
        .iter()
        .find(|(k, _)| k == "LEASE_NAME")
        .expect("leader election")
        .1
        .clone();
    let log = dir.path().join("operator.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = in_image(&rootfs, container);
    cmd.envs(vars)
        .env("KUBECONFIG", "/tmp/kubeconfig")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if !is_root() {
        cmd.env("KUBECONFIG", rootfs.join("tmp/kubeconfig"));
    }
    let mut op = InImage {
        child: cmd.spawn().unwrap(),
        log,
    };

    env.create(base_manifest("from-image")).await;
    tokio::select! {
        _ = env.wait_ready("from-image") => {}
        status = op.exited() => panic!("the image's operator exited: {status}"),
    }
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert!(ready.status().is_success());
    // It took the chart's Lease under the pod's name (leader election on, as
    // the chart's default).
    let holder = env.cp.run_tool(
        "kubectl",
        &[
            "get",
            "lease",
            &lease,
            "-n",
            &env.ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    assert_eq!(holder, pod);
}
