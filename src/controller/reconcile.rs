//! One reconcile: observe → plan → act → report.
//!
//! The finalizer is owned here (added before the first cloud call, removed
//! only when cleanup is complete); status is written once per reconcile by
//! server-side apply, and only when it changed; the error class of a cloud
//! failure decides the retry policy, with a per-object exponential backoff.

use super::act::{self, Acted};
use super::cache::{CachedInstance, OwnWrites};
use super::credentials::CredentialStore;
use super::events::{EventType, Publisher};
use super::metrics::Metrics;
use super::observe::{FleetKey, Observation, Observer};
use super::plan::{self, CloudAction, Observed, Plan, PlanInput, Step, Wait};
use super::status::{self, Outcome, SYNCED};
use crate::api::{
    self, CvmInstance, CvmInstanceStatus, DeletionPolicy, LastOperation, ManagementPolicy, op_state,
};
use crate::cloud::{CloudError, Credentials, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{Instrument, field};

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Steady-state drift detection period (the slow sweep).
    pub poll_interval: Duration,
    /// Polling while an instance changes.
    pub fast_interval: Duration,
    /// How long a deleting resource whose credentials are gone waits before
    /// its finalizer is released anyway (the instance is then orphaned, and
    /// an event says so).
    pub orphan_grace: Duration,
    /// How long after a create was sent a deletion keeps looking for the
    /// instance by its UID tag before concluding none was made.
    pub create_grace: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(300),
            fast_interval: Duration::from_secs(2),
            orphan_grace: Duration::from_secs(300),
            create_grace: Duration::from_secs(60),
        }
    }
}

pub struct Context {
    pub client: kube::Client,
    pub observer: Observer,
    pub credentials: CredentialStore,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub config: ReconcileConfig,
    failures: Mutex<HashMap<String, u32>>,
    own_writes: OwnWrites,
}

