//! The decision: given the spec, what the cloud shows and the policies, the
//! one next cloud action, or why to wait. Pure and total: no I/O, no clock;
//! every (state, operation state, difference) has a tested answer below.

mod detect;
mod drift;
mod fix;
pub mod restart;
pub mod sequence;

pub use detect::drift;
pub use drift::{DiskRef, Disruption, Drift, Needs, Network, PendingChange};
use fix::Fix;
pub use restart::RestartInput;

use super::observation::{Observation, Observed, WriteOnly};
use crate::api::{
    CvmInstanceSpec, DeletionPolicy, LastOperation, ManagementPolicy, RESTARTED_AT_ANNOTATION,
    RestartStatus, RunState, StopType, StoppedMode,
};
use crate::cloud::model::{self, Action as _, InstanceState};
use crate::cloud::tag;

/// Keeping the resource's instance, or letting it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// The resource is being deleted (our finalizer holds it).
    Delete,
}

/// The API action of a create.
pub const CREATE: &str = model::RunInstances::NAME;

#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub spec: &'a CvmInstanceSpec,
    /// `spec.instanceName`, or the resource name.
    pub instance_name: &'a str,
    pub observed: &'a Observed,
    pub mode: Mode,
    pub paused: bool,
    /// A permanent failure recorded for the current generation: no more
    /// mutations until the spec changes (but restoring the power state).
    pub blocked: Option<&'a Blocked>,
    /// The restart asked for by annotation, and what status says of it.
    pub restart: RestartInput<'a>,
    /// The values the API never shows back, compared with what was applied.
    pub write_only: WriteOnly,
    /// Whether the instance may change to the spec's type (asked of the API
    /// when the plan says [`Step::CheckType`]).
    pub type_check: TypeCheck,
}

/// What DescribeInstancesModification said of the spec's instance type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TypeCheck {
    /// Not asked (yet).
    #[default]
    Unchecked,
    Available,
    /// Not a type this instance can change to, or sold out here: why.
    Unavailable(String),
}

/// A mutation refused permanently for the current generation: nothing more
/// is tried until the spec changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// RunInstances was refused, so nothing was created (no tag lookup needed).
    Create,
    /// An action on the instance, by its API name.
    Action(String),
}

impl Blocked {
    /// What `last` blocks, if it failed for `generation`.
    pub fn from_last(last: &LastOperation, generation: Option<i64>) -> Option<Self> {
        if !last.blocks(generation) {
            return None;
        }
        Some(if last.action == CREATE {
            Blocked::Create
        } else {
            Blocked::Action(last.action.clone())
        })
    }

    pub fn api_action(&self) -> &str {
        match self {
            Blocked::Create => CREATE,
            Blocked::Action(a) => a,
        }
    }
}

