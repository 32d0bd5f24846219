//! The operator: watches `CvmInstance` resources and reconciles each against
//! its CVM instance. Layers, bottom to top (an import never points up):
//!
//! 1. vocabulary: [`observation`] (what the cloud shows), `api`, `cloud::model`;
//! 2. pure: [`plan`] (the decision), [`status`] and [`report`] (what a
//!    reconcile says and when it looks again);
//! 2. pure: … and [`ownership`] (which account a resource may use, whether
//!    an instance is its own);
//! 3. adapters: [`observe`] (batched reads, sweeps), [`act`] (mutating
//!    calls), [`price`] (price inquiries), [`accounts`] (account → credentials), [`credentials`]
//!    (Secrets), [`cache`] (the watch cache), [`events`], [`metrics`];
//! 4. orchestration: [`reconcile`], one pass for apply and delete;
//!    [`verify_account`], the `CvmAccount` reconciler;
//! 5. wiring: [`run`] here, [`server`], [`leader`].

pub mod accounts;
pub mod act;
pub mod applied;
pub mod cache;
pub mod credentials;
pub mod events;
pub mod fleet;
pub mod leader;
pub mod metrics;
pub mod observation;
pub mod observe;
pub mod ownership;
pub mod plan;
pub mod price;
pub mod reconcile;
pub mod report;
pub mod server;
pub mod status;
pub mod verify_account;

use crate::api::{CvmAccount, CvmInstance};
use crate::cloud::{ClientConfig, CredentialProvider, CvmClient};
use futures::{FutureExt, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
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
    /// Only `CvmAccount`s matching this label selector: when operators with
    /// different credentials of their own shard the resources, each serves
    /// its own accounts, so a resource cannot pick another operator's
    /// credentials by its labels.
    pub account_selector: Option<String>,
    /// The operator's own credentials: usable only through a `CvmAccount`
    /// whose source is `Environment`.
    pub operator_credentials: Option<CredentialProvider>,
    /// The CVM metadata service (instance-role accounts).
    pub metadata_endpoint: String,
    pub client: ClientConfig,
    /// The event reporter instance (the pod name).
    pub instance_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot list {0} ({1}); are the CRDs installed (`cvm-operator crd | kubectl apply -f -`) and may this service account list them?"
    )]
    CrdMissing(&'static str, #[source] kube::Error),
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
        .map_err(|e| RunError::CrdMissing("cvminstances.cvm.tencentcloud.io", e))?;
    let (reader, writer) = reflector::store::<cache::CachedInstance>();
    let secrets = Arc::new(credentials::CredentialStore::new(client.clone()));
    let (accounts, account_task) =
        start_accounts(&client, &config, &handles, &secrets, reader.clone()).await?;

    let events = events::Publisher::new(client.clone(), "cvm-operator", &config.instance_name);
    let ctx = Arc::new(Context::new(
        client.clone(),
        handles.observer.clone(),
        secrets,
        accounts,
        events,
        handles.metrics.clone(),
        config.reconcile.clone(),
    ));

    let sweeps = tokio::spawn(handles.observer.clone().run_sweeps());
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
    // One shutdown for both controllers.
    let shutdown = shutdown.shared();
    let sets = tokio::spawn(fleet::run(ctx.clone(), config.clone(), shutdown.clone()));
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
    let _ = sets.await;
    sweeps.abort();
    gauge.abort();
    account_task.abort();
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
        // Reading every cached resource takes milliseconds at 10,000: on a
        // blocking thread, so that no reconcile waits for a runtime worker.
        let (m, store) = (metrics.clone(), cached.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let readiness = store.state().into_iter().map(|o| o.readiness());
            m.set_readiness(readiness, jiff::Timestamp::now());
        })
        .await;
        let down = observer.client().reachability().down().len();
        metrics.cloud_unreachable.set(down as i64);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Watches the `CvmAccount`s this operator serves and runs their reconciler
/// (verification, status); returns once the accounts are known, so that no
/// resource is told "no account" while the watch is still listing them.
async fn start_accounts(
    client: &kube::Client,
    config: &Config,
    handles: &Handles,
    secrets: &Arc<credentials::CredentialStore>,
    instances: reflector::Store<cache::CachedInstance>,
) -> Result<(Arc<accounts::Accounts>, tokio::task::JoinHandle<()>), RunError> {
    let api: Api<CvmAccount> = Api::all(client.clone());
    api.list(&ListParams::default().limit(1))
        .await
        .map_err(|e| RunError::CrdMissing("cvmaccounts.cvm.tencentcloud.io", e))?;
    let (reader, writer) = reflector::store::<CvmAccount>();
    let accounts = Arc::new(accounts::Accounts::new(
        client.clone(),
        handles.observer.client().clone(),
        reader.clone(),
        secrets.clone(),
        accounts::AccountsConfig {
            operator: config.operator_credentials.clone(),
            metadata_endpoint: config.metadata_endpoint.clone(),
            selector: config.account_selector.clone(),
        },
    ));
    let mut wc = watcher::Config::default().any_semantic();
    if let Some(sel) = &config.account_selector {
        wc = wc.labels(sel);
    }
    // The Controller waits for the store itself, and the store wakes only
    // one waiter (kube-runtime's DelayedInit is a oneshot): this one learns
    // of the first complete listing from the stream instead.
    let (listed, mut ready) = tokio::sync::watch::channel(false);
    let stream = watcher(api, wc)
        .default_backoff()
        .reflect(writer)
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                listed.send_replace(true);
            }
        })
        .applied_objects()
        // Verified again on spec changes and on a timer, not on each status
        // write: operators sharing an account would otherwise wake one
        // another with every write.
        .predicate_filter(predicates::generation, Default::default());
    let ctx = Arc::new(verify_account::AccountContext::new(
        client.clone(),
        accounts.clone(),
        instances,
        handles.observer.waker(),
    ));
    let controller = Controller::for_stream(stream, reader.clone())
        .run(verify_account::reconcile, verify_account::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "account controller event");
            }
        });
    let task = tokio::spawn(controller);
    let _ = ready.wait_for(|listed| *listed).await;
    Ok((accounts, task))
}
