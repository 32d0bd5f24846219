//! Changes to an existing instance: ResetInstancesType,
//! ResetInstancesInternetMaxBandwidth, ModifyInstancesAttribute.

use super::checks::{MAX_BANDWIDTH, check_host_name, check_user_data};
use super::{ApiError, Ctx, Engine, Patch, SimInstance, api_err, bad_value, missing, settle};
use crate::cloud::model::{self, InstanceState};
use std::collections::HashSet;

impl Engine {
    pub fn reset_instances_type(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesTypeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 1)?;
        let id = req.instance_ids[0].clone();
        let new_type = self.check_type_change(&id, &req.instance_type)?;
        // A running instance needs ForceStop (the operator stops it first
        // instead); see cvm-api.md §3.6 for why this is a modelling choice.
        self.check_stoppable(std::slice::from_ref(&id), req.force_stop == Some(true))?;
        let (name, cpu, memory) = (new_type.name.to_string(), new_type.cpu, new_type.memory);
        let patch = Patch::new(move |v| {
            v.instance_type = Some(name.clone());
            v.cpu = Some(cpu);
            v.memory = Some(memory);
        });
        // Either way the instance ends RUNNING: api.json says that after the
        // change it "shows as running automatically, no manual start needed"
        // (完成实例配置调整后，实例将自动显示为运行中), also when it was stopped.
        let work = self.config.timings.reset_type;
        self.begin_stopped_change(&id, "ResetInstancesType", ctx, work, patch, true);
        Ok(())
    }

    /// The type an instance may change to (ResetInstancesType and its price
    /// inquiry): sold in its zone, another type, not across GPU and other
    /// families, not a spot instance.
    pub(super) fn check_type_change(
        &self,
        id: &str,
        type_name: &str,
    ) -> Result<crate::sim::catalogue::InstanceType, ApiError> {
        let zone = self.instances[id]
            .view
            .zone()
            .unwrap_or_default()
            .to_string();
        let new_type = self.check_type_in_zone(type_name, &zone)?;
        let view = &self.instances[id].view;
        if view.instance_type.as_deref() == Some(type_name) {
            return Err(api_err(
                "InvalidParameterValue",
                format!("The instance `{id}` already has type `{}`.", type_name),
            ));
        }
        let from = view.instance_type.as_deref().unwrap_or_default();
        if let Some(from) = self.catalogue.instance_type(from)
            && !from.can_change_to(&new_type)
        {
            return Err(api_err(
                "UnsupportedOperation.HeterogeneousChangeInstanceFamily",
                format!(
                    "An instance of family {} cannot change to family {}: GPU and other families do not mix (see DescribeInstancesModification).",
                    from.family, new_type.family
                ),
            ));
        }
        if view.instance_charge_type.as_deref() == Some("SPOTPAID") {
            return Err(api_err(
                "UnsupportedOperation.InstanceChargeType",
                "Spot instances cannot change type.",
            ));
        }
        Ok(new_type)
    }

    pub fn reset_instances_internet_max_bandwidth(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesInternetMaxBandwidthRequest,
    ) -> Result<(), ApiError> {
        let (bw, _) = self.check_bandwidth_change(ctx, &req)?;
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let t = self.config.timings.modify;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, None);
            steps[0].bandwidth = Some(bw);
            self.begin(id, "ResetInstancesInternetMaxBandwidth", ctx, steps);
        }
        Ok(())
    }

    /// A bandwidth change (and its price inquiry): the new value within
    /// range, one instance at a time for prepaid and hourly bandwidth, never
    /// lower for prepaid, one charge type per call, `StartTime`/`EndTime`
    /// only for prepaid. Returns the new bandwidth and the charge type.
    pub(super) fn check_bandwidth_change(
        &self,
        ctx: &Ctx<'_>,
        req: &model::ResetInstancesInternetMaxBandwidthRequest,
    ) -> Result<(i64, String), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let bw = req
            .internet_accessible
            .internet_max_bandwidth_out
            .ok_or_else(|| missing("InternetAccessible.InternetMaxBandwidthOut"))?;
        if !(0..=MAX_BANDWIDTH).contains(&bw) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                format!("InternetMaxBandwidthOut {bw} is out of range [0, {MAX_BANDWIDTH}]."),
            ));
        }
        let mut charge_types = HashSet::new();
        for id in &req.instance_ids {
            let ct = self.instances[id]
                .view
                .internet_accessible
                .as_ref()
                .and_then(|i| i.internet_charge_type.clone())
                .unwrap_or_default();
            if (ct == "BANDWIDTH_PREPAID" || ct == "BANDWIDTH_POSTPAID_BY_HOUR")
                && req.instance_ids.len() > 1
            {
                return Err(api_err(
                    "InvalidParameterValue.LimitExceeded",
                    format!("Instances with {ct} bandwidth must be changed one at a time."),
                ));
            }
            if ct == "BANDWIDTH_PREPAID" {
                let cur = self.instances[id].view.bandwidth_out().unwrap_or(0);
                if bw < cur {
                    return Err(api_err(
                        "InvalidParameterValue",
                        "Prepaid bandwidth cannot be lowered before it expires.",
                    ));
                }
            } else if req.start_time.is_some() || req.end_time.is_some() {
                return Err(api_err(
                    "InvalidParameterCombination",
                    "StartTime and EndTime apply only to BANDWIDTH_PREPAID.",
                ));
            }
            charge_types.insert(ct);
        }
        if charge_types.len() > 1 {
            return Err(api_err(
                "InvalidParameterValue",
                "Instances with different bandwidth charge types cannot be changed together.",
            ));
        }
        Ok((bw, charge_types.into_iter().next().unwrap_or_default()))
    }

    pub fn modify_instances_attribute(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesAttributeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let given = [
            req.instance_name.is_some(),
            req.user_data.is_some(),
            req.security_groups.is_some(),
            req.cam_role_name.is_some(),
            req.host_name.is_some(),
            req.disable_api_termination.is_some(),
            // Accepted (jumbo frames are not modelled: no visible effect).
            req.enable_jumbo_frame.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given == 0 {
            return Err(api_err(
                "MissingParameter",
                "One attribute to modify (InstanceName, UserData, SecurityGroups, CamRoleName, HostName, DisableApiTermination or EnableJumboFrame) is required.",
            ));
        }
        if given > 1 {
            return Err(api_err(
                "InvalidParameterCombination",
                "Only one attribute can be modified per request.",
            ));
        }
        if let Some(name) = &req.instance_name {
            if name.chars().count() > 60 {
                return Err(api_err(
                    "InvalidInstanceName.TooLong",
                    "InstanceName must be at most 60 characters.",
                ));
            }
            if name.is_empty() {
                return Err(bad_value("InstanceName", "must not be empty"));
            }
        }
        if let Some(sgs) = &req.security_groups {
            let region = self
                .catalogue
                .region(ctx.region)
                .expect("region checked by the front");
            if sgs.len() > 5 {
                return Err(api_err(
                    "LimitExceeded.AssociateUSGLimitExceeded",
                    "At most 5 security groups.",
                ));
            }
            for sg in sgs {
                if !region.security_groups.contains(&sg.as_str()) {
                    return Err(api_err(
                        "InvalidSecurityGroupId.NotFound",
                        format!("The security group `{sg}` does not exist."),
                    ));
                }
            }
        }
        if let Some(h) = &req.host_name {
            check_host_name(h)?;
        }
        if let Some(u) = &req.user_data {
            check_user_data(u.expose())?;
        }
        if req
            .cam_role_type
            .as_deref()
            .is_some_and(|t| !["user", "system", "service_linked"].contains(&t))
        {
            return Err(bad_value(
                "CamRoleType",
                "must be user, system or service_linked",
            ));
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let t = self.config.timings.clone();
        for id in &req.instance_ids {
            let inst = self
                .instances
                .get_mut(id)
                .map(SimInstance::touch)
                .expect("checked");
            let v = &mut inst.view;
            if let Some(n) = &req.instance_name {
                v.instance_name = Some(n.clone());
            }
            if let Some(sgs) = &req.security_groups {
                v.security_group_ids = Some(sgs.clone());
            }
            if let Some(d) = req.disable_api_termination {
                v.disable_api_termination = Some(d);
            }
            if req.cam_role_name.is_some() {
                v.cam_role_name = req.cam_role_name.clone().filter(|n| !n.is_empty());
            }
            let mut steps = settle(t.operation_tail, t.modify, None);
            if let Some(h) = &req.host_name {
                inst.view.host_name = Some(h.clone());
                if inst.view.instance_state == Some(InstanceState::Running)
                    && req.auto_reboot != Some(false)
                {
                    // A new host name takes effect by rebooting.
                    inst.view.instance_state = Some(InstanceState::Rebooting);
                    steps = settle(t.operation_tail, t.reboot, Some(InstanceState::Running));
                }
            }
            self.begin(id, "ModifyInstancesAttribute", ctx, steps);
        }
        Ok(())
    }
}