/// A change to an existing instance (creating one is [`Step::Create`]).
/// Adding one: a variant here with its API action, description and event
/// reason below, the planner rows that choose it (`drift.rs`, [`fix`]),
/// and its request in `act.rs` (DEVELOPERS.md has the recipe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudAction {
    Start,
    Stop {
        stop_type: StopType,
        stopped_mode: StoppedMode,
        /// The fields this stop is for (the stop window): empty when the
        /// spec asks for a stopped instance.
        to_apply: Vec<&'static str>,
    },
    ResetType {
        instance_type: String,
    },
    SetBandwidth {
        mbps: i64,
    },
    Rename {
        name: String,
    },
    SetSecurityGroups {
        ids: Vec<String>,
    },
    SetTerminationProtection {
        enabled: bool,
    },
    /// `""` unbinds the role.
    SetCamRole {
        name: String,
    },
    /// ModifyResourceTags: at most ten of each per call (the rest follows).
    SetTags {
        replace: Vec<(String, String)>,
        delete: Vec<String>,
    },
    /// ModifyInstancesAttribute `UserData`: the value the spec asks for
    /// (read from the spec or its Secret when the request is built).
    SetUserData,
    /// ModifyInstancesAttribute `HostName`: a running instance reboots.
    SetHostName {
        name: String,
    },
    SetProject {
        project_id: i64,
    },
    /// ModifyInstancesChargeType POSTPAID_BY_HOUR → PREPAID.
    ConvertToPrepaid {
        period: i64,
        renew_flag: String,
    },
    SetRenewFlag {
        flag: String,
    },
    /// ResizeInstanceDisks: online while the instance runs.
    GrowDisk {
        disk: DiskRef,
        size: i64,
        online: bool,
    },
    /// ModifyInstancesDisasterRecoverGroup with `Force` (a running instance
    /// may move to another host, restarting); empty leaves the group.
    SetPlacementGroup {
        ids: Vec<String>,
    },
    DetachKeyPairs {
        ids: Vec<String>,
    },
    AttachKeyPairs {
        ids: Vec<String>,
    },
    /// ResetInstancesPassword with the password the spec's Secret holds.
    ResetPassword,
    /// ModifyInstancesVpcAttribute.
    MoveNetwork {
        to: Network,
    },
    /// ResetInstance: the operating system is reinstalled (the system disk
    /// formatted) with the login, host name and user data of the spec.
    Reinstall {
        image_id: String,
        /// The spec's key pairs (else the password from its Secret, else the
        /// image's own login).
        key_ids: Option<Vec<String>>,
        host_name: Option<String>,
    },
    /// RebootInstances for a `cvm.tencentcloud.io/restartedAt` value; the
    /// intent is recorded in status before the call.
    Restart {
        requested_at: String,
        stop_type: StopType,
    },
    Terminate,
}

