//! What the chaos cases share: planes of their own, requests that ride out
//! a restarting apiserver, waiting on the whole namespace.

use crate::support::control_plane::ControlPlane;
use crate::support::*;
use cvm_operator::api::CvmInstance;
use std::future::Future;
use std::time::{Duration, Instant};

/// A control plane of the case's own (restarting it must not disturb other
/// cases), removed when this is dropped.
pub struct OwnPlane(pub &'static ControlPlane);

impl OwnPlane {
    pub fn start() -> Self {
        let cp = ControlPlane::start().expect("a control plane");
        OwnPlane(Box::leak(Box::new(cp)))
    }
}

impl Drop for OwnPlane {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Runs a blocking harness call (sleeps, curl) off the async threads.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Retries a Kubernetes request for up to 30 s: right after a restart the
/// first request on a pooled connection may meet its end.
pub async fn retrying<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("   ({what} failed: {e}; again)");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Every CvmInstance of the test's namespace (empty while the apiserver
/// does not answer).
pub async fn all(env: &TestEnv) -> Vec<CvmInstance> {
    match env.api().list(&Default::default()).await {
        Ok(l) => l.items,
        Err(_) => Vec::new(),
    }
}

pub fn is_ready(o: &CvmInstance) -> bool {
    ["Ready", "Synced"]
        .iter()
        .all(|t| condition(o, t).is_some_and(|c| c.0 == "True"))
        && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
}

/// Polls the namespace until it holds exactly `want` resources and
/// `done` holds for each; how long that took. Panics after `timeout`
/// with the last count and `lagging`'s account of one that is not.
pub async fn until_all(
    env: &TestEnv,
    what: &str,
    want: usize,
    timeout: Duration,
    done: impl Fn(&CvmInstance) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let items = all(env).await;
        let n = items.iter().filter(|o| done(o)).count();
        // Exactly `want` left (what was deleted is gone), all done.
        if n == want && items.len() == want {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            let lagging = items.iter().find(|o| !done(o)).map(|o| {
                format!(
                    "{}: {}",
                    o.metadata.name.as_deref().unwrap_or("?"),
                    serde_json::to_string(&o.status).unwrap_or_default()
                )
            });
            panic!("{what}: {n}/{want} after {timeout:?}; e.g. {lagging:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates `names` (32 at a time).
pub async fn create_all(env: &TestEnv, names: &[String]) {
    use futures::StreamExt;
    futures::stream::iter(names)
        .map(|name| async move {
            let manifest = base_manifest(name);
            retrying("create", || {
                let mut m = manifest.clone();
                m["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
                m["kind"] = "CvmInstance".into();
                m["metadata"]["namespace"] = env.ns.clone().into();
                let obj: CvmInstance = serde_json::from_value(m).unwrap();
                async move { env.api().create(&Default::default(), &obj).await }
            })
            .await;
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// The sum of one metric's samples on the operator's `/metrics`.
pub async fn metric(op: &Operator, name: &str, filter: &str) -> f64 {
    op.metric_sum(name, filter).await
}

/// Waits until the simulator has seen `n` RunInstances (creates in flight).
pub async fn until_sent(env: &TestEnv, n: usize, timeout: Duration) {
    let start = Instant::now();
    while env.stats().calls("RunInstances") < n as u64 {
        assert!(start.elapsed() < timeout, "the creates stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
