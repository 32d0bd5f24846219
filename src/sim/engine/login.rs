//! How one logs in, and what one boots: ResetInstance (reinstall),
//! AssociateInstancesKeyPairs, DisassociateInstancesKeyPairs and
//! ResetInstancesPassword. All need the instance stopped: a RUNNING one
//! only with `ForceStop` (ResetInstance stops it by itself), stopped,
//! changed and started again as the documentation says; none works on an
//! instance stopped without charging. A password is never kept.

use super::checks::{
    check_host_name, check_key_id, check_password, check_reset_password, check_user_data,
};
use super::{ApiError, Ctx, Engine, Patch, Step, api_err, bad_value, missing};
use crate::cloud::model::{self, InstanceState, OperationState};
use std::collections::HashSet;

/// System disk types ResetInstance supports (api.json).
const REINSTALLABLE_DISKS: &[&str] = &["CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD"];

/// What a reinstall leaves: image, system disk size, keys, host name.
struct Reinstall {
    image_id: String,
    os_name: String,
    disk_size: i64,
    key_ids: Vec<String>,
    host_name: Option<String>,
    fails: bool,
}

impl Engine {
    pub fn reset_instance(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstanceRequest,
    ) -> Result<(), ApiError> {
        let id = req.instance_id.clone();
        self.check_ids(ctx, std::slice::from_ref(&id), 1)?;
        let r = self.validate_reinstall(ctx, &req)?;
        self.check_mutable(
            std::slice::from_ref(&id),
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        self.check_not_stop_charging(std::slice::from_ref(&id))?;
        if r.fails {
            return self.fail_reinstall(ctx, &id, &r.image_id);
        }
        let work = self.config.timings.reinstall;
        let patch = Patch::new(move |v| {
            v.image_id = Some(r.image_id.clone());
            v.os_name = Some(r.os_name.clone());
            v.system_disk.get_or_insert_with(Default::default).disk_size = Some(r.disk_size);
            v.login_settings = Some(model::LoginSettings {
                key_ids: (!r.key_ids.is_empty()).then(|| r.key_ids.clone()),
                ..Default::default()
            });
            if let Some(h) = &r.host_name {
                v.host_name = Some(h.clone());
            }
        });
        // A reinstalled instance boots, whatever state it was in.
        self.begin_stopped_change(&id, "ResetInstance", ctx, work, patch, true);
        Ok(())
    }

    /// The parameters of a reinstall, checked against the instance.
    fn validate_reinstall(
        &self,
        ctx: &Ctx<'_>,
        req: &model::ResetInstanceRequest,
    ) -> Result<Reinstall, ApiError> {
        let view = &self.instances[&req.instance_id].view;
        let current = view.system_disk.clone().unwrap_or_default();
        let disk_type = current.disk_type.clone().unwrap_or_default();
        if !REINSTALLABLE_DISKS.contains(&disk_type.as_str()) {
            return Err(api_err(
                "UnsupportedOperation",
                format!(
                    "Only instances with a system disk of type {} can be reinstalled, not {disk_type}.",
                    REINSTALLABLE_DISKS.join(", ")
                ),
            ));
        }
        let image_id = req
            .image_id
            .clone()
            .or_else(|| view.image_id.clone())
            .unwrap_or_default();
        let image = self.find_image(&image_id)?;
        let size = current.disk_size.unwrap_or(50);
        let disk_size = match &req.system_disk {
            None => size.max(image.size_gb),
            Some(d) => {
                if d.disk_type.as_ref().is_some_and(|t| *t != disk_type) {
                    return Err(bad_value(
                        "SystemDisk.DiskType",
                        "a reinstall may grow the system disk but not change its type",
                    ));
                }
                let new = d.disk_size.unwrap_or(size);
                if new < size || new < image.size_gb || new > 1024 {
                    return Err(bad_value(
                        "SystemDisk.DiskSize",
                        &format!(
                            "{new} GB: a reinstall may only grow the system disk ({size} GB now, at most 1024, at least the image's {} GB)",
                            image.size_gb
                        ),
                    ));
                }
                new
            }
        };
        let key_ids = self.reinstall_login(ctx, req.login_settings.as_ref(), &image)?;
        if let Some(h) = &req.host_name {
            check_host_name(h)?;
        }
        if let Some(u) = &req.user_data {
            check_user_data(u.expose())?;
        }
        Ok(Reinstall {
            image_id: image.id.to_string(),
            os_name: image.os_name.to_string(),
            disk_size,
            key_ids,
            host_name: req.host_name.clone(),
            fails: image.launch_fails,
        })
    }

    /// `LoginSettings` of a reinstall: a password, key pairs, or the image's
    /// own login (custom images only); nothing means a random password
    /// sent by message. Returns the key ids the instance will have.
    fn reinstall_login(
        &self,
        ctx: &Ctx<'_>,
        login: Option<&model::LoginSettings>,
        image: &crate::sim::catalogue::Image,
    ) -> Result<Vec<String>, ApiError> {
        let Some(ls) = login else {
            return Ok(Vec::new());
        };
        let keys = ls.key_ids.clone().unwrap_or_default();
        let keep = ls
            .keep_image_login
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("true"));
        if [ls.password.is_some(), !keys.is_empty(), keep]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
        {
            return Err(api_err(
                "InvalidParameter.ParameterConflict",
                "LoginSettings takes one of Password, KeyIds and KeepImageLogin.",
            ));
        }
        if keep && image.image_type == "PUBLIC_IMAGE" {
            return Err(bad_value(
                "LoginSettings.KeepImageLogin",
                "only custom, shared or imported images keep their login settings",
            ));
        }
        if let Some(p) = &ls.password {
            check_password(p.expose())
                .map_err(|e| api_err("InvalidParameterValue.InvalidPassword", e.message))?;
        }
        self.check_key_ids(ctx, &keys, "InvalidParameterValue.KeyPairNotFound")?;
        Ok(keys)
    }

