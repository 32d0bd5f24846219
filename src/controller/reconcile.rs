//! One reconcile, the same pass for apply and delete:
//! access (account → credentials) → observe → [`plan`](super::plan::plan) → at most one action →
//! a [`Report`] → [`Reconciling::finish`], the one place that writes status
//! (server-side apply, only when it changed), publishes events, counts
//! errors and decides when to look again.
//!
//! The finalizer is owned here: added before the first cloud call, removed
//! only when the deletion is complete. The only other status writes are
//! intents: a create's, recorded before RunInstances (from then on a crash is
//! recovered by the ClientToken and the UID tag, and a deletion knows that a
//! create may be in flight), and a restart's, before RebootInstances (a crash
//! is recovered by the instance's latest operation: see `plan::restart`).

use super::accounts::{Access, Accounts};
use super::act::Actor;
use super::applied::Fingerprints;
use super::cache::{CachedInstance, Fingerprint, OwnWrites};
use super::credentials::CredentialStore;
use super::events::Publisher;
use super::metrics::Metrics;
use super::observation::{Observation, Observed, Timing};
use super::observe::{FleetKey, Observer};
use super::ownership::{self, AccountChoice, Refusal};
use super::plan::{self, Blocked, CREATE, Mode};
use super::price::Pricer;
use super::report::{self, Report, Requeue, StatusWrite, event_action};
use super::status::{self, SYNCED};
use crate::api::price::PriceStatus;
use crate::api::{self, AccountRecord, AppliedValues, CvmInstance, LastOperation, OperationState};
use crate::cloud::{CloudError, Credentials, Identity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{Instrument, field};

mod calls;
pub(crate) mod claims;
mod decide;
mod surroundings;

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// How long a deleting resource whose credentials are gone waits before
    /// its finalizer is released anyway (the instance is then orphaned, and
    /// an event says so).
    pub orphan_grace: Duration,
    /// How long after a create was sent a deletion keeps looking for the
    /// instance by its UID tag before concluding none was made.
    pub create_grace: Duration,
    /// The currency `status.price` names (the API's answers do not).
    pub price_currency: String,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            orphan_grace: Duration::from_secs(300),
            create_grace: Duration::from_secs(60),
            price_currency: super::price::DEFAULT_CURRENCY.into(),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub observer: Observer,
    pub actor: Actor,
    /// Secrets (launch passwords, user data, keys).
    pub credentials: Arc<CredentialStore>,
    /// Which account each resource may use, and its credentials.
    pub accounts: Arc<Accounts>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub config: ReconcileConfig,
    /// Fingerprints of the write-only values (memoised).
    pub fingerprints: Fingerprints,
    /// Price inquiries (before a create, a type or bandwidth change).
    pub pricer: Pricer,
    /// The observer's polling periods, which reconciles rely on.
    timing: Timing,
    failures: Mutex<HashMap<String, u32>>,
    own_writes: OwnWrites,
}

impl Context {
    pub fn new(
        client: kube::Client,
        observer: Observer,
        credentials: Arc<CredentialStore>,
        accounts: Arc<Accounts>,
        events: Publisher,
        metrics: Arc<Metrics>,
        config: ReconcileConfig,
    ) -> Self {
        Self {
            client,
            timing: observer.timing(),
            actor: Actor::new(observer.client().clone()),
            pricer: Pricer::new(observer.client().clone(), config.price_currency.clone()),
            observer,
            credentials,
            accounts,
            events,
            metrics,
            config,
            fingerprints: Fingerprints::new(),
            failures: Mutex::new(HashMap::new()),
            own_writes: OwnWrites::new(STALE_CACHE_WAIT),
        }
    }

