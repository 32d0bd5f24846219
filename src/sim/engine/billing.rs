//! What an instance belongs to and how it is paid: ModifyInstancesProject,
//! ModifyInstancesChargeType (postpaid → prepaid; the reverse is refused, as
//! the service refuses it to accounts without that feature) and
//! ModifyInstancesRenewFlag. None changes the instance's state; each is an
//! operation (OPERATING → SUCCESS) whose result DescribeInstances shows.

use super::checks::RENEW_FLAGS;
use super::run::expiry_after_months;
use super::validate::prepaid_terms;
use super::{ApiError, Ctx, Engine, Patch, api_err, bad_value};
use crate::cloud::model::{self, InstanceState};

impl Engine {
    pub fn modify_instances_project(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesProjectRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if !self.catalogue.projects.contains(&req.project_id) {
            return Err(api_err(
                "InvalidProjectId.NotFound",
                format!("The project `{}` does not exist.", req.project_id),
            ));
        }
        self.check_mutable(
            &req.instance_ids,
            &[
                InstanceState::Running,
                InstanceState::Stopped,
                InstanceState::LaunchFailed,
            ],
        )?;
        let project = req.project_id;
        let patch = Patch::new(move |v| {
            v.placement.get_or_insert_with(Default::default).project_id = Some(project);
        });
        let took = self.config.timings.modify;
        for id in &req.instance_ids {
            self.begin_change(id, "ModifyInstancesProject", ctx, took, patch.clone());
        }
        Ok(())
    }

    pub fn modify_instances_charge_type(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesChargeTypeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 20)?;
        match req.instance_charge_type.as_str() {
            "PREPAID" => {}
            "POSTPAID_BY_HOUR" => {
                return Err(api_err(
                    "UnsupportedOperation.InstanceChargeType",
                    "Prepaid instances cannot be switched to POSTPAID_BY_HOUR by this account; they stay prepaid until they expire or are terminated.",
                ));
            }
            _ => {
                return Err(bad_value(
                    "InstanceChargeType",
                    "must be PREPAID or POSTPAID_BY_HOUR",
                ));
            }
        }
        let (period, renew_flag) = prepaid_terms(req.instance_charge_prepaid.as_ref())?;
        for id in &req.instance_ids {
            let v = &self.instances[id].view;
            let from = v.instance_charge_type.as_deref().unwrap_or_default();
            if from != "POSTPAID_BY_HOUR" {
                return Err(api_err(
                    "UnsupportedOperation.InstanceChargeType",
                    format!(
                        "The instance `{id}` is {from}; only POSTPAID_BY_HOUR instances can become PREPAID."
                    ),
                ));
            }
            if v.stop_charging_mode.as_deref() == Some("STOP_CHARGING") {
                return Err(api_err(
                    "UnsupportedOperation.InstanceChargeType",
                    format!(
                        "The instance `{id}` is stopped without charging, which cannot change its charge type."
                    ),
                ));
            }
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let expired = expiry_after_months(period);
        let patch = Patch::new(move |v| {
            v.instance_charge_type = Some("PREPAID".into());
            v.renew_flag = Some(renew_flag.clone());
            v.expired_time = Some(expired.clone());
        });
        let took = self.config.timings.modify;
        for id in &req.instance_ids {
            self.begin_change(id, "ModifyInstancesChargeType", ctx, took, patch.clone());
        }
        Ok(())
    }

    pub fn modify_instances_renew_flag(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesRenewFlagRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if !RENEW_FLAGS.contains(&req.renew_flag.as_str()) {
            return Err(bad_value(
                "RenewFlag",
                &format!("must be one of {}", RENEW_FLAGS.join(", ")),
            ));
        }
        for id in &req.instance_ids {
            let ct = self.instances[id].view.instance_charge_type.as_deref();
            if ct != Some("PREPAID") {
                return Err(api_err(
                    "UnsupportedOperation.InstanceChargeType",
                    format!(
                        "The instance `{id}` is {}; only PREPAID instances have a renew flag.",
                        ct.unwrap_or_default()
                    ),
                ));
            }
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let flag = req.renew_flag;
        let patch = Patch::new(move |v| v.renew_flag = Some(flag.clone()));
        let took = self.config.timings.modify;
        for id in &req.instance_ids {
            self.begin_change(id, "ModifyInstancesRenewFlag", ctx, took, patch.clone());
        }
        Ok(())
    }
}