impl Context {
    pub fn new(
        client: kube::Client,
        observer: Observer,
        credentials: CredentialStore,
        events: Publisher,
        metrics: Arc<Metrics>,
        config: ReconcileConfig,
    ) -> Self {
        Self {
            client,
            observer,
            credentials,
            events,
            metrics,
            config,
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

    fn reset_backoff(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    fn jittered(&self, d: Duration) -> Duration {
        d.mul_f64(0.8 + fastrand::f64() * 0.4)
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
fn now() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Entry point for the controller.
pub async fn reconcile(cached: Arc<CachedInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let obj = cached.expand().map_err(Error::Decode)?;
    let span = tracing::info_span!(
        "reconcile",
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        instance_id = field::Empty,
        request_id = field::Empty,
    );
    let started = Instant::now();
    let result = reconcile_inner(&obj, &ctx).instrument(span).await;
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

/// How long a reconcile waits for the watch to deliver our own status write.
const STALE_CACHE_WAIT: Duration = Duration::from_secs(5);
/// Backstop for a reconcile that found its copy out of date: the watch event
/// carrying the fresh copy normally wakes the resource before.
const STALE_COPY_RETRY: Duration = Duration::from_millis(500);

async fn reconcile_inner(obj: &CvmInstance, ctx: &Context) -> Result<Action, Error> {
    if ctx.own_writes.cache_is_behind(
        &obj.uid().unwrap_or_default(),
        status::current_status_hash(obj).as_deref(),
    ) {
        return Ok(Action::requeue(STALE_COPY_RETRY));
    }
    let ns = obj.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<CvmInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = obj.finalizers().iter().any(|f| f == api::FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return cleanup(obj, ctx, &api).await;
    }
    if !has_finalizer && !set_finalizer(&api, obj, true).await? {
        let uid = obj.uid().unwrap_or_default();
        return Ok(Action::requeue(ctx.backoff(&uid, STALE_COPY_RETRY)));
    }
    apply(obj, ctx, &api).await
}

/// Adds or removes our finalizer; the resourceVersion makes it a
/// compare-and-swap, so a concurrent writer's finalizers are never lost.
/// False when our copy was out of date (409): the watch brings the fresh one.
async fn set_finalizer(
    api: &Api<CvmInstance>,
    obj: &CvmInstance,
    present: bool,
) -> Result<bool, Error> {
    let mut finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != api::FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(api::FINALIZER.to_string());
    }
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
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
        Err(e) => Err(e.into()),
    }
}

async fn write_status(
    ctx: &Context,
    api: &Api<CvmInstance>,
    obj: &CvmInstance,
    status: &CvmInstanceStatus,
) -> Result<(), Error> {
    if status::current_status_hash(obj).as_deref() == Some(status::status_hash(status).as_str()) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1",
        "kind": "CvmInstance",
        "status": status,
    });
    let params = PatchParams::apply(api::FIELD_MANAGER).force();
    patch_status(ctx, api, obj, &params, &Patch::Apply(&patch)).await
}

/// Writes status; a resource deleted meanwhile has nothing to report on.
async fn patch_status<P: serde::Serialize + std::fmt::Debug>(
    ctx: &Context,
    api: &Api<CvmInstance>,
    obj: &CvmInstance,
    params: &PatchParams,
    patch: &Patch<P>,
) -> Result<(), Error> {
    match api.patch_status(&obj.name_any(), params, patch).await {
        Ok(written) => {
            if let (Some(uid), Some(status)) = (written.uid(), written.status.as_ref()) {
                ctx.own_writes.wrote(&uid, status);
            }
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records progress of a create right away (the intent before the call, the
/// instance id after it), before any further cloud call: the create guard
/// depends on it surviving a crash. Returns the object as now stored.
async fn write_progress(
    ctx: &Context,
    api: &Api<CvmInstance>,
    obj: &CvmInstance,
    instance_id: Option<&str>,
    last: &LastOperation,
    outcome: &Outcome<'_>,
) -> Result<CvmInstance, Error> {
    let mut status = status::build(
        obj,
        &Observed::NotCreated,
        false,
        outcome,
        Some(last.clone()),
        &now(),
    );
    if let Some(id) = instance_id {
        status.instance_id = Some(id.to_string());
    }
    write_status(ctx, api, obj, &status).await?;
    let mut updated = obj.clone();
    updated.status = Some(status);
    updated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .remove(status::STATUS_HASH);
    Ok(updated)
}

async fn publish(
    ctx: &Context,
    obj: &CvmInstance,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    ctx.events
        .publish(obj.object_ref(&()), type_, reason, action, &note)
        .await;
}

/// The Warning event for a failed cloud call: code, message and RequestId.
async fn publish_cloud_error(ctx: &Context, obj: &CvmInstance, action: &str, error: &CloudError) {
    let note = format!(
        "{action} failed: {}: {} (RequestId: {})",
        error.code(),
        error.message(),
        error.request_id().unwrap_or("-")
    );
    publish(ctx, obj, EventType::Warning, "CloudAPIError", action, note).await;
}

fn event_reason(action: &CloudAction) -> &'static str {
    match action {
        CloudAction::Create => "Creating",
        CloudAction::Start => "Starting",
        CloudAction::Stop {
            for_resize: true, ..
        } => "StoppingForResize",
        CloudAction::Stop { .. } => "Stopping",
        CloudAction::ResetType { .. } => "Resizing",
        CloudAction::SetBandwidth { .. } => "UpdatingBandwidth",
        CloudAction::Rename { .. } => "Renaming",
        CloudAction::SetSecurityGroups { .. } => "UpdatingSecurityGroups",
        CloudAction::SetTerminationProtection { .. } => "UpdatingTerminationProtection",
        CloudAction::Terminate => "Terminating",
    }
}

/// The retry delay a cloud error earns; `None` for permanent ones.
fn retry_delay(ctx: &Context, uid: &str, error: &CloudError) -> Option<Duration> {
    let base = match error.class() {
        ErrorClass::Permanent => return None,
        ErrorClass::Busy | ErrorClass::NotFound => Duration::from_secs(2),
        ErrorClass::Throttled | ErrorClass::Transient => Duration::from_secs(5),
        ErrorClass::Auth => Duration::from_secs(30),
    };
    Some(ctx.backoff(uid, base))
}

struct Observing {
    key: FleetKey,
    observation: Option<Arc<Observation>>,
    missing_id: Option<String>,
}

impl Observing {
    fn observed(&self) -> Observed<'_> {
        match (&self.observation, &self.missing_id) {
            (Some(o), _) => Observed::Present(o),
            (None, Some(id)) => Observed::Missing { instance_id: id },
            (None, None) => Observed::NotCreated,
        }
    }
}

/// Finds and observes this resource's instance: by known id (status or
/// `spec.instanceId`), else by the UID tag (the create guard).
async fn observe(
    obj: &CvmInstance,
    ctx: &Context,
    creds: &Credentials,
    max_age: Duration,
    look_up_by_tag: bool,
) -> Result<Observing, Arc<CloudError>> {
    let key = FleetKey::new(&obj.spec.region, creds);
    let known = obj
        .spec
        .instance_id
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.instance_id.clone()));
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    match known {
        Some(id) => {
            ctx.observer.register(&key, creds, &id, &ns, &name);
            let observation = ctx.observer.observe(&key, creds, &id, max_age).await?;
            let missing_id = observation.is_none().then_some(id);
            Ok(Observing {
                key,
                observation,
                missing_id,
            })
        }
        None if look_up_by_tag => {
            let uid = obj.uid().unwrap_or_default();
            let found = ctx
                .observer
                .find_by_uid(&key, creds, &uid)
                .await
                .map_err(Arc::new)?;
            if let Some(o) = &found {
                tracing::info!(instance_id = %o.id, "found the instance by its UID tag; adopting it");
                ctx.observer.register(&key, creds, &o.id, &ns, &name);
            }
            Ok(Observing {
                key,
                observation: found,
                missing_id: None,
            })
        }
        None => Ok(Observing {
            key,
            observation: None,
            missing_id: None,
        }),
    }
}

/// Reports a failure that happened before anything could be observed: only
/// the conditions change (a merge patch, so the last observed fields stay).
async fn report_unobserved(
    ctx: &Context,
    api: &Api<CvmInstance>,
    obj: &CvmInstance,
    _deleting: bool,
    outcome: &Outcome<'_>,
) -> Result<(), Error> {
    let conditions = status::unobserved_conditions(obj, outcome, &now());
    // The cache keeps each condition's type, status and reason: if those are
    // what we would write, a retry of the same failure writes nothing.
    let unchanged = obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == obj.metadata.generation
            && s.conditions.len() == conditions.len()
            && s.conditions
                .iter()
                .zip(&conditions)
                .all(|(a, b)| a.type_ == b.type_ && a.status == b.status && a.reason == b.reason)
    });
    if unchanged {
        return Ok(());
    }
    let patch = json!({"status": {"conditions": conditions, "observedGeneration": obj.metadata.generation}});
    let params = PatchParams {
        field_manager: Some(api::FIELD_MANAGER.into()),
        ..Default::default()
    };
    patch_status(ctx, api, obj, &params, &Patch::Merge(&patch)).await
}

