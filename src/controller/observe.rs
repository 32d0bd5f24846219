//! Observation: what the cloud shows, fetched in batches.
//!
//! Every resource that shares (region, account) is observed together: the
//! instance ids are registered here, a sweep describes all of them in calls
//! of 100 ids once per poll interval (the "hot" ones — transitional or just
//! changed — every few seconds), and a change wakes exactly the resource it
//! belongs to. Reconciles read the in-memory index; a cache miss joins a
//! short coalescing window with other misses. Steady-state cost is therefore
//! about N/100 DescribeInstances per poll interval, not N.

use super::cache::CachedInstance;
use crate::cloud::model::{Instance, InstanceState};
use crate::cloud::{CloudError, Credentials, CvmClient, client::MAX_DESCRIBE_IDS};
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The part of an instance the operator plans and reports on. Compact on
/// purpose: one is kept per managed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub name: String,
    pub zone: String,
    pub bandwidth_out: i64,
    pub security_group_ids: Vec<String>,
    pub private_ips: Vec<String>,
    pub public_ips: Vec<String>,
    pub created_time: String,
    pub latest_operation: String,
    pub operating: bool,
    pub latest_operation_failed: bool,
    pub latest_operation_request_id: String,
    pub latest_operation_error_msg: String,
    pub disable_api_termination: bool,
    pub stop_charging_mode: String,
    pub charge_type: String,
    pub uid_tag: Option<String>,
}

impl Observation {
    pub fn from_instance(i: &Instance) -> Self {
        use crate::cloud::model::OperationState;
        Self {
            id: i.id().to_string(),
            state: i
                .instance_state
                .clone()
                .unwrap_or(InstanceState::Other(String::new())),
            instance_type: i.instance_type.clone().unwrap_or_default(),
            name: i.instance_name.clone().unwrap_or_default(),
            zone: i.zone().unwrap_or_default().to_string(),
            bandwidth_out: i.bandwidth_out().unwrap_or(0),
            security_group_ids: i.security_group_ids.clone().unwrap_or_default(),
            private_ips: i.private_ip_addresses.clone().unwrap_or_default(),
            public_ips: i.public_ip_addresses.clone().unwrap_or_default(),
            created_time: i.created_time.clone().unwrap_or_default(),
            latest_operation: i.latest_operation.clone().unwrap_or_default(),
            operating: i.latest_operation_state == Some(OperationState::Operating),
            latest_operation_failed: i.latest_operation_state == Some(OperationState::Failed),
            latest_operation_request_id: i.latest_operation_request_id.clone().unwrap_or_default(),
            latest_operation_error_msg: i.latest_operation_error_msg.clone().unwrap_or_default(),
            disable_api_termination: i.disable_api_termination.unwrap_or(false),
            stop_charging_mode: i.stop_charging_mode.clone().unwrap_or_default(),
            charge_type: i.instance_charge_type.clone().unwrap_or_default(),
            uid_tag: i.tag(crate::api::UID_TAG).map(str::to_string),
        }
    }

    /// A running instance, for tests: S5.MEDIUM4 named "web" in
    /// ap-guangzhou-3, 5 Mbps, one security group, no operation in flight.
    #[cfg(test)]
    pub fn fixture() -> Self {
        Self {
            id: "ins-abcdefgh".into(),
            state: InstanceState::Running,
            instance_type: "S5.MEDIUM4".into(),
            name: "web".into(),
            zone: "ap-guangzhou-3".into(),
            bandwidth_out: 5,
            security_group_ids: vec!["sg-gz000001".into()],
            private_ips: vec!["172.16.3.2".into()],
            public_ips: vec![],
            created_time: String::new(),
            latest_operation: "RunInstances".into(),
            operating: false,
            latest_operation_failed: false,
            latest_operation_request_id: String::new(),
            latest_operation_error_msg: String::new(),
            disable_api_termination: false,
            stop_charging_mode: "NOT_APPLICABLE".into(),
            charge_type: "POSTPAID_BY_HOUR".into(),
            uid_tag: None,
        }
    }

    /// Between states, or finishing an operation: worth polling fast.
    pub fn is_settling(&self) -> bool {
        self.operating || !self.state.is_stable()
    }
}

/// Instances observed together: one account in one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FleetKey {
    pub region: String,
    pub account: String,
}

impl FleetKey {
    pub fn new(region: &str, creds: &Credentials) -> Self {
        Self {
            region: region.to_string(),
            account: creds.secret_id().to_string(),
        }
    }
}

