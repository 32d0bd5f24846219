//! Observation: what the cloud shows, fetched in batches.
//!
//! Every resource that shares (region, account) is observed together: the
//! instance ids are registered here, a sweep describes all of them in calls
//! of 100 ids once per poll interval (the "hot" ones — transitional or just
//! changed — every few seconds), and a change wakes exactly the resource it
//! belongs to. Reconciles read the in-memory index; a cache miss joins a
//! short coalescing window with other misses. Steady-state cost is therefore
//! about N/100 DescribeInstances per poll interval, not N.

use super::observation::Observation;
pub use super::observation::Timing;
use crate::cloud::model::InstanceState;
use crate::cloud::{
    CloudError, CredentialProvider, Credentials, CvmClient, ErrorClass, Identity,
    client::MAX_DESCRIBE_IDS,
};
use batch::Batcher;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub mod batch;
mod waiting;

/// Instances observed together: one set of credentials in one region. Keyed
/// by the credentials' [`Identity`] (who they act as, unforgeable), never by
/// the SecretId, which anyone who saw one request knows: a Secret holding a
/// victim's SecretId with a wrong key is another fleet, never served the
/// victim's observations, and never sweeps on the victim's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FleetKey {
    pub region: String,
    pub identity: Identity,
}

impl FleetKey {
    pub fn new(region: &str, identity: &Identity) -> Self {
        Self {
            region: region.to_string(),
            identity: identity.clone(),
        }
    }
}

struct Cached {
    at: Instant,
    value: Option<Arc<Observation>>,
    /// Set when we just changed the instance: the value is known to be out
    /// of date, but kept so the next sweep can tell the change and wake.
    stale_since: Option<Instant>,
}

/// A resource that observes an instance: whom to wake (namespace and name
/// only: a full ObjectRef per member carried four strings).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    namespace: Box<str>,
    name: Box<str>,
}

impl Owner {
    fn is(&self, namespace: &str, name: &str) -> bool {
        &*self.namespace == namespace && &*self.name == name
    }
}

struct Member {
    /// Every resource observing the instance: usually one (kept inline, no
    /// allocation), more when several look at the same id — say a victim's
    /// resource and a hostile one naming its instance. All are woken on a
    /// change, and one leaving does not drop the id for the others.
    owner: Owner,
    more: Vec<Owner>,
    /// Polled by the fast sweep until then (an upper bound)…
    hot_until: Option<Instant>,
    /// …and at least until then, even if it looks settled: the API's
    /// LatestOperationState can lag behind an accepted call.
    hot_at_least: Option<Instant>,
}

impl Member {
    fn owners(&self) -> impl Iterator<Item = &Owner> {
        std::iter::once(&self.owner).chain(&self.more)
    }

    fn add(&mut self, owner: Owner) {
        if !self.owners().any(|o| *o == owner) {
            self.more.push(owner);
        }
    }

    /// Removes `namespace/name`; false when no owner is left.
    fn remove(&mut self, namespace: &str, name: &str) -> bool {
        self.more.retain(|o| !o.is(namespace, name));
        if self.owner.is(namespace, name) {
            match self.more.pop() {
                Some(next) => self.owner = next,
                None => return false,
            }
        }
        true
    }
}

#[derive(Default)]
struct Fleet {
    /// Where the sweeps get their credentials (at sweep time, so temporary
    /// ones are refreshed). All providers of one fleet share its identity.
    provider: Option<CredentialProvider>,
    members: HashMap<Box<str>, Member>,
    cache: HashMap<Box<str>, Cached>,
    /// Creates decided and not yet answered (most of them waiting for the
    /// RunInstances quota).
    creating: usize,
    /// The API refused the sweep's keys (its members were woken once).
    keys_refused: bool,
}

/// Values per DescribeInstances filter (the API's limit): UID lookups are
/// batched five at a time.
const MAX_FILTER_VALUES: usize = 5;

/// Whom to wake when an instance changes: a resource by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct ObserverConfig {
    pub timing: Timing,
    /// How long a cache miss waits for others to share its call.
    pub window: Duration,
    /// How long a UID lookup waits for others while creates queue for the
    /// RunInstances quota: a lookup then costs no time to the create (which
    /// waits longer for its turn anyway), and a mass create shares each
    /// lookup call five ways instead of paying one call per resource.
    pub backlog_window: Duration,
    /// How long an instance stays hot after a change or an action.
    pub hot_for: Duration,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        Self {
            timing: Timing::default(),
            window: Duration::from_millis(25),
            backlog_window: Duration::from_millis(500),
            hot_for: Duration::from_secs(60),
        }
    }
}