async fn apply(obj: &CvmInstance, ctx: &Context, api: &Api<CvmInstance>) -> Result<Action, Error> {
    let uid = obj.uid().ok_or(Error::Incomplete("uid"))?;
    let generation = obj.metadata.generation;
    let prev = obj.status.as_ref();
    let creds = match ctx.credentials.for_object(obj).await {
        Ok(c) => c,
        Err(e) => {
            ctx.metrics.error(Some(ErrorClass::Auth));
            publish(
                ctx,
                obj,
                EventType::Warning,
                e.reason(),
                "ResolveCredentials",
                e.to_string(),
            )
            .await;
            report_unobserved(ctx, api, obj, false, &Outcome::Credentials(&e)).await?;
            return Ok(Action::requeue(ctx.backoff(&uid, Duration::from_secs(10))));
        }
    };
    let last = prev.and_then(|s| s.last_operation.clone());
    let blocked = last
        .as_ref()
        .filter(|l| l.state == op_state::FAILED && l.generation == generation)
        .map(|l| l.action.clone());
    // A settled resource relies on the sweep for drift, so its cached view is
    // good for a whole poll interval — also when its spec just changed, which
    // lets the first cloud call follow an edit within milliseconds (a stale
    // view costs at most one refused call, classified Busy and re-observed).
    // Anything in motion wants a fresh look.
    let settled = status::condition_of(prev, SYNCED).is_some_and(|c| c.status == "True");
    let in_sync = settled && prev.is_some_and(|s| s.observed_generation == generation);
    let max_age = if settled {
        // The slow sweep refreshes every member once per poll interval.
        ctx.config.poll_interval * 2
    } else {
        // The fast sweep refreshes moving instances every fast interval.
        ctx.config.fast_interval * 2
    };
    // Just acted, and no sweep has looked since: nothing to learn yet. The
    // sweep wakes this resource when the instance changes.
    if let Some(id) = obj
        .spec
        .instance_id
        .as_deref()
        .or(prev.and_then(|s| s.instance_id.as_deref()))
        && ctx
            .observer
            .awaiting_refresh(&FleetKey::new(&obj.spec.region, &creds), id)
    {
        return Ok(Action::requeue(ctx.jittered(ctx.config.fast_interval)));
    }
    // A create that failed permanently made nothing: no tag lookup needed.
    let look_up = blocked.as_deref() != Some("RunInstances");
    let seen = match observe(obj, ctx, &creds, max_age, look_up).await {
        Ok(o) => o,
        Err(e) => {
            ctx.metrics.error(Some(e.class()));
            let retry = retry_delay(ctx, &uid, &e).unwrap_or(ctx.config.poll_interval);
            report_unobserved(
                ctx,
                api,
                obj,
                false,
                &Outcome::CloudFailed {
                    action: "DescribeInstances",
                    error: &e,
                    retry_in: Some(retry),
                },
            )
            .await?;
            return Ok(Action::requeue(retry));
        }
    };
    if let Some(o) = &seen.observation {
        tracing::Span::current().record("instance_id", o.id.as_str());
    }
    let name = obj.desired_instance_name();
    let p: Plan = plan::plan(&PlanInput {
        spec: &obj.spec,
        instance_name: &name,
        observed: seen.observed(),
        deleting: false,
        paused: obj.is_paused(),
        blocked: blocked.as_deref(),
    });

    // Drift: the instance changed although the spec did not.
    if in_sync && !p.drift.is_empty() {
        let what: Vec<String> = p.drift.iter().map(ToString::to_string).collect();
        let verdict = if obj.spec.management_policy == ManagementPolicy::ObserveOnly {
            "reported only (ObserveOnly)"
        } else if obj.is_paused() {
            "not corrected while paused"
        } else {
            "correcting"
        };
        publish(
            ctx,
            obj,
            EventType::Warning,
            "DriftDetected",
            "Observe",
            format!(
                "the instance was changed outside Kubernetes: {}; {verdict}",
                what.join("; ")
            ),
        )
        .await;
    }

    match p.step {
        Step::Act(action) => act_on(obj, ctx, api, &creds, &seen, action, last).await,
        Step::Wait(w) => {
            ctx.reset_backoff(&uid);
            if let Some(o) = &seen.observation
                && o.is_settling()
            {
                ctx.observer.mark_hot(&seen.key, &o.id);
            }
            let new = status::build(
                obj,
                &seen.observed(),
                false,
                &Outcome::Waiting(&w),
                last,
                &now(),
            );
            write_status(ctx, api, obj, &new).await?;
            if w.is_transient() {
                // The fast sweep wakes us on each change; this is a backstop.
                return Ok(Action::requeue(ctx.jittered(ctx.config.fast_interval * 3)));
            }
            // Settled (or waiting for a person): nothing is scheduled. The
            // slow sweep observes every instance once per poll interval and
            // wakes this resource when its instance changes; a spec, label
            // or annotation change wakes it through the watch. Not keeping
            // a timer per resource is what lets 10,000 resources fit in a
            // small operator.
            Ok(Action::await_change())
        }
        Step::Release => Ok(Action::await_change()),
    }
}

