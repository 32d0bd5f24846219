//! The whole sequence of actions a spec leads to, predicted by running the
//! same [`plan`](super::plan) over a model of each action's documented
//! effect: plan → the action's effect on the observation → plan again, until
//! the planner says in sync or why it waits. The operator itself takes one
//! step per reconcile and looks again; `cvm-operator plan` prints this. Pure.
//!
//! Every [`CloudAction`] has its effect in [`apply`] (an exhaustive match:
//! a new action does not compile without one), and [`as_specified`] is the
//! instance a spec describes — the inverse of the drift detection, checked
//! by a test that finds no drift between a spec and its own model.

use super::drift::{DiskRef, Disruption, PendingChange};
use super::{CloudAction, PlanInput, RestartInput, Step, TypeCheck, Wait, plan};
use crate::api::{CvmInstanceSpec, RestartState, RestartStatus, RunState};
use crate::cloud::model::InstanceState;
use crate::controller::observation::{
    Compared, Disk, Observation, Observed, Settings, Word, WriteOnly,
};
use std::sync::Arc;

/// More steps than any spec needs (a stop window of every change is about
/// fifteen); reaching it means the model and the planner disagree.
pub const MAX_STEPS: usize = 48;

/// One predicted step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicted {
    /// RunInstances.
    Create,
    Act(CloudAction),
    /// What the API does by itself at the end of an action: ResetInstancesType
    /// and ResetInstance start a stopped instance.
    Boots {
        by: &'static str,
    },
}

/// A predicted step and what it costs the instance as it is then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub step: Predicted,
    pub disruption: Disruption,
}

impl Planned {
    /// A short name for the step: `stop`, `resize`, `start`, …
    pub fn verb(&self) -> &'static str {
        match &self.step {
            Predicted::Create => "create",
            Predicted::Boots { .. } => "start",
            Predicted::Act(a) => verb(a),
        }
    }

    /// The API action, `None` for what the API does by itself.
    pub fn api_action(&self) -> Option<&'static str> {
        match &self.step {
            Predicted::Create => Some(super::CREATE),
            Predicted::Act(a) => Some(a.api_action()),
            Predicted::Boots { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match &self.step {
            Predicted::Create => "creating the instance".into(),
            Predicted::Act(a) => a.describe(),
            Predicted::Boots { by } => format!("the API starts the instance when {by} is done"),
        }
    }
}

/// Where a sequence ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The instance matches the spec.
    InSync,
    /// The planner waits (held back, paused, a permanent error, …).
    Waits(Wait),
    /// [`MAX_STEPS`] reached: a bug in the model.
    Diverged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The differences at the start, as pending changes.
    pub pending: Vec<PendingChange>,
    pub steps: Vec<Planned>,
    pub end: End,
    /// The instance as the model leaves it, and its write-only values.
    pub last: Observed,
    pub write_only: WriteOnly,
    /// A type change was planned without asking the API whether the
    /// instance can change to it (taken as available).
    pub type_assumed: bool,
    /// The instance ran when the sequence began.
    pub started_running: bool,
}

impl Sequence {
    /// Whether it disrupts a running instance: a reboot or a stop of an
    /// instance that ran when it began (stopping again one the API booted
    /// is not), or a reinstall (the system disk is formatted, running or
    /// not).
    pub fn disrupts(&self) -> bool {
        self.steps.iter().any(|p| match p.disruption {
            Disruption::Reinstall => true,
            Disruption::Reboot | Disruption::Stop => self.started_running,
            Disruption::None => false,
        })
    }
}