type Waiter = oneshot::Sender<Result<Option<Arc<Observation>>, Arc<CloudError>>>;

struct Cached {
    at: Instant,
    value: Option<Arc<Observation>>,
    /// Set when we just changed the instance: the value is known to be out
    /// of date, but kept so the next sweep can tell the change and wake.
    stale_since: Option<Instant>,
}

struct Member {
    /// Whom to wake (namespace and name only: a full ObjectRef per member
    /// carried four strings).
    namespace: Box<str>,
    name: Box<str>,
    /// Polled by the fast sweep until then (an upper bound)…
    hot_until: Option<Instant>,
    /// …and at least until then, even if it looks settled: the API's
    /// LatestOperationState can lag behind an accepted call.
    hot_at_least: Option<Instant>,
}

type UidWaiter = oneshot::Sender<Result<Option<Arc<Observation>>, Arc<CloudError>>>;

#[derive(Default)]
struct Fleet {
    creds: Option<Credentials>,
    members: HashMap<Box<str>, Member>,
    cache: HashMap<Box<str>, Cached>,
    pending: Vec<(String, Waiter)>,
    flush_scheduled: bool,
    pending_uids: Vec<(String, UidWaiter)>,
    uid_flush_scheduled: bool,
    /// Creates decided and not yet answered (most of them waiting for the
    /// RunInstances quota).
    creating: usize,
}

/// Values per DescribeInstances filter (the API's limit): UID lookups are
/// batched five at a time.
const MAX_FILTER_VALUES: usize = 5;

#[derive(Debug, Clone)]
pub struct ObserverConfig {
    /// How long a cache miss waits for others to share its call.
    pub window: Duration,
    /// How long a UID lookup waits for others while creates queue for the
    /// RunInstances quota: a lookup then costs no time to the create (which
    /// waits longer for its turn anyway), and a mass create shares each
    /// lookup call five ways instead of paying one call per resource.
    pub backlog_window: Duration,
    /// Sweep of hot instances.
    pub fast_interval: Duration,
    /// Sweep of every instance (drift detection).
    pub poll_interval: Duration,
    /// How long an instance stays hot after a change or an action.
    pub hot_for: Duration,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(25),
            backlog_window: Duration::from_millis(500),
            fast_interval: Duration::from_secs(2),
            poll_interval: Duration::from_secs(300),
            hot_for: Duration::from_secs(60),
        }
    }
}

struct Inner {
    client: CvmClient,
    config: ObserverConfig,
    fleets: Mutex<HashMap<FleetKey, Fleet>>,
    wake: mpsc::UnboundedSender<ObjectRef<CachedInstance>>,
}

/// Shared handle (cheap to clone).
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

/// Counts per instance state, for the `instances` gauge.
pub type StateCounts = HashMap<String, i64>;

impl Observer {
    /// The observer and the stream of resources whose instance changed.
    pub fn new(
        client: CvmClient,
        config: ObserverConfig,
    ) -> (Self, mpsc::UnboundedReceiver<ObjectRef<CachedInstance>>) {
        let (wake, rx) = mpsc::unbounded_channel();
        (
            Self {
                inner: Arc::new(Inner {
                    client,
                    config,
                    fleets: Mutex::new(HashMap::new()),
                    wake,
                }),
            },
            rx,
        )
    }

    pub fn client(&self) -> &CvmClient {
        &self.inner.client
    }

    pub fn config(&self) -> &ObserverConfig {
        &self.inner.config
    }

    fn with_fleets<T>(&self, f: impl FnOnce(&mut HashMap<FleetKey, Fleet>) -> T) -> T {
        f(&mut self.inner.fleets.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Includes `id` in the sweeps, waking the resource `namespace/name`
    /// when it changes.
    pub fn register(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        id: &str,
        namespace: &str,
        name: &str,
    ) {
        self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            fleet.creds = Some(creds.clone());
            let namespace: Box<str> = namespace.into();
            let name: Box<str> = name.into();
            match fleet.members.get_mut(id) {
                Some(m) if m.namespace == namespace && m.name == name => {}
                Some(m) => {
                    m.namespace = namespace;
                    m.name = name;
                }
                None => {
                    fleet.members.insert(
                        id.into(),
                        Member {
                            namespace,
                            name,
                            hot_until: None,
                            hot_at_least: None,
                        },
                    );
                }
            }
        });
    }

