//! The operator: watches `CvmInstance` resources and reconciles each against
//! its CVM instance. Layers, bottom to top (an import never points up):
//!
//! 1. vocabulary: [`observation`] (what the cloud shows), `api`, `cloud::model`;
//! 2. pure: [`plan`] (the decision), [`status`] and [`report`] (what a
//!    reconcile says and when it looks again);
//! 3. adapters: [`observe`] (batched reads, sweeps), [`act`] (mutating
//!    calls), [`credentials`], [`cache`] (the watch cache), [`events`],
//!    [`metrics`];
//! 4. orchestration: [`reconcile`], one pass for apply and delete;
//! 5. wiring: [`run`] here, [`server`], [`leader`].

pub mod act;
pub mod cache;
pub mod credentials;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod observation;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod server;
pub mod status;

use crate::api::CvmInstance;
use crate::cloud::{ClientConfig, Credentials, CvmClient};
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use reconcile::{Context, ReconcileConfig};

#[derive(Debug, Clone)]
pub struct Config {
    pub reconcile: ReconcileConfig,
    pub observer: observe::ObserverConfig,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Only this namespace (all when `None`).
    pub watch_namespace: Option<String>,
    /// Only resources matching this label selector (sharding).
    pub label_selector: Option<String>,
    /// The operator's own credentials (resources may bring their own).
    pub default_credentials: Option<Credentials>,
    pub client: ClientConfig,
    /// The event reporter instance (the pod name).
    pub instance_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot list CvmInstances ({0}); is the CRD installed (`cvm-operator crd | kubectl apply -f -`) and may this account list cvminstances.cvm.tencentcloud.io?"
    )]
    CrdMissing(#[source] kube::Error),
    #[error("cannot build the CVM client: {0}")]
    Client(#[from] crate::cloud::CloudError),
}

/// The shared pieces `run` needs, built before it so the HTTP server can
/// start first.
pub struct Handles {
    pub metrics: Arc<metrics::Metrics>,
    pub observer: observe::Observer,
    /// Resources whose instance changed (the observer wakes them).
    pub wake: mpsc::UnboundedReceiver<observe::ResourceKey>,
}

/// Builds the shared pieces: metrics (fed by the client), the client and the
/// observer.
pub fn handles(config: &Config) -> Result<Handles, RunError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let mut client_config = config.client.clone();
    let m = metrics.clone();
    let previous = client_config.observer.take();
    client_config.observer = Some(Arc::new(move |r: &crate::cloud::CallRecord| {
        m.record_call(r);
        if let Some(p) = &previous {
            p(r);
        }
    }));
    let client = CvmClient::new(client_config)?;
    let (observer, wake) = observe::Observer::new(client, config.observer.clone());
    Ok(Handles {
        metrics,
        observer,
        wake,
    })
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    handles: Handles,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let api: Api<CvmInstance> = scoped(&client, &config);
    api.list(&ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdMissing)?;

    let events = events::Publisher::new(client.clone(), "cvm-operator", &config.instance_name);
    let ctx = Arc::new(Context::new(
        client.clone(),
        handles.observer.clone(),
        credentials::CredentialStore::new(client.clone(), config.default_credentials.clone()),
        events,
        handles.metrics.clone(),
        config.reconcile.clone(),
    ));

    let sweeps = tokio::spawn(handles.observer.clone().run_sweeps());
    let (reader, writer) = reflector::store::<cache::CachedInstance>();
    let gauge = tokio::spawn(gauges(
        handles.observer.clone(),
        handles.metrics.clone(),
        reader.clone(),
    ));

    let mut wc = watcher::Config::default().any_semantic();
    if let Some(sel) = &config.label_selector {
        wc = wc.labels(sel);
    }
    // The watch decodes straight into the compact cached form.
    let stream = watcher(scoped::<cache::CachedInstance>(&client, &config), wc)
        .default_backoff()
        .modify(cache::CachedInstance::slim)
        .reflect(writer)
        .applied_objects();
    let wake = futures::stream::unfold(handles.wake, |mut rx| async move {
        let key = rx.recv().await?;
        let object = ObjectRef::<cache::CachedInstance>::new(&key.name).within(&key.namespace);
        Some((object, rx))
    });
    tracing::info!(
        namespace = config.watch_namespace.as_deref().unwrap_or("<all>"),
        selector = config.label_selector.as_deref().unwrap_or(""),
        concurrency = config.concurrency,
        "controller starting"
    );
    Controller::for_stream(stream, reader)
        .reconcile_on(wake)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    sweeps.abort();
    gauge.abort();
    tracing::info!("controller stopped");
    Ok(())
}

/// The watched namespace, or all.
fn scoped<K>(client: &kube::Client, config: &Config) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &config.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Keeps the `instances` and readiness gauges up to date.
async fn gauges(
    observer: observe::Observer,
    metrics: Arc<metrics::Metrics>,
    cached: reflector::Store<cache::CachedInstance>,
) {
    loop {
        metrics.set_instance_states(&observer.state_counts());
        let readiness = cached.state().into_iter().map(|o| o.readiness());
        metrics.set_readiness(readiness, jiff::Timestamp::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
