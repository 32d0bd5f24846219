//! Which difference to fix next on a settled instance, and with what: the
//! disruption policy, the one stop window, the type check, and what a
//! permanent failure still lets through. Pure.

use super::drift::{Disruption, Drift, Needs, Tags};
use super::{CloudAction, PlanInput, Refused, TypeCheck};
use crate::api::{CvmInstanceSpec, Disruptions, StoppedMode};
use crate::cloud::model::InstanceState;
use crate::cloud::tag;
use crate::controller::observation::Observation;

pub(super) enum Fix {
    Act(CloudAction),
    /// Look up whether the instance may change to this type before acting
    /// for it (DescribeInstancesModification): an impossible resize is
    /// reported without a pointless stop.
    CheckType(String),
    /// What is left needs disruptions the policy does not allow.
    NotAllowed(Vec<Refused>),
    /// The instance cannot change to the type the spec asks for.
    TypeUnavailable {
        instance_type: String,
        why: String,
    },
    /// A permanent failure holds everything else back.
    Blocked,
    Nothing,
}

/// What one pass of [`next`] knows about the instance and the policy.
struct Context<'a> {
    spec: &'a CvmInstanceSpec,
    o: &'a Observation,
    may: Disruptions,
    running: bool,
    /// Changes needing a stopped instance will be applied in one stop, so
    /// what could do without (a disk online, a reboot) waits for it.
    window_coming: bool,
}

/// The action that fixes the first difference that can be fixed now, in the
/// order of [`drift`](super::detect::drift).
///
/// The stop window: while the instance runs, every change that needs it
/// stopped is held back until one stop; once stopped, they are applied one
/// per step (those that boot it last), and only then is the power state
/// restored — the planner is stateless, so a stopped instance with such
/// changes pending simply applies them before it starts.
pub(super) fn next(input: &PlanInput<'_>, o: &Observation, drift: &[Drift]) -> Fix {
    let spec = input.spec;
    let unavailable = match &input.type_check {
        TypeCheck::Unavailable(why) => Some(why.as_str()),
        _ => None,
    };
    // A type that cannot be had is left out of everything, the window too.
    let drift: Vec<&Drift> = drift
        .iter()
        .filter(|d| !(unavailable.is_some() && matches!(d, Drift::InstanceType { .. })))
        .collect();
    let may = spec.disruptions();
    let running = o.state == InstanceState::Running;
    let needs_stop = drift.iter().any(|d| d.needs() == Needs::Stopped);
    let window_coming = running && may.stop_start && needs_stop;
    // What the one stop is for: what needs it, and what waits for it.
    let window: Vec<&'static str> = drift
        .iter()
        .filter(|d| match d.needs() {
            Needs::Stopped => true,
            Needs::Online | Needs::RebootWhenRunning => window_coming,
            _ => false,
        })
        .map(|d| d.field())
        .collect();
    let cx = Context {
        spec,
        o,
        may,
        running,
        window_coming,
    };
    let blocked = input.blocked.map(|b| b.api_action());
    let mut refused = Vec::new();
    for d in &drift {
        let action = match step_for(&cx, d, &window) {
            Step::Act(a) => a,
            Step::Later => continue,
            Step::Refused(disruption) => {
                refused.push(Refused {
                    field: d.field(),
                    disruption,
                });
                continue;
            }
        };
        // A permanent failure for this generation holds back every change
        // but restoring the power state (a window that failed half-way
        // must not leave the instance stopped), unless that is what failed.
        let is_power = d.needs() == Needs::Power;
        if let Some(failed) = blocked
            && (!is_power || action.api_action() == failed)
        {
            continue;
        }
        if serves_type(&action, &drift) && input.type_check == TypeCheck::Unchecked {
            return Fix::CheckType(spec.instance_type.clone());
        }
        return Fix::Act(action);
    }
    match (blocked, unavailable, refused.is_empty()) {
        (Some(_), _, _) => Fix::Blocked,
        (None, Some(why), _) => Fix::TypeUnavailable {
            instance_type: spec.instance_type.clone(),
            why: why.to_string(),
        },
        (None, None, false) => Fix::NotAllowed(refused),
        (None, None, true) => Fix::Nothing,
    }
}

/// What to do about one difference now.
enum Step {
    Act(CloudAction),
    /// Not now: after a stop that comes anyway.
    Later,
    Refused(Disruption),
}

fn step_for(cx: &Context<'_>, d: &Drift, window: &[&'static str]) -> Step {
    let allow = |ok: bool, action: CloudAction, disruption| {
        if ok {
            Step::Act(action)
        } else {
            Step::Refused(disruption)
        }
    };
    // Stopped without charging: the API refuses it; start the instance so
    // a stop keeping charging can follow.
    if must_restop(cx.o, d) {
        return allow(cx.may.stop_start, CloudAction::Start, Disruption::Stop);
    }
    if let Drift::StoppedMode { .. } = d {
        // Stopped while charging, asked to stop without: only a start and
        // a stop (the power state's own fix, next) can change it.
        return allow(cx.may.stop_start, CloudAction::Start, Disruption::Stop);
    }
    match d.needs() {
        Needs::Nothing => Step::Act(apply(d, cx.running)),
        Needs::Online if cx.window_coming => Step::Later,
        Needs::Online => Step::Act(apply(d, cx.running)),
        Needs::RebootWhenRunning if !cx.running => Step::Act(apply(d, false)),
        // Applied while stopped, without a reboot of its own.
        Needs::RebootWhenRunning if cx.window_coming => Step::Later,
        Needs::RebootWhenRunning => allow(cx.may.reboot, apply(d, true), Disruption::Reboot),
        Needs::Stopped if cx.running => allow(
            cx.may.stop_start,
            window_stop(cx.spec, window),
            Disruption::Stop,
        ),
        Needs::Stopped => Step::Act(apply(d, false)),
        Needs::Reinstall => allow(
            cx.may.reinstall,
            reinstall(cx.spec, d),
            Disruption::Reinstall,
        ),
        Needs::Power => Step::Act(power(cx.spec, cx.running)),
    }
}

