//! The cloud calls of a pass — a create with its intent, one action on the
//! instance (a restart's intent first) — and how their answers become a
//! [`Report`] and `lastOperation`.

use super::{Error, Reconciling, rfc3339_now};
use crate::api::{AppliedValues, LastOperation, RunState};
use crate::cloud::model::{self, Action as _};
use crate::cloud::{CloudError, Credentials, ErrorClass};
use crate::controller::accounts::Access;
use crate::controller::act::{self, SecretValues};
use crate::controller::observation::Observed;
use crate::controller::observe::FleetKey;
use crate::controller::plan::restart::{self, outcome};
use crate::controller::plan::{CREATE, CloudAction, Mode, TypeCheck};
use crate::controller::price::{self, Basis};
use crate::controller::report::{self, Done, Report, retry_base};
use kube::ResourceExt;

/// Who calls, where, with which write-only values: what every call of a
/// pass shares.
pub(super) struct Caller<'a> {
    pub creds: &'a Credentials,
    pub key: &'a FleetKey,
    pub values: &'a SecretValues,
}

impl Reconciling<'_> {
    /// RunInstances, with the intent recorded first.
    pub(super) async fn create(
        &mut self,
        access: &Access,
        caller: &Caller<'_>,
    ) -> Result<Report, Error> {
        let Caller { creds, key, values } = *caller;
        let request = act::run_request(&self.obj, values);
        let (region, timing) = (self.obj.spec.region.clone(), self.ctx.timing);
        // Priced once per create: a retried create already has its price.
        let priced = self.obj.status.as_ref().and_then(|s| s.price.as_ref());
        let price = match Basis::of_create(&request).priced_by(priced) {
            true => None,
            false => Some(self.ctx.pricer.create(creds, &region, &request).await),
        };
        // Held until RunInstances answers, so lookups batch while creates queue.
        let _creating = self.ctx.observer.creating(key);
        let generation = self.obj.metadata.generation;
        let pending = LastOperation::pending(CREATE, generation, rfc3339_now());
        let before = self
            .obj
            .status
            .as_ref()
            .and_then(|s| s.last_operation.clone());
        // The account is recorded with the intent, in the same write, and
        // what the create sets of the write-only values too, and its price.
        self.recording = Some(access.record.clone());
        let (user_data, password) = (values.user_data.as_ref(), values.password.as_ref());
        let applied = (user_data.is_some() || password.is_some())
            .then(|| self.ctx.fingerprints.record(None, user_data, password));
        self.write_intent(pending.clone(), applied, price).await?;
        let report = match self.ctx.actor.create(creds, &region, &request).await {
            Ok(created) => {
                let id = &created.instance_id;
                tracing::Span::current().record("instance_id", id.as_str());
                let (ns, name) = (
                    self.obj.namespace().unwrap_or_default(),
                    self.obj.name_any(),
                );
                self.ctx
                    .observer
                    .register(key, &access.provider, id, &ns, &name);
                self.changed(key, id);
                let done = Done::create(id, &created.request_id);
                let last = self.succeeded(&done);
                Report::acted(Mode::Apply, Observed::NotCreated, done, last, timing)
            }
            Err(error) => {
                // Refused before anything happened (refused connection,
                // throttled, keys or clock refused, not sent): this attempt
                // made nothing, so the intent goes — a deletion need not
                // wait for it. Otherwise the outcome is unknown: it stays.
                let made_nothing = error.certainly_not_executed();
                let unsent = if made_nothing { before } else { Some(pending) };
                let last = self.failed(CREATE, &error).or(unsent);
                Report::cloud_failed(
                    Mode::Apply,
                    Observed::NotCreated,
                    CREATE,
                    error,
                    last,
                    timing,
                )
            }
        };
        Ok(report)
    }

    /// One action on the observed instance (a restart's intent recorded
    /// first).
    pub(super) async fn act(
        &mut self,
        caller: &Caller<'_>,
        mode: Mode,
        observed: Observed,
        action: CloudAction,
        last: Option<LastOperation>,
    ) -> Result<Report, Error> {
        let Caller { creds, key, values } = *caller;
        let restarting = match (&action, observed.instance()) {
            (CloudAction::Restart { requested_at, .. }, Some(o)) => {
                let intent = restart::intent(requested_at, o);
                let report = Report::intent(mode, observed.clone(), &action, last.clone(), intent);
                self.write_report_status(&report).await?;
                Some(requested_at.clone())
            }
            _ => None,
        };
        let id = observed.instance_id().unwrap_or_default().to_string();
        let region = &self.obj.spec.region;
        let price = self.price_of(creds, &observed, &action, mode).await;
        let sent = self
            .ctx
            .actor
            .act_on(creds, region, &id, &action, values)
            .await;
        Ok(match sent {
            Ok(rid) => {
                let report = self.accepted(key, mode, observed, &action, &rid, last);
                let report = match price {
                    Some(price) => report.with_price(price),
                    None => report,
                };
                let report = match self.newly_applied(&action, values) {
                    Some(applied) => report.with_applied(applied),
                    None => report,
                };
                match &restarting {
                    Some(at) => report.with_restart(outcome(at, Some(&rid))),
                    None => report,
                }
            }
            Err(error) => {
                // A retried failure keeps the intent: the next pass looks
                // whether the call got through before sending it again.
                let permanent = retry_base(error.class()).is_none();
                let report = self.refused(key, mode, observed, &action, error, last);
                match &restarting {
                    Some(at) if permanent => report.with_restart(outcome(at, None)),
                    _ => report,
                }
            }
        })
    }

    /// The price after `action`, asked before it is sent when it changes the
    /// price (a type or bandwidth change): one inquiry per change, recorded
    /// once the change is accepted. A conversion to prepaid makes the
    /// instance's price unknown (no inquiry for it).
    async fn price_of(
        &self,
        creds: &Credentials,
        observed: &Observed,
        action: &CloudAction,
        mode: Mode,
    ) -> Option<crate::api::price::PriceStatus> {
        let o = observed.instance()?;
        let before = self.obj.status.as_ref().and_then(|s| s.price.as_ref());
        if mode != Mode::Apply {
            return None;
        }
        if !price::changes_price(action) {
            return price::invalidated(action, before);
        }
        let region = &self.obj.spec.region;
        let current = Basis::of(o);
        let pricer = &self.ctx.pricer;
        pricer
            .change(creds, region, (&o.id, &current), action, before)
            .await
    }

    /// Whether the instance may change to `want`, asked before acting for
    /// a type change; a failure of the question is reported like a call's.
    pub(super) async fn check_type(
        &self,
        creds: &Credentials,
        observed: &Observed,
        want: &str,
        last: Option<LastOperation>,
    ) -> Result<TypeCheck, Report> {
        let id = observed.instance_id().unwrap_or_default();
        let region = &self.obj.spec.region;
        let error = match self.ctx.actor.check_type(creds, region, id, want).await {
            Ok(check) => return Ok(check),
            Err(error) => error,
        };
        let action = model::DescribeInstancesModification::NAME;
        let last = self.failed(action, &error).or(last);
        let observed = observed.clone();
        let timing = self.ctx.timing;
        Err(Report::cloud_failed(
            Mode::Apply,
            observed,
            action,
            error,
            last,
            timing,
        ))
    }

    /// `status.applied` after `action` set write-only values, if it did.
    fn newly_applied(&self, action: &CloudAction, values: &SecretValues) -> Option<AppliedValues> {
        let (user_data, password) = (values.user_data.as_ref(), values.password.as_ref());
        let (user_data, password) = match action {
            CloudAction::SetUserData => (user_data, None),
            CloudAction::ResetPassword => (None, password),
            // A reinstall sets both, as the spec has them.
            CloudAction::Reinstall { .. } => (user_data, password),
            _ => return None,
        };
        let prev = self.obj.status.as_ref().and_then(|s| s.applied.as_ref());
        Some(self.ctx.fingerprints.record(prev, user_data, password))
    }

    /// An action was accepted. While a permanent failure blocks the
    /// generation (only the power state is restored then), `lastOperation`
    /// keeps the failure, so the block holds.
    fn accepted(
        &self,
        key: &FleetKey,
        mode: Mode,
        observed: Observed,
        action: &CloudAction,
        request_id: &str,
        last: Option<LastOperation>,
    ) -> Report {
        let id = observed.instance_id().unwrap_or_default().to_string();
        self.changed(key, &id);
        let done = Done::action(action, &id, request_id);
        let succeeded = self.succeeded(&done);
        let last = match (mode, self.blocked(), last) {
            (Mode::Apply, Some(_), Some(failed)) => failed,
            _ => succeeded,
        };
        let report = Report::acted(mode, observed, done, last, self.ctx.timing);
        if action.boots() && self.obj.spec.run_state == RunState::Stopped {
            return report.with_unplanned_boot(action.api_action());
        }
        report
    }

    /// An action failed.
    fn refused(
        &self,
        key: &FleetKey,
        mode: Mode,
        observed: Observed,
        action: &CloudAction,
        error: CloudError,
        last: Option<LastOperation>,
    ) -> Report {
        let id = observed.instance_id().unwrap_or_default().to_string();
        let api_action = action.api_action();
        let failed = self.failed(api_action, &error);
        if error.class() == ErrorClass::NotFound {
            self.ctx.observer.invalidate(key, &id);
            if mode == Mode::Delete {
                // Already gone: observe again right away.
                return Report::already_gone(&error);
            }
        }
        // A deletion records no failure: it is retried regardless.
        let last = match mode {
            Mode::Apply => failed.or(last),
            Mode::Delete => last,
        };
        Report::cloud_failed(mode, observed, api_action, error, last, self.ctx.timing)
    }

    /// We just changed instance `id`: its cached view is out of date, and it
    /// is polled fast for a while.
    pub(super) fn changed(&self, key: &FleetKey, id: &str) {
        self.ctx.observer.invalidate(key, id);
        self.ctx.observer.mark_hot(key, id);
    }

    /// Logs an accepted call and returns the `lastOperation` recording it.
    pub(super) fn succeeded(&self, done: &Done) -> LastOperation {
        let rid = done.request_id.as_str();
        tracing::Span::current().record("request_id", rid);
        tracing::info!(action = done.api_action, request_id = %rid, instance_id = %done.instance_id, "{}", done.what);
        let generation = self.obj.metadata.generation;
        LastOperation::succeeded(done.api_action, rid, generation, rfc3339_now())
    }

    /// Logs a failed call; for a permanent failure, the `lastOperation` that
    /// blocks mutations until the spec changes.
    pub(super) fn failed(&self, api_action: &str, error: &CloudError) -> Option<LastOperation> {
        if let Some(rid) = error.request_id() {
            tracing::Span::current().record("request_id", rid);
        }
        let class = error.class();
        tracing::warn!(action = api_action, %error, class = class.as_str(), "cloud call failed");
        retry_base(class).is_none().then(|| {
            let generation = self.obj.metadata.generation;
            LastOperation::failed(
                api_action,
                report::failure(error),
                generation,
                rfc3339_now(),
            )
        })
    }
}