async fn act_on(
    obj: &CvmInstance,
    ctx: &Context,
    api: &Api<CvmInstance>,
    creds: &Credentials,
    seen: &Observing,
    action: CloudAction,
    last: Option<LastOperation>,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let generation = obj.metadata.generation;
    let region = obj.spec.region.clone();
    let mut obj = obj.clone();
    let mut create = None;
    // Held until RunInstances answers, so lookups batch while creates queue.
    let _creating = (action == CloudAction::Create).then(|| ctx.observer.creating(&seen.key));
    if action == CloudAction::Create {
        match act::run_request(&obj, &ctx.credentials).await {
            Ok(r) => create = Some(r),
            Err(e) => {
                publish(
                    ctx,
                    &obj,
                    EventType::Warning,
                    e.reason(),
                    "RunInstances",
                    e.to_string(),
                )
                .await;
                report_unobserved(ctx, api, &obj, false, &Outcome::Credentials(&e)).await?;
                return Ok(Action::requeue(ctx.backoff(&uid, Duration::from_secs(10))));
            }
        }
        // Intent first: from here on a crash is recovered by the ClientToken
        // and the UID tag, and a deletion knows a create may be in flight.
        let pending = LastOperation {
            action: "RunInstances".into(),
            state: op_state::PENDING.into(),
            generation,
            time: Some(rfc3339_now()),
            ..Default::default()
        };
        obj = write_progress(ctx, api, &obj, None, &pending, &Outcome::Creating).await?;
    }
    let instance_id = seen
        .observation
        .as_ref()
        .map(|o| o.id.clone())
        .unwrap_or_default();
    let result: Result<Acted, CloudError> = act::execute(
        ctx.observer.client(),
        creds,
        &region,
        &instance_id,
        &action,
        create.as_ref(),
    )
    .await;
    match result {
        Ok(acted) => {
            ctx.reset_backoff(&uid);
            tracing::Span::current().record("request_id", acted.request_id.as_str());
            let id = acted.instance_id.clone().unwrap_or(instance_id);
            let done = LastOperation {
                action: action.api_action().into(),
                state: op_state::SUCCEEDED.into(),
                request_id: Some(acted.request_id.clone()),
                generation,
                time: Some(rfc3339_now()),
                ..Default::default()
            };
            if action == CloudAction::Create {
                tracing::Span::current().record("instance_id", id.as_str());
                obj = write_progress(
                    ctx,
                    api,
                    &obj,
                    Some(&id),
                    &done,
                    &Outcome::Acted {
                        action: &action,
                        request_id: &acted.request_id,
                    },
                )
                .await?;
                ctx.observer.register(
                    &seen.key,
                    creds,
                    &id,
                    &obj.namespace().unwrap_or_default(),
                    &obj.name_any(),
                );
            }
            ctx.observer.invalidate(&seen.key, &id);
            ctx.observer.mark_hot(&seen.key, &id);
            tracing::info!(action = action.api_action(), request_id = %acted.request_id, instance_id = %id, "{}", action.describe());
            publish(
                ctx,
                &obj,
                EventType::Normal,
                event_reason(&action),
                action.api_action(),
                format!(
                    "{id}: {} (RequestId: {})",
                    action.describe(),
                    acted.request_id
                ),
            )
            .await;
            let new = status::build(
                &obj,
                &seen.observed(),
                false,
                &Outcome::Acted {
                    action: &action,
                    request_id: &acted.request_id,
                },
                Some(done),
                &now(),
            );
            write_status(ctx, api, &obj, &new).await?;
            Ok(Action::requeue(ctx.jittered(ctx.config.fast_interval)))
        }
        Err(error) => {
            ctx.metrics.error(Some(error.class()));
            let retry = retry_delay(ctx, &uid, &error);
            if let Some(rid) = error.request_id() {
                tracing::Span::current().record("request_id", rid);
            }
            tracing::warn!(action = action.api_action(), %error, class = error.class().as_str(), "cloud call failed");
            if error.class() == ErrorClass::NotFound && !instance_id.is_empty() {
                ctx.observer.invalidate(&seen.key, &instance_id);
            }
            let last = if retry.is_none() {
                Some(LastOperation {
                    action: action.api_action().into(),
                    state: op_state::FAILED.into(),
                    request_id: error.request_id().map(str::to_string),
                    code: Some(error.code().to_string()),
                    message: Some(error.message()),
                    generation,
                    time: Some(rfc3339_now()),
                })
            } else if action == CloudAction::Create {
                // Outcome unknown or retryable: keep the pending marker.
                obj.status.as_ref().and_then(|s| s.last_operation.clone())
            } else {
                last
            };
            publish_cloud_error(ctx, &obj, action.api_action(), &error).await;
            let new = status::build(
                &obj,
                &seen.observed(),
                false,
                &Outcome::CloudFailed {
                    action: action.api_action(),
                    error: &error,
                    retry_in: retry,
                },
                last,
                &now(),
            );
            write_status(ctx, api, &obj, &new).await?;
            Ok(Action::requeue(
                retry.unwrap_or_else(|| ctx.jittered(ctx.config.poll_interval)),
            ))
        }
    }
}

