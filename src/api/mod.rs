//! The `CvmInstance` API (`cvm.tencentcloud.io/v1alpha1`): spec, status,
//! conditions, admission rules (schema + CEL) and CRD generation.
//!
//! Everything a user can get wrong is rejected at admission with a message
//! naming the field: immutable fields by CEL `self == oldSelf`, formats by
//! schema patterns, ranges by min/max, combinations by root CEL rules.

use kube::CustomResource;
use kube::KubeSchema;
use kube::core::crd::CustomResourceExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod limits;
use limits::*;
pub mod account;
pub mod pending;
pub mod price;
pub mod transitions;
pub use account::{AccountKind, AccountRecord, CvmAccount, CvmAccountSpec, CvmAccountStatus};
pub mod set;

pub const GROUP: &str = "cvm.tencentcloud.io";
/// The finalizer that guards the cloud instance (with a `/`, as the
/// apiserver expects of finalizer names).
pub const FINALIZER: &str = "cvm.tencentcloud.io/finalizer";
/// `"true"` stops every cloud mutation (deletion still proceeds).
pub const PAUSED_ANNOTATION: &str = "cvm.tencentcloud.io/paused";
/// Each new value reboots a running instance once (`kubectl rollout
/// restart`'s convention: the value is a timestamp).
pub const RESTARTED_AT_ANNOTATION: &str = "cvm.tencentcloud.io/restartedAt";
/// Longer `restartedAt` values are ignored (status records the value).
pub const RESTART_VALUE_MAX: usize = 64;
/// The prefix of the operator's own tags; spec.tags may not use it, and the
/// operator never changes other tags through it.
pub const RESERVED_TAG_PREFIX: &str = "cvm.tencentcloud.io/";
/// Tag carrying the resource UID on the instance: the create guard.
pub const UID_TAG: &str = "cvm.tencentcloud.io/uid";
/// Informational tags, for people looking at the console.
pub const NAMESPACE_TAG: &str = "cvm.tencentcloud.io/namespace";
pub const NAME_TAG: &str = "cvm.tencentcloud.io/name";
/// The one field manager that writes status.
pub const FIELD_MANAGER: &str = "cvm-operator";

