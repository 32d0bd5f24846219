//! Which difference to fix next on a settled instance, and with what: the
//! disruption policy, the one stop window, and what a permanent failure
//! still lets through. Pure.

use super::drift::{Disruption, Drift, Needs, Tags};
use super::{CloudAction, PlanInput, Refused};
use crate::api::{CvmInstanceSpec, RunState, StoppedMode};
use crate::cloud::model::InstanceState;
use crate::cloud::tag;
use crate::controller::observation::Observation;

pub(super) enum Fix {
    Act(CloudAction),
    /// What is left needs disruptions the policy does not allow.
    NotAllowed(Vec<Refused>),
    /// A permanent failure holds everything else back.
    Blocked,
    Nothing,
}

/// The action that fixes the first difference that can be fixed now, in the
/// order of [`drift`](super::drift::drift).
///
/// The stop window: while the instance runs, every change that needs it
/// stopped is held back until one stop; once stopped, they are applied one
/// per step (those that boot the instance last), and only then is the power
/// state restored — the planner is stateless, so a stopped instance with
/// such changes pending simply applies them before it starts.
pub(super) fn next(input: &PlanInput<'_>, o: &Observation, drift: &[Drift]) -> Fix {
    let spec = input.spec;
    let may = spec.disruptions();
    let running = o.state == InstanceState::Running;
    let blocked = input.blocked.map(|b| b.api_action());
    let window: Vec<&'static str> = drift
        .iter()
        .filter(|d| d.needs() == Needs::Stopped)
        .map(Drift::field)
        .collect();
    let stop_for_window = running && may.stop_start && !window.is_empty();
    let mut refused = Vec::new();
    let mut refuse = |d: &Drift, disruption| {
        refused.push(Refused {
            field: d.field(),
            disruption,
        })
    };
    for d in drift {
        let action = match d.needs() {
            Needs::Nothing => d_fix(d),
            Needs::RebootWhenRunning if !running => d_fix(d),
            // Applied while stopped, without a reboot of its own.
            Needs::RebootWhenRunning if stop_for_window => None,
            Needs::RebootWhenRunning if may.reboot => d_fix(d),
            Needs::RebootWhenRunning => {
                refuse(d, Disruption::Reboot);
                None
            }
            Needs::Stopped if running && may.stop_start => {
                Some(window_stop(spec, drift, window.clone()))
            }
            Needs::Stopped if running => {
                refuse(d, Disruption::Stop);
                None
            }
            // Stopped without charging: the API resizes only an instance
            // stopped while charging, so start it to stop it again.
            Needs::Stopped if must_restop(o, d) && may.stop_start => Some(CloudAction::Start),
            Needs::Stopped if must_restop(o, d) => {
                refuse(d, Disruption::Stop);
                None
            }
            Needs::Stopped => d_fix(d),
            Needs::Reinstall if may.reinstall => d_fix(d),
            Needs::Reinstall => {
                refuse(d, Disruption::Reinstall);
                None
            }
            Needs::Power => Some(power(spec, running)),
        };
        let Some(action) = action else { continue };
        // A permanent failure for this generation holds back every change
        // but restoring the power state (a window that failed half-way
        // must not leave the instance stopped), unless that is what failed.
        let is_power = d.needs() == Needs::Power;
        match blocked {
            Some(failed) if !is_power || action.api_action() == failed => continue,
            _ => return Fix::Act(action),
        }
    }
    match (blocked, refused.is_empty()) {
        (Some(_), _) => Fix::Blocked,
        (None, false) => Fix::NotAllowed(refused),
        (None, true) => Fix::Nothing,
    }
}

/// A type change on an instance stopped without charging: it must be
/// started and stopped again (keeping charging) to be resizable.
pub(super) fn must_restop(o: &Observation, d: &Drift) -> bool {
    matches!(d, Drift::InstanceType { .. })
        && o.state == InstanceState::Stopped
        && o.stopped_mode == Some(StoppedMode::STOP_CHARGING)
}

/// The one stop for every change in `to_apply`. It keeps charging when the
/// instance is to run again, or to be resized (the API refuses to resize
/// an instance stopped without charging); otherwise it stops the way the
/// spec asks, since it stays stopped.
fn window_stop(
    spec: &CvmInstanceSpec,
    drift: &[Drift],
    to_apply: Vec<&'static str>,
) -> CloudAction {
    let resizing = drift
        .iter()
        .any(|d| matches!(d, Drift::InstanceType { .. }));
    let stopped_mode = if spec.run_state == RunState::Running || resizing {
        StoppedMode::KEEP_CHARGING
    } else {
        spec.stopped_mode
    };
    CloudAction::Stop {
        stop_type: spec.stop_type,
        stopped_mode,
        to_apply,
    }
}

fn power(spec: &CvmInstanceSpec, running: bool) -> CloudAction {
    if running {
        CloudAction::Stop {
            stop_type: spec.stop_type,
            stopped_mode: spec.stopped_mode,
            to_apply: Vec::new(),
        }
    } else {
        CloudAction::Start
    }
}

/// The action that applies `d` on an instance in the state it needs.
fn d_fix(d: &Drift) -> Option<CloudAction> {
    Some(match d {
        Drift::InstanceType { want, .. } => CloudAction::ResetType {
            instance_type: want.clone(),
        },
        Drift::Bandwidth { want, .. } => CloudAction::SetBandwidth { mbps: *want },
        Drift::Name { want, .. } => CloudAction::Rename { name: want.clone() },
        Drift::SecurityGroups { want, .. } => CloudAction::SetSecurityGroups { ids: want.clone() },
        Drift::TerminationProtection { want, .. } => {
            CloudAction::SetTerminationProtection { enabled: *want }
        }
        Drift::CamRole { want, .. } => CloudAction::SetCamRole { name: want.clone() },
        Drift::Tags { want, have } => tags_step(want, have),
        Drift::UserData => CloudAction::SetUserData,
        Drift::HostName { want, .. } => CloudAction::SetHostName { name: want.clone() },
        Drift::PowerState { .. } => return None,
    })
}

/// The next ModifyResourceTags towards `want`: at most ten tags set and ten
/// removed per call, as the Tag service allows.
fn tags_step(want: &Tags, have: &Tags) -> CloudAction {
    let replace: Vec<(String, String)> = want
        .iter()
        .filter(|t| !have.contains(t))
        .take(tag::MAX_TAGS_PER_CALL)
        .cloned()
        .collect();
    let delete: Vec<String> = have
        .iter()
        .filter(|(k, _)| !want.iter().any(|(w, _)| w == k))
        .take(tag::MAX_TAGS_PER_CALL)
        .map(|(k, _)| k.clone())
        .collect();
    CloudAction::SetTags { replace, delete }
}
