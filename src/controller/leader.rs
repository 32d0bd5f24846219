//! Leader election: a `coordination.k8s.io` Lease (kube-lease-manager).
//!
//! A standby replica is ready (it serves health and metrics, or rolling
//! updates of a two-replica deployment would never finish) and makes no
//! cloud calls. Losing the lease ends the run: the process exits and
//! restarts as a standby, rather than risk two replicas acting.

use super::metrics::Metrics;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica (the Lease holder's name).
    pub identity: String,
    /// A dead leader is replaced after about this many seconds.
    pub duration_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up the leader-election Lease: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("leader election stopped")]
    Stopped,
}

/// Held while leading: [`Leadership::lost`] resolves when the lease is lost.
pub struct Leadership {
    /// `None` without leader election (never lost).
    lease: Option<watch::Receiver<bool>>,
    gauge: Gauge,
}

impl Leadership {
    /// Resolves when the lease is lost; never without leader election.
    pub async fn lost(self) {
        let Some(mut lease) = self.lease else {
            return std::future::pending().await;
        };
        let _ = lease.wait_for(|leading| !*leading).await;
        self.gauge.set(0);
        tracing::error!("lost the lease; stopping");
    }
}

/// Waits for leadership (at once without `lease`). `None` when `shutdown`
/// came first. Keeps the `leader` gauge in `metrics` up to date.
pub async fn acquire(
    client: kube::Client,
    lease: Option<LeaseConfig>,
    metrics: &Metrics,
    ready: &AtomicBool,
    shutdown: impl Future<Output = ()>,
) -> Result<Option<Leadership>, LeaderError> {
    let gauge = metrics.leader.clone();
    let Some(cfg) = lease else {
        metrics.set_leader(true);
        return Ok(Some(Leadership { lease: None, gauge }));
    };
    metrics.set_leader(false);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &cfg.name)
        .with_namespace(&cfg.namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.duration_secs.max(2))
        .with_grace((cfg.duration_secs / 3).max(1))
        .build()
        .await?;
    // The manager task renews the lease for as long as the channel lives.
    let (mut channel, _task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(lease = %cfg.name, namespace = %cfg.namespace, identity = %cfg.identity, "waiting for leadership");
    tokio::select! {
        r = channel.wait_for(|leading| *leading) => { r.map_err(|_| LeaderError::Stopped)?; }
        _ = shutdown => return Ok(None),
    }
    metrics.set_leader(true);
    tracing::info!(identity = %cfg.identity, "became the leader");
    Ok(Some(Leadership {
        lease: Some(channel),
        gauge,
    }))
}