    /// Next backoff for this object (and count the failure).
    fn backoff(&self, uid: &str, base: Duration) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(uid.to_string()).or_insert(0);
        let exp = base
            .saturating_mul(1u32 << (*n).min(10))
            .min(Duration::from_secs(300));
        *n += 1;
        // Jitter in [0.75, 1.25) so failures of many objects spread out.
        exp.mul_f64(0.75 + fastrand::f64() * 0.5)
    }

    pub(in crate::controller) fn reset_backoff(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// The delay a requeue asks for (`None`: wait for a change).
    pub(in crate::controller) fn delay(&self, uid: &str, requeue: Requeue) -> Option<Duration> {
        match requeue {
            Requeue::AwaitChange => None,
            Requeue::After(d) => Some(d),
            Requeue::Around(d) => Some(d.mul_f64(0.8 + fastrand::f64() * 0.4)),
            Requeue::Backoff { base, at_most } => {
                let d = self.backoff(uid, base);
                Some(at_most.map_or(d, |m| d.min(m)))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the resource has no {0}")]
    Incomplete(&'static str),
    #[error("cannot decode the cached resource: {0}")]
    Decode(#[source] serde_json::Error),
}

/// Now, in whole seconds: what the apiserver stores for metav1.Time, so a
/// status we wrote hashes the same when it comes back.
pub(crate) fn now() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

pub(in crate::controller) fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Entry point for the controller.
pub async fn reconcile(cached: Arc<CachedInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (obj, fingerprint) = cached.expand().map_err(Error::Decode)?;
    let span = tracing::info_span!(
        "reconcile",
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        instance_id = field::Empty,
        request_id = field::Empty,
    );
    let started = Instant::now();
    let result = async { Reconciling::new(&ctx, obj, fingerprint)?.run().await }
        .instrument(span)
        .await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconciled(if result.is_ok() { "ok" } else { "error" });
    if result.is_err() {
        ctx.metrics.error(None);
    }
    result
}

/// The controller's error policy: Kubernetes API failures back off per object.
pub fn error_policy(obj: Arc<CachedInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&obj.uid().unwrap_or_default(), Duration::from_millis(500));
    tracing::warn!(name = %obj.name_any(), %error, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Adds or removes our finalizer on `obj`; the resourceVersion makes it a
/// compare-and-swap, so a concurrent writer's finalizers are never lost.
/// False when our copy was out of date (409): the watch brings the fresh one.
pub(in crate::controller) async fn patch_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    present: bool,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers: Vec<&str> = obj
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != api::FINALIZER)
        .collect();
    if present {
        finalizers.push(api::FINALIZER);
    }
    let rv = obj.resource_version();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": rv}});
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        // Already gone: nothing left to release.
        Err(kube::Error::Api(s)) if !present && s.code == 404 => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// How long a reconcile waits for the watch to deliver our own status write.
const STALE_CACHE_WAIT: Duration = Duration::from_secs(5);
/// Backstop for a reconcile that found its copy out of date: the watch event
/// carrying the fresh copy normally wakes the resource before.
const STALE_COPY_RETRY: Duration = Duration::from_millis(500);

/// One reconcile of one resource.
struct Reconciling<'a> {
    ctx: &'a Context,
    obj: CvmInstance,
    /// The fingerprint of the status the apiserver holds, as far as we know.
    fingerprint: Option<Fingerprint>,
    api: Api<CvmInstance>,
    uid: String,
    /// The account to record in status (when none is yet): set once this
    /// pass has the instance it works on in hand — created or found.
    recording: Option<AccountRecord>,
    /// Whose keys this pass calls the cloud with.
    used: Option<Identity>,
}

impl<'a> Reconciling<'a> {
    fn new(
        ctx: &'a Context,
        obj: CvmInstance,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Self, Error> {
        let ns = obj.namespace().ok_or(Error::Incomplete("namespace"))?;
        let uid = obj.uid().ok_or(Error::Incomplete("uid"))?;
        Ok(Self {
            api: Api::namespaced(ctx.client.clone(), &ns),
            ctx,
            obj,
            fingerprint,
            uid,
            recording: None,
            used: None,
        })
    }

    async fn run(self) -> Result<Action, Error> {
        if self
            .ctx
            .own_writes
            .cache_is_behind(&self.uid, self.fingerprint.as_ref())
        {
            return Ok(Action::requeue(STALE_COPY_RETRY));
        }
        let has_finalizer = self.obj.finalizers().iter().any(|f| f == api::FINALIZER);
        let mode = match self.obj.meta().deletion_timestamp {
            Some(_) => Mode::Delete,
            None => Mode::Apply,
        };
        match (mode, has_finalizer) {
            (Mode::Delete, false) => return Ok(Action::await_change()),
            (Mode::Apply, false) if !self.set_finalizer(true).await? => {
                return Ok(self.requeue(Requeue::backoff(STALE_COPY_RETRY)));
            }
            _ => {}
        }
        self.pass(mode).await
    }

    /// credentials → observe → plan → act, each step ending the pass with a
    /// report when it cannot go on.
    async fn pass(mut self, mode: Mode) -> Result<Action, Error> {
        if let Some(why) = plan::release_without_cloud(&self.obj.spec, mode) {
            // Retain and ObserveOnly never touch the cloud (and need no
            // credentials).
            self.forget_instance();
            let report = Report::released(why, self.obj.known_instance_id());
            return self.finish(report).await;
        }
        let access = match self.access(mode).await {
            Ok(a) => self.unrefused(a).await,
            Err(report) => return self.finish(report).await,
        };
        let creds = match access.provider.credentials().await {
            Ok(c) => c,
            Err(e) => {
                let e = super::accounts::AccessError::Source {
                    what: access.record.to_string(),
                    error: Box::new(e),
                };
                let report = self.access_failed(mode, &e);
                return self.finish(report).await;
            }
        };
        let key = FleetKey::new(&self.obj.spec.region, access.provider.identity());
        self.used = Some(access.provider.identity().clone());
        if let Some(id) = self.obj.known_instance_id()
            && self.ctx.observer.awaiting_refresh(&key, id)
        {
            // Just acted, and no sweep has looked since: nothing to learn
            // yet. The sweep wakes this resource when the instance changes.
            return Ok(self.requeue(Requeue::Around(self.ctx.timing.fast_interval)));
        }
        let observed = match self.observe(&creds, &key, mode).await {
            Ok(o) => o,
            Err(report) => return self.finish(report).await,
        };
        let observed = match self.own(&access, &creds, &key, mode, observed).await {
            Ok(o) => o,
            Err(report) => return self.finish(report).await,
        };
        let report = self.decide(&access, &creds, &key, mode, observed).await?;
        self.finish(report).await
    }

    /// The account this resource uses and its credentials. The account the
    /// instance was created or adopted in is recorded: another one is
    /// refused (also for a deletion, which waits, since "not found" in
    /// another account says nothing about the instance). A deletion whose
    /// Secret or account is gone (a namespace deletion often removes the
    /// Secret first) uses the access that last worked; with none, it is
    /// released after the orphan grace.
    async fn access(&self, mode: Mode) -> Result<Access, Report> {
        let choice = AccountChoice::of(&self.obj.spec);
        let recorded = self.obj.status.as_ref().and_then(|s| s.account.as_ref());
        if let Some(r) = ownership::account_change(recorded, &choice, None) {
            return Err(self.account_refused(mode, r));
        }
        let e = match self.ctx.accounts.resolve(&self.obj, &choice).await {
            Ok(a) => {
                let uin = Some(a.record.uin.as_str());
                if let Some(r) = ownership::account_change(recorded, &choice, uin) {
                    return Err(self.account_refused(mode, r));
                }
                self.ctx.accounts.remember(&self.uid, &a);
                return Ok(a);
            }
            Err(e) => e,
        };
        if mode == Mode::Apply {
            return Err(self.access_failed(mode, &e));
        }
        if e.allows_fallback()
            && let Some(a) = self.ctx.accounts.remembered(&self.uid)
        {
            tracing::info!(error = %e, "credentials unavailable; using the last ones that worked");
            return Ok(a);
        }
        let (grace, age) = (self.ctx.config.orphan_grace, self.deletion_age());
        if age >= grace {
            let id = self.obj.known_instance_id();
            return Err(Report::orphaned(id, &e.to_string(), grace));
        }
        // Retried with backoff, but no later than when the grace ends.
        Err(Report {
            requeue: Requeue::Backoff {
                base: report::CREDENTIALS_RETRY,
                at_most: Some(grace - age),
            },
            ..self.access_failed(mode, &e)
        })
    }

    fn access_failed(&self, mode: Mode, e: &super::accounts::AccessError) -> Report {
        let action = event_action::RESOLVE_CREDENTIALS;
        Report::credentials_failed(mode, e.reason(), e.to_string(), action)
    }

    /// A refusal: nothing is done, and nothing is released.
    fn account_refused(&self, mode: Mode, r: Refusal) -> Report {
        let action = event_action::RESOLVE_CREDENTIALS;
        Report::credentials_failed(mode, r.reason, r.message, action)
    }

    /// Finds and observes this resource's instance: by known id (status or
    /// `spec.instanceId`), else by the UID tag (the create guard).
    /// (Whether it is this resource's is decided next, in `claims.rs`,
    /// before anything of it is used or reported.)
    async fn observe(
        &self,
        creds: &Credentials,
        key: &FleetKey,
        mode: Mode,
    ) -> Result<Observed, Report> {
        let observer = &self.ctx.observer;
        let known = self.obj.known_instance_id();
        let found = match known {
            Some(id) => observer.observe(key, creds, id, self.max_age(mode)).await,
            None if self.look_up_by_tag(mode) => self.find_own(creds, key).await,
            None => Ok(None),
        };
        match found {
            Ok(found) => Ok(Observed::from_lookup(known, found)),
            Err(e) => Err(self.unobservable(mode, e)),
        }
    }

    /// The instance carrying this resource's UID tag (the create guard).
    async fn find_own(
        &self,
        creds: &Credentials,
        key: &FleetKey,
    ) -> Result<Option<Arc<Observation>>, Arc<CloudError>> {
        let found = self.ctx.observer.find_by_uid(key, creds, &self.uid).await;
        if let Ok(Some(o)) = &found {
            tracing::info!(instance_id = %o.id, "found the instance by its UID tag");
        }
        found
    }

    fn unobservable(&self, mode: Mode, e: Arc<CloudError>) -> Report {
        Report::unobservable(mode, Arc::unwrap_or_clone(e), self.ctx.timing)
    }

    /// How old a cached view of the instance may be. A settled resource
    /// relies on the sweep for drift, so its cached view is good for a whole
    /// poll interval — also when its spec just changed, which lets the first
    /// cloud call follow an edit within milliseconds (a stale view costs at
    /// most one refused call, classified Busy and re-observed). Anything in
    /// motion, and any deletion, wants a fresh look.
    fn max_age(&self, mode: Mode) -> Duration {
        let t = self.ctx.timing;
        match mode {
            // The slow sweep refreshes every member once per poll interval…
            Mode::Apply if self.settled() => t.poll_interval * 2,
            // …the fast sweep moving ones every fast interval.
            Mode::Apply => t.fast_interval * 2,
            Mode::Delete => t.fast_interval,
        }
    }

    /// Whether a resource without an instance id looks one up by its UID tag.
    fn look_up_by_tag(&self, mode: Mode) -> bool {
        match mode {
            // Always (the create guard), unless a create failed permanently,
            // which made nothing.
            Mode::Apply => self.blocked() != Some(Blocked::Create),
            // Only if a create was ever sent.
            Mode::Delete => self.last_operation().is_some_and(|l| l.action == CREATE),
        }
    }

    /// Deleting, nothing found, and a create was sent less than the create
    /// grace ago: it may not be visible yet.
    fn create_in_flight(&self, observed: &Observed) -> bool {
        if *observed != Observed::NotCreated || !self.look_up_by_tag(Mode::Delete) {
            return false;
        }
        let pending_since = self
            .last_operation()
            .filter(|l| l.state == OperationState::Pending)
            .and_then(|l| l.time.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        pending_since.is_some_and(|t| {
            let age: Duration = jiff::Timestamp::now()
                .duration_since(t)
                .try_into()
                .unwrap_or_default();
            age < self.ctx.config.create_grace
        })
    }

    /// Carries out a report: counts the error (or clears the backoff),
    /// publishes the events, writes the status, releases the finalizer when
    /// the deletion is complete, and says when to look again.
    async fn finish(mut self, report: Report) -> Result<Action, Error> {
        if let Some(retry) = self.keys_rotated_under(&report).await? {
            return Ok(retry);
        }
        match report.error {
            Some(class) => self.ctx.metrics.error(Some(class)),
            None => self.ctx.reset_backoff(&self.uid),
        }
        self.park_if_waiting(&report);
        let delay = self.ctx.delay(&self.uid, report.requeue);
        // Events before status: whoever sees the new status (a person, a
        // test, a dashboard) finds the events that explain it already there.
        let regarding = self.obj.object_ref(&());
        for event in &report.events {
            self.ctx.events.publish(regarding.clone(), event).await;
        }
        if let Some(write) = report.status_write(&self.obj, delay, &now()) {
            self.write(write).await?;
        }
        if report.release {
            return self.release().await;
        }
        Ok(delay.map_or_else(Action::await_change, Action::requeue))
    }

    fn requeue(&self, requeue: Requeue) -> Action {
        let delay = self.ctx.delay(&self.uid, requeue);
        delay.map_or_else(Action::await_change, Action::requeue)
    }

    /// Writes the status a report carries, before a call (an intent), and
    /// keeps it as this pass's view of the status.
    async fn write_report_status(&mut self, report: &Report) -> Result<(), Error> {
        let Some(write) = report.status_write(&self.obj, None, &now()) else {
            return Ok(());
        };
        let written = match &write {
            StatusWrite::Apply(status) => Some((**status).clone()),
            StatusWrite::Conditions(_) => None,
        };
        self.write(write).await?;
        if let Some(status) = written {
            self.obj.status = Some(status);
        }
        Ok(())
    }

    /// Records a create's intent before RunInstances is sent (with the
    /// price it was quoted, if it was asked now).
    async fn write_intent(
        &mut self,
        pending: LastOperation,
        applied: Option<AppliedValues>,
        price: Option<PriceStatus>,
    ) -> Result<(), Error> {
        let mut status = report::intent_status(&self.obj, pending, applied, price, &now());
        status.account = status.account.or_else(|| self.recording.clone());
        self.write(StatusWrite::Apply(Box::new(status.clone())))
            .await?;
        self.obj.status = Some(status);
        Ok(())
    }

    /// The one status writer: the whole status by server-side apply (only
    /// when its fingerprint changed), or the conditions by merge patch.
    async fn write(&mut self, write: StatusWrite) -> Result<(), Error> {
        let (params, patch) = match write {
            StatusWrite::Apply(mut status) => {
                if status.account.is_none() {
                    status.account = self.recording.clone();
                }
                if self.fingerprint.as_ref() == Some(&Fingerprint::of(&status)) {
                    return Ok(());
                }
                let params = PatchParams::apply(api::FIELD_MANAGER).force();
                let body = json!({
                    "apiVersion": "cvm.tencentcloud.io/v1alpha1",
                    "kind": "CvmInstance",
                    "status": status,
                });
                (params, Patch::Apply(body))
            }
            StatusWrite::Conditions(conditions) => {
                let params = PatchParams {
                    field_manager: Some(api::FIELD_MANAGER.into()),
                    ..Default::default()
                };
                let generation = self.obj.metadata.generation;
                let body =
                    json!({"status": {"conditions": conditions, "observedGeneration": generation}});
                (params, Patch::Merge(body))
            }
        };
        match self
            .api
            .patch_status(&self.obj.name_any(), &params, &patch)
            .await
        {
            Ok(written) => {
                if let Some(status) = written.status.as_ref() {
                    self.ctx.own_writes.wrote(&self.uid, status);
                    self.fingerprint = Some(Fingerprint::of(status));
                }
                Ok(())
            }
            // Deleted meanwhile: nothing left to report on.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The deletion is complete: forget the resource and drop our finalizer.
    async fn release(self) -> Result<Action, Error> {
        self.ctx.accounts.forget(&self.uid);
        self.ctx.own_writes.forget(&self.uid);
        if !self.set_finalizer(false).await? {
            return Ok(self.requeue(Requeue::backoff(STALE_COPY_RETRY)));
        }
        Ok(Action::await_change())
    }

    /// See [`patch_finalizer`].
    async fn set_finalizer(&self, present: bool) -> Result<bool, Error> {
        Ok(patch_finalizer(&self.api, &self.obj, present).await?)
    }

    /// Stops observing the resource's instance.
    fn forget_instance(&self) {
        if let Some(id) = self.obj.known_instance_id() {
            let ns = self.obj.namespace().unwrap_or_default();
            self.ctx.observer.unregister(id, &ns, &self.obj.name_any());
        }
    }

    fn last_operation(&self) -> Option<&LastOperation> {
        self.obj.status.as_ref()?.last_operation.as_ref()
    }

    fn blocked(&self) -> Option<Blocked> {
        Blocked::from_last(self.last_operation()?, self.obj.metadata.generation)
    }

    /// `Synced` was true when last written.
    fn settled(&self) -> bool {
        status::condition_of(self.obj.status.as_ref(), SYNCED).is_some_and(|c| c.status == "True")
    }

    /// Settled, for the current generation: differences are drift.
    fn in_sync(&self) -> bool {
        let generation = self.obj.metadata.generation;
        self.settled()
            && self
                .obj
                .status
                .as_ref()
                .is_some_and(|s| s.observed_generation == generation)
    }

    fn deletion_age(&self) -> Duration {
        self.obj
            .meta()
            .deletion_timestamp
            .as_ref()
            .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok())
            .unwrap_or_default()
    }
}