    /// Key pair ids: well formed and in the catalogue (`missing_code` names
    /// an unknown one, as each action's list spells it).
    fn check_key_ids(
        &self,
        ctx: &Ctx<'_>,
        keys: &[String],
        missing_code: &str,
    ) -> Result<(), ApiError> {
        let region = self.region(ctx)?;
        for k in keys {
            check_key_id(k)?;
            if !region.key_ids.contains(&k.as_str()) {
                return Err(api_err(
                    missing_code,
                    format!("The key pair `{k}` does not exist."),
                ));
            }
        }
        Ok(())
    }

    /// A reinstall from an image that cannot boot: the instance is stopped,
    /// the operation FAILED, the old system kept.
    fn fail_reinstall(&mut self, ctx: &Ctx<'_>, id: &str, image: &str) -> Result<(), ApiError> {
        let t = self.config.timings.clone();
        let running = self.instances[id].view.instance_state == Some(InstanceState::Running);
        let stop = if running { t.stop } else { Default::default() };
        let steps = vec![Step {
            at: stop + t.reinstall,
            state: Some(InstanceState::Stopped),
            stop_charging_mode: Some("KEEP_CHARGING"),
            op_state: Some(OperationState::Failed),
            error_msg: Some(format!(
                "ResetInstance failed: the image `{image}` could not be installed; the instance keeps its system and stays stopped."
            )),
            ..Default::default()
        }];
        if running {
            self.begin_in(id, InstanceState::Stopping, "ResetInstance", ctx, steps);
        } else {
            self.begin(id, "ResetInstance", ctx, steps);
        }
        Ok(())
    }

    /// AssociateInstancesKeyPairs (`associate`) or
    /// DisassociateInstancesKeyPairs: adds the keys to, or removes them from,
    /// each instance's `LoginSettings.KeyIds`.
    pub fn change_instances_key_pairs(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::InstancesKeyPairsRequest,
        associate: bool,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if req.key_ids.is_empty() {
            return Err(missing("KeyIds"));
        }
        if req.key_ids.len() > 100 {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                "At most 100 key pairs per request.",
            ));
        }
        self.check_key_ids(ctx, &req.key_ids, "InvalidKeyPairId.NotFound")?;
        for id in &req.instance_ids {
            let os = self.instances[id].view.os_name.clone().unwrap_or_default();
            if os.contains("Windows") {
                return Err(api_err(
                    "UnsupportedOperation.InstanceOsWindows",
                    format!("The instance `{id}` runs Windows, which has no key pairs."),
                ));
            }
        }
        let force = req.force_stop == Some(true);
        self.check_stoppable(&req.instance_ids, force)?;
        let action = if associate {
            "AssociateInstancesKeyPairs"
        } else {
            "DisassociateInstancesKeyPairs"
        };
        let work = self.config.timings.modify;
        let keys = req.key_ids.clone();
        let patch = Patch::new(move |v| {
            let login = v.login_settings.get_or_insert_with(Default::default);
            let mut now: Vec<String> = login.key_ids.take().unwrap_or_default();
            if associate {
                let have: HashSet<String> = now.iter().cloned().collect();
                now.extend(keys.iter().filter(|k| !have.contains(*k)).cloned());
            } else {
                now.retain(|k| !keys.contains(k));
            }
            login.key_ids = (!now.is_empty()).then_some(now);
        });
        for id in &req.instance_ids {
            self.begin_stopped_change(id, action, ctx, work, patch.clone(), false);
        }
        Ok(())
    }

    pub fn reset_instances_password(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesPasswordRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        check_reset_password(req.password.expose())?;
        if req
            .user_name
            .as_ref()
            .is_some_and(|u| u.chars().count() > 64)
        {
            return Err(api_err(
                "InvalidParameterValue.TooLong",
                "UserName must be at most 64 characters.",
            ));
        }
        self.check_stoppable(&req.instance_ids, req.force_stop == Some(true))?;
        let work = self.config.timings.modify;
        for id in &req.instance_ids {
            // Nothing visible changes: the password is never shown back.
            let nothing = Patch::new(|_| {});
            self.begin_stopped_change(id, "ResetInstancesPassword", ctx, work, nothing, false);
        }
        Ok(())
    }
}