impl CloudAction {
    /// The CVM API action that carries it out.
    pub fn api_action(&self) -> &'static str {
        match self {
            CloudAction::Start => model::StartInstances::NAME,
            CloudAction::Stop { .. } => model::StopInstances::NAME,
            CloudAction::ResetType { .. } => model::ResetInstancesType::NAME,
            CloudAction::SetBandwidth { .. } => model::ResetInstancesInternetMaxBandwidth::NAME,
            CloudAction::Rename { .. }
            | CloudAction::SetSecurityGroups { .. }
            | CloudAction::SetTerminationProtection { .. }
            | CloudAction::SetCamRole { .. }
            | CloudAction::SetUserData
            | CloudAction::SetHostName { .. } => model::ModifyInstancesAttribute::NAME,
            CloudAction::SetTags { .. } => tag::ModifyResourceTags::NAME,
            CloudAction::SetProject { .. } => model::ModifyInstancesProject::NAME,
            CloudAction::ConvertToPrepaid { .. } => model::ModifyInstancesChargeType::NAME,
            CloudAction::SetRenewFlag { .. } => model::ModifyInstancesRenewFlag::NAME,
            CloudAction::GrowDisk { .. } => model::ResizeInstanceDisks::NAME,
            CloudAction::SetPlacementGroup { .. } => {
                model::ModifyInstancesDisasterRecoverGroup::NAME
            }
            CloudAction::DetachKeyPairs { .. } => model::DisassociateInstancesKeyPairs::NAME,
            CloudAction::AttachKeyPairs { .. } => model::AssociateInstancesKeyPairs::NAME,
            CloudAction::ResetPassword => model::ResetInstancesPassword::NAME,
            CloudAction::MoveNetwork { .. } => model::ModifyInstancesVpcAttribute::NAME,
            CloudAction::Reinstall { .. } => model::ResetInstance::NAME,
            CloudAction::Restart { .. } => model::RebootInstances::NAME,
            CloudAction::Terminate => model::TerminateInstances::NAME,
        }
    }

    /// The reason of the event that records it (an interface: people and
    /// alerts match on it).
    pub fn event_reason(&self) -> &'static str {
        match self {
            CloudAction::Start => "Starting",
            CloudAction::Stop { to_apply, .. } if !to_apply.is_empty() => "StoppingForChanges",
            CloudAction::Stop { .. } => "Stopping",
            CloudAction::ResetType { .. } => "Resizing",
            CloudAction::SetBandwidth { .. } => "UpdatingBandwidth",
            CloudAction::Rename { .. } => "Renaming",
            CloudAction::SetSecurityGroups { .. } => "UpdatingSecurityGroups",
            CloudAction::SetTerminationProtection { .. } => "UpdatingTerminationProtection",
            CloudAction::SetCamRole { .. } => "UpdatingCamRole",
            CloudAction::SetTags { .. } => "UpdatingTags",
            CloudAction::SetUserData => "UpdatingUserData",
            CloudAction::SetHostName { .. } => "UpdatingHostName",
            CloudAction::SetProject { .. } => "UpdatingProject",
            CloudAction::ConvertToPrepaid { .. } => "ConvertingToPrepaid",
            CloudAction::SetRenewFlag { .. } => "UpdatingRenewFlag",
            CloudAction::GrowDisk { .. } => "GrowingDisk",
            CloudAction::SetPlacementGroup { .. } => "UpdatingPlacementGroup",
            CloudAction::DetachKeyPairs { .. } => "DetachingKeyPairs",
            CloudAction::AttachKeyPairs { .. } => "AttachingKeyPairs",
            CloudAction::ResetPassword => "ResettingPassword",
            CloudAction::MoveNetwork { .. } => "MovingNetwork",
            CloudAction::Reinstall { .. } => "Reinstalling",
            CloudAction::Restart { .. } => "Restarting",
            CloudAction::Terminate => "Terminating",
        }
    }

    /// A one-line description for events and conditions.
    pub fn describe(&self) -> String {
        match self {
            CloudAction::Start => "starting the instance".into(),
            CloudAction::Stop { to_apply, .. } if !to_apply.is_empty() => format!(
                "stopping the instance once to apply {} (spec.runState is restored afterwards)",
                to_apply.join(", ")
            ),
            CloudAction::Stop { .. } => "stopping the instance".into(),
            CloudAction::ResetType { instance_type } => {
                format!("changing the instance type to {instance_type}")
            }
            CloudAction::SetBandwidth { mbps } => {
                format!("setting the outbound bandwidth to {mbps} Mbps")
            }
            CloudAction::Rename { name } => format!("renaming the instance to {name:?}"),
            CloudAction::SetSecurityGroups { ids } => {
                format!("setting the security groups to {}", ids.join(","))
            }
            CloudAction::SetTerminationProtection { enabled } => {
                format!(
                    "{} termination protection",
                    if *enabled { "enabling" } else { "disabling" }
                )
            }
            CloudAction::SetCamRole { name } if name.is_empty() => "unbinding the CAM role".into(),
            CloudAction::SetCamRole { name } => format!("binding the CAM role {name:?}"),
            CloudAction::SetTags { replace, delete } => {
                let set: Vec<String> = replace.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "setting tags [{}], removing tags [{}]",
                    set.join(","),
                    delete.join(",")
                )
            }
            CloudAction::SetUserData => {
                "setting the user data (the instance uses it at its next boot)".into()
            }
            CloudAction::SetHostName { name } => {
                format!("setting the host name to {name:?} (a running instance reboots to use it)")
            }
            CloudAction::Restart { requested_at, .. } => {
                format!("rebooting the instance ({RESTARTED_AT_ANNOTATION}: {requested_at})")
            }
            CloudAction::Terminate => "terminating the instance".into(),
            other => other.describe_in_place(),
        }
    }

    /// The descriptions of issue 10's in-place changes.
    fn describe_in_place(&self) -> String {
        match self {
            CloudAction::SetProject { project_id } => {
                format!("moving the instance to project {project_id}")
            }
            CloudAction::ConvertToPrepaid { period, renew_flag } => {
                format!("converting the instance to PREPAID for {period} months ({renew_flag})")
            }
            CloudAction::SetRenewFlag { flag } => format!("setting the renew flag to {flag}"),
            CloudAction::GrowDisk { disk, size, online } => format!(
                "growing {} to {size} GB ({})",
                match disk {
                    DiskRef::System => "the system disk".to_string(),
                    DiskRef::Data { id, .. } => format!("data disk {id}"),
                },
                if *online { "online" } else { "while stopped" }
            ),
            CloudAction::SetPlacementGroup { ids } if ids.is_empty() => {
                "taking the instance out of its placement group".into()
            }
            CloudAction::SetPlacementGroup { ids } => format!(
                "moving the instance to placement group {} (a running instance may restart on another host)",
                ids.join(",")
            ),
            CloudAction::DetachKeyPairs { ids } => format!("detaching key pairs {}", ids.join(",")),
            CloudAction::AttachKeyPairs { ids } => format!("attaching key pairs {}", ids.join(",")),
            CloudAction::ResetPassword => "resetting the login password from its Secret".into(),
            CloudAction::MoveNetwork { to } => format!("moving the instance to {to}"),
            CloudAction::Reinstall { image_id, .. } => format!(
                "reinstalling the operating system from {image_id} (the system disk is formatted)"
            ),
            other => format!("{other:?}"),
        }
    }

    /// The API boots the instance when it does this, also from STOPPED
    /// (ResetInstancesType and ResetInstance, as documented).
    pub fn boots(&self) -> bool {
        matches!(
            self,
            CloudAction::ResetType { .. } | CloudAction::Reinstall { .. }
        )
    }
}

