//! What the cloud shows for a resource: the value types the planner, the
//! status builder and the observer share. Vocabulary only: no I/O.

use crate::api::StoppedMode;
use crate::cloud::model::{Instance, InstanceState, OperationState};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A value most instances share (a zone, an instance type, an image, a VPC,
/// a subnet, a disk type, a charge type, an operation's name, a namespace):
/// one interned copy serves them all. At 10,000 instances a `String` each
/// was 40 to 60 bytes apiece, ten times over.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Word(Arc<str>);

/// The interned words. Pruned of words nobody holds any more when it has
/// doubled since the last pruning, so arbitrary values cannot grow it for
/// ever.
struct Words {
    set: HashSet<Arc<str>>,
    pruned_at: usize,
}

impl Word {
    pub fn new(s: &str) -> Self {
        static WORDS: OnceLock<Mutex<Words>> = OnceLock::new();
        if s.is_empty() {
            return Self::default();
        }
        let words = WORDS.get_or_init(|| {
            Mutex::new(Words {
                set: HashSet::new(),
                pruned_at: 64,
            })
        });
        let mut words = words.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = words.set.get(s) {
            return Word(w.clone());
        }
        if words.set.len() >= 2 * words.pruned_at {
            words.set.retain(|w| Arc::strong_count(w) > 1);
            words.pruned_at = words.set.len().max(64);
        }
        let w: Arc<str> = Arc::from(s);
        words.set.insert(w.clone());
        Word(w)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Word {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        Word::new(s)
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        Word::new(&s)
    }
}

impl From<&Word> for String {
    fn from(w: &Word) -> Self {
        w.0.to_string()
    }
}

impl From<Word> for String {
    fn from(w: Word) -> Self {
        w.0.to_string()
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Word {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Word> for String {
    fn eq(&self, other: &Word) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Word> for str {
    fn eq(&self, other: &Word) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Word> for &str {
    fn eq(&self, other: &Word) -> bool {
        *self == &*other.0
    }
}

/// An interned copy of an optional value, empty when absent.
fn word(s: Option<&str>) -> Word {
    Word::new(s.unwrap_or_default())
}

/// The part of an instance the operator plans and reports on. Compact on
/// purpose: one is kept per managed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: Word,
    pub name: String,
    pub zone: Word,
    pub bandwidth_out: i64,
    pub security_group_ids: Vec<String>,
    pub private_ips: Vec<String>,
    pub public_ips: Vec<String>,
    pub created_time: String,
    pub latest_operation: Word,
    pub operating: bool,
    pub latest_operation_failed: bool,
    pub latest_operation_request_id: String,
    pub latest_operation_error_msg: String,
    pub disable_api_termination: bool,
    /// How a stopped postpaid instance is billed (`None`: not applicable,
    /// or a mode this version does not know).
    pub stopped_mode: Option<StoppedMode>,
    pub charge_type: Word,
    pub uid_tag: Option<String>,
    /// The ownership tags besides the UID: the namespace (the adoption
    /// proof) and the name of the resource that created or adopted it.
    pub namespace_tag: Option<Word>,
    pub name_tag: Option<String>,
    /// The UID of the `CvmInstanceSet` that launched it, if one did.
    pub set_tag: Option<String>,
    /// What the in-place changes compare with (see [`Settings`]).
    pub settings: Box<Settings>,
}

/// The instance's settings that only in-place changes look at. Boxed in
/// [`Observation`]: compared and cloned as one, and kept apart from what
/// every reconcile reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub image_id: Word,
    pub host_name: String,
    pub project_id: i64,
    pub renew_flag: Word,
    pub key_ids: Vec<String>,
    pub system_disk: Disk,
    pub data_disks: Vec<Disk>,
    pub vpc_id: Word,
    pub subnet_id: Word,
    pub cam_role_name: String,
    pub disaster_recover_group_ids: Vec<String>,
    /// Every tag but the operator's own (`cvm.tencentcloud.io/*`).
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    pub id: String,
    pub disk_type: Word,
    pub size: i64,
}

impl Settings {
    fn from_instance(i: &Instance) -> Self {
        let system = i.system_disk.as_ref();
        let vpc = i.virtual_private_cloud.as_ref();
        let tags = i.tags.iter().flatten();
        Self {
            image_id: word(i.image_id.as_deref()),
            host_name: i.host_name.clone().unwrap_or_default(),
            project_id: i.placement.as_ref().and_then(|p| p.project_id).unwrap_or(0),
            renew_flag: word(i.renew_flag.as_deref()),
            key_ids: i
                .login_settings
                .as_ref()
                .and_then(|l| l.key_ids.clone())
                .unwrap_or_default(),
            system_disk: Disk {
                id: system.and_then(|d| d.disk_id.clone()).unwrap_or_default(),
                disk_type: word(system.and_then(|d| d.disk_type.as_deref())),
                size: system.and_then(|d| d.disk_size).unwrap_or(0),
            },
            data_disks: i
                .data_disks
                .iter()
                .flatten()
                .map(|d| Disk {
                    id: d.disk_id.clone().unwrap_or_default(),
                    disk_type: word(d.disk_type.as_deref()),
                    size: d.disk_size.unwrap_or(0),
                })
                .collect(),
            vpc_id: word(vpc.and_then(|v| v.vpc_id.as_deref())),
            subnet_id: word(vpc.and_then(|v| v.subnet_id.as_deref())),
            cam_role_name: i.cam_role_name.clone().unwrap_or_default(),
            disaster_recover_group_ids: i.disaster_recover_group_ids.clone().unwrap_or_default(),
            tags: tags
                .filter(|t| !t.key.starts_with(crate::api::RESERVED_TAG_PREFIX))
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        }
    }
}

impl Observation {
    pub fn from_instance(i: &Instance) -> Self {
        Self {
            id: i.id().to_string(),
            state: i
                .instance_state
                .clone()
                .unwrap_or(InstanceState::Other(String::new())),
            instance_type: word(i.instance_type.as_deref()),
            name: i.instance_name.clone().unwrap_or_default(),
            zone: word(i.zone()),
            bandwidth_out: i.bandwidth_out().unwrap_or(0),
            security_group_ids: i.security_group_ids.clone().unwrap_or_default(),
            private_ips: i.private_ip_addresses.clone().unwrap_or_default(),
            public_ips: i.public_ip_addresses.clone().unwrap_or_default(),
            created_time: i.created_time.clone().unwrap_or_default(),
            latest_operation: word(i.latest_operation.as_deref()),
            operating: i.latest_operation_state == Some(OperationState::Operating),
            latest_operation_failed: i.latest_operation_state == Some(OperationState::Failed),
            latest_operation_request_id: i.latest_operation_request_id.clone().unwrap_or_default(),
            latest_operation_error_msg: i.latest_operation_error_msg.clone().unwrap_or_default(),
            disable_api_termination: i.disable_api_termination.unwrap_or(false),
            stopped_mode: i.stop_charging_mode.as_deref().and_then(StoppedMode::parse),
            charge_type: word(i.instance_charge_type.as_deref()),
            uid_tag: i.tag(crate::api::UID_TAG).map(str::to_string),
            settings: Box::new(Settings::from_instance(i)),
            namespace_tag: i.tag(crate::api::NAMESPACE_TAG).map(Word::new),
            name_tag: i.tag(crate::api::NAME_TAG).map(str::to_string),
            set_tag: i.tag(crate::api::set::SET_TAG).map(str::to_string),
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
            set_tag: None,
            settings: Box::new(Settings {
                image_id: "img-pi0ii46r".into(),
                host_name: "VM-3-2-centos".into(),
                system_disk: Disk {
                    id: "disk-sys00001".into(),
                    disk_type: "CLOUD_PREMIUM".into(),
                    size: 50,
                },
                vpc_id: "vpc-gz000001".into(),
                subnet_id: "subnet-gz000003".into(),
                ..Default::default()
            }),
            namespace_tag: None,
            name_tag: None,
        }
    }

    /// Between states, or finishing an operation: worth polling fast.
    pub fn is_settling(&self) -> bool {
        self.operating || !self.state.is_stable()
    }
}

/// How a value the spec asks for compares with what was last applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compared {
    /// The spec asks for none.
    #[default]
    Unset,
    Same,
    Changed,
    /// Nothing recorded (an instance adopted or created by an older
    /// version): taken as applied, and recorded from now on.
    Unrecorded,
}

/// The desired write-only values, compared with `status.applied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOnly {
    pub user_data: Compared,
    pub password: Compared,
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
