//! An offline simulator of the CVM API 3.0, so the operator can be developed,
//! tested, benchmarked and demoed with no Tencent account. It verifies TC3
//! signatures like the real service and simulates the instance lifecycle.
//! It reuses the client's wire types and signer; it knows nothing of
//! Kubernetes.

mod auth;
pub mod catalogue;
#[cfg(test)]
mod conformance;
pub mod engine;
pub mod faults;
mod http;
mod serve;
pub mod sts;

pub use engine::{EngineConfig, Timings};
pub use faults::{ErrorFault, Faults, LostFault, LostMode};
pub use http::METADATA_ACTION;
pub use serve::{ClockSetting, OutageMode, OutagePhase, OutagePlan};
pub use sts::{SimInstanceRole, SimRole, SimWebIdentityTrust, StsConfig};

use crate::cloud::RateLimits;
use crate::cloud::credentials::Secret;
use crate::cloud::ratelimit::Limiters;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use engine::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A key pair the simulator accepts.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub secret_id: String,
    pub secret_key: Secret,
    /// When set, requests must carry this `X-TC-Token`.
    pub token: Option<Secret>,
    /// The account (uin) the key belongs to: whose instances it sees, whose
    /// roles trust it. Derived from the SecretId unless set, so distinct
    /// keys are distinct accounts.
    pub uin: String,
}

impl SimAccount {
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        let secret_id = secret_id.into();
        Self {
            uin: sts::derived_uin(&secret_id),
            secret_id,
            secret_key: Secret::new(secret_key),
            token: None,
        }
    }

    /// The same key in account `uin` (two keys of one account see the same
    /// instances).
    pub fn in_account(mut self, uin: impl Into<String>) -> Self {
        self.uin = uin.into();
        self
    }
}

/// The key pair the simulator accepts when none is configured. Test-only
/// values, also used by `make demo`.
pub const DEFAULT_SECRET_ID: &str = "AKIDSIMULATOR0000000000000000000000";
pub const DEFAULT_SECRET_KEY: &str = "simulator-secret-key-0000000000000";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub accounts: Vec<SimAccount>,
    pub engine: EngineConfig,
    /// Simulation seconds per real second (10 = transitions 10× faster).
    pub time_scale: f64,
    /// Per (account, region, action) limits answering RequestLimitExceeded.
    pub rate_limits: RateLimits,
    pub faults: Faults,
    /// Allowed |server time − X-TC-Timestamp|.
    pub max_clock_skew_secs: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            accounts: vec![SimAccount::new(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)],
            engine: EngineConfig::default(),
            time_scale: 1.0,
            rate_limits: RateLimits::default(),
            faults: Faults::default(),
            max_clock_skew_secs: 300,
        }
    }
}

/// Real time scaled into simulation time.
#[derive(Debug)]
pub(crate) struct SimClock {
    start: Instant,
    scale: f64,
}

impl SimClock {
    pub(crate) fn now(&self) -> Duration {
        Duration::from_secs_f64(self.start.elapsed().as_secs_f64() * self.scale)
    }
}

/// How many recent calls the journal keeps (for latency measurements).
const JOURNAL_CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct Counters {
    /// (arrival, action) of recent requests, oldest first.
    journal: std::collections::VecDeque<(Instant, String)>,
    requests: u64,
    calls: BTreeMap<String, u64>,
    errors: BTreeMap<String, BTreeMap<String, u64>>,
    lost: BTreeMap<String, u64>,
    outage: BTreeMap<String, u64>,
    metadata: u64,
}

/// API call counters.
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder(Mutex<Counters>);

impl StatsRecorder {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    pub(crate) fn request(&self, action: &str) {
        self.with(|c| {
            c.requests += 1;
            if c.journal.len() == JOURNAL_CAPACITY {
                c.journal.pop_front();
            }
            c.journal.push_back((Instant::now(), action.to_string()));
            if crate::cloud::model::ACTIONS.contains(&action)
                || crate::cloud::sts::ACTIONS.contains(&action)
                || crate::cloud::tag::ACTIONS.contains(&action)
            {
                *c.calls.entry(action.to_string()).or_default() += 1;
            }
        })
    }
    pub(crate) fn error(&self, action: &str, code: &str) {
        let action = if action.is_empty() { "-" } else { action };
        self.with(|c| {
            *c.errors
                .entry(action.to_string())
                .or_default()
                .entry(code.to_string())
                .or_default() += 1
        })
    }
    pub(crate) fn metadata(&self) {
        self.with(|c| c.metadata += 1)
    }
    pub(crate) fn lost(&self, action: &str) {
        self.with(|c| *c.lost.entry(action.to_string()).or_default() += 1)
    }
    pub(crate) fn outage(&self, action: &str) {
        self.with(|c| *c.outage.entry(action.to_string()).or_default() += 1)
    }
    pub(crate) fn reset(&self) {
        self.with(|c| *c = Counters::default())
    }
}