/// An answer to one lookup: the instance, or `None` when the cloud does not
/// list it.
type Lookup = Result<Option<Arc<Observation>>, Arc<CloudError>>;

struct Inner {
    client: CvmClient,
    config: ObserverConfig,
    fleets: Mutex<HashMap<FleetKey, Fleet>>,
    /// Cache misses by instance id, up to 100 per DescribeInstances.
    by_id: Batcher<FleetKey, String, Option<Arc<Observation>>, Arc<CloudError>>,
    /// Create-guard lookups by UID tag, five per DescribeInstances.
    by_uid: Batcher<FleetKey, String, Option<Arc<Observation>>, Arc<CloudError>>,
    wake: mpsc::UnboundedSender<ResourceKey>,
    /// Resources waiting for the API to answer again (woken when it does).
    parked: Mutex<HashSet<ResourceKey>>,
}

/// Shared handle (cheap to clone).
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

impl Observer {
    /// The observer and the stream of resources whose instance changed.
    pub fn new(
        client: CvmClient,
        config: ObserverConfig,
    ) -> (Self, mpsc::UnboundedReceiver<ResourceKey>) {
        let (wake, rx) = mpsc::unbounded_channel();
        (
            Self {
                inner: Arc::new(Inner {
                    client,
                    config,
                    fleets: Mutex::new(HashMap::new()),
                    by_id: Batcher::new(MAX_DESCRIBE_IDS),
                    by_uid: Batcher::new(MAX_FILTER_VALUES),
                    wake,
                    parked: Mutex::new(HashSet::new()),
                }),
            },
            rx,
        )
    }

    pub fn client(&self) -> &CvmClient {
        &self.inner.client
    }

    /// Another way in to the wake-up stream (an account that changed wakes
    /// the resources that use it).
    pub fn waker(&self) -> mpsc::UnboundedSender<ResourceKey> {
        self.inner.wake.clone()
    }

    /// The polling periods the sweeps run at.
    pub fn timing(&self) -> Timing {
        self.inner.config.timing
    }