    pub fn unregister(&self, key: &FleetKey, id: &str) {
        self.with_fleets(|fleets| {
            if let Some(f) = fleets.get_mut(key) {
                f.members.remove(id);
                f.cache.remove(id);
            }
        });
    }

    /// Polls `id` fast for a while (after an action, or while settling).
    pub fn mark_hot(&self, key: &FleetKey, id: &str) {
        let now = Instant::now();
        let cfg = &self.inner.config;
        self.with_fleets(|fleets| {
            if let Some(m) = fleets.get_mut(key).and_then(|f| f.members.get_mut(id)) {
                m.hot_until = Some(now + cfg.hot_for);
                m.hot_at_least = Some(now + cfg.fast_interval * 5);
            }
        });
    }

    /// Marks the cached view of `id` out of date (we just changed it). The
    /// old value is kept, so the sweep that sees the change wakes the owner.
    pub fn invalidate(&self, key: &FleetKey, id: &str) {
        let now = Instant::now();
        self.with_fleets(|fleets| {
            let f = fleets.entry(key.clone()).or_default();
            f.cache
                .entry(id.into())
                .and_modify(|c| c.stale_since = Some(now))
                .or_insert(Cached {
                    at: now,
                    value: None,
                    stale_since: Some(now),
                });
        });
    }

    /// True right after we changed `id` and before a sweep has looked: a
    /// reconcile then has nothing to learn yet and should just wait for the
    /// sweep's wake-up (instead of a Describe of its own).
    pub fn awaiting_refresh(&self, key: &FleetKey, id: &str) -> bool {
        let grace = self.inner.config.fast_interval.mul_f64(1.5);
        self.with_fleets(|fleets| {
            fleets
                .get(key)
                .and_then(|f| f.cache.get(id))
                .and_then(|c| c.stale_since)
                .is_some_and(|t| t.elapsed() < grace)
        })
    }

