//! The decision: given the spec, what the cloud shows and the policies, the
//! one next cloud action, or why to wait. Pure and total: no I/O, no clock;
//! every (state, operation state, difference) has a tested answer below.

use super::observation::{Observation, Observed};
use crate::api::{
    CvmInstanceSpec, DeletionPolicy, LastOperation, ManagementPolicy, ResizePolicy, RunState,
    StopType, StoppedMode,
};
use crate::cloud::model::{self, Action as _, InstanceState};

/// Keeping the resource's instance, or letting it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// The resource is being deleted (our finalizer holds it).
    Delete,
}

/// The API action of a create.
pub const CREATE: &str = model::RunInstances::NAME;

#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub spec: &'a CvmInstanceSpec,
    /// `spec.instanceName`, or the resource name.
    pub instance_name: &'a str,
    pub observed: &'a Observed,
    pub mode: Mode,
    pub paused: bool,
    /// A permanent failure recorded for the current generation: no more
    /// mutations until the spec changes.
    pub blocked: Option<&'a Blocked>,
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
/// reason below, the planner rows that choose it ([`drift`], `first_fix`),
/// and its request in `act.rs` (DEVELOPERS.md has the recipe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudAction {
    Start,
    Stop {
        stop_type: StopType,
        stopped_mode: StoppedMode,
        /// Stopping only to change the type (the run state is restored after).
        for_resize: bool,
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
            | CloudAction::SetTerminationProtection { .. } => model::ModifyInstancesAttribute::NAME,
            CloudAction::Terminate => model::TerminateInstances::NAME,
        }
    }

    /// The reason of the event that records it (an interface: people and
    /// alerts match on it).
    pub fn event_reason(&self) -> &'static str {
        match self {
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

    /// A one-line description for events and conditions.
    pub fn describe(&self) -> String {
        match self {
            CloudAction::Start => "starting the instance".into(),
            CloudAction::Stop {
                for_resize: true, ..
            } => "stopping the instance to change its type".into(),
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
            CloudAction::Terminate => "terminating the instance".into(),
        }
    }
}

/// A difference between the spec and the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    PowerState {
        want: String,
        have: String,
    },
    InstanceType {
        want: String,
        have: String,
    },
    Bandwidth {
        want: i64,
        have: i64,
    },
    Name {
        want: String,
        have: String,
    },
    SecurityGroups {
        want: Vec<String>,
        have: Vec<String>,
    },
    TerminationProtection {
        want: bool,
        have: bool,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::PowerState { want, have } => write!(f, "state is {have}, spec wants {want}"),
            Drift::InstanceType { want, have } => write!(f, "type is {have}, spec wants {want}"),
            Drift::Bandwidth { want, have } => {
                write!(f, "bandwidth is {have} Mbps, spec wants {want}")
            }
            Drift::Name { want, have } => write!(f, "name is {have:?}, spec wants {want:?}"),
            Drift::SecurityGroups { want, have } => {
                write!(
                    f,
                    "security groups are [{}], spec wants [{}]",
                    have.join(","),
                    want.join(",")
                )
            }
            Drift::TerminationProtection { want, have } => {
                write!(f, "termination protection is {have}, spec wants {want}")
            }
        }
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
    /// The type differs but `resizePolicy: Never` forbids the power cycle.
    ResizeRequiresStop,
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
}

impl Plan {
    fn new(step: Step) -> Self {
        Plan {
            step,
            drift: Vec::new(),
        }
    }
}

fn wait(w: Wait) -> Plan {
    Plan::new(Step::Wait(w))
}

fn run_state_name(s: RunState) -> &'static str {
    match s {
        RunState::Running => "RUNNING",
        RunState::Stopped => "STOPPED",
    }
}

/// Every difference between the spec and an instance, in the order they
/// are fixed: type first (so a restart happens after the resize), then
/// power, then the in-place attributes.
pub fn drift(spec: &CvmInstanceSpec, instance_name: &str, o: &Observation) -> Vec<Drift> {
    let mut out = Vec::new();
    if o.instance_type != spec.instance_type {
        out.push(Drift::InstanceType {
            want: spec.instance_type.clone(),
            have: o.instance_type.clone(),
        });
    }
    let have_state = o.state.as_str().to_string();
    let want_state = run_state_name(spec.run_state);
    let powered_as_wanted = match spec.run_state {
        RunState::Running => o.state == InstanceState::Running,
        RunState::Stopped => o.state == InstanceState::Stopped,
    };
    if !powered_as_wanted {
        out.push(Drift::PowerState {
            want: want_state.into(),
            have: have_state,
        });
    }
    if let Some(ia) = &spec.internet_accessible
        && ia.internet_max_bandwidth_out != o.bandwidth_out
    {
        out.push(Drift::Bandwidth {
            want: ia.internet_max_bandwidth_out,
            have: o.bandwidth_out,
        });
    }
    if o.name != instance_name {
        out.push(Drift::Name {
            want: instance_name.into(),
            have: o.name.clone(),
        });
    }
    if let Some(sgs) = &spec.security_group_ids
        && *sgs != o.security_group_ids
    {
        out.push(Drift::SecurityGroups {
            want: sgs.clone(),
            have: o.security_group_ids.clone(),
        });
    }
    if let Some(p) = spec.disable_api_termination
        && p != o.disable_api_termination
    {
        out.push(Drift::TerminationProtection {
            want: p,
            have: o.disable_api_termination,
        });
    }
    out
}