/// Why nothing is done now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Everything matches.
    InSync,
    /// The instance is between states (PENDING, STOPPING, …).
    Transitioning { state: String },
    /// The state is final but the last operation still runs; any mutation
    /// now would get OperationDenied.InstanceOperationInProgress.
    OperationInProgress { operation: String },
    /// `cvm.tencentcloud.io/paused: "true"`; `pending` is what would happen.
    Paused { pending: Box<Step> },
    /// `managementPolicy: ObserveOnly` with differences to report.
    ObserveOnly,
    /// Changes left that need a disruption `disruptionPolicy` does not
    /// allow (the first one names the condition's reason).
    NotAllowed(Vec<Refused>),
    /// The instance cannot change to the type the spec asks for (checked
    /// before any stop): a person must pick another.
    TypeUnavailable { instance_type: String, why: String },
    /// LAUNCH_FAILED is final: report, never retry.
    LaunchFailed { message: String },
    /// The instance vanished (or the adopted id does not exist): report,
    /// never recreate.
    NotFound { instance_id: Option<String> },
    /// A permanent error for this generation; waiting for a spec change.
    Blocked(Blocked),
    /// A prepaid instance sits in the recycle bin (SHUTDOWN).
    RecycleBin,
    /// Deleting, but the instance has termination protection.
    TerminationProtected,
}

/// A change not made because its disruption is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub disruption: Disruption,
}

impl Wait {
    /// Waits that end by themselves soon (poll fast).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Wait::Transitioning { .. } | Wait::OperationInProgress { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// RunInstances: the resource has no instance yet.
    Create,
    Act(CloudAction),
    /// Ask the API whether the instance can change to this type before
    /// acting for it, then plan again with the answer.
    CheckType(String),
    Wait(Wait),
    /// Deletion is complete (or must not touch the cloud): drop the finalizer.
    Release(Release),
}

impl Step {
    /// A one-line description (what a paused resource would do next).
    pub fn describe(&self) -> String {
        match self {
            Step::Create => "creating the instance".into(),
            Step::Act(a) => a.describe(),
            Step::CheckType(t) => format!("checking that the instance can change to {t}"),
            Step::Wait(w) => format!("waiting ({w:?})"),
            Step::Release(_) => "releasing the resource".into(),
        }
    }
}

