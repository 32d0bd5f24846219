//! The differences between a spec and an instance: the spec field each
//! concerns, its values, and what applying it needs from the instance.
//! Found by [`detect`](super::detect). Pure.

use crate::controller::observation::Observation;

/// A difference between the spec and the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    PowerState {
        want: String,
        have: String,
    },
    /// Stopped as the spec asks, but still charging although it asks for
    /// `stoppedMode: STOP_CHARGING` (changes made while stopped need a stop
    /// that keeps charging).
    StoppedMode {
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
    Project {
        want: i64,
        have: i64,
    },
    /// POSTPAID_BY_HOUR → PREPAID, for `period` months.
    ChargeType {
        have: String,
        period: i64,
        renew_flag: String,
    },
    RenewFlag {
        want: String,
        have: String,
    },
    /// A disk to grow (the system disk, or a data disk by its id).
    DiskSize {
        disk: DiskRef,
        want: i64,
        have: i64,
    },
    HostName {
        want: String,
        have: String,
    },
    /// The placement group (empty: none).
    PlacementGroup {
        want: Vec<String>,
        have: Vec<String>,
    },
    KeyIds {
        want: Vec<String>,
        have: Vec<String>,
    },
    /// The password differs from what was last applied (by fingerprint).
    Password,
    Vpc {
        want: Network,
        have: Network,
    },
    /// A new image: a reinstall, which also sets the login, the host name
    /// and the user data.
    Image {
        want: String,
        have: String,
    },
}

/// Tags as (key, value), sorted by key.
pub type Tags = Vec<(String, String)>;

/// Which disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRef {
    System,
    /// `spec.dataDisks[index]`, the instance's disk `id`.
    Data {
        index: usize,
        id: String,
    },
}

/// Where an instance sits in its VPC. `private_ip` empty: any address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub vpc_id: String,
    pub subnet_id: String,
    pub private_ip: String,
}

/// What applying a difference needs from the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: applied in any settled state.
    Nothing,
    /// Nothing while it runs (done online); done offline instead inside a
    /// stop window that comes anyway (a disk to grow).
    Online,
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

pub(super) fn list(ids: &[String]) -> String {
    format!("[{}]", ids.join(","))
}

fn tag_list(tags: &Tags) -> String {
    let each: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    list(&each)
}

impl Network {
    pub fn of(o: &Observation) -> Self {
        Network {
            vpc_id: o.settings.vpc_id.to_string(),
            subnet_id: o.settings.subnet_id.to_string(),
            private_ip: o.private_ips.first().cloned().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.vpc_id, self.subnet_id)?;
        if !self.private_ip.is_empty() {
            write!(f, "/{}", self.private_ip)?;
        }
        Ok(())
    }
}

impl Drift {
    /// The spec field it concerns.
    pub fn field(&self) -> &'static str {
        match self {
            Drift::PowerState { .. } => "spec.runState",
            Drift::StoppedMode { .. } => "spec.stoppedMode",
            Drift::InstanceType { .. } => "spec.instanceType",
            Drift::Bandwidth { .. } => "spec.internetAccessible.internetMaxBandwidthOut",
            Drift::Name { .. } => "spec.instanceName",
            Drift::SecurityGroups { .. } => "spec.securityGroupIds",
            Drift::TerminationProtection { .. } => "spec.disableApiTermination",
            Drift::CamRole { .. } => "spec.camRoleName",
            Drift::Tags { .. } => "spec.tags",
            Drift::UserData => "spec.userData",
            Drift::Project { .. } => "spec.projectId",
            Drift::ChargeType { .. } => "spec.instanceChargeType",
            Drift::RenewFlag { .. } => "spec.prepaid.renewFlag",
            Drift::DiskSize {
                disk: DiskRef::System,
                ..
            } => "spec.systemDisk.diskSize",
            Drift::DiskSize { .. } => "spec.dataDisks[].diskSize",
            Drift::HostName { .. } => "spec.hostName",
            Drift::PlacementGroup { .. } => "spec.disasterRecoverGroupIds",
            Drift::KeyIds { .. } => "spec.loginSettings.keyIds",
            Drift::Password => "spec.loginSettings.passwordSecretRef",
            Drift::Vpc { .. } => "spec.vpc",
            Drift::Image { .. } => "spec.imageId",
        }
    }

    /// (what the instance has, what the spec wants), as text.
    pub fn values(&self) -> (String, String) {
        match self {
            Drift::PowerState { want, have }
            | Drift::StoppedMode { want, have }
            | Drift::InstanceType { want, have }
            | Drift::Name { want, have }
            | Drift::CamRole { want, have }
            | Drift::HostName { want, have }
            | Drift::RenewFlag { want, have }
            | Drift::Image { want, have } => (have.clone(), want.clone()),
            Drift::Bandwidth { want, have } | Drift::Project { want, have } => {
                (have.to_string(), want.to_string())
            }
            Drift::DiskSize { want, have, .. } => (have.to_string(), want.to_string()),
            Drift::SecurityGroups { want, have }
            | Drift::PlacementGroup { want, have }
            | Drift::KeyIds { want, have } => (list(have), list(want)),
            Drift::TerminationProtection { want, have } => (have.to_string(), want.to_string()),
            Drift::Tags { want, have } => (tag_list(have), tag_list(want)),
            Drift::ChargeType { have, period, .. } => {
                (have.clone(), format!("PREPAID ({period} months)"))
            }
            Drift::Vpc { want, have } => (have.to_string(), want.to_string()),
            // Never the values: they may be secret.
            Drift::UserData | Drift::Password => ("(as last applied)".into(), "(changed)".into()),
        }
    }

    /// What applying it needs from the instance.
    pub fn needs(&self) -> Needs {
        match self {
            Drift::PowerState { .. } | Drift::StoppedMode { .. } => Needs::Power,
            Drift::InstanceType { .. }
            | Drift::KeyIds { .. }
            | Drift::Password
            | Drift::Vpc { .. } => Needs::Stopped,
            Drift::DiskSize { .. } => Needs::Online,
            Drift::HostName { .. } | Drift::PlacementGroup { .. } => Needs::RebootWhenRunning,
            Drift::Image { .. } => Needs::Reinstall,
            Drift::Bandwidth { .. }
            | Drift::Name { .. }
            | Drift::SecurityGroups { .. }
            | Drift::TerminationProtection { .. }
            | Drift::CamRole { .. }
            | Drift::Tags { .. }
            | Drift::UserData
            | Drift::Project { .. }
            | Drift::ChargeType { .. }
            | Drift::RenewFlag { .. } => Needs::Nothing,
        }
    }

    /// The API refuses it on an instance stopped without charging (it must
    /// be started, and stopped again keeping charging).
    pub fn refused_when_not_charging(&self) -> bool {
        matches!(
            self,
            Drift::InstanceType { .. }
                | Drift::KeyIds { .. }
                | Drift::Password
                | Drift::Vpc { .. }
                | Drift::DiskSize { .. }
                | Drift::PlacementGroup { .. }
                | Drift::Image { .. }
                | Drift::ChargeType { .. }
        )
    }

    /// Changed on the instance (drift in the strict sense), rather than a
    /// new value of the spec's own sources (a Secret).
    pub fn seen_on_instance(&self) -> bool {
        !matches!(self, Drift::UserData | Drift::Password)
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
            Drift::Password => write!(f, "the password differs from what was last applied"),
            other => {
                let (have, want) = other.values();
                write!(f, "{} is {have:?}, spec wants {want:?}", other.field())
            }
        }
    }
}
