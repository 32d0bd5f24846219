//! The differences between a spec and an instance: how each is found, the
//! spec field it concerns, and what applying it needs from the instance.
//! Pure.

use super::super::observation::{Compared, Observation, WriteOnly};
use crate::api::{CvmInstanceSpec, RunState};
use crate::cloud::model::InstanceState;

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
    CamRole {
        want: String,
        have: String,
    },
    Tags {
        want: Tags,
        have: Tags,
    },
    /// The user data differs from what was last applied (by fingerprint:
    /// the API never shows it back).
    UserData,
    HostName {
        want: String,
        have: String,
    },
}

/// Tags as (key, value), sorted by key.
pub type Tags = Vec<(String, String)>;

/// Tags the operator leaves alone besides its own: the API reserves these
/// prefixes, so the spec cannot hold them either.
const FOREIGN_TAG_PREFIXES: &[&str] = &["qcs:", "project:"];

/// What applying a difference needs from the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: applied in any settled state.
    Nothing,
    /// A reboot when it runs (the change takes effect at boot).
    RebootWhenRunning,
    /// A stopped instance (the one stop window).
    Stopped,
    /// A reinstall of the operating system.
    Reinstall,
    /// The power state itself.
    Power,
}

/// What applying a change costs the instance from its current state, beyond
/// the change itself: what `disruptionPolicy` allows or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Disruption {
    None,
    Reboot,
    Stop,
    Reinstall,
}

impl Disruption {
    pub fn as_str(&self) -> &'static str {
        match self {
            Disruption::None => "None",
            Disruption::Reboot => "Reboot",
            Disruption::Stop => "Stop",
            Disruption::Reinstall => "Reinstall",
        }
    }
}

/// One pending change, for people and tools (`status.pendingChanges`, the
/// `plan` command): which field, from what, to what, at what cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
    pub disruption: Disruption,
}

fn list(ids: &[String]) -> String {
    format!("[{}]", ids.join(","))
}

fn tag_list(tags: &Tags) -> String {
    let each: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    list(&each)
}

/// The instance's tags the spec manages: all but the operator's own and
/// those under prefixes the API reserves.
fn managed_tags(o: &Observation) -> Tags {
    let mut tags: Tags = o
        .settings
        .tags
        .iter()
        .filter(|(k, _)| !FOREIGN_TAG_PREFIXES.iter().any(|p| k.starts_with(p)))
        .cloned()
        .collect();
    tags.sort();
    tags
}

impl Drift {
    /// The spec field it concerns.
    pub fn field(&self) -> &'static str {
        match self {
            Drift::PowerState { .. } => "spec.runState",
            Drift::InstanceType { .. } => "spec.instanceType",
            Drift::Bandwidth { .. } => "spec.internetAccessible.internetMaxBandwidthOut",
            Drift::Name { .. } => "spec.instanceName",
            Drift::SecurityGroups { .. } => "spec.securityGroupIds",
            Drift::TerminationProtection { .. } => "spec.disableApiTermination",
            Drift::CamRole { .. } => "spec.camRoleName",
            Drift::Tags { .. } => "spec.tags",
            Drift::UserData => "spec.userData",
            Drift::HostName { .. } => "spec.hostName",
        }
    }

    /// (what the instance has, what the spec wants), as text.
    pub fn values(&self) -> (String, String) {
        match self {
            Drift::PowerState { want, have }
            | Drift::InstanceType { want, have }
            | Drift::Name { want, have }
            | Drift::CamRole { want, have }
            | Drift::HostName { want, have } => (have.clone(), want.clone()),
            Drift::Bandwidth { want, have } => (have.to_string(), want.to_string()),
            Drift::SecurityGroups { want, have } => (list(have), list(want)),
            Drift::TerminationProtection { want, have } => (have.to_string(), want.to_string()),
            Drift::Tags { want, have } => (tag_list(have), tag_list(want)),
            // Never the values: they may be secret.
            Drift::UserData => ("(as last applied)".into(), "(changed)".into()),
        }
    }

    /// What applying it needs from the instance.
    pub fn needs(&self) -> Needs {
        match self {
            Drift::PowerState { .. } => Needs::Power,
            Drift::InstanceType { .. } => Needs::Stopped,
            Drift::Bandwidth { .. }
            | Drift::Name { .. }
            | Drift::SecurityGroups { .. }
            | Drift::TerminationProtection { .. }
            | Drift::CamRole { .. }
            | Drift::Tags { .. }
            | Drift::UserData => Needs::Nothing,
            Drift::HostName { .. } => Needs::RebootWhenRunning,
        }
    }

    /// The API boots the instance when it applies this (ResetInstancesType
    /// ends RUNNING, as documented): it goes last in a stop window.
    pub fn boots(&self) -> bool {
        matches!(self, Drift::InstanceType { .. })
    }

    /// Changed on the instance (drift in the strict sense), rather than a
    /// new value of the spec's own sources (a Secret).
    pub fn seen_on_instance(&self) -> bool {
        !matches!(self, Drift::UserData)
    }
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
                    "security groups are {}, spec wants {}",
                    list(have),
                    list(want)
                )
            }
            Drift::TerminationProtection { want, have } => {
                write!(f, "termination protection is {have}, spec wants {want}")
            }
            Drift::UserData => write!(f, "the user data differs from what was last applied"),
            other => {
                let (have, want) = other.values();
                write!(f, "{} is {have:?}, spec wants {want:?}", other.field())
            }
        }
    }
}

