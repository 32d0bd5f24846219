//! The decision of a pass: the write-only values the spec asks for and how
//! they compare with what was applied, the plan (asked again once the type
//! is checked), the step carried out, and what the report adds after it.

use super::calls::Caller;
use super::{Error, Reconciling};
use crate::cloud::Credentials;
use crate::controller::accounts::Access;
use crate::controller::act::{self, SecretValues};
use crate::controller::observation::{Observed, WriteOnly};
use crate::controller::observe::FleetKey;
use crate::controller::plan::{self, Mode, PlanInput, RestartInput, Step, TypeCheck};
use crate::controller::report::{Report, Requeue, event_action};

impl Reconciling<'_> {
    /// Plans, and carries out what the plan says.
    pub(super) async fn decide(
        &mut self,
        access: &Access,
        creds: &Credentials,
        key: &FleetKey,
        mode: Mode,
        observed: Observed,
    ) -> Result<Report, Error> {
        let timing = self.ctx.timing;
        let last = self.last_operation().cloned();
        if mode == Mode::Delete && self.create_in_flight(&observed) {
            return Ok(Report::awaiting_create(last, timing));
        }
        let values = match self.secret_values(mode).await {
            Ok(v) => v,
            Err(report) => return Ok(report),
        };
        let status = self.obj.status.as_ref();
        let write_only = self.ctx.fingerprints.write_only(
            status.and_then(|s| s.applied.as_ref()),
            values.user_data.as_ref(),
            values.password.as_ref(),
        );
        let mut plan = self.plan(mode, &observed, write_only, TypeCheck::Unchecked);
        if let Step::CheckType(want) = &plan.step {
            let check = match self.check_type(creds, &observed, want, last.clone()).await {
                Ok(check) => check,
                Err(report) => return Ok(report),
            };
            plan = self.plan(mode, &observed, write_only, check);
        }
        let present = observed.instance().is_some();
        let caller = Caller {
            creds,
            key,
            values: &values,
        };
        let report = match plan.step {
            Step::Create => self.create(access, &caller).await?,
            Step::Act(ref action) => {
                let action = action.clone();
                self.act(&caller, mode, observed, action, last).await?
            }
            Step::Wait(ref w) => {
                if let Some(o) = observed.instance().filter(|o| o.is_settling()) {
                    self.ctx.observer.mark_hot(key, &o.id);
                }
                Report::waiting(mode, observed, w.clone(), last, timing)
            }
            Step::Release(why) => {
                self.forget_instance();
                Report::released(why, observed.instance_id())
            }
            Step::CheckType(_) => unreachable!("planned again with the type checked"),
        };
        let baseline = (mode == Mode::Apply && present).then_some((write_only, &values));
        Ok(self.complete(report, plan, baseline))
    }

    /// The plan for what is observed.
    fn plan(
        &self,
        mode: Mode,
        observed: &Observed,
        write_only: WriteOnly,
        type_check: TypeCheck,
    ) -> plan::Plan {
        let blocked = self.blocked().filter(|_| mode == Mode::Apply);
        let status = self.obj.status.as_ref();
        plan::plan(&PlanInput {
            spec: &self.obj.spec,
            instance_name: &self.obj.desired_instance_name(),
            observed,
            mode,
            paused: self.obj.is_paused(),
            blocked: blocked.as_ref(),
            restart: RestartInput {
                requested: self.obj.restart_requested(),
                recorded: status.and_then(|s| s.restart.as_ref()),
            },
            write_only,
            type_check,
        })
    }

    /// What a report adds after the step: the restart record, the changes
    /// held back, the values nothing was recorded for (taken as applied: an
    /// adopted instance, or one created by an older version), when to look
    /// again for a Secret's change, and the drift event.
    fn complete(
        &self,
        mut report: Report,
        plan: plan::Plan,
        baseline: Option<(WriteOnly, &SecretValues)>,
    ) -> Report {
        if let Some(restart) = plan.restart {
            report = report.with_restart(restart);
        }
        // What it will not do now (the conditions say why).
        report = report.with_pending(&plan.pending);
        if let Some((w, values)) = baseline
            && report.applied.is_none()
        {
            let prev = self.obj.status.as_ref().and_then(|s| s.applied.as_ref());
            let f = &self.ctx.fingerprints;
            if let Some(applied) =
                f.baseline(prev, w, values.user_data.as_ref(), values.password.as_ref())
            {
                report = report.with_applied(applied);
            }
        }
        // A Secret changes without the spec, and no Secret watch wakes us:
        // a resource reading one looks again once per poll interval.
        if baseline.is_some()
            && act::reads_secrets(&self.obj.spec)
            && report.requeue == Requeue::AwaitChange
        {
            report.requeue = Requeue::Around(self.ctx.timing.poll_interval);
        }
        // Drift: the instance changed although the spec did not.
        if baseline.is_some() && self.in_sync() {
            let seen: Vec<_> = plan
                .drift
                .into_iter()
                .filter(|d| d.seen_on_instance())
                .collect();
            return report.with_drift(&seen, &self.obj);
        }
        report
    }

    /// The values the API never shows back that the spec asks for (read in
    /// apply mode only: a deletion needs none).
    async fn secret_values(&self, mode: Mode) -> Result<SecretValues, Report> {
        if mode == Mode::Delete || !act::wants_secret_values(&self.obj.spec) {
            return Ok(SecretValues::default());
        }
        act::secret_values(&self.obj, &self.ctx.credentials)
            .await
            .map_err(|e| {
                let action = event_action::RESOLVE_CREDENTIALS;
                Report::credentials_failed(mode, e.reason(), e.to_string(), action)
            })
    }
}
