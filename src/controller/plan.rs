//! The decision: given the spec, what the cloud shows and the policies, the
//! one next cloud action, or why to wait. Pure and total: no I/O, no clock;
//! every (state, operation state, difference) has a tested answer below.

use super::observe::Observation;
use crate::api::{
    CvmInstanceSpec, DeletionPolicy, ManagementPolicy, ResizePolicy, RunState, StopType,
    StoppedMode,
};
use crate::cloud::model::InstanceState;

/// What the cloud shows for this resource.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    /// No instance id is known and none carries our UID tag.
    NotCreated,
    /// An id is known (from status or `spec.instanceId`) but the cloud does
    /// not list it.
    Missing {
        instance_id: &'a str,
    },
    Present(&'a Observation),
}

#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub spec: &'a CvmInstanceSpec,
    /// `spec.instanceName`, or the resource name.
    pub instance_name: &'a str,
    pub observed: Observed<'a>,
    pub deleting: bool,
    pub paused: bool,
    /// A permanent failure recorded for the current generation: no more
    /// mutations until the spec changes.
    pub blocked: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudAction {
    Create,
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
            CloudAction::Create => "RunInstances",
            CloudAction::Start => "StartInstances",
            CloudAction::Stop { .. } => "StopInstances",
            CloudAction::ResetType { .. } => "ResetInstancesType",
            CloudAction::SetBandwidth { .. } => "ResetInstancesInternetMaxBandwidth",
            CloudAction::Rename { .. }
            | CloudAction::SetSecurityGroups { .. }
            | CloudAction::SetTerminationProtection { .. } => "ModifyInstancesAttribute",
            CloudAction::Terminate => "TerminateInstances",
        }
    }

    /// A one-line description for events and conditions.
    pub fn describe(&self) -> String {
        match self {
            CloudAction::Create => "creating the instance".into(),
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
    Paused { pending: CloudAction },
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
    Blocked { action: String },
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
    Act(CloudAction),
    Wait(Wait),
    /// Deletion is complete (or must not touch the cloud): drop the finalizer.
    Release,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub step: Step,
    /// Every difference seen (also the ones not acted on yet).
    pub drift: Vec<Drift>,
}

fn wait(w: Wait) -> Plan {
    Plan {
        step: Step::Wait(w),
        drift: Vec::new(),
    }
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

/// The next step.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let spec = input.spec;
    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;

    if input.deleting {
        // Retain and ObserveOnly never touch the cloud, even on delete.
        if spec.deletion_policy == DeletionPolicy::Retain || observe_only {
            return Plan {
                step: Step::Release,
                drift: Vec::new(),
            };
        }
        let o = match input.observed {
            Observed::NotCreated | Observed::Missing { .. } => {
                return Plan {
                    step: Step::Release,
                    drift: Vec::new(),
                };
            }
            Observed::Present(o) => o,
        };
        return match &o.state {
            // Never launched, never billed, and the API refuses to terminate it.
            InstanceState::LaunchFailed => Plan {
                step: Step::Release,
                drift: Vec::new(),
            },
            InstanceState::Terminating => wait(Wait::Transitioning {
                state: o.state.as_str().into(),
            }),
            InstanceState::Running | InstanceState::Stopped | InstanceState::Shutdown => {
                if o.operating {
                    wait(Wait::OperationInProgress {
                        operation: o.latest_operation.clone(),
                    })
                } else if o.disable_api_termination {
                    if spec.disable_api_termination == Some(false) {
                        Plan {
                            step: Step::Act(CloudAction::SetTerminationProtection {
                                enabled: false,
                            }),
                            drift: Vec::new(),
                        }
                    } else {
                        wait(Wait::TerminationProtected)
                    }
                } else {
                    Plan {
                        step: Step::Act(CloudAction::Terminate),
                        drift: Vec::new(),
                    }
                }
            }
            other => wait(Wait::Transitioning {
                state: other.as_str().into(),
            }),
        };
    }

    let o = match input.observed {
        Observed::NotCreated => {
            if observe_only || spec.instance_id.is_some() {
                return wait(Wait::NotFound {
                    instance_id: spec.instance_id.clone(),
                });
            }
            if let Some(action) = input.blocked {
                return wait(Wait::Blocked {
                    action: action.into(),
                });
            }
            if input.paused {
                return wait(Wait::Paused {
                    pending: CloudAction::Create,
                });
            }
            return Plan {
                step: Step::Act(CloudAction::Create),
                drift: Vec::new(),
            };
        }
        Observed::Missing { instance_id } => {
            return wait(Wait::NotFound {
                instance_id: Some(instance_id.into()),
            });
        }
        Observed::Present(o) => o,
    };

    let drift = drift(spec, input.instance_name, o);
    // Waits carry the differences too: an instance caught moving (STOPPING,
    // an operation in progress) by someone else's hand is drift to report
    // now, since once it settles our own status no longer says "in sync".
    let waiting = |w| Plan {
        step: Step::Wait(w),
        drift: drift.clone(),
    };
    match &o.state {
        InstanceState::Running | InstanceState::Stopped => {}
        InstanceState::LaunchFailed => {
            return wait(Wait::LaunchFailed {
                message: o.latest_operation_error_msg.clone(),
            });
        }
        InstanceState::Shutdown => return waiting(Wait::RecycleBin),
        other => {
            return waiting(Wait::Transitioning {
                state: other.as_str().into(),
            });
        }
    }
    if o.operating {
        return waiting(Wait::OperationInProgress {
            operation: o.latest_operation.clone(),
        });
    }

    let with_drift = |step| Plan {
        step,
        drift: drift.clone(),
    };
    if drift.is_empty() {
        return with_drift(Step::Wait(Wait::InSync));
    }
    if observe_only {
        return with_drift(Step::Wait(Wait::ObserveOnly));
    }
    if let Some(action) = input.blocked {
        return with_drift(Step::Wait(Wait::Blocked {
            action: action.into(),
        }));
    }

    let running = o.state == InstanceState::Running;
    let mut resize_blocked = false;
    let mut next = None;
    for d in &drift {
        let action = match d {
            Drift::InstanceType { want, .. } => {
                let may_power_cycle = spec.resize_policy == ResizePolicy::StopAndStart;
                if running {
                    if may_power_cycle {
                        // Keep charging: the API refuses to resize an
                        // instance stopped in STOP_CHARGING mode.
                        Some(CloudAction::Stop {
                            stop_type: spec.stop_type,
                            stopped_mode: StoppedMode::KEEP_CHARGING,
                            for_resize: true,
                        })
                    } else {
                        resize_blocked = true;
                        None
                    }
                } else if o.stop_charging_mode == "STOP_CHARGING" {
                    // Stopped without charging: must start, then stop with
                    // KEEP_CHARGING, to be resizable.
                    if may_power_cycle {
                        Some(CloudAction::Start)
                    } else {
                        resize_blocked = true;
                        None
                    }
                } else {
                    Some(CloudAction::ResetType {
                        instance_type: want.clone(),
                    })
                }
            }
            Drift::PowerState { .. } => Some(if running {
                CloudAction::Stop {
                    stop_type: spec.stop_type,
                    stopped_mode: spec.stopped_mode,
                    for_resize: false,
                }
            } else {
                CloudAction::Start
            }),
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
            next = Some(a);
            break;
        }
    }
    match next {
        Some(action) if input.paused => with_drift(Step::Wait(Wait::Paused { pending: action })),
        Some(action) => with_drift(Step::Act(action)),
        None if resize_blocked => with_drift(Step::Wait(Wait::ResizeRequiresStop)),
        None => with_drift(Step::Wait(Wait::InSync)),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