fn run_state_name(s: RunState) -> &'static str {
    match s {
        RunState::Running => "RUNNING",
        RunState::Stopped => "STOPPED",
    }
}

/// Every difference between the spec and an instance, in the order they
/// are fixed: what needs nothing (while the instance runs), what takes
/// effect at a reboot, what needs the instance stopped (all in one stop),
/// what boots it (type), and the power state last. `write_only`: how the
/// values the API never shows compare with what was last applied.
pub fn drift(
    spec: &CvmInstanceSpec,
    instance_name: &str,
    o: &Observation,
    write_only: &WriteOnly,
) -> Vec<Drift> {
    let mut out = Vec::new();
    attributes(spec, instance_name, o, &mut out);
    settings(spec, o, write_only, &mut out);
    if let Some(h) = &spec.host_name
        && *h != o.settings.host_name
    {
        out.push(Drift::HostName {
            want: h.clone(),
            have: o.settings.host_name.clone(),
        });
    }
    if o.instance_type != spec.instance_type {
        out.push(Drift::InstanceType {
            want: spec.instance_type.clone(),
            have: o.instance_type.clone(),
        });
    }
    let powered_as_wanted = match spec.run_state {
        RunState::Running => o.state == InstanceState::Running,
        RunState::Stopped => o.state == InstanceState::Stopped,
    };
    if !powered_as_wanted {
        out.push(Drift::PowerState {
            want: run_state_name(spec.run_state).into(),
            have: o.state.as_str().to_string(),
        });
    }
    out
}

/// The attributes the operator always kept: bandwidth, name, security
/// groups, termination protection.
fn attributes(spec: &CvmInstanceSpec, instance_name: &str, o: &Observation, out: &mut Vec<Drift>) {
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
}

/// The settings changed in place with no disruption, beyond the
/// attributes: CAM role, tags, user data.
fn settings(spec: &CvmInstanceSpec, o: &Observation, write_only: &WriteOnly, out: &mut Vec<Drift>) {
    let s = &o.settings;
    if let Some(role) = &spec.cam_role_name
        && *role != s.cam_role_name
    {
        out.push(Drift::CamRole {
            want: role.clone(),
            have: s.cam_role_name.clone(),
        });
    }
    if let Some(tags) = &spec.tags {
        let want: Tags = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let have = managed_tags(o);
        if want != have {
            out.push(Drift::Tags { want, have });
        }
    }
    if write_only.user_data == Compared::Changed {
        out.push(Drift::UserData);
    }
}