/// A deletion that must not touch the cloud (and needs no credentials):
/// decided before anything is observed, and by [`plan`] alike.
pub fn release_without_cloud(spec: &CvmInstanceSpec, mode: Mode) -> Option<Release> {
    let keep = spec.deletion_policy == DeletionPolicy::Retain
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
                    operation: o.latest_operation.clone(),
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
    let drift = drift(input.spec, input.instance_name, o);
    // Waits carry the differences too: an instance caught moving (STOPPING,
    // an operation in progress) by someone else's hand is drift to report
    // now, since once it settles our own status no longer says "in sync".
    let step = match &o.state {
        InstanceState::Running | InstanceState::Stopped => settled_step(input, o, &drift),
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
    Plan { step, drift }
}

/// The step for a settled (RUNNING or STOPPED) instance.
fn settled_step(input: &PlanInput<'_>, o: &Observation, drift: &[Drift]) -> Step {
    if o.operating {
        return Step::Wait(Wait::OperationInProgress {
            operation: o.latest_operation.clone(),
        });
    }
    if drift.is_empty() {
        return Step::Wait(Wait::InSync);
    }
    if input.spec.management_policy == ManagementPolicy::ObserveOnly {
        return Step::Wait(Wait::ObserveOnly);
    }
    if let Some(blocked) = input.blocked {
        return Step::Wait(Wait::Blocked(blocked.clone()));
    }
    match first_fix(input.spec, o, drift) {
        Fix::Act(action) if input.paused => Step::Wait(Wait::Paused {
            pending: Box::new(Step::Act(action)),
        }),
        Fix::Act(action) => Step::Act(action),
        Fix::ResizeBlocked => Step::Wait(Wait::ResizeRequiresStop),
        Fix::Nothing => Step::Wait(Wait::InSync),
    }
}

enum Fix {
    Act(CloudAction),
    /// Only the type differs (among what can be fixed), and the policy
    /// forbids the power cycle it needs.
    ResizeBlocked,
    Nothing,
}

/// The action that fixes the first difference that can be fixed now, in the
/// order of [`drift`].
fn first_fix(spec: &CvmInstanceSpec, o: &Observation, drift: &[Drift]) -> Fix {
    let running = o.state == InstanceState::Running;
    let mut resize_blocked = false;
    for d in drift {
        let action = match d {
            Drift::InstanceType { want, .. } => match resize_step(spec, o, want) {
                Some(a) => Some(a),
                None => {
                    resize_blocked = true;
                    None
                }
            },
            Drift::PowerState { .. } if running => Some(CloudAction::Stop {
                stop_type: spec.stop_type,
                stopped_mode: spec.stopped_mode,
                for_resize: false,
            }),
            Drift::PowerState { .. } => Some(CloudAction::Start),
            Drift::Bandwidth { want, .. } => Some(CloudAction::SetBandwidth { mbps: *want }),
            Drift::Name { want, .. } => Some(CloudAction::Rename { name: want.clone() }),
            Drift::SecurityGroups { want, .. } => {
                Some(CloudAction::SetSecurityGroups { ids: want.clone() })
            }
            Drift::TerminationProtection { want, .. } => {
                Some(CloudAction::SetTerminationProtection { enabled: *want })
            }
        };
        if let Some(a) = action {
            return Fix::Act(a);
        }
    }
    if resize_blocked {
        Fix::ResizeBlocked
    } else {
        Fix::Nothing
    }
}

/// The next move of a resize to `want`; `None` when it needs a power cycle
/// that `resizePolicy: Never` forbids.
fn resize_step(spec: &CvmInstanceSpec, o: &Observation, want: &str) -> Option<CloudAction> {
    let may_power_cycle = spec.resize_policy == ResizePolicy::StopAndStart;
    if o.state == InstanceState::Running {
        // Keep charging: the API refuses to resize an instance stopped in
        // STOP_CHARGING mode.
        return may_power_cycle.then_some(CloudAction::Stop {
            stop_type: spec.stop_type,
            stopped_mode: StoppedMode::KEEP_CHARGING,
            for_resize: true,
        });
    }
    if o.stopped_mode == Some(StoppedMode::STOP_CHARGING) {
        // Stopped without charging: must start, then stop with
        // KEEP_CHARGING, to be resizable.
        return may_power_cycle.then_some(CloudAction::Start);
    }
    Some(CloudAction::ResetType {
        instance_type: want.to_string(),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