/// The sequence `input` leads to; `type_check` answers the planner's type
/// check (Unchecked: taken as available, and said so).
pub fn sequence(input: &PlanInput<'_>) -> Sequence {
    let mut s = Sequence {
        pending: Vec::new(),
        steps: Vec::new(),
        end: End::Diverged,
        last: input.observed.clone(),
        write_only: input.write_only,
        type_assumed: false,
        started_running: input
            .observed
            .instance()
            .is_some_and(|o| o.state == InstanceState::Running),
    };
    let mut recorded = input.restart.recorded.cloned();
    let mut type_check = input.type_check.clone();
    for n in 0..MAX_STEPS {
        let p = plan(&PlanInput {
            observed: &s.last,
            write_only: s.write_only,
            restart: RestartInput {
                requested: input.restart.requested,
                recorded: recorded.as_ref(),
            },
            type_check: type_check.clone(),
            ..input.clone()
        });
        if n == 0 {
            s.pending = p.pending;
        }
        if let Some(r) = p.restart {
            recorded = Some(r);
        }
        match p.step {
            Step::Create => s.create(input.spec, input.instance_name),
            Step::Act(action) => s.act(&action, &mut recorded),
            Step::CheckType(_) if type_check == TypeCheck::Unchecked => {
                s.type_assumed = true;
                type_check = TypeCheck::Available;
            }
            Step::CheckType(_) => {}
            Step::Wait(Wait::InSync) | Step::Release(_) => {
                s.end = End::InSync;
                break;
            }
            Step::Wait(w) => {
                s.end = End::Waits(w);
                break;
            }
        }
    }
    s
}

impl Sequence {
    /// RunInstances: the instance the spec describes, running (as
    /// RunInstances leaves it), every write-only value applied.
    fn create(&mut self, spec: &CvmInstanceSpec, instance_name: &str) {
        self.steps.push(Planned {
            step: Predicted::Create,
            disruption: Disruption::None,
        });
        let o = as_specified(spec, instance_name);
        self.last = Observed::Present(Arc::new(Observation {
            state: InstanceState::Running,
            stopped_mode: None,
            ..o
        }));
        self.write_only = applied(self.write_only);
    }

    /// One action on the instance, and the boot the API adds to some.
    fn act(&mut self, action: &CloudAction, recorded: &mut Option<RestartStatus>) {
        let Observed::Present(o) = &self.last else {
            return;
        };
        let mut o = (**o).clone();
        let before = o.state.clone();
        self.steps.push(Planned {
            disruption: disruption(action, &o),
            step: Predicted::Act(action.clone()),
        });
        apply(action, &mut o, &mut self.write_only, recorded);
        if action.boots() && before == InstanceState::Stopped {
            let by = action.api_action();
            self.steps.push(Planned {
                step: Predicted::Boots { by },
                disruption: Disruption::None,
            });
        }
        self.last = Observed::Present(Arc::new(o));
    }
}

/// What `action` costs the instance as it stands (`o`, before the action):
/// the same classes as a pending change's.
pub fn disruption(action: &CloudAction, o: &Observation) -> Disruption {
    let running = o.state == InstanceState::Running;
    match action {
        CloudAction::Stop { .. } if running => Disruption::Stop,
        CloudAction::Restart { .. } => Disruption::Reboot,
        // They take effect at a boot: a running instance reboots.
        CloudAction::SetHostName { .. } | CloudAction::SetPlacementGroup { .. } if running => {
            Disruption::Reboot
        }
        CloudAction::Reinstall { .. } => Disruption::Reinstall,
        _ => Disruption::None,
    }
}

/// Values set by the action that sets them: no longer changed.
fn set(c: &mut Compared) {
    if *c == Compared::Changed {
        *c = Compared::Same;
    }
}

/// A create applies every write-only value.
fn applied(mut w: WriteOnly) -> WriteOnly {
    set(&mut w.user_data);
    set(&mut w.password);
    w
}