/// What `GET /_sim/stats` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests per CVM, STS and Tag action (including refused ones).
    pub calls: BTreeMap<String, u64>,
    /// Error answers per action and code.
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Responses deliberately lost, per action.
    pub lost: BTreeMap<String, u64>,
    /// Requests an outage held or answered 503, per action (not in `calls`:
    /// they never reached the API).
    #[serde(default)]
    pub outage: BTreeMap<String, u64>,
    /// Every request to `/`, known action or not.
    pub requests: u64,
    /// Requests to the metadata endpoint.
    #[serde(default)]
    pub metadata: u64,
    /// Instances that exist (any account, region and state).
    pub instances: usize,
    /// Instances per InstanceState.
    pub states: BTreeMap<String, usize>,
}

impl Stats {
    pub fn calls(&self, action: &str) -> u64 {
        self.calls.get(action).copied().unwrap_or(0)
    }
    /// Error answers with `code`, whatever the action.
    pub fn errors_with(&self, code: &str) -> u64 {
        self.errors
            .values()
            .filter_map(|codes| codes.get(code))
            .sum()
    }
    pub fn errors(&self, action: &str, code: &str) -> u64 {
        self.errors
            .get(action)
            .and_then(|m| m.get(code))
            .copied()
            .unwrap_or(0)
    }
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) engine: Mutex<Engine>,
    pub(crate) clock: SimClock,
    pub(crate) limiters: Limiters,
    pub(crate) stats: StatsRecorder,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) sts: Mutex<sts::StsState>,
    /// What the network does to callers now (see [`serve`]).
    pub(crate) outage: tokio::sync::watch::Sender<OutageMode>,
    pub(crate) outage_plan: Mutex<Option<tokio::task::AbortHandle>>,
    /// Seconds added to the wall clock (signature window, `Date`, STS).
    clock_offset: AtomicI64,
    /// SecretIds disabled since start (a rotated-out key): refused as unknown.
    revoked: Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    /// The simulator's wall clock, in Unix seconds.
    pub(crate) fn now_unix(&self) -> i64 {
        auth::now_unix() + self.clock_offset()
    }
    pub(crate) fn clock_offset(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }
    pub(crate) fn set_clock_offset(&self, secs: i64) {
        self.clock_offset.store(secs, Ordering::Relaxed)
    }
    pub(crate) fn is_revoked(&self, secret_id: &str) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        !revoked.is_empty() && revoked.contains(secret_id)
    }
}

pub(crate) fn snapshot(shared: &Shared) -> Stats {
    let c = shared.stats.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = shared.engine.lock().unwrap_or_else(|e| e.into_inner());
    engine.advance(shared.clock.now());
    Stats {
        calls: c.calls.clone(),
        errors: c.errors.clone(),
        lost: c.lost.clone(),
        outage: c.outage.clone(),
        requests: c.requests,
        metadata: c.metadata,
        instances: engine.instance_count(),
        states: engine.state_counts(),
    }
}