/// Whether `action` is taken for the type change (so the type is checked
/// first): the stop of a window that holds it, a resize, or a start to stop
/// again keeping charging while a type change is pending.
fn serves_type(action: &CloudAction, drift: &[&Drift]) -> bool {
    let resizing = drift
        .iter()
        .any(|d| matches!(d, Drift::InstanceType { .. }));
    match action {
        CloudAction::Stop { to_apply, .. } => to_apply.contains(&"spec.instanceType"),
        CloudAction::ResetType { .. } => true,
        CloudAction::Start => resizing,
        _ => false,
    }
}

/// A change the API refuses on an instance stopped without charging, and
/// the instance is so stopped: it must be started and stopped again.
pub(super) fn must_restop(o: &Observation, d: &Drift) -> bool {
    d.refused_when_not_charging()
        && o.state == InstanceState::Stopped
        && o.stopped_mode == Some(StoppedMode::STOP_CHARGING)
}

/// The one stop for every change in `to_apply`. It keeps charging: the API
/// refuses those changes on an instance stopped without charging.
fn window_stop(spec: &CvmInstanceSpec, to_apply: &[&'static str]) -> CloudAction {
    CloudAction::Stop {
        stop_type: spec.stop_type,
        stopped_mode: StoppedMode::KEEP_CHARGING,
        to_apply: to_apply.to_vec(),
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

/// The action that applies `d` on an instance in the state it needs
/// (`running`: whether it runs while this is done).
fn apply(d: &Drift, running: bool) -> CloudAction {
    match d {
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
        Drift::Project { want, .. } => CloudAction::SetProject { project_id: *want },
        Drift::ChargeType {
            period, renew_flag, ..
        } => CloudAction::ConvertToPrepaid {
            period: *period,
            renew_flag: renew_flag.clone(),
        },
        Drift::RenewFlag { want, .. } => CloudAction::SetRenewFlag { flag: want.clone() },
        Drift::DiskSize { disk, want, .. } => CloudAction::GrowDisk {
            disk: disk.clone(),
            size: *want,
            online: running,
        },
        Drift::PlacementGroup { want, .. } => CloudAction::SetPlacementGroup { ids: want.clone() },
        Drift::KeyIds { want, have } => keys_step(want, have),
        Drift::Password => CloudAction::ResetPassword,
        Drift::Vpc { want, .. } => CloudAction::MoveNetwork { to: want.clone() },
        Drift::PowerState { .. } | Drift::StoppedMode { .. } | Drift::Image { .. } => {
            unreachable!("handled by their own arms")
        }
    }
}

/// A reinstall with what the spec says of the login and host name (the
/// password and user data come from their sources when it is sent).
fn reinstall(spec: &CvmInstanceSpec, d: &Drift) -> CloudAction {
    let image_id = match d {
        Drift::Image { want, .. } => want.clone(),
        _ => spec.image_id.clone(),
    };
    CloudAction::Reinstall {
        image_id,
        key_ids: spec.login_settings.as_ref().and_then(|l| l.key_ids.clone()),
        host_name: spec.host_name.clone(),
    }
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

/// Keys not wanted are detached first, then every wanted key attached.
/// All of them, not only the missing ones: the documentation says keys an
/// instance had before stop working when others are associated (a
/// replacement), the simulator adds them; the whole list is right either way.
fn keys_step(want: &[String], have: &[String]) -> CloudAction {
    let extra: Vec<String> = have.iter().filter(|k| !want.contains(k)).cloned().collect();
    if !extra.is_empty() {
        return CloudAction::DetachKeyPairs { ids: extra };
    }
    CloudAction::AttachKeyPairs { ids: want.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::DiskRef;

    #[test]
    fn keys_are_detached_then_all_wanted_attached() {
        let s = |v: &[&str]| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(
            keys_step(&s(&["skey-b", "skey-c"]), &s(&["skey-a", "skey-b"])),
            CloudAction::DetachKeyPairs {
                ids: s(&["skey-a"])
            }
        );
        assert_eq!(
            keys_step(&s(&["skey-b", "skey-c"]), &s(&["skey-b"])),
            CloudAction::AttachKeyPairs {
                ids: s(&["skey-b", "skey-c"])
            }
        );
    }

    #[test]
    fn a_system_disk_is_named_apart_from_data_disks() {
        let grow = |disk| Drift::DiskSize {
            disk,
            want: 60,
            have: 50,
        };
        assert_eq!(grow(DiskRef::System).field(), "spec.systemDisk.diskSize");
        let data = grow(DiskRef::Data {
            index: 0,
            id: "disk-1".into(),
        });
        assert_eq!(data.field(), "spec.dataDisks[].diskSize");
        assert!(matches!(
            apply(&data, true),
            CloudAction::GrowDisk { online: true, .. }
        ));
    }
}