/// The documented effect of `action` on the instance. (Exhaustive: a new
/// action names its effect here or in [`apply_settings`].)
pub fn apply(
    action: &CloudAction,
    o: &mut Observation,
    write_only: &mut WriteOnly,
    restart: &mut Option<RestartStatus>,
) {
    match action {
        CloudAction::Start => {
            o.state = InstanceState::Running;
            o.stopped_mode = None;
        }
        CloudAction::Stop { stopped_mode, .. } => {
            o.state = InstanceState::Stopped;
            o.stopped_mode = Some(*stopped_mode);
        }
        CloudAction::ResetType { instance_type } => {
            o.instance_type = Word::new(instance_type);
            o.state = InstanceState::Running;
            o.stopped_mode = None;
        }
        CloudAction::SetBandwidth { mbps } => o.bandwidth_out = *mbps,
        CloudAction::Rename { name } => o.name = name.clone(),
        CloudAction::SetSecurityGroups { ids } => o.security_group_ids = ids.clone(),
        CloudAction::SetTerminationProtection { enabled } => o.disable_api_termination = *enabled,
        CloudAction::ConvertToPrepaid { renew_flag, .. } => {
            o.charge_type = "PREPAID".into();
            o.settings.renew_flag = Word::new(renew_flag);
        }
        CloudAction::MoveNetwork { to } => {
            o.settings.vpc_id = Word::new(&to.vpc_id);
            o.settings.subnet_id = Word::new(&to.subnet_id);
            if !to.private_ip.is_empty() {
                o.private_ips = vec![to.private_ip.clone()];
            }
        }
        CloudAction::Reinstall { .. } => {
            apply_settings(action, &mut o.settings, write_only);
            o.state = InstanceState::Running;
            o.stopped_mode = None;
        }
        CloudAction::Restart { requested_at, .. } => {
            *restart = Some(RestartStatus {
                requested_at: requested_at.clone(),
                state: RestartState::Rebooted,
                ..Default::default()
            });
        }
        // Never in an apply plan; the instance goes.
        CloudAction::Terminate => o.state = InstanceState::Terminating,
        CloudAction::SetCamRole { .. }
        | CloudAction::SetTags { .. }
        | CloudAction::SetUserData
        | CloudAction::SetHostName { .. }
        | CloudAction::SetProject { .. }
        | CloudAction::SetRenewFlag { .. }
        | CloudAction::GrowDisk { .. }
        | CloudAction::SetPlacementGroup { .. }
        | CloudAction::DetachKeyPairs { .. }
        | CloudAction::AttachKeyPairs { .. }
        | CloudAction::ResetPassword => apply_settings(action, &mut o.settings, write_only),
    }
}

/// The effect of the actions that change only the instance's settings (and
/// a reinstall's on them).
fn apply_settings(action: &CloudAction, s: &mut Settings, write_only: &mut WriteOnly) {
    match action {
        CloudAction::SetCamRole { name } => s.cam_role_name = name.clone(),
        CloudAction::SetTags { replace, delete } => {
            s.tags.retain(|(k, _)| !delete.contains(k));
            for (k, v) in replace {
                s.tags.retain(|(have, _)| have != k);
                s.tags.push((k.clone(), v.clone()));
            }
        }
        CloudAction::SetUserData => set(&mut write_only.user_data),
        CloudAction::SetHostName { name } => s.host_name = name.clone(),
        CloudAction::SetProject { project_id } => s.project_id = *project_id,
        CloudAction::SetRenewFlag { flag } => s.renew_flag = Word::new(flag),
        CloudAction::GrowDisk { disk, size, .. } => match disk {
            DiskRef::System => s.system_disk.size = *size,
            DiskRef::Data { id, .. } => {
                s.data_disks
                    .iter_mut()
                    .filter(|d| d.id == *id)
                    .for_each(|d| d.size = *size);
            }
        },
        CloudAction::SetPlacementGroup { ids } => s.disaster_recover_group_ids = ids.clone(),
        CloudAction::DetachKeyPairs { ids } => s.key_ids.retain(|k| !ids.contains(k)),
        CloudAction::AttachKeyPairs { ids } => {
            for k in ids {
                if !s.key_ids.contains(k) {
                    s.key_ids.push(k.clone());
                }
            }
        }
        CloudAction::ResetPassword => set(&mut write_only.password),
        CloudAction::Reinstall {
            image_id,
            key_ids,
            host_name,
        } => {
            s.image_id = Word::new(image_id);
            if let Some(keys) = key_ids {
                s.key_ids = keys.clone();
            }
            if let Some(h) = host_name {
                s.host_name = h.clone();
            }
            *write_only = applied(*write_only);
        }
        _ => {}
    }
}