async fn release(
    obj: &CvmInstance,
    ctx: &Context,
    api: &Api<CvmInstance>,
    key: Option<&FleetKey>,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    if let (Some(key), Some(id)) = (
        key,
        obj.status.as_ref().and_then(|s| s.instance_id.as_deref()),
    ) {
        ctx.observer.unregister(key, id);
    }
    ctx.credentials.forget(&uid);
    ctx.reset_backoff(&uid);
    ctx.own_writes.forget(&uid);
    if !set_finalizer(api, obj, false).await? {
        return Ok(Action::requeue(ctx.backoff(&uid, STALE_COPY_RETRY)));
    }
    Ok(Action::await_change())
}

fn deletion_age(obj: &CvmInstance) -> Duration {
    obj.meta()
        .deletion_timestamp
        .as_ref()
        .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default()
}

async fn cleanup(
    obj: &CvmInstance,
    ctx: &Context,
    api: &Api<CvmInstance>,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let known = obj
        .spec
        .instance_id
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.instance_id.clone()));
    // Retain and ObserveOnly never touch the cloud (and need no credentials).
    if obj.spec.deletion_policy == DeletionPolicy::Retain
        || obj.spec.management_policy == ManagementPolicy::ObserveOnly
    {
        if let Some(id) = &known {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "Retained",
                "Delete",
                format!("instance {id} is left as it is (deletionPolicy Retain or ObserveOnly)"),
            )
            .await;
        }
        let key = ctx
            .credentials
            .remembered(&uid)
            .or_else(|| ctx.credentials.default_credentials().cloned())
            .map(|c| FleetKey::new(&obj.spec.region, &c));
        return release(obj, ctx, api, key.as_ref()).await;
    }
    let creds = match ctx.credentials.for_object(obj).await {
        Ok(c) => c,
        Err(e) => match ctx.credentials.remembered(&uid) {
            Some(c) => {
                tracing::info!(error = %e, "credentials Secret unavailable; using the last credentials that worked");
                c
            }
            None if deletion_age(obj) >= ctx.config.orphan_grace => {
                publish(
                    ctx,
                    obj,
                    EventType::Warning,
                    "OrphanedInstance",
                    "Delete",
                    format!(
                        "cannot terminate instance {}: {e}; released after {}s so the deletion can finish — the instance may still exist",
                        known.as_deref().unwrap_or("(unknown id)"),
                        ctx.config.orphan_grace.as_secs()
                    ),
                )
                .await;
                return release(obj, ctx, api, None).await;
            }
            None => {
                publish(
                    ctx,
                    obj,
                    EventType::Warning,
                    e.reason(),
                    "Delete",
                    e.to_string(),
                )
                .await;
                report_unobserved(ctx, api, obj, true, &Outcome::Credentials(&e)).await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        },
    };
    if let Some(id) = &known
        && ctx
            .observer
            .awaiting_refresh(&FleetKey::new(&obj.spec.region, &creds), id)
    {
        return Ok(Action::requeue(ctx.jittered(ctx.config.fast_interval)));
    }
    let last = obj.status.as_ref().and_then(|s| s.last_operation.clone());
    // Look for an instance by tag only if a create was ever attempted.
    let look_up = known.is_none() && last.as_ref().is_some_and(|l| l.action == "RunInstances");
    let seen = match observe(obj, ctx, &creds, ctx.config.fast_interval, look_up).await {
        Ok(o) => o,
        Err(e) => {
            let retry = retry_delay(ctx, &uid, &e).unwrap_or(ctx.config.poll_interval);
            report_unobserved(
                ctx,
                api,
                obj,
                true,
                &Outcome::CloudFailed {
                    action: "DescribeInstances",
                    error: &e,
                    retry_in: Some(retry),
                },
            )
            .await?;
            return Ok(Action::requeue(retry));
        }
    };
    // A create sent moments ago may not be visible yet: wait out the grace.
    if look_up && seen.observation.is_none() {
        let pending_since = last
            .as_ref()
            .filter(|l| l.state == op_state::PENDING)
            .and_then(|l| l.time.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let Some(t) = pending_since {
            let age: Duration = jiff::Timestamp::now()
                .duration_since(t)
                .try_into()
                .unwrap_or_default();
            if age < ctx.config.create_grace {
                let new = status::build(
                    obj,
                    &seen.observed(),
                    true,
                    &Outcome::Deleting(
                        "waiting for a create that was in flight to become visible".into(),
                    ),
                    last,
                    &now(),
                );
                write_status(ctx, api, obj, &new).await?;
                return Ok(Action::requeue(ctx.config.fast_interval));
            }
        }
    }
    let name = obj.desired_instance_name();
    let p = plan::plan(&PlanInput {
        spec: &obj.spec,
        instance_name: &name,
        observed: seen.observed(),
        deleting: true,
        paused: obj.is_paused(),
        blocked: None,
    });
    match p.step {
        Step::Release => {
            if let Some(o) = &seen.observation {
                if o.state == crate::cloud::model::InstanceState::LaunchFailed {
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        "Released",
                        "Delete",
                        format!("instance {} never launched (LAUNCH_FAILED) and cannot be terminated; it is not billed", o.id),
                    )
                    .await;
                }
            } else if let Some(id) = &known {
                publish(
                    ctx,
                    obj,
                    EventType::Normal,
                    "Deleted",
                    "Delete",
                    format!("instance {id} is gone"),
                )
                .await;
            }
            release(obj, ctx, api, Some(&seen.key)).await
        }
        Step::Act(action) => {
            let id = seen
                .observation
                .as_ref()
                .map(|o| o.id.clone())
                .unwrap_or_default();
            match act::execute(
                ctx.observer.client(),
                &creds,
                &obj.spec.region,
                &id,
                &action,
                None,
            )
            .await
            {
                Ok(acted) => {
                    ctx.reset_backoff(&uid);
                    ctx.observer.invalidate(&seen.key, &id);
                    ctx.observer.mark_hot(&seen.key, &id);
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        event_reason(&action),
                        action.api_action(),
                        format!(
                            "{} {id} (RequestId: {})",
                            action.describe(),
                            acted.request_id
                        ),
                    )
                    .await;
                    let done = LastOperation {
                        action: action.api_action().into(),
                        state: op_state::SUCCEEDED.into(),
                        request_id: Some(acted.request_id.clone()),
                        generation: obj.metadata.generation,
                        time: Some(rfc3339_now()),
                        ..Default::default()
                    };
                    let new = status::build(
                        obj,
                        &seen.observed(),
                        true,
                        &Outcome::Deleting(format!(
                            "{} (RequestId: {})",
                            action.describe(),
                            acted.request_id
                        )),
                        Some(done),
                        &now(),
                    );
                    write_status(ctx, api, obj, &new).await?;
                    Ok(Action::requeue(ctx.config.fast_interval))
                }
                Err(error) => {
                    ctx.metrics.error(Some(error.class()));
                    if error.class() == ErrorClass::NotFound {
                        // Already gone: observe again right away.
                        ctx.observer.invalidate(&seen.key, &id);
                        return Ok(Action::requeue(Duration::from_millis(100)));
                    }
                    let retry = retry_delay(ctx, &uid, &error)
                        .unwrap_or_else(|| ctx.backoff(&uid, Duration::from_secs(30)));
                    publish_cloud_error(ctx, obj, action.api_action(), &error).await;
                    let new = status::build(
                        obj,
                        &seen.observed(),
                        true,
                        &Outcome::CloudFailed {
                            action: action.api_action(),
                            error: &error,
                            retry_in: Some(retry),
                        },
                        last,
                        &now(),
                    );
                    write_status(ctx, api, obj, &new).await?;
                    Ok(Action::requeue(retry))
                }
            }
        }
        Step::Wait(w) => {
            if let Some(o) = &seen.observation {
                ctx.observer.mark_hot(&seen.key, &o.id);
            }
            let msg = match &w {
                Wait::TerminationProtected => "waiting: termination protection is on; set spec.disableApiTermination: false or deletionPolicy: Retain".to_string(),
                Wait::Transitioning { state } => format!("waiting: the instance is {state}"),
                Wait::OperationInProgress { operation } => format!("waiting: {operation} in progress"),
                other => format!("waiting: {other:?}"),
            };
            let new = status::build(
                obj,
                &seen.observed(),
                true,
                &Outcome::Deleting(msg),
                last,
                &now(),
            );
            write_status(ctx, api, obj, &new).await?;
            let requeue = if w.is_transient() {
                ctx.config.fast_interval
            } else {
                ctx.config.poll_interval / 10
            };
            Ok(Action::requeue(requeue))
        }
    }
}