/// A Tencent Cloud CVM instance, managed declaratively: the operator creates
/// it, keeps its type, bandwidth, name, security groups and power state as
/// declared, reports what it observes, and terminates it on deletion.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cvm.tencentcloud.io",
    version = "v1alpha1",
    kind = "CvmInstance",
    namespaced,
    shortname = "cvm",
    category = "tencentcloud",
    status = "CvmInstanceStatus",
    derive = "PartialEq",
    doc = "A Tencent Cloud CVM instance managed by cvm-operator.",
    printcolumn(name = "Instance ID", type_ = "string", json_path = ".status.instanceId"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.instanceState"),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.instanceType"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".status.zone"),
    printcolumn(name = "Public IP", type_ = "string", json_path = ".status.publicIpAddresses[0]"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#, priority = "1"),
    printcolumn(name = "Private IP", type_ = "string", json_path = ".status.privateIpAddresses[0]", priority = "1"),
    printcolumn(name = "Price", type_ = "string", json_path = ".status.price.summary", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.region",
    cel,
    validation = Rule::new("self.metadata.name.size() <= 63").message("metadata.name must be at most 63 characters (it becomes the instance name)"),
)]
#[x_kube(
    validation = Rule::new("self.zone.startsWith(self.region + '-')").message("spec.zone must be a zone of spec.region (for example ap-guangzhou-3 in ap-guangzhou)"),
    validation = Rule::new("self.instanceChargeType != 'PREPAID' || has(self.prepaid)").message("spec.prepaid is required when spec.instanceChargeType is PREPAID"),
    validation = Rule::new("!has(self.prepaid) || self.instanceChargeType == 'PREPAID'").message("spec.prepaid is only allowed when spec.instanceChargeType is PREPAID"),
    validation = Rule::new("!has(self.spot) || self.instanceChargeType == 'SPOTPAID'").message("spec.spot is only allowed when spec.instanceChargeType is SPOTPAID"),
    validation = Rule::new("!(has(self.accountRef) && has(self.credentialsSecretRef))").message("spec.accountRef and spec.credentialsSecretRef are mutually exclusive: use an admin's CvmAccount or your own keys"),
    validation = Rule::new("!(has(self.userData) && has(self.userDataSecretRef))").message("spec.userData and spec.userDataSecretRef are mutually exclusive"),
    validation = Rule::new("has(self.instanceId) == has(oldSelf.instanceId) && (!has(self.instanceId) || self.instanceId == oldSelf.instanceId)").message("spec.instanceId is immutable: it can only be set when the CvmInstance is created"),
    validation = Rule::new("has(self.systemDisk) == has(oldSelf.systemDisk)").message("spec.systemDisk cannot be added or removed after creation: change its diskSize (it can grow)"),
    validation = Rule::new("has(self.dataDisks) == has(oldSelf.dataDisks)").message("spec.dataDisks cannot be added or removed after creation: the operator grows the disks the instance was created with"),
    validation = Rule::new("has(self.vpc) == has(oldSelf.vpc)").message("spec.vpc cannot be added or removed after creation: change its subnetId or privateIpAddress (or vpcId with a subnet of it)"),
    validation = Rule::new("!has(oldSelf.prepaid) || !has(self.prepaid) || self.prepaid.period == oldSelf.prepaid.period").message("spec.prepaid.period is the length of the purchase and cannot change once the instance is prepaid (renew in the console; renewFlag can change)"),
    validation = Rule::new("has(self.spot) == has(oldSelf.spot) && (!has(self.spot) || self.spot == oldSelf.spot)").message("spec.spot is immutable: a spot instance's bid is fixed at purchase; create a new CvmInstance to change it"),
    validation = Rule::new("!has(self.tags) || self.tags.all(k, !k.startsWith('cvm.tencentcloud.io/'))").message("spec.tags must not use the reserved prefix cvm.tencentcloud.io/"),
    validation = Rule::new("!(has(self.resizePolicy) && self.resizePolicy == 'Never' && has(self.disruptionPolicy) && has(self.disruptionPolicy.stopStart) && self.disruptionPolicy.stopStart == 'Allowed')").message("spec.resizePolicy: Never contradicts spec.disruptionPolicy.stopStart: Allowed; resizePolicy is deprecated: remove it and keep disruptionPolicy.stopStart"),
    validation = Rule::new("(has(self.internetAccessible) && has(self.internetAccessible.internetChargeType)) == (has(oldSelf.internetAccessible) && has(oldSelf.internetAccessible.internetChargeType)) && (!has(self.internetAccessible) || !has(self.internetAccessible.internetChargeType) || self.internetAccessible.internetChargeType == oldSelf.internetAccessible.internetChargeType)").message("spec.internetAccessible.internetChargeType is immutable: the operator does not switch the network billing mode; create a new CvmInstance to change it"),
    validation = Rule::new("(has(self.internetAccessible) && has(self.internetAccessible.publicIpAssigned)) == (has(oldSelf.internetAccessible) && has(oldSelf.internetAccessible.publicIpAssigned)) && (!has(self.internetAccessible) || !has(self.internetAccessible.publicIpAssigned) || self.internetAccessible.publicIpAssigned == oldSelf.internetAccessible.publicIpAssigned)").message("spec.internetAccessible.publicIpAssigned is immutable: a public IP is assigned at creation only (bind an elastic IP to add one later); create a new CvmInstance to change it"),
)]
#[serde(rename_all = "camelCase")]
pub struct CvmInstanceSpec {
    /// Region, e.g. `ap-guangzhou`. Immutable.
    #[schemars(
        length(min = 3, max = 40),
        regex(pattern = r"^[a-z]{2,}-[a-z0-9]+(-[a-z0-9]+)*$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.region is immutable: create a new CvmInstance to move an instance"))]
    pub region: String,

    /// Availability zone, e.g. `ap-guangzhou-3`. Immutable.
    #[schemars(
        length(min = 3, max = 48),
        regex(pattern = r"^[a-z]{2,}-[a-z0-9]+(-[a-z0-9]+)*-[0-9]+$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.zone is immutable: create a new CvmInstance to move an instance"))]
    pub zone: String,

    /// Image, e.g. `img-pi0ii46r`. A new image reinstalls the operating
    /// system (ResetInstance: the system disk is formatted) only when
    /// `disruptionPolicy.reinstall` is `Allowed`; otherwise it is reported
    /// (`ReinstallRequired`).
    #[schemars(length(max = 12), regex(pattern = r"^img-[0-9a-z]{8}$"))]
    pub image_id: String,

    /// Instance type, e.g. `S5.MEDIUM4`. Changing it resizes the instance:
    /// checked first (DescribeInstancesModification), then in the one stop
    /// window (`disruptionPolicy.stopStart`).
    #[schemars(length(min = 3, max = 32), regex(pattern = r"^[A-Z0-9]+\.[A-Z0-9]+$"))]
    pub instance_type: String,

    /// Project id (default 0). Changes in place; unset leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub project_id: Option<i64>,

    /// Billing: POSTPAID_BY_HOUR (default), PREPAID (with `prepaid`) or
    /// SPOTPAID (optionally with `spot`). POSTPAID_BY_HOUR can become
    /// PREPAID in place; nothing else can change.
    #[serde(default)]
    #[x_kube(
        validation = transitions::prepaid_stays_prepaid_rule(),
        validation = transitions::spot_stays_spot_rule()
    )]
    pub instance_charge_type: InstanceChargeType,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepaid: Option<PrepaidSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<SpotSpec>,

    /// Instance name shown in the console; defaults to the resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 60))]
    pub instance_name: Option<String>,

    /// Operating-system host name: 2-60 letters and digits in segments
    /// joined by single `-` or `.` (Windows images: 2-15, no `.`, not all
    /// digits; the API checks that, as only it knows the image's OS).
    /// Changes in place; it takes effect at a boot, so a running instance
    /// is rebooted (`disruptionPolicy.reboot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = HOST_NAME_MAX))]
    #[x_kube(validation = host_name_rule())]
    pub host_name: Option<String>,

    /// The system disk: its size can grow in place (online while running),
    /// its type cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDiskSpec>,

    /// At most 21 (RunInstances: one local and 20 cloud disks). Each cloud
    /// disk's size can grow in place; the list, types and snapshots cannot
    /// change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = transitions::MAX_DATA_DISKS))]
    #[x_kube(
        validation = transitions::data_disks_count_rule(),
        validation = transitions::data_disks_type_rule(),
        validation = transitions::data_disks_snapshot_rule(),
        validation = transitions::data_disks_deletion_rule(),
        validation = transitions::data_disks_grow_rule(),
        validation = transitions::data_disks_local_rule()
    )]
    pub data_disks: Option<Vec<DataDiskSpec>>,

    /// The placement group (at most one, `ps-…`): set at creation, and
    /// changed in place (a running instance may move to another host, which
    /// restarts it: `disruptionPolicy.reboot`). `[]` leaves the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 1),
        inner(length(max = 11), regex(pattern = r"^ps-[0-9a-z]{8}$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub disaster_recover_group_ids: Option<Vec<String>>,

    /// VPC placement; the default VPC when absent. The subnet and private
    /// IP (and the VPC, with one of its subnets) change in place, with the
    /// instance stopped (`disruptionPolicy.stopStart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<VpcSpec>,

    /// Public network. `internetMaxBandwidthOut` can change in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_accessible: Option<InternetAccessibleSpec>,

    /// Security groups, in priority order, each once. When set, the operator
    /// keeps the instance's groups equal to this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 5),
        inner(length(max = 11), regex(pattern = r"^sg-[0-9a-z]{8}$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub security_group_ids: Option<Vec<String>>,

    /// Login: key pairs or a password from a Secret. Both change in place
    /// with the instance stopped (`disruptionPolicy.stopStart`), also when
    /// the password's Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_settings: Option<LoginSettingsSpec>,

    /// Standard base64 (`base64 -w0`) of at most 16 KiB. Changes in place
    /// (used at the next boot). Prefer `userDataSecretRef` when it holds
    /// secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = USER_DATA_MAX_ENCODED))]
    #[x_kube(validation = user_data_base64_rule(), validation = user_data_size_rule())]
    pub user_data: Option<String>,

    /// User data from a Secret key (plain text; the operator encodes it).
    /// A change of the Secret is applied like a change of `userData`: it is
    /// read again on every reconcile, and at least once per poll interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_secret_ref: Option<SecretKeyRef>,

    /// The instance's tags (the operator adds its own `cvm.tencentcloud.io/*`
    /// and never touches them). When set, added, changed and removed tags
    /// are applied in place (Tag service); `{}` removes every other tag;
    /// unset leaves them as they are.
    /// At most 47 (the Tag service allows 50 per resource); keys 1-127 and
    /// values 1-255 characters: letters, digits, inner spaces and
    /// `+ - = . _ : / @ ( ) [ ] , ; < >`; 8192 characters in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_tags)]
    #[x_kube(
        validation = tag_keys_rule(),
        validation = tag_values_rule(),
        validation = tag_reserved_rule(),
        validation = tags_total_rule()
    )]
    pub tags: Option<BTreeMap<String, String>>,

    /// The CAM role the instance assumes (its metadata service hands out
    /// the role's credentials). `""` unbinds the role; unset leaves it as
    /// it is. Changes in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = r"^[\w+=,.@-]*$"))]
    pub cam_role_name: Option<String>,

    /// Termination protection. While true, deleting the resource with
    /// `deletionPolicy: Delete` waits (condition reason TerminationProtected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_api_termination: Option<bool>,

    /// Desired power state.
    #[serde(default)]
    pub run_state: RunState,

    /// How to stop: SOFT, HARD or SOFT_FIRST (default: soft, then hard).
    #[serde(default)]
    pub stop_type: StopType,

    /// Whether a stopped postpaid instance keeps charging.
    #[serde(default)]
    pub stopped_mode: StoppedMode,

    /// Which disruptions the operator may cause by itself to apply a change
    /// (stop and start, reboot, reinstall). A change whose disruption is not
    /// allowed is not made: `Synced=False` names what it needs
    /// (`StopRequired`, `RebootRequired`, `ReinstallRequired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_policy: Option<DisruptionPolicy>,

    /// Deprecated: use `disruptionPolicy.stopStart`. `Never` still means
    /// `disruptionPolicy.stopStart: Never`; `StopAndStart` is the default
    /// and means nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_policy: Option<ResizePolicy>,

    /// Delete: terminate the instance with the resource. Retain: keep it.
    /// Default: Delete for an instance the operator creates, Retain for an
    /// adopted one (`spec.instanceId`) — see `effective_deletion_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Full (default), or ObserveOnly: report, never change anything.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// Adopt this existing instance instead of creating one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12), regex(pattern = r"^ins-[0-9a-z]{8}$"))]
    pub instance_id: Option<String>,

    /// The `CvmAccount` (cluster-scoped, created by an admin) whose
    /// credentials to use; it must select this namespace. When neither this
    /// nor `credentialsSecretRef` is set: the account named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<LocalObjectRef>,

    /// Bring your own keys: a Secret in this namespace with `SecretId`,
    /// `SecretKey` (and optional `Token`). Not with `accountRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
}

macro_rules! unit_enum {
    ($(#[$m:meta])* $name:ident { $(#[$dm:meta])* $default:ident $(, $variant:ident)* $(,)? }) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema)]
        pub enum $name {
            $(#[$dm])*
            #[default]
            $default,
            $($variant,)*
        }

        impl $name {
            /// The value as the API and the schema spell it (the variant name).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $name::$default => stringify!($default),
                    $($name::$variant => stringify!($variant),)*
                }
            }

            /// The variant the API spells `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    _ if s == stringify!($default) => Some($name::$default),
                    $(_ if s == stringify!($variant) => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

unit_enum!(
    #[allow(non_camel_case_types)]
    InstanceChargeType {
        POSTPAID_BY_HOUR,
        PREPAID,
        SPOTPAID
    }
);
unit_enum!(RunState { Running, Stopped });
unit_enum!(
    #[allow(non_camel_case_types)]
    StopType {
        SOFT_FIRST,
        SOFT,
        HARD
    }
);
unit_enum!(
    #[allow(non_camel_case_types)]
    StoppedMode {
        KEEP_CHARGING,
        STOP_CHARGING
    }
);
unit_enum!(ResizePolicy {
    StopAndStart,
    Never
});
unit_enum!(Permission { Allowed, Never });
unit_enum!(DeletionPolicy { Delete, Retain });
unit_enum!(ManagementPolicy { Full, ObserveOnly });
unit_enum!(
    #[allow(non_camel_case_types)]
    RenewFlag {
        NOTIFY_AND_MANUAL_RENEW,
        NOTIFY_AND_AUTO_RENEW,
        DISABLE_NOTIFY_AND_MANUAL_RENEW
    }
);
unit_enum!(
    #[allow(non_camel_case_types)]
    DiskType {
        CLOUD_PREMIUM,
        CLOUD_SSD,
        CLOUD_BSSD,
        CLOUD_HSSD,
        CLOUD_TSSD,
        CLOUD_BASIC,
        LOCAL_BASIC,
        LOCAL_SSD
    }
);
unit_enum!(
    #[allow(non_camel_case_types)]
    InternetChargeType {
        TRAFFIC_POSTPAID_BY_HOUR,
        BANDWIDTH_POSTPAID_BY_HOUR,
        BANDWIDTH_PREPAID,
        BANDWIDTH_PACKAGE
    }
);

/// The disruptions the operator may cause by itself. Unset members take
/// their defaults: stop/start and reboot `Allowed`, reinstall `Never`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionPolicy {
    /// Stopping a running instance to apply changes that need it stopped
    /// (type, key pairs, password, VPC, offline disk growth: all of them in
    /// one stop), then restoring `runState`. Default `Allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_start: Option<Permission>,
    /// Rebooting a running instance (a new host name, a new placement
    /// group). Default `Allowed`: less than the stop/start allowed by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Permission>,
    /// Reinstalling the operating system for a new `imageId` (formats the
    /// system disk). Default `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinstall: Option<Permission>,
}

/// The effective disruption policy: what the operator may do by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disruptions {
    pub stop_start: bool,
    pub reboot: bool,
    pub reinstall: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrepaidSpec {
    /// Months: 1-12, 24, 36, 48 or 60.
    #[x_kube(validation = Rule::new("self in [1,2,3,4,5,6,7,8,9,10,11,12,24,36,48,60]").message("spec.prepaid.period must be 1-12, 24, 36, 48 or 60 months"))]
    pub period: i64,
    #[serde(default)]
    pub renew_flag: RenewFlag,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpotSpec {
    /// Highest hourly price, e.g. "0.05".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"), length(max = 16))]
    pub max_price: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = transitions::local_system_disk_rule())]
pub struct SystemDiskSpec {
    #[serde(default)]
    #[x_kube(validation = transitions::disk_type_rule("spec.systemDisk.diskType"))]
    pub disk_type: DiskType,
    /// GiB, 20-1024. It can only grow.
    #[serde(default = "default_system_disk_size")]
    #[schemars(range(min = 20, max = 1024))]
    #[x_kube(validation = transitions::disk_grows_rule())]
    pub disk_size: i64,
}

fn default_system_disk_size() -> i64 {
    50
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.diskSize % 10 == 0").message("spec.dataDisks[].diskSize must be a multiple of 10"))]
pub struct DataDiskSpec {
    #[serde(default)]
    pub disk_type: DiskType,
    /// GiB, 10-32000, a multiple of 10.
    #[schemars(range(min = 10, max = 32000))]
    pub disk_size: i64,
    #[serde(default = "default_true")]
    pub delete_with_instance: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 13), regex(pattern = r"^snap-[0-9a-z]{8}$"))]
    pub snapshot_id: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcSpec {
    #[schemars(length(max = 12), regex(pattern = r"^vpc-[0-9a-z]{8}$"))]
    pub vpc_id: String,
    #[schemars(length(max = 15), regex(pattern = r"^subnet-[0-9a-z]{8}$"))]
    pub subnet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 15),
        regex(
            pattern = r"^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$"
        )
    )]
    pub private_ip_address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.publicIpAssigned) || !self.publicIpAssigned || self.internetMaxBandwidthOut > 0").message("spec.internetAccessible.publicIpAssigned needs internetMaxBandwidthOut > 0"))]
