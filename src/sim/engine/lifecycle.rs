//! Power and lifetime: StartInstances, StopInstances, RebootInstances,
//! TerminateInstances. Each refuses an instance outside its allowed source
//! states with `UnsupportedOperation.InstanceState<X>` and a busy one with
//! `OperationDenied.InstanceOperationInProgress` ([`Engine::check_mutable`]).

use super::{ApiError, Ctx, Engine, SimInstance, Step, api_err, bad_value};
use crate::cloud::model::{self, InstanceState, OperationState};
use std::collections::HashSet;

impl Engine {
    pub fn start_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::StartInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        self.check_mutable(&req.instance_ids, &[InstanceState::Stopped])?;
        let t = self.config.timings.start;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, Some(InstanceState::Running));
            steps[0].stop_charging_mode = Some("NOT_APPLICABLE");
            self.begin_in(id, InstanceState::Starting, "StartInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn stop_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::StopInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if req.force_stop.is_some() && req.stop_type.is_some() {
            return Err(api_err(
                "InvalidParameterCombination",
                "`ForceStop` and `StopType` cannot be specified at the same time.",
            ));
        }
        if let Some(st) = &req.stop_type
            && !["SOFT", "HARD", "SOFT_FIRST"].contains(&st.as_str())
        {
            return Err(bad_value("StopType", "must be SOFT, HARD or SOFT_FIRST"));
        }
        let mode = match req.stopped_mode.as_deref() {
            None | Some("KEEP_CHARGING") => "KEEP_CHARGING",
            Some("STOP_CHARGING") => "STOP_CHARGING",
            Some(_) => {
                return Err(bad_value(
                    "StoppedMode",
                    "must be KEEP_CHARGING or STOP_CHARGING",
                ));
            }
        };
        self.check_mutable(&req.instance_ids, &[InstanceState::Running])?;
        if mode == "STOP_CHARGING" {
            for id in &req.instance_ids {
                let ct = self.instances[id]
                    .view
                    .instance_charge_type
                    .as_deref()
                    .unwrap_or_default();
                if ct != "POSTPAID_BY_HOUR" {
                    return Err(api_err(
                        "UnsupportedOperation.StoppedModeStopCharging",
                        format!("The instance `{id}` ({ct}) does not support STOP_CHARGING."),
                    ));
                }
            }
        }
        let t = self.config.timings.stop;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, Some(InstanceState::Stopped));
            steps[0].stop_charging_mode = Some(mode);
            self.begin_in(id, InstanceState::Stopping, "StopInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn reboot_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::RebootInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if req.force_reboot.is_some() && req.stop_type.is_some() {
            return Err(api_err(
                "InvalidParameterCombination",
                "`ForceReboot` and `StopType` cannot be specified at the same time.",
            ));
        }
        if let Some(st) = &req.stop_type
            && !["SOFT", "HARD", "SOFT_FIRST"].contains(&st.as_str())
        {
            return Err(bad_value("StopType", "must be SOFT, HARD or SOFT_FIRST"));
        }
        self.check_mutable(&req.instance_ids, &[InstanceState::Running])?;
        let t = self.config.timings.reboot;
        for id in &req.instance_ids {
            let steps = self.settle(t, Some(InstanceState::Running));
            self.begin_in(id, InstanceState::Rebooting, "RebootInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn terminate_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::TerminateInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let charge_types: HashSet<&str> = req
            .instance_ids
            .iter()
            .map(|id| {
                self.instances[id]
                    .view
                    .instance_charge_type
                    .as_deref()
                    .unwrap_or_default()
            })
            .collect();
        if charge_types.len() > 1 {
            return Err(api_err(
                "UnsupportedOperation.InstanceMixedPricingModel",
                "Instances of different charge types cannot be terminated in one request.",
            ));
        }
        for id in &req.instance_ids {
            if self.instances[id].view.disable_api_termination == Some(true) {
                return Err(api_err(
                    "UnsupportedOperation.InstancesProtected",
                    format!("The instance `{id}` has termination protection enabled."),
                ));
            }
        }
        self.check_mutable(
            &req.instance_ids,
            &[
                InstanceState::Running,
                InstanceState::Stopped,
                InstanceState::Shutdown,
            ],
        )?;
        let t = self.config.timings.clone();
        for id in &req.instance_ids {
            let inst = self
                .instances
                .get_mut(id)
                .map(SimInstance::touch)
                .expect("checked");
            let prepaid = inst.view.instance_charge_type.as_deref() == Some("PREPAID");
            let state = inst.view.instance_state.clone();
            if prepaid && state != Some(InstanceState::Shutdown) {
                // First terminate of a prepaid instance: to the recycle bin.
                let steps = vec![
                    Step {
                        at: t.shutdown,
                        state: Some(InstanceState::Shutdown),
                        isolated_source: Some("MANMADE"),
                        ..Default::default()
                    },
                    Step {
                        at: t.shutdown + t.operation_tail,
                        op_state: Some(OperationState::Success),
                        ..Default::default()
                    },
                ];
                self.begin(id, "TerminateInstances", ctx, steps);
            } else {
                inst.view.instance_state = Some(InstanceState::Terminating);
                let steps = vec![Step {
                    at: t.terminate,
                    remove: true,
                    ..Default::default()
                }];
                self.begin(id, "TerminateInstances", ctx, steps);
            }
        }
        Ok(())
    }
}