    /// The instance as of at most `max_age` ago; `None` when the cloud does
    /// not list it. Misses are batched with other misses.
    pub async fn observe(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        id: &str,
        max_age: Duration,
    ) -> Result<Option<Arc<Observation>>, Arc<CloudError>> {
        let (tx, rx) = oneshot::channel();
        let flush_now = self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            if let Some(c) = fleet.cache.get(id)
                && c.stale_since.is_none()
                && c.at.elapsed() <= max_age
            {
                return Err(c.value.clone());
            }
            fleet.creds = Some(creds.clone());
            fleet.pending.push((id.to_string(), tx));
            if fleet.pending.len() >= MAX_DESCRIBE_IDS {
                fleet.flush_scheduled = false;
                Ok(Some(std::mem::take(&mut fleet.pending)))
            } else if !fleet.flush_scheduled {
                fleet.flush_scheduled = true;
                Ok(None)
            } else {
                Ok(Some(Vec::new()))
            }
        });
        match flush_now {
            Err(hit) => return Ok(hit),
            Ok(Some(batch)) if !batch.is_empty() => {
                let this = self.clone();
                let key = key.clone();
                let creds = creds.clone();
                tokio::spawn(async move { this.flush(&key, &creds, batch).await });
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let this = self.clone();
                let key = key.clone();
                let creds = creds.clone();
                let window = self.inner.config.window;
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    let batch = this.with_fleets(|fleets| {
                        let f = fleets.entry(key.clone()).or_default();
                        f.flush_scheduled = false;
                        std::mem::take(&mut f.pending)
                    });
                    if !batch.is_empty() {
                        this.flush(&key, &creds, batch).await;
                    }
                });
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(CloudError::Network {
                action: "DescribeInstances".into(),
                connect: false,
                message: "observation batch dropped".into(),
            }))
        })
    }

    async fn flush(&self, key: &FleetKey, creds: &Credentials, batch: Vec<(String, Waiter)>) {
        let mut ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        match self.describe_into_cache(key, creds, &ids).await {
            Ok(found) => {
                for (id, waiter) in batch {
                    let _ = waiter.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (_, waiter) in batch {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }

    /// Describes `ids` (≤ 100 per call), refreshes the cache, and wakes the
    /// members whose instance changed. Returns what was found.
    async fn describe_into_cache(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<Observation>>, CloudError> {
        let instances = self
            .inner
            .client
            .describe_instances_by_ids(creds, &key.region, ids)
            .await?;
        let now = Instant::now();
        let found: HashMap<String, Arc<Observation>> = instances
            .iter()
            .map(|i| (i.id().to_string(), Arc::new(Observation::from_instance(i))))
            .collect();
        let mut wake = Vec::new();
        self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            for id in ids {
                let new = found.get(id).cloned();
                // A member whose view changed (or that we changed and that
                // now shows anything) is woken; a first sighting is not news.
                let changed = fleet
                    .cache
                    .get(id.as_str())
                    .is_some_and(|c| c.value != new || (c.stale_since.is_some() && new.is_none()));
                if let Some(m) = fleet.members.get_mut(id.as_str()) {
                    if changed {
                        wake.push(ObjectRef::<CachedInstance>::new(&m.name).within(&m.namespace));
                    }
                    let settling = new.as_ref().is_some_and(|o| o.is_settling());
                    if changed || settling {
                        m.hot_until = Some(now + self.inner.config.hot_for);
                    } else if m.hot_at_least.is_none_or(|t| t <= now) {
                        // Settled and quiet: back to the slow sweep.
                        m.hot_until = None;
                    }
                }
                match fleet.cache.get_mut(id.as_str()) {
                    // Unchanged: keep the old allocation (less churn, less
                    // fragmentation at thousands of instances per sweep).
                    Some(c) if c.value == new => {
                        c.at = now;
                        c.stale_since = None;
                    }
                    _ => {
                        fleet.cache.insert(
                            id.as_str().into(),
                            Cached {
                                at: now,
                                value: new,
                                stale_since: None,
                            },
                        );
                    }
                }
            }
        });
        for object in wake {
            let _ = self.inner.wake.send(object);
        }
        Ok(found)
    }

    /// Describes every member of every fleet (all, or only the hot ones)
    /// whose cached view is older than `older_than`.
    pub async fn sweep(&self, only_hot: bool, older_than: Duration) {
        let now = Instant::now();
        let work: Vec<(FleetKey, Credentials, Vec<String>)> = self.with_fleets(|fleets| {
            fleets
                .iter_mut()
                .filter_map(|(key, f)| {
                    let creds = f.creds.clone()?;
                    let mut ids: Vec<String> = f
                        .members
                        .iter_mut()
                        .filter(|(id, m)| {
                            let hot = m.hot_until.is_some_and(|t| t > now);
                            let stale = f
                                .cache
                                .get(*id)
                                .is_none_or(|c| now.duration_since(c.at) >= older_than);
                            (!only_hot || hot) && stale
                        })
                        .map(|(id, _)| id.to_string())
                        .collect();
                    // Expired heat is forgotten.
                    for m in f.members.values_mut() {
                        if m.hot_until.is_some_and(|t| t <= now) {
                            m.hot_until = None;
                        }
                    }
                    ids.sort();
                    (!ids.is_empty()).then(|| (key.clone(), creds, ids))
                })
                .collect()
        });
        for (key, creds, ids) in work {
            for chunk in ids.chunks(MAX_DESCRIBE_IDS) {
                if let Err(e) = self.describe_into_cache(&key, &creds, chunk).await {
                    tracing::warn!(region = %key.region, error = %e, "sweep failed");
                }
            }
        }
    }

    /// Runs the fast and slow sweeps until the task is dropped.
    pub async fn run_sweeps(self) {
        let cfg = self.inner.config.clone();
        let mut fast = tokio::time::interval(cfg.fast_interval);
        fast.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut slow = tokio::time::interval(cfg.poll_interval);
        slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        slow.tick().await;
        loop {
            tokio::select! {
                _ = fast.tick() => self.sweep(true, cfg.fast_interval.mul_f64(0.8)).await,
                _ = slow.tick() => self.sweep(false, cfg.poll_interval.mul_f64(0.5)).await,
            }
        }
    }

    /// Instances per state over every fleet's cache (members only).
    pub fn state_counts(&self) -> StateCounts {
        self.with_fleets(|fleets| {
            let mut out = StateCounts::new();
            for f in fleets.values() {
                for id in f.members.keys() {
                    let state = match f.cache.get(id).map(|c| &c.value) {
                        Some(Some(o)) => o.state.as_str().to_string(),
                        Some(None) => "NOT_FOUND".to_string(),
                        None => continue,
                    };
                    *out.entry(state).or_default() += 1;
                }
            }
            out
        })
    }

    /// Counts a create in fleet `key` from its decision until its
    /// RunInstances answer (the guard's drop): while creates queue, UID
    /// lookups wait longer to share calls.
    pub fn creating(&self, key: &FleetKey) -> CreatingGuard {
        self.with_fleets(|fleets| fleets.entry(key.clone()).or_default().creating += 1);
        CreatingGuard {
            observer: self.clone(),
            key: key.clone(),
        }
    }

    /// Finds the instance carrying our UID tag (the create guard). Lookups
    /// of several resources share calls, five UIDs per DescribeInstances.
    pub async fn find_by_uid(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        uid: &str,
    ) -> Result<Option<Arc<Observation>>, CloudError> {
        let (tx, rx) = oneshot::channel();
        let mut window = self.inner.config.window;
        let flush_now = self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            if fleet.creating >= MAX_FILTER_VALUES {
                window = self.inner.config.backlog_window;
            }
            fleet.creds = Some(creds.clone());
            fleet.pending_uids.push((uid.to_string(), tx));
            if fleet.pending_uids.len() >= MAX_FILTER_VALUES {
                fleet.uid_flush_scheduled = false;
                Some(std::mem::take(&mut fleet.pending_uids))
            } else if !fleet.uid_flush_scheduled {
                fleet.uid_flush_scheduled = true;
                Some(Vec::new())
            } else {
                None
            }
        });
        let this = self.clone();
        let (key2, creds2) = (key.clone(), creds.clone());
        match flush_now {
            Some(batch) if !batch.is_empty() => {
                tokio::spawn(async move { this.flush_uids(&key2, &creds2, batch).await });
            }
            Some(_) => {
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    let batch = this.with_fleets(|fleets| {
                        let f = fleets.entry(key2.clone()).or_default();
                        f.uid_flush_scheduled = false;
                        std::mem::take(&mut f.pending_uids)
                    });
                    if !batch.is_empty() {
                        this.flush_uids(&key2, &creds2, batch).await;
                    }
                });
            }
            None => {}
        }
        match rx.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(Arc::unwrap_or_clone(e)),
            Err(_) => Err(CloudError::Network {
                action: "DescribeInstances".into(),
                connect: false,
                message: "UID lookup batch dropped".into(),
            }),
        }
    }

    async fn flush_uids(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        batch: Vec<(String, UidWaiter)>,
    ) {
        let uids: Vec<String> = batch.iter().map(|(u, _)| u.clone()).collect();
        let result = self
            .inner
            .client
            .describe_instances_filtered(
                creds,
                &key.region,
                vec![crate::cloud::model::Filter::new(
                    format!("tag:{}", crate::api::UID_TAG),
                    uids,
                )],
            )
            .await;
        let found = match result {
            Ok(f) => f,
            Err(e) => {
                let e = Arc::new(e);
                for (_, w) in batch {
                    let _ = w.send(Err(e.clone()));
                }
                return;
            }
        };
        // Per UID, prefer a live instance over a terminating or failed one.
        let mut best: HashMap<String, Observation> = HashMap::new();
        for o in found.iter().map(Observation::from_instance) {
            let Some(uid) = o.uid_tag.clone() else {
                continue;
            };
            let dead = |o: &Observation| {
                matches!(
                    o.state,
                    InstanceState::Terminating | InstanceState::LaunchFailed
                )
            };
            match best.get(&uid) {
                Some(cur) if !dead(cur) || dead(&o) => {}
                _ => {
                    best.insert(uid, o);
                }
            }
        }
        let now = Instant::now();
        let results: Vec<(String, Option<Arc<Observation>>)> = batch
            .iter()
            .map(|(u, _)| (u.clone(), best.get(u).cloned().map(Arc::new)))
            .collect();
        self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            for (_, o) in &results {
                if let Some(o) = o {
                    fleet.cache.insert(
                        o.id.as_str().into(),
                        Cached {
                            at: now,
                            value: Some(o.clone()),
                            stale_since: None,
                        },
                    );
                }
            }
        });
        for ((_, w), (_, o)) in batch.into_iter().zip(results) {
            let _ = w.send(Ok(o));
        }
    }
}

/// See [`Observer::creating`].
pub struct CreatingGuard {
    observer: Observer,
    key: FleetKey,
}

impl Drop for CreatingGuard {
    fn drop(&mut self) {
        self.observer.with_fleets(|fleets| {
            if let Some(f) = fleets.get_mut(&self.key) {
                f.creating = f.creating.saturating_sub(1);
            }
        });
    }
}