/// A short name of an action.
pub fn verb(action: &CloudAction) -> &'static str {
    match action {
        CloudAction::Start => "start",
        CloudAction::Stop { .. } => "stop",
        CloudAction::ResetType { .. } => "resize",
        CloudAction::SetBandwidth { .. } => "set-bandwidth",
        CloudAction::Rename { .. } => "rename",
        CloudAction::SetSecurityGroups { .. } => "set-security-groups",
        CloudAction::SetTerminationProtection { .. } => "set-termination-protection",
        CloudAction::SetCamRole { .. } => "set-cam-role",
        CloudAction::SetTags { .. } => "set-tags",
        CloudAction::SetUserData => "set-user-data",
        CloudAction::SetHostName { .. } => "set-host-name",
        CloudAction::SetProject { .. } => "set-project",
        CloudAction::ConvertToPrepaid { .. } => "convert-to-prepaid",
        CloudAction::SetRenewFlag { .. } => "set-renew-flag",
        CloudAction::GrowDisk { .. } => "grow-disk",
        CloudAction::SetPlacementGroup { .. } => "set-placement-group",
        CloudAction::DetachKeyPairs { .. } => "detach-key-pairs",
        CloudAction::AttachKeyPairs { .. } => "attach-key-pairs",
        CloudAction::ResetPassword => "reset-password",
        CloudAction::MoveNetwork { .. } => "move-network",
        CloudAction::Reinstall { .. } => "reinstall",
        CloudAction::Restart { .. } => "reboot",
        CloudAction::Terminate => "terminate",
    }
}

/// The instance `spec` describes, as DescribeInstances would show it once
/// created and in sync (the state `spec.runState` asks for). Fields a spec
/// leaves unset take the API's defaults.
pub fn as_specified(spec: &CvmInstanceSpec, instance_name: &str) -> Observation {
    let (state, stopped_mode) = match spec.run_state {
        RunState::Running => (InstanceState::Running, None),
        RunState::Stopped => (InstanceState::Stopped, Some(spec.stopped_mode)),
    };
    let vpc = spec.vpc.as_ref();
    let login = spec.login_settings.as_ref();
    let disk = |i: usize, size: i64, disk_type: String| Disk {
        id: format!("disk-planned{i}"),
        disk_type: disk_type.into(),
        size,
    };
    let settings = Settings {
        image_id: Word::new(&spec.image_id),
        host_name: spec.host_name.clone().unwrap_or_default(),
        project_id: spec.project_id.unwrap_or(0),
        renew_flag: Word::new(spec.prepaid.as_ref().map_or("", |p| p.renew_flag.as_str())),
        key_ids: login.and_then(|l| l.key_ids.clone()).unwrap_or_default(),
        system_disk: spec
            .system_disk
            .as_ref()
            .map(|d| disk(0, d.disk_size, d.disk_type.as_str().into()))
            .unwrap_or_else(|| disk(0, 50, "CLOUD_BSSD".into())),
        data_disks: spec
            .data_disks
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, d)| disk(i + 1, d.disk_size, d.disk_type.as_str().into()))
            .collect(),
        vpc_id: Word::new(vpc.map_or("", |v| v.vpc_id.as_str())),
        subnet_id: Word::new(vpc.map_or("", |v| v.subnet_id.as_str())),
        cam_role_name: spec.cam_role_name.clone().unwrap_or_default(),
        disaster_recover_group_ids: spec.disaster_recover_group_ids.clone().unwrap_or_default(),
        tags: spec
            .tags
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Observation {
        id: spec.instance_id.clone().unwrap_or_default(),
        state,
        instance_type: Word::new(&spec.instance_type),
        name: instance_name.to_string(),
        zone: Word::new(&spec.zone),
        bandwidth_out: spec
            .internet_accessible
            .as_ref()
            .map_or(0, |i| i.internet_max_bandwidth_out),
        security_group_ids: spec.security_group_ids.clone().unwrap_or_default(),
        private_ips: vpc
            .and_then(|v| v.private_ip_address.clone())
            .into_iter()
            .collect(),
        public_ips: Vec::new(),
        created_time: String::new(),
        latest_operation: Word::default(),
        operating: false,
        latest_operation_failed: false,
        latest_operation_request_id: String::new(),
        latest_operation_error_msg: String::new(),
        disable_api_termination: spec.disable_api_termination.unwrap_or(false),
        stopped_mode,
        charge_type: Word::new(spec.instance_charge_type.as_str()),
        uid_tag: None,
        set_tag: None,
        namespace_tag: None,
        name_tag: None,
        settings: Box::new(settings),
    }
}

#[cfg(test)]
#[path = "sequence_tests.rs"]
mod tests;