pub struct InternetAccessibleSpec {
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<InternetChargeType>,
    /// Mbps, 0-200. Changes in place.
    #[serde(default)]
    #[schemars(range(min = 0, max = 200))]
    pub internet_max_bandwidth_out: i64,
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_assigned: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.keyIds) && has(self.passwordSecretRef))").message("spec.loginSettings: keyIds and passwordSecretRef are mutually exclusive"))]
pub struct LoginSettingsSpec {
    /// Key pairs, each once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 10),
        inner(length(max = 13), regex(pattern = r"^skey-[0-9a-z]{8}$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub key_ids: Option<Vec<String>>,
    /// The login password from a Secret key; never stored in the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// A Secret in this namespace.
    #[schemars(length(min = 1, max = OBJECT_NAME_MAX), regex(pattern = OBJECT_NAME_REGEX))]
    pub name: String,
    /// A key of its data.
    #[schemars(length(min = 1, max = OBJECT_NAME_MAX), regex(pattern = SECRET_KEY_REGEX))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    #[schemars(length(min = 1, max = OBJECT_NAME_MAX), regex(pattern = OBJECT_NAME_REGEX))]
    pub name: String,
}

mod status;
pub use status::*;

impl CvmInstanceSpec {
    /// The effective disruption policy: `disruptionPolicy`'s members, the
    /// deprecated `resizePolicy: Never` for an unset `stopStart`, else the
    /// defaults (stop/start and reboot allowed, reinstall never).
    pub fn disruptions(&self) -> Disruptions {
        let p = self.disruption_policy.clone().unwrap_or_default();
        let legacy = match self.resize_policy {
            Some(ResizePolicy::Never) => Permission::Never,
            _ => Permission::Allowed,
        };
        let allowed = |p: Option<Permission>, default| p.unwrap_or(default) == Permission::Allowed;
        Disruptions {
            stop_start: allowed(p.stop_start, legacy),
            reboot: allowed(p.reboot, Permission::Allowed),
            reinstall: allowed(p.reinstall, Permission::Never),
        }
    }

    /// What happens to the instance when the resource is deleted:
    /// `spec.deletionPolicy`, else Retain for an adopted instance (it existed
    /// before this resource) and Delete for one the operator creates.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy
            .unwrap_or(if self.instance_id.is_some() {
                DeletionPolicy::Retain
            } else {
                DeletionPolicy::Delete
            })
    }
}

impl CvmInstance {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    pub fn is_paused(&self) -> bool {
        self.annotation(PAUSED_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The restart asked for (`cvm.tencentcloud.io/restartedAt`, at most
    /// 64 characters: a timestamp), if any.
    pub fn restart_requested(&self) -> Option<&str> {
        self.annotation(RESTARTED_AT_ANNOTATION)
            .filter(|v| !v.is_empty() && v.len() <= RESTART_VALUE_MAX)
    }

    /// The instance this resource is bound to, as far as it knows: the
    /// adopted `spec.instanceId`, else the id recorded in status.
    pub fn known_instance_id(&self) -> Option<&str> {
        self.spec
            .instance_id
            .as_deref()
            .or_else(|| self.status.as_ref()?.instance_id.as_deref())
    }

    /// The instance name to keep: `spec.instanceName` or the resource name.
    pub fn desired_instance_name(&self) -> String {
        self.spec
            .instance_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}

/// The CRD as YAML, as committed under `crds/`.
pub fn crd_yaml() -> String {
    let crd = CvmInstance::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("the CRD serialises");
    format!("# Generated by `cvm-operator crd`; do not edit.\n---\n{yaml}")
}

#[cfg(test)]
mod tests;