/// A simulator instance. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        Self::with_catalogue(config, catalogue::Catalogue::default())
    }

    pub fn with_catalogue(config: SimConfig, catalogue: catalogue::Catalogue) -> Self {
        let shared = Shared {
            engine: Mutex::new(Engine::new(config.engine.clone(), catalogue)),
            clock: SimClock {
                start: Instant::now(),
                scale: config.time_scale.max(0.001),
            },
            limiters: Limiters::server(config.rate_limits.clone()),
            stats: StatsRecorder::default(),
            faults: Mutex::new(config.faults.clone()),
            sts: Mutex::new(sts::StsState::default()),
            outage: tokio::sync::watch::Sender::new(OutageMode::None),
            outage_plan: Mutex::new(None),
            clock_offset: AtomicI64::new(0),
            revoked: Mutex::default(),
            config,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        // The API (CVM, STS, Tag, metadata): behind the outage gate.
        let api = Router::new()
            .route("/", any(http::cvm))
            .route(
                crate::cloud::metadata::SECURITY_CREDENTIALS_PATH,
                get(http::metadata_role),
            )
            .route(
                "/latest/meta-data/cam/security-credentials/{role}",
                get(http::metadata_credentials),
            )
            .layer(from_fn_with_state(shared.clone(), serve::outage_gate));
        // The simulator's own admin surface.
        let admin = Router::new()
            .route("/_sim/stats", get(http::stats))
            .route("/_sim/stats/reset", post(http::reset_stats))
            .route("/_sim/faults", get(http::get_faults).put(http::put_faults))
            .route("/_sim/sts", get(http::get_sts).put(http::put_sts))
            .route(
                "/_sim/outage",
                get(serve::get_outage).put(serve::put_outage),
            )
            .route("/_sim/clock", get(serve::get_clock).put(serve::put_clock));
        api.merge(admin)
            .layer(from_fn_with_state(shared.clone(), serve::date_header))
            .layer(axum::extract::DefaultBodyLimit::max(11 * 1024 * 1024))
            .with_state(shared)
    }

    /// Serves until the future is dropped (the listener closes and re-opens
    /// at the same address as outages say).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        serve::serve(self.shared.clone(), self.router(), listener).await
    }

    /// Binds `addr` (port 0 for any) and serves in a background task.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let sim = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = sim.serve(listener).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(RunningSimulator {
            addr,
            sim: self,
            task,
        })
    }

    pub fn stats(&self) -> Stats {
        snapshot(&self.shared)
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Arrival times of recent requests for `action` after `since`.
    pub fn arrivals(&self, action: &str, since: Instant) -> Vec<Instant> {
        let c = self
            .shared
            .stats
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // From the newest back (arrivals are journalled in order): a
        // benchmark polls this every millisecond while the simulator's
        // requests wait for the same lock, and after a 10,000-instance
        // convergence the journal holds tens of thousands of calls.
        let mut found: Vec<Instant> = c
            .journal
            .iter()
            .rev()
            .take_while(|(t, _)| *t >= since)
            .filter(|(_, a)| a == action)
            .map(|(t, _)| *t)
            .collect();
        found.reverse();
        found
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Switches the network's behaviour now (cancelling a running plan):
    /// [`OutageMode::None`] ends an outage. State is kept throughout.
    pub fn set_outage(&self, mode: OutageMode) {
        self.shared.set_outage(mode);
    }

    /// Runs the phases of `plan` from now, then serves again (as `PUT
    /// /_sim/outage`). Needs a Tokio runtime.
    pub fn schedule_outage(&self, plan: OutagePlan) {
        self.shared.schedule_outage(plan, Duration::ZERO);
    }

    pub fn outage(&self) -> OutageMode {
        *self.shared.outage.borrow()
    }

    /// Skews the simulator's clock by `secs` (as `PUT /_sim/clock`): a
    /// caller whose clock is right looks `secs` behind.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.set_clock_offset(secs);
    }

    /// Disables a key (as an account owner does with a rotated-out one):
    /// from now on it is refused as unknown (`AuthFailure.SecretIdNotFound`).
    /// Configure two keys of one account with [`SimAccount::in_account`]
    /// to rotate from one to the other.
    pub fn revoke_key(&self, secret_id: &str) {
        let mut revoked = self
            .shared
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        revoked.insert(secret_id.to_string());
    }

    /// Configures STS roles and the instance role (as `PUT /_sim/sts`);
    /// none by default. Credentials already issued stay valid.
    pub fn set_sts(&self, config: StsConfig) {
        self.shared
            .sts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .configure(config);
    }
}

/// A simulator serving on a local port; stops when dropped.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    pub sim: Simulator,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A simulator on a loopback port and a client of it that never retries:
/// for unit tests of the operator's parts that call the API.
#[cfg(test)]
pub async fn loopback(config: SimConfig) -> (RunningSimulator, crate::cloud::CvmClient) {
    use crate::cloud::{ClientConfig, CvmClient, Endpoint, RetryPolicy};
    let sim = Simulator::new(config)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = CvmClient::new(ClientConfig {
        endpoint: Endpoint::parse(&sim.endpoint()).unwrap(),
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    })
    .unwrap();
    (sim, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_the_actions_calls_since_then_oldest_first() {
        let sim = Simulator::new(SimConfig::default());
        let stats = &sim.shared.stats;
        stats.request("DescribeInstances");
        let since = Instant::now();
        for action in ["ModifyInstancesAttribute", "DescribeInstances"] {
            stats.request(action);
        }
        stats.request("ModifyInstancesAttribute");
        let found = sim.arrivals("ModifyInstancesAttribute", since);
        assert_eq!(found.len(), 2);
        assert!(found[0] <= found[1] && found[0] >= since);
        assert_eq!(sim.arrivals("DescribeInstances", since).len(), 1);
        assert!(sim.arrivals("RunInstances", since).is_empty());
    }
}
