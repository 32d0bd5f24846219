//! What the cloud shows for a resource: the value types the planner, the
//! status builder and the observer share. Vocabulary only: no I/O.

use crate::api::StoppedMode;
use crate::cloud::model::{Instance, InstanceState, OperationState};
use std::sync::Arc;
use std::time::Duration;

/// The part of an instance the operator plans and reports on. Compact on
/// purpose: one is kept per managed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub name: String,
    pub zone: String,
    pub bandwidth_out: i64,
    pub security_group_ids: Vec<String>,
    pub private_ips: Vec<String>,
    pub public_ips: Vec<String>,
    pub created_time: String,
    pub latest_operation: String,
    pub operating: bool,
    pub latest_operation_failed: bool,
    pub latest_operation_request_id: String,
    pub latest_operation_error_msg: String,
    pub disable_api_termination: bool,
    /// How a stopped postpaid instance is billed (`None`: not applicable,
    /// or a mode this version does not know).
    pub stopped_mode: Option<StoppedMode>,
    pub charge_type: String,
    pub uid_tag: Option<String>,
}

impl Observation {
    pub fn from_instance(i: &Instance) -> Self {
        Self {
            id: i.id().to_string(),
            state: i
                .instance_state
                .clone()
                .unwrap_or(InstanceState::Other(String::new())),
            instance_type: i.instance_type.clone().unwrap_or_default(),
            name: i.instance_name.clone().unwrap_or_default(),
            zone: i.zone().unwrap_or_default().to_string(),
            bandwidth_out: i.bandwidth_out().unwrap_or(0),
            security_group_ids: i.security_group_ids.clone().unwrap_or_default(),
            private_ips: i.private_ip_addresses.clone().unwrap_or_default(),
            public_ips: i.public_ip_addresses.clone().unwrap_or_default(),
            created_time: i.created_time.clone().unwrap_or_default(),
            latest_operation: i.latest_operation.clone().unwrap_or_default(),
            operating: i.latest_operation_state == Some(OperationState::Operating),
            latest_operation_failed: i.latest_operation_state == Some(OperationState::Failed),
            latest_operation_request_id: i.latest_operation_request_id.clone().unwrap_or_default(),
            latest_operation_error_msg: i.latest_operation_error_msg.clone().unwrap_or_default(),
            disable_api_termination: i.disable_api_termination.unwrap_or(false),
            stopped_mode: i.stop_charging_mode.as_deref().and_then(StoppedMode::parse),
            charge_type: i.instance_charge_type.clone().unwrap_or_default(),
            uid_tag: i.tag(crate::api::UID_TAG).map(str::to_string),
        }
    }

    /// A running instance, for tests: S5.MEDIUM4 named "web" in
    /// ap-guangzhou-3, 5 Mbps, one security group, no operation in flight.
    #[cfg(test)]
    pub fn fixture() -> Self {
        Self {
            id: "ins-abcdefgh".into(),
            state: InstanceState::Running,
            instance_type: "S5.MEDIUM4".into(),
            name: "web".into(),
            zone: "ap-guangzhou-3".into(),
            bandwidth_out: 5,
            security_group_ids: vec!["sg-gz000001".into()],
            private_ips: vec!["172.16.3.2".into()],
            public_ips: vec![],
            created_time: String::new(),
            latest_operation: "RunInstances".into(),
            operating: false,
            latest_operation_failed: false,
            latest_operation_request_id: String::new(),
            latest_operation_error_msg: String::new(),
            disable_api_termination: false,
            stopped_mode: None,
            charge_type: "POSTPAID_BY_HOUR".into(),
            uid_tag: None,
        }
    }

    /// Between states, or finishing an operation: worth polling fast.
    pub fn is_settling(&self) -> bool {
        self.operating || !self.state.is_stable()
    }
}

/// What the cloud shows for this resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No instance id is known and none carries our UID tag.
    NotCreated,
    /// An id is known (from status or `spec.instanceId`) but the cloud does
    /// not list it.
    Missing {
        instance_id: String,
    },
    Present(Arc<Observation>),
}

impl Observed {
    /// From a lookup of `known` (the id the resource knows, if any).
    pub fn from_lookup(known: Option<&str>, found: Option<Arc<Observation>>) -> Self {
        match (found, known) {
            (Some(o), _) => Observed::Present(o),
            (None, Some(id)) => Observed::Missing {
                instance_id: id.to_string(),
            },
            (None, None) => Observed::NotCreated,
        }
    }

    pub fn instance(&self) -> Option<&Observation> {
        match self {
            Observed::Present(o) => Some(o),
            _ => None,
        }
    }

    /// The id of the instance seen, or of the one that is missing.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            Observed::NotCreated => None,
            Observed::Missing { instance_id } => Some(instance_id),
            Observed::Present(o) => Some(&o.id),
        }
    }
}

/// The two polling periods. The observer sweeps at them and the reconciler
/// relies on those sweeps (how old a cached view may be, how soon to look
/// again), so both read this one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Every instance is described once per poll interval (drift detection).
    pub poll_interval: Duration,
    /// Instances that are moving, or that we just changed.
    pub fast_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(300),
            fast_interval: Duration::from_secs(2),
        }
    }
}