/// Why a deleted resource may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `deletionPolicy: Retain` or `managementPolicy: ObserveOnly`: the
    /// instance stays as it is.
    Retained,
    /// The instance is gone (terminated, or removed outside Kubernetes).
    Gone,
    /// LAUNCH_FAILED: never launched, never billed, and the API refuses to
    /// terminate it.
    NeverLaunched,
    /// No instance was ever created.
    NeverCreated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub step: Step,
    /// Every difference seen (also the ones not acted on yet).
    pub drift: Vec<Drift>,
    /// The same as pending changes (field, from, to, disruption).
    pub pending: Vec<PendingChange>,
    /// What to record of the restart request without a call: it already
    /// happened (a crash hid the answer), or the instance is stopped.
    pub restart: Option<RestartStatus>,
}

impl Plan {
    fn new(step: Step) -> Self {
        Plan {
            step,
            drift: Vec::new(),
            pending: Vec::new(),
            restart: None,
        }
    }
}

fn wait(w: Wait) -> Plan {
    Plan::new(Step::Wait(w))
}

/// A deletion that must not touch the cloud (and needs no credentials):
/// decided before anything is observed, and by [`plan`] alike.
pub fn release_without_cloud(spec: &CvmInstanceSpec, mode: Mode) -> Option<Release> {
    let keep = spec.effective_deletion_policy() == DeletionPolicy::Retain
        || spec.management_policy == ManagementPolicy::ObserveOnly;
    (mode == Mode::Delete && keep).then_some(Release::Retained)
}

/// The next step.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    match input.mode {
        Mode::Delete => plan_delete(input),
        Mode::Apply => match input.observed {
            Observed::Present(o) => plan_present(input, o),
            absent => plan_absent(input, absent),
        },
    }
}

fn plan_delete(input: &PlanInput<'_>) -> Plan {
    if let Some(why) = release_without_cloud(input.spec, Mode::Delete) {
        return Plan::new(Step::Release(why));
    }
    let o = match input.observed {
        Observed::NotCreated => return Plan::new(Step::Release(Release::NeverCreated)),
        Observed::Missing { .. } => return Plan::new(Step::Release(Release::Gone)),
        Observed::Present(o) => o,
    };
    match &o.state {
        InstanceState::LaunchFailed => Plan::new(Step::Release(Release::NeverLaunched)),
        InstanceState::Running | InstanceState::Stopped | InstanceState::Shutdown => {
            if o.operating {
                wait(Wait::OperationInProgress {
                    operation: o.latest_operation.to_string(),
                })
            } else if !o.disable_api_termination {
                Plan::new(Step::Act(CloudAction::Terminate))
            } else if input.spec.disable_api_termination == Some(false) {
                let unprotect = CloudAction::SetTerminationProtection { enabled: false };
                Plan::new(Step::Act(unprotect))
            } else {
                wait(Wait::TerminationProtected)
            }
        }
        other => wait(Wait::Transitioning {
            state: other.as_str().into(),
        }),
    }
}

/// No instance to look at: create one, or say why not.
fn plan_absent(input: &PlanInput<'_>, observed: &Observed) -> Plan {
    let spec = input.spec;
    if let Observed::Missing { instance_id } = observed {
        return wait(Wait::NotFound {
            instance_id: Some(instance_id.clone()),
        });
    }
    if spec.management_policy == ManagementPolicy::ObserveOnly || spec.instance_id.is_some() {
        return wait(Wait::NotFound {
            instance_id: spec.instance_id.clone(),
        });
    }
    if let Some(blocked) = input.blocked {
        return wait(Wait::Blocked(blocked.clone()));
    }
    if input.paused {
        return wait(Wait::Paused {
            pending: Box::new(Step::Create),
        });
    }
    Plan::new(Step::Create)
}