    fn with_fleets<T>(&self, f: impl FnOnce(&mut HashMap<FleetKey, Fleet>) -> T) -> T {
        f(&mut self.inner.fleets.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Includes `id` in the sweeps, waking the resource `namespace/name`
    /// when it changes.
    pub fn register(
        &self,
        key: &FleetKey,
        provider: &CredentialProvider,
        id: &str,
        namespace: &str,
        name: &str,
    ) {
        self.with_fleets(|fleets| {
            // Registered elsewhere before (its credentials changed, say a
            // key rotation): it leaves that fleet.
            for (k, f) in fleets.iter_mut() {
                if k != key && k.region == key.region {
                    remove_owner(f, id, namespace, name);
                }
            }
            let fleet = fleets.entry(key.clone()).or_default();
            if fleet.provider.is_none() {
                fleet.provider = Some(provider.clone());
            }
            let owner = Owner {
                namespace: namespace.into(),
                name: name.into(),
            };
            match fleet.members.get_mut(id) {
                Some(m) => m.add(owner),
                None => {
                    fleet.members.insert(
                        id.into(),
                        Member {
                            owner,
                            more: Vec::new(),
                            hot_until: None,
                            hot_at_least: None,
                        },
                    );
                }
            }
        });
    }

    /// Stops observing `id` for the resource `namespace/name`, in whichever
    /// fleet it was registered.
    pub fn unregister(&self, id: &str, namespace: &str, name: &str) {
        self.with_fleets(|fleets| {
            for f in fleets.values_mut() {
                remove_owner(f, id, namespace, name);
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
                m.hot_at_least = Some(now + cfg.timing.fast_interval * 5);
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
        let grace = self.inner.config.timing.fast_interval.mul_f64(1.5);
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
    ) -> Lookup {
        let hit = self.with_fleets(|fleets| {
            let c = fleets.get(key)?.cache.get(id)?;
            (c.stale_since.is_none() && c.at.elapsed() <= max_age).then(|| c.value.clone())
        });
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let (this, fleet, creds) = (self.clone(), key.clone(), creds.clone());
        let flush = move |ids: Vec<String>| async move {
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            let found = this.describe_into_cache(&fleet, &creds, &unique).await?;
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        };
        let window = self.inner.config.window;
        let answer = self.inner.by_id.submit(key, id.to_string(), window, flush);
        answer.await.unwrap_or_else(|| Err(dropped("observation")))
    }

    /// Describes `ids` (≤ 100 per call), refreshes the cache, and wakes the
    /// members whose instance changed. Returns what was found.
    async fn describe_into_cache(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<Observation>>, Arc<CloudError>> {
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
            fleet.keys_refused = false;
            for id in ids.iter().map(String::as_str) {
                let new = found.get(id).cloned();
                // A member whose view changed (or that we changed and that
                // now shows anything) is woken; a first sighting is not news.
                let changed = fleet
                    .cache
                    .get(id)
                    .is_some_and(|c| c.value != new || (c.stale_since.is_some() && new.is_none()));
                if let Some(m) = fleet.members.get_mut(id) {
                    if changed {
                        wake.extend(m.owners().map(|o| ResourceKey {
                            namespace: o.namespace.to_string(),
                            name: o.name.to_string(),
                        }));
                    }
                    let settling = new.as_ref().is_some_and(|o| o.is_settling());
                    if changed || settling {
                        m.hot_until = Some(now + self.inner.config.hot_for);
                    } else if m.hot_at_least.is_none_or(|t| t <= now) {
                        // Settled and quiet: back to the slow sweep.
                        m.hot_until = None;
                    }
                }
                match fleet.cache.get_mut(id) {
                    // Unchanged: keep the old allocation (less churn, less
                    // fragmentation at thousands of instances per sweep).
                    Some(c) if c.value == new => {
                        c.at = now;
                        c.stale_since = None;
                    }
                    _ => {
                        fleet.cache.insert(
                            id.into(),
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
        let work: Vec<(FleetKey, CredentialProvider, Vec<String>)> = self.with_fleets(|fleets| {
            fleets
                .iter_mut()
                .filter_map(|(key, f)| {
                    let provider = f.provider.clone()?;
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
                    (!ids.is_empty()).then(|| (key.clone(), provider, ids))
                })
                .collect()
        });
        for (key, provider, ids) in work {
            let creds = match provider.credentials().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(region = %key.region, source = %provider.describe(), error = %e, "sweep skipped: no credentials");
                    continue;
                }
            };
            for chunk in ids.chunks(MAX_DESCRIBE_IDS) {
                match self.describe_into_cache(&key, &creds, chunk).await {
                    // Logged once per outage, by the client.
                    Err(e) if e.class() == ErrorClass::Unreachable => {
                        tracing::debug!(region = %key.region, error = %e, "sweep not sent");
                    }
                    Err(e) if e.class() == ErrorClass::Auth => self.keys_refused(&key, &e),
                    Err(e) => tracing::warn!(region = %key.region, error = %e, "sweep failed"),
                    Ok(_) => {}
                }
            }
        }
    }

    /// Runs the fast and slow sweeps, and the outage watch, until the task
    /// is dropped.
    pub async fn run_sweeps(self) {
        tokio::join!(self.clone().run_outage_watch(), self.run_polls());
    }

    async fn run_polls(self) {
        let cfg = self.inner.config.clone();
        let Timing {
            poll_interval,
            fast_interval,
        } = cfg.timing;
        let mut fast = tokio::time::interval(fast_interval);
        fast.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut slow = tokio::time::interval(poll_interval);
        slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        slow.tick().await;
        loop {
            tokio::select! {
                _ = fast.tick() => self.sweep(true, fast_interval.mul_f64(0.8)).await,
                _ = slow.tick() => self.sweep(false, poll_interval.mul_f64(0.5)).await,
            }
        }
    }

    /// Instances per state over every fleet's cache (members only), for the
    /// `instances` gauge.
    pub fn state_counts(&self) -> HashMap<String, i64> {
        // Counted by borrowed name under the lock (every lookup waits for
        // it), owned only per state afterwards.
        self.with_fleets(|fleets| {
            let mut out: HashMap<&str, i64> = HashMap::new();
            for f in fleets.values() {
                for id in f.members.keys() {
                    let state = match f.cache.get(id).map(|c| &c.value) {
                        Some(Some(o)) => o.state.as_str(),
                        Some(None) => "NOT_FOUND",
                        None => continue,
                    };
                    *out.entry(state).or_default() += 1;
                }
            }
            out.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
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
    pub async fn find_by_uid(&self, key: &FleetKey, creds: &Credentials, uid: &str) -> Lookup {
        let cfg = &self.inner.config;
        let window = self.with_fleets(|fleets| {
            let creating = fleets.get(key).map_or(0, |f| f.creating);
            if creating >= MAX_FILTER_VALUES {
                cfg.backlog_window
            } else {
                cfg.window
            }
        });
        let (this, fleet, creds) = (self.clone(), key.clone(), creds.clone());
        let flush = move |uids: Vec<String>| async move {
            this.describe_by_uids(&fleet, &creds, uids).await
        };
        let answer = self
            .inner
            .by_uid
            .submit(key, uid.to_string(), window, flush);
        answer.await.unwrap_or_else(|| Err(dropped("UID lookup")))
    }

    /// One DescribeInstances filtered by the UID tag; the answer per UID, in
    /// order. What is found enters the cache.
    async fn describe_by_uids(
        &self,
        key: &FleetKey,
        creds: &Credentials,
        uids: Vec<String>,
    ) -> Result<Vec<Option<Arc<Observation>>>, Arc<CloudError>> {
        let tag = crate::cloud::model::Filter::new(format!("tag:{}", crate::api::UID_TAG), &uids);
        let found = self
            .inner
            .client
            .describe_instances_filtered(creds, &key.region, vec![tag])
            .await?;
        // Per UID, prefer a live instance over a terminating or failed one.
        let dead = |o: &Observation| {
            matches!(
                o.state,
                InstanceState::Terminating | InstanceState::LaunchFailed
            )
        };
        let mut best: HashMap<String, Arc<Observation>> = HashMap::new();
        for o in found.iter().map(Observation::from_instance) {
            let Some(uid) = o.uid_tag.clone() else {
                continue;
            };
            match best.get(&uid) {
                Some(cur) if !dead(cur) || dead(&o) => {}
                _ => {
                    best.insert(uid, Arc::new(o));
                }
            }
        }
        let now = Instant::now();
        self.with_fleets(|fleets| {
            let fleet = fleets.entry(key.clone()).or_default();
            for o in best.values() {
                let cached = Cached {
                    at: now,
                    value: Some(o.clone()),
                    stale_since: None,
                };
                fleet.cache.insert(o.id.as_str().into(), cached);
            }
        });
        Ok(uids.iter().map(|u| best.get(u).cloned()).collect())
    }
}

/// Drops `namespace/name` from the owners of `id` in `fleet`; the id leaves
/// the sweeps (and the cache) with its last owner.
fn remove_owner(fleet: &mut Fleet, id: &str, namespace: &str, name: &str) {
    let Some(m) = fleet.members.get_mut(id) else {
        return;
    };
    if !m.remove(namespace, name) {
        fleet.members.remove(id);
        fleet.cache.remove(id);
    }
}

fn dropped(what: &str) -> Arc<CloudError> {
    Arc::new(CloudError::Network {
        action: "DescribeInstances".into(),
        connect: false,
        message: format!("{what} batch dropped"),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ClientConfig, Credentials};

    fn owners(o: &Observer, key: &FleetKey, id: &str) -> Vec<String> {
        o.with_fleets(|f| {
            f.get(key)
                .and_then(|f| f.members.get(id))
                .map(|m| {
                    m.owners()
                        .map(|o| format!("{}/{}", o.namespace, o.name))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    #[test]
    fn every_owner_of_an_id_is_tracked_and_one_leaving_keeps_it_for_the_others() {
        let client = CvmClient::new(ClientConfig::default()).unwrap();
        let (o, _wake) = Observer::new(client, ObserverConfig::default());
        let keys = Credentials::new("AKIDvictim000000", "key", None).unwrap();
        let provider = CredentialProvider::fixed(keys);
        let key = FleetKey::new("ap-guangzhou", provider.identity());
        o.register(&key, &provider, "ins-victim01", "team-a", "db");
        o.register(&key, &provider, "ins-victim01", "team-b", "grab");
        o.register(&key, &provider, "ins-victim01", "team-b", "grab");
        assert_eq!(
            owners(&o, &key, "ins-victim01"),
            ["team-a/db", "team-b/grab"]
        );
        // The second one leaving does not drop the id…
        o.unregister("ins-victim01", "team-b", "grab");
        assert_eq!(owners(&o, &key, "ins-victim01"), ["team-a/db"]);
        // …nor does the first one leaving, when another remains.
        o.register(&key, &provider, "ins-victim01", "team-b", "grab");
        o.unregister("ins-victim01", "team-a", "db");
        assert_eq!(owners(&o, &key, "ins-victim01"), ["team-b/grab"]);
        o.unregister("ins-victim01", "team-b", "grab");
        assert!(owners(&o, &key, "ins-victim01").is_empty());

        // New credentials (a rotated key): the owner moves to their fleet.
        o.register(&key, &provider, "ins-web00001", "team-a", "web");
        let rotated = CredentialProvider::fixed(
            Credentials::new("AKIDvictim000000", "rotated", None).unwrap(),
        );
        let new_key = FleetKey::new("ap-guangzhou", rotated.identity());
        assert_ne!(new_key, key, "another key is another fleet");
        o.register(&new_key, &rotated, "ins-web00001", "team-a", "web");
        assert!(owners(&o, &key, "ins-web00001").is_empty());
        assert_eq!(owners(&o, &new_key, "ins-web00001"), ["team-a/web"]);
    }
}