fn plan_present(input: &PlanInput<'_>, o: &Observation) -> Plan {
    let drift = drift(input.spec, input.instance_name, o, &input.write_only);
    let pending = drift.iter().map(|d| pending_change(o, d)).collect();
    let (restart, reboot) =
        match restart::next(&input.restart, o, input.spec.run_state == RunState::Running) {
            restart::Next::Nothing => (None, None),
            restart::Next::Record(r) => (Some(r), None),
            restart::Next::Reboot(at) => (None, Some(at)),
        };
    // Waits carry the differences too: an instance caught moving (STOPPING,
    // an operation in progress) by someone else's hand is drift to report
    // now, since once it settles our own status no longer says "in sync".
    let step = match &o.state {
        InstanceState::Running | InstanceState::Stopped => settled_step(input, o, &drift, reboot),
        InstanceState::LaunchFailed => {
            return wait(Wait::LaunchFailed {
                message: o.latest_operation_error_msg.clone(),
            });
        }
        InstanceState::Shutdown => Step::Wait(Wait::RecycleBin),
        other => Step::Wait(Wait::Transitioning {
            state: other.as_str().into(),
        }),
    };
    Plan {
        step,
        drift,
        pending,
        restart,
    }
}

/// The step for a settled (RUNNING or STOPPED) instance; `reboot`: a
/// restart asked for and not done yet.
fn settled_step(
    input: &PlanInput<'_>,
    o: &Observation,
    drift: &[Drift],
    reboot: Option<String>,
) -> Step {
    if o.operating {
        return Step::Wait(Wait::OperationInProgress {
            operation: o.latest_operation.to_string(),
        });
    }
    if drift.is_empty() && reboot.is_none() {
        return Step::Wait(Wait::InSync);
    }
    if input.spec.management_policy == ManagementPolicy::ObserveOnly {
        let w = if drift.is_empty() {
            Wait::InSync
        } else {
            Wait::ObserveOnly
        };
        return Step::Wait(w);
    }
    let restart = |requested_at: String| CloudAction::Restart {
        requested_at,
        stop_type: input.spec.stop_type,
    };
    let step = match (fix::next(input, o, drift), reboot) {
        (Fix::Act(action), _) => Step::Act(action),
        (Fix::CheckType(t), _) => Step::CheckType(t),
        // Asked for explicitly: also when other changes wait for a person.
        (_, Some(at)) => Step::Act(restart(at)),
        (Fix::NotAllowed(refused), None) => Step::Wait(Wait::NotAllowed(refused)),
        (Fix::TypeUnavailable { instance_type, why }, None) => {
            Step::Wait(Wait::TypeUnavailable { instance_type, why })
        }
        (Fix::Blocked, None) => Step::Wait(Wait::Blocked(
            input
                .blocked
                .cloned()
                .expect("Fix::Blocked comes from a block"),
        )),
        (Fix::Nothing, None) => Step::Wait(Wait::InSync),
    };
    match step {
        Step::Act(action) if input.paused => Step::Wait(Wait::Paused {
            pending: Box::new(Step::Act(action)),
        }),
        step => step,
    }
}

/// A difference as a pending change: what applying it costs the instance
/// from where it stands.
fn pending_change(o: &Observation, d: &Drift) -> PendingChange {
    let running = o.state == InstanceState::Running;
    let disruption = match d.needs() {
        // Stopped without charging: started and stopped again first (or,
        // to stop charging, the other way round).
        _ if fix::must_restop(o, d) || matches!(d, Drift::StoppedMode { .. }) => Disruption::Stop,
        Needs::Nothing | Needs::Online => Disruption::None,
        Needs::RebootWhenRunning if running => Disruption::Reboot,
        Needs::Stopped if running => Disruption::Stop,
        Needs::Reinstall => Disruption::Reinstall,
        Needs::Power if running => Disruption::Stop,
        Needs::RebootWhenRunning | Needs::Stopped | Needs::Power => Disruption::None,
    };
    let (from, to) = d.values();
    PendingChange {
        field: d.field(),
        from,
        to,
        disruption,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
