//! Wire types of the CVM API 3.0 (`cvm`, version `2017-03-12`).
//!
//! Shared by the client and the simulator, so the API is defined once.
//! Conventions:
//! - PascalCase on the wire (`rename_all`).
//! - Requests: top-level required parameters are plain fields, so a missing
//!   one fails deserialisation (the simulator maps that to `MissingParameter`);
//!   unknown parameters are refused (`UnknownParameter`). Optional ones are
//!   `Option` and omitted when unset, as the SDKs do. Every member the official
//!   schema has is modelled (opaque `serde_json::Value` where nothing reads
//!   it), so the simulator accepts every valid request; members the schema
//!   marks `disabled` carry a deprecation note and schema flag; the client
//!   does not send them. `src/sim/conformance.rs` checks all of this against
//!   tccli's api.json.
//! - Responses and nested objects: every field is `Option` with `default`, so
//!   null, absence and new unknown fields are all tolerated.
//! - Passwords and user data are [`Secret`]s: redacted in `Debug`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fmt::Debug;

pub use super::credentials::Secret;

pub const SERVICE: &str = "cvm";
pub const API_VERSION: &str = "2017-03-12";

/// Its member tree (`cloud::fields`) is a string.
impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(g)
    }
}

/// An API action: its name, request and response types, and whether sending it
/// twice is harmless. CVM's unless `SERVICE`/`VERSION` say otherwise (STS
/// actions live in `cloud::sts`).
pub trait Action {
    const NAME: &'static str;
    /// The service (first label of its host, part of the credential scope).
    const SERVICE: &'static str = SERVICE;
    /// `X-TC-Version`.
    const VERSION: &'static str = API_VERSION;
    /// Sent with `Authorization: SKIP` and no credentials
    /// (AssumeRoleWithWebIdentity).
    const UNSIGNED: bool = false;
    type Request: Serialize + DeserializeOwned + JsonSchema + Debug + Clone + Send + Sync + 'static;
    type Response: Serialize + DeserializeOwned + JsonSchema + Debug + Default + Send + 'static;
    /// True when a retry after an unknown outcome cannot change the result.
    fn idempotent(_req: &Self::Request) -> bool {
        false
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)*
            /// A value this version does not know (new ones appear over time).
            Other(String),
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Other(s) => s,
                }
            }
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($wire => $name::$variant,)*
                    _ => $name::Other(s),
                }
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self { Self::from(s.to_string()) }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.as_str().to_string() }
        }
        impl JsonSchema for $name {
            fn inline_schema() -> bool { true }
            fn schema_name() -> std::borrow::Cow<'static, str> { stringify!($name).into() }
            fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema { String::json_schema(g) }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// `InstanceState` (cvm-api.md §5.1).
    InstanceState {
        Pending = "PENDING",
        LaunchFailed = "LAUNCH_FAILED",
        Running = "RUNNING",
        Stopped = "STOPPED",
        Starting = "STARTING",
        Stopping = "STOPPING",
        Rebooting = "REBOOTING",
        Shutdown = "SHUTDOWN",
        Terminating = "TERMINATING",
        EnterRescueMode = "ENTER_RESCUE_MODE",
        RescueMode = "RESCUE_MODE",
        ExitRescueMode = "EXIT_RESCUE_MODE",
        EnterServiceLiveMigrate = "ENTER_SERVICE_LIVE_MIGRATE",
        ServiceLiveMigrate = "SERVICE_LIVE_MIGRATE",
        ExitServiceLiveMigrate = "EXIT_SERVICE_LIVE_MIGRATE",
    }
);

impl InstanceState {
    /// The `<X>` of `UnsupportedOperation.InstanceState<X>`.
    pub fn error_suffix(&self) -> String {
        self.as_str()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => {
                        f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
                    }
                    None => String::new(),
                }
            })
            .collect()
    }

    /// States an instance rests in until someone acts.
    pub fn is_stable(&self) -> bool {
        matches!(
            self,
            InstanceState::Running
                | InstanceState::Stopped
                | InstanceState::LaunchFailed
                | InstanceState::Shutdown
        )
    }
}

string_enum!(
    /// `LatestOperationState`.
    OperationState {
        Success = "SUCCESS",
        Operating = "OPERATING",
        Failed = "FAILED",
    }
);

// ---------------------------------------------------------------------------
// Shared nested objects (all optional: used in requests and responses).

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new(
        name: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TagSpecification {
    pub resource_type: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct Placement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_resource_pack_tenancy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_resource_pack_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemDisk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DataDisk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_with_instance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_performance: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_performance: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct VirtualPrivateCloud {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_vpc_gateway: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip_addresses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InternetAccessible {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip_assigned: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_package_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_service_provider: Option<String>,
    #[serde(rename = "IPv4AddressType", skip_serializing_if = "Option::is_none")]
    pub ipv4_address_type: Option<String>,
    #[serde(rename = "IPv6AddressType", skip_serializing_if = "Option::is_none")]
    pub ipv6_address_type: Option<String>,
    #[serde(rename = "AntiDDoSPackageId", skip_serializing_if = "Option::is_none")]
    pub anti_ddos_package_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoginSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_image_login: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceChargePrepaid {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_flag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpotMarketOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_instance_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceMarketOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_options: Option<SpotMarketOptions>,
}

// ---------------------------------------------------------------------------
// RunInstances

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RunInstancesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_charge_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_charge_prepaid: Option<InstanceChargePrepaid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDisk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_disks: Option<Vec<DataDisk>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_private_cloud: Option<VirtualPrivateCloud>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_accessible: Option<InternetAccessible>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_settings: Option<LoginSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_service: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_timer: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disaster_recover_group_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_specification: Option<Vec<TagSpecification>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_market_options: Option<InstanceMarketOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_api_termination: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cam_role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpc_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_topology: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chc_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_jumbo_frame: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunInstancesResponse {
    pub instance_id_set: Option<Vec<String>>,
}

pub struct RunInstances;
impl Action for RunInstances {
    const NAME: &'static str = "RunInstances";
    type Request = RunInstancesRequest;
    type Response = RunInstancesResponse;
    /// Only with a ClientToken: the service then returns the first call's ids.
    fn idempotent(req: &Self::Request) -> bool {
        req.client_token.as_deref().is_some_and(|t| !t.is_empty())
    }
}

// ---------------------------------------------------------------------------
// DescribeInstances / DescribeInstancesStatus

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeInstancesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One instance as DescribeInstances reports it (cvm-api.md §4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct Instance {
    pub instance_id: Option<String>,
    pub uuid: Option<String>,
    pub instance_state: Option<InstanceState>,
    pub instance_type: Option<String>,
    #[serde(rename = "CPU")]
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub instance_name: Option<String>,
    pub instance_charge_type: Option<String>,
    pub placement: Option<Placement>,
    pub system_disk: Option<SystemDisk>,
    pub data_disks: Option<Vec<DataDisk>>,
    pub private_ip_addresses: Option<Vec<String>>,
    pub public_ip_addresses: Option<Vec<String>>,
    pub internet_accessible: Option<InternetAccessible>,
    pub virtual_private_cloud: Option<VirtualPrivateCloud>,
    pub image_id: Option<String>,
    pub os_name: Option<String>,
    pub renew_flag: Option<String>,
    pub created_time: Option<String>,
    pub expired_time: Option<String>,
    pub security_group_ids: Option<Vec<String>>,
    pub login_settings: Option<LoginSettings>,
    pub tags: Option<Vec<Tag>>,
    pub latest_operation: Option<String>,
    pub latest_operation_state: Option<OperationState>,
    pub latest_operation_request_id: Option<String>,
    pub latest_operation_error_msg: Option<String>,
    pub restrict_state: Option<String>,
    pub isolated_source: Option<String>,
    pub stop_charging_mode: Option<String>,
    pub disable_api_termination: Option<bool>,
    pub default_login_user: Option<String>,
    pub default_login_port: Option<i64>,
    pub license_type: Option<String>,
    pub cam_role_name: Option<String>,
    pub host_name: Option<String>,
    /// Deprecated by the API (`disabled`, still always answered, `""`): read
    /// `disaster_recover_group_ids`.
    #[schemars(extend("deprecated" = true))]
    pub disaster_recover_group_id: Option<String>,
    pub disaster_recover_group_ids: Option<Vec<String>>,
    #[serde(rename = "IPv6Addresses")]
    pub ipv6_addresses: Option<Vec<String>>,
    pub rdma_ip_addresses: Option<Vec<String>>,
    pub hpc_cluster_id: Option<String>,
    pub dedicated_cluster_id: Option<String>,
}

impl Instance {
    pub fn id(&self) -> &str {
        self.instance_id.as_deref().unwrap_or_default()
    }
    pub fn zone(&self) -> Option<&str> {
        self.placement.as_ref()?.zone.as_deref()
    }
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .as_ref()?
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
    pub fn bandwidth_out(&self) -> Option<i64> {
        self.internet_accessible
            .as_ref()?
            .internet_max_bandwidth_out
    }
    pub fn operating(&self) -> bool {
        self.latest_operation_state == Some(OperationState::Operating)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstancesResponse {
    pub total_count: Option<i64>,
    pub instance_set: Option<Vec<Instance>>,
}

pub struct DescribeInstances;
impl Action for DescribeInstances {
    const NAME: &'static str = "DescribeInstances";
    type Request = DescribeInstancesRequest;
    type Response = DescribeInstancesResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeInstancesStatusRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceStatus {
    pub instance_id: Option<String>,
    pub instance_state: Option<InstanceState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstancesStatusResponse {
    pub total_count: Option<i64>,
    pub instance_status_set: Option<Vec<InstanceStatus>>,
}

pub struct DescribeInstancesStatus;
impl Action for DescribeInstancesStatus {
    const NAME: &'static str = "DescribeInstancesStatus";
    type Request = DescribeInstancesStatusRequest;
    type Response = DescribeInstancesStatusResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// Start / Stop / Reboot / Terminate

/// Responses that carry only a RequestId.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct EmptyResponse {}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StartInstancesRequest {
    pub instance_ids: Vec<String>,
}

pub struct StartInstances;
impl Action for StartInstances {
    const NAME: &'static str = "StartInstances";
    type Request = StartInstancesRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StopInstancesRequest {
    pub instance_ids: Vec<String>,
    /// Deprecated by the API (`disabled`): never sent by the operator, which
    /// uses `stop_type`; kept so the simulator accepts old callers.
    #[schemars(extend("deprecated" = true))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_mode: Option<String>,
}

pub struct StopInstances;
impl Action for StopInstances {
    const NAME: &'static str = "StopInstances";
    type Request = StopInstancesRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RebootInstancesRequest {
    pub instance_ids: Vec<String>,
    /// Deprecated by the API (`disabled`): never sent by the operator, which
    /// uses `stop_type`; kept so the simulator accepts old callers.
    #[schemars(extend("deprecated" = true))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_reboot: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_type: Option<String>,
}

pub struct RebootInstances;
impl Action for RebootInstances {
    const NAME: &'static str = "RebootInstances";
    type Request = RebootInstancesRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TerminateInstancesRequest {
    pub instance_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_address: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_prepaid_data_disks: Option<bool>,
}

pub struct TerminateInstances;
impl Action for TerminateInstances {
    const NAME: &'static str = "TerminateInstances";
    type Request = TerminateInstancesRequest;
    type Response = EmptyResponse;
}

// ---------------------------------------------------------------------------
// ResetInstancesType / ResetInstancesInternetMaxBandwidth / ModifyInstancesAttribute

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResetInstancesTypeRequest {
    pub instance_ids: Vec<String>,
    pub instance_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
}

pub struct ResetInstancesType;
impl Action for ResetInstancesType {
    const NAME: &'static str = "ResetInstancesType";
    type Request = ResetInstancesTypeRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResetInstancesInternetMaxBandwidthRequest {
    pub instance_ids: Vec<String>,
    pub internet_accessible: InternetAccessible,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
}

pub struct ResetInstancesInternetMaxBandwidth;
impl Action for ResetInstancesInternetMaxBandwidth {
    const NAME: &'static str = "ResetInstancesInternetMaxBandwidth";
    type Request = ResetInstancesInternetMaxBandwidthRequest;
    type Response = EmptyResponse;
    /// Setting an absolute bandwidth twice is the same as once.
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesAttributeRequest {
    pub instance_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cam_role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cam_role_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_reboot: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_api_termination: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_jumbo_frame: Option<bool>,
}

pub struct ModifyInstancesAttribute;
impl Action for ModifyInstancesAttribute {
    const NAME: &'static str = "ModifyInstancesAttribute";
    type Request = ModifyInstancesAttributeRequest;
    type Response = EmptyResponse;
    /// Setting an absolute attribute value twice is the same as once.
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// InquiryPriceRunInstances

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct ItemPrice {
    pub unit_price: Option<f64>,
    pub charge_unit: Option<String>,
    pub original_price: Option<f64>,
    pub discount_price: Option<f64>,
    pub discount: Option<f64>,
    pub unit_price_discount: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct Price {
    /// Left out (never null) where the price is of the bandwidth only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_price: Option<ItemPrice>,
    /// Left out (never null) where the price is of the instance only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_price: Option<ItemPrice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InquiryPriceRunInstancesResponse {
    pub price: Option<Price>,
}

/// The members of RunInstances that InquiryPriceRunInstances also has (not
/// MinCount, ActionTimer, DisasterRecoverGroupIds, UserData, DryRun,
/// DisableApiTermination, CamRoleName, …); `Placement` and `ImageId` are
/// required here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InquiryPriceRunInstancesRequest {
    pub placement: Placement,
    pub image_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_charge_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_charge_prepaid: Option<InstanceChargePrepaid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDisk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_disks: Option<Vec<DataDisk>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_private_cloud: Option<VirtualPrivateCloud>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_accessible: Option<InternetAccessible>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_settings: Option<LoginSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_service: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_specification: Option<Vec<TagSpecification>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_market_options: Option<InstanceMarketOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpc_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_topology: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

impl InquiryPriceRunInstancesRequest {
    /// The price inquiry of a create: the members that decide the price.
    /// Not the ClientToken (an inquiry creates nothing to guard), nor the
    /// password or tags (they never change a price, and a secret has no
    /// business in a read).
    pub fn of_create(run: &RunInstancesRequest) -> Self {
        Self {
            placement: run.placement.clone().unwrap_or_default(),
            image_id: run.image_id.clone().unwrap_or_default(),
            instance_charge_type: run.instance_charge_type.clone(),
            instance_charge_prepaid: run.instance_charge_prepaid.clone(),
            instance_type: run.instance_type.clone(),
            system_disk: run.system_disk.clone(),
            data_disks: run.data_disks.clone(),
            virtual_private_cloud: run.virtual_private_cloud.clone(),
            internet_accessible: run.internet_accessible.clone(),
            instance_count: run.instance_count,
            instance_name: run.instance_name.clone(),
            login_settings: run.login_settings.as_ref().map(|l| LoginSettings {
                password: None,
                ..l.clone()
            }),
            security_group_ids: run.security_group_ids.clone(),
            host_name: run.host_name.clone(),
            instance_market_options: run.instance_market_options.clone(),
            ..Default::default()
        }
    }
}

pub struct InquiryPriceRunInstances;
impl Action for InquiryPriceRunInstances {
    const NAME: &'static str = "InquiryPriceRunInstances";
    type Request = InquiryPriceRunInstancesRequest;
    type Response = InquiryPriceRunInstancesResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// DescribeZones / DescribeInstanceTypeConfigs / DescribeImages

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeZonesRequest {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct ZoneInfo {
    pub zone: Option<String>,
    pub zone_name: Option<String>,
    pub zone_id: Option<String>,
    pub zone_state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeZonesResponse {
    pub total_count: Option<i64>,
    pub zone_set: Option<Vec<ZoneInfo>>,
}

pub struct DescribeZones;
impl Action for DescribeZones {
    const NAME: &'static str = "DescribeZones";
    type Request = DescribeZonesRequest;
    type Response = DescribeZonesResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeInstanceTypeConfigsRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceTypeConfig {
    pub zone: Option<String>,
    pub instance_type: Option<String>,
    pub instance_family: Option<String>,
    #[serde(rename = "GPU")]
    pub gpu: Option<i64>,
    #[serde(rename = "CPU")]
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    #[serde(rename = "FPGA")]
    pub fpga: Option<i64>,
    pub gpu_count: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstanceTypeConfigsResponse {
    pub instance_type_config_set: Option<Vec<InstanceTypeConfig>>,
}

pub struct DescribeInstanceTypeConfigs;
impl Action for DescribeInstanceTypeConfigs {
    const NAME: &'static str = "DescribeInstanceTypeConfigs";
    type Request = DescribeInstanceTypeConfigsRequest;
    type Response = DescribeInstanceTypeConfigsResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeImagesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct Image {
    pub image_id: Option<String>,
    pub os_name: Option<String>,
    pub image_type: Option<String>,
    pub created_time: Option<String>,
    pub image_name: Option<String>,
    pub image_description: Option<String>,
    pub image_size: Option<i64>,
    pub architecture: Option<String>,
    pub image_state: Option<String>,
    pub platform: Option<String>,
    pub image_creator: Option<String>,
    pub image_source: Option<String>,
    pub is_support_cloudinit: Option<bool>,
    pub license_type: Option<String>,
    pub sync_percent: Option<i64>,
    pub snapshot_set: Option<Vec<serde_json::Value>>,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeImagesResponse {
    pub image_set: Option<Vec<Image>>,
    pub total_count: Option<i64>,
}

pub struct DescribeImages;
impl Action for DescribeImages {
    const NAME: &'static str = "DescribeImages";
    type Request = DescribeImagesRequest;
    type Response = DescribeImagesResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// In-place changes: reinstall, login, project, billing, disks, network,
// placement groups (issue 10's table). Each needs a state the API names:
// `ForceStop` lets a RUNNING instance be stopped by the call itself, which
// then starts it again where the documentation says so.

/// Reinstalls the operating system (formats the system disk).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResetInstanceRequest {
    pub instance_id: String,
    /// The image to install; the current one when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Only `DiskSize` (a grow) may be given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDisk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_settings: Option<LoginSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_service: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Secret>,
}

pub struct ResetInstance;
impl Action for ResetInstance {
    const NAME: &'static str = "ResetInstance";
    type Request = ResetInstanceRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesProjectRequest {
    pub instance_ids: Vec<String>,
    pub project_id: i64,
}

pub struct ModifyInstancesProject;
impl Action for ModifyInstancesProject {
    const NAME: &'static str = "ModifyInstancesProject";
    type Request = ModifyInstancesProjectRequest;
    type Response = EmptyResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// At most 20 instances per call. `InstanceChargePrepaid` is required for
/// `PREPAID`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesChargeTypeRequest {
    pub instance_ids: Vec<String>,
    pub instance_charge_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_charge_prepaid: Option<InstanceChargePrepaid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_portable_data_disk: Option<bool>,
}

/// Not idempotent: it bills (a second call finds the instance prepaid).
pub struct ModifyInstancesChargeType;
impl Action for ModifyInstancesChargeType {
    const NAME: &'static str = "ModifyInstancesChargeType";
    type Request = ModifyInstancesChargeTypeRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesRenewFlagRequest {
    pub instance_ids: Vec<String>,
    /// `NOTIFY_AND_AUTO_RENEW`, `NOTIFY_AND_MANUAL_RENEW` or
    /// `DISABLE_NOTIFY_AND_MANUAL_RENEW`.
    pub renew_flag: String,
}

pub struct ModifyInstancesRenewFlag;
impl Action for ModifyInstancesRenewFlag {
    const NAME: &'static str = "ModifyInstancesRenewFlag";
    type Request = ModifyInstancesRenewFlagRequest;
    type Response = EmptyResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// The request of AssociateInstancesKeyPairs and
/// DisassociateInstancesKeyPairs: STOPPED instances, or RUNNING ones with
/// `ForceStop` (stopped, changed, started again).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InstancesKeyPairsRequest {
    pub instance_ids: Vec<String>,
    pub key_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
}

pub struct AssociateInstancesKeyPairs;
impl Action for AssociateInstancesKeyPairs {
    const NAME: &'static str = "AssociateInstancesKeyPairs";
    type Request = InstancesKeyPairsRequest;
    type Response = EmptyResponse;
}

pub struct DisassociateInstancesKeyPairs;
impl Action for DisassociateInstancesKeyPairs {
    const NAME: &'static str = "DisassociateInstancesKeyPairs";
    type Request = InstancesKeyPairsRequest;
    type Response = EmptyResponse;
}

/// STOPPED instances, or RUNNING ones with `ForceStop`. The password is a
/// [`Secret`]; the API never shows it back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResetInstancesPasswordRequest {
    pub instance_ids: Vec<String>,
    pub password: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
}

pub struct ResetInstancesPassword;
impl Action for ResetInstancesPassword {
    const NAME: &'static str = "ResetInstancesPassword";
    type Request = ResetInstancesPasswordRequest;
    type Response = EmptyResponse;
}

/// Grows one disk of one instance: `SystemDisk` or one entry of
/// `DataDisks` (by `DiskId`), each with only the new `DiskSize`. A RUNNING
/// instance needs `ForceStop` or `ResizeOnline`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResizeInstanceDisksRequest {
    pub instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_disks: Option<Vec<DataDisk>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDisk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_online: Option<bool>,
}

/// Not idempotent: growing to the size a disk already has is refused.
pub struct ResizeInstanceDisks;
impl Action for ResizeInstanceDisks {
    const NAME: &'static str = "ResizeInstanceDisks";
    type Request = ResizeInstanceDisksRequest;
    type Response = EmptyResponse;
}

/// Which instance types the given instances (at most 20, one zone) can be
/// changed to. Filter `status` (`SELL`, `UNAVAILABLE`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeInstancesModificationRequest {
    pub instance_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceTypeConfigStatus {
    /// `SELL` or `UNAVAILABLE` (sold out, or not a type it may change to).
    pub status: Option<String>,
    pub message: Option<String>,
    pub instance_type_config: Option<InstanceTypeConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstancesModificationResponse {
    pub total_count: Option<i64>,
    pub instance_type_config_status_set: Option<Vec<InstanceTypeConfigStatus>>,
}

pub struct DescribeInstancesModification;
impl Action for DescribeInstancesModification {
    const NAME: &'static str = "DescribeInstancesModification";
    type Request = DescribeInstancesModificationRequest;
    type Response = DescribeInstancesModificationResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// Moves instances to another subnet (of the same zone; another VPC
/// migrates them) or changes their private IP: `PrivateIpAddresses`, when
/// given, one per instance in order. `ForceStop` defaults to true: the call
/// stops a RUNNING instance and starts it when done.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesVpcAttributeRequest {
    pub instance_ids: Vec<String>,
    pub virtual_private_cloud: VirtualPrivateCloud,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_host_name: Option<bool>,
}

/// Not idempotent: without `PrivateIpAddresses` each call draws new ones.
pub struct ModifyInstancesVpcAttribute;
impl Action for ModifyInstancesVpcAttribute {
    const NAME: &'static str = "ModifyInstancesVpcAttribute";
    type Request = ModifyInstancesVpcAttributeRequest;
    type Response = EmptyResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyInstancesDisasterRecoverGroupRequest {
    pub instance_ids: Vec<String>,
    /// Deprecated by the API (`disabled`): use `disaster_recover_group_ids`.
    #[schemars(extend("deprecated" = true))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disaster_recover_group_id: Option<String>,
    /// May move the instance to another host, restarting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// One group (the API supports one for now); empty leaves the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disaster_recover_group_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_number: Option<i64>,
}

/// Not idempotent: moving into the group it is in is refused.
pub struct ModifyInstancesDisasterRecoverGroup;
impl Action for ModifyInstancesDisasterRecoverGroup {
    const NAME: &'static str = "ModifyInstancesDisasterRecoverGroup";
    type Request = ModifyInstancesDisasterRecoverGroupRequest;
    type Response = EmptyResponse;
}

/// The price after a type change (one instance per call).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InquiryPriceResetInstancesTypeRequest {
    pub instance_ids: Vec<String>,
    pub instance_type: String,
}

/// The answer of the InquiryPriceReset* actions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct InquiryPriceResponse {
    pub price: Option<Price>,
}

pub struct InquiryPriceResetInstancesType;
impl Action for InquiryPriceResetInstancesType {
    const NAME: &'static str = "InquiryPriceResetInstancesType";
    type Request = InquiryPriceResetInstancesTypeRequest;
    type Response = InquiryPriceResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

pub struct InquiryPriceResetInstancesInternetMaxBandwidth;
impl Action for InquiryPriceResetInstancesInternetMaxBandwidth {
    const NAME: &'static str = "InquiryPriceResetInstancesInternetMaxBandwidth";
    /// The same members as the change itself.
    type Request = ResetInstancesInternetMaxBandwidthRequest;
    type Response = InquiryPriceResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// Every action the client and the simulator know.
pub const ACTIONS: &[&str] = &[
    RunInstances::NAME,
    DescribeInstances::NAME,
    DescribeInstancesStatus::NAME,
    StartInstances::NAME,
    StopInstances::NAME,
    RebootInstances::NAME,
    TerminateInstances::NAME,
    ResetInstancesType::NAME,
    ResetInstancesInternetMaxBandwidth::NAME,
    ModifyInstancesAttribute::NAME,
    InquiryPriceRunInstances::NAME,
    DescribeZones::NAME,
    DescribeInstanceTypeConfigs::NAME,
    DescribeImages::NAME,
    ResetInstance::NAME,
    ModifyInstancesProject::NAME,
    ModifyInstancesChargeType::NAME,
    ModifyInstancesRenewFlag::NAME,
    AssociateInstancesKeyPairs::NAME,
    DisassociateInstancesKeyPairs::NAME,
    ResetInstancesPassword::NAME,
    ResizeInstanceDisks::NAME,
    DescribeInstancesModification::NAME,
    ModifyInstancesVpcAttribute::NAME,
    ModifyInstancesDisasterRecoverGroup::NAME,
    InquiryPriceResetInstancesType::NAME,
    InquiryPriceResetInstancesInternetMaxBandwidth::NAME,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_tolerate_null_absence_and_unknown_fields() {
        let body = r#"{"TotalCount": 1, "InstanceSet": [{"InstanceId": "ins-9bxebleo", "InstanceState": "RUNNING",
            "CPU": 1, "Memory": null, "Placement": {"Zone": "ap-guangzhou-3", "ProjectId": 0, "Brand": "new"},
            "PrivateIpAddresses": ["172.16.32.78"], "PublicIpAddresses": null, "ExpiredTime": null,
            "LatestOperationState": "SUCCESS", "SomeFutureField": {"x": 1}, "Tags": null,
            "InternetAccessible": null}], "RequestId": "x"}"#;
        let r: DescribeInstancesResponse = serde_json::from_str(body).unwrap();
        let i = &r.instance_set.unwrap()[0];
        assert_eq!(i.id(), "ins-9bxebleo");
        assert_eq!(i.instance_state, Some(InstanceState::Running));
        assert_eq!(i.cpu, Some(1));
        assert_eq!(i.memory, None);
        assert_eq!(i.zone(), Some("ap-guangzhou-3"));
        assert_eq!(i.public_ip_addresses, None);
        assert_eq!(i.tags, None);
        let empty: DescribeInstancesResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.instance_set.is_none());
        let nulls: DescribeInstancesResponse =
            serde_json::from_str(r#"{"TotalCount": null, "InstanceSet": null}"#).unwrap();
        assert!(nulls.total_count.is_none());
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let s: InstanceState = serde_json::from_str(r#""HIBERNATING""#).unwrap();
        assert_eq!(s, InstanceState::Other("HIBERNATING".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""HIBERNATING""#);
        assert_eq!(InstanceState::LaunchFailed.error_suffix(), "LaunchFailed");
        assert_eq!(
            InstanceState::EnterRescueMode.error_suffix(),
            "EnterRescueMode"
        );
    }

    #[test]
    fn requests_are_pascal_case_and_omit_unset_fields() {
        let req = RunInstancesRequest {
            placement: Some(Placement {
                zone: Some("ap-guangzhou-3".into()),
                ..Default::default()
            }),
            image_id: Some("img-pi0ii46r".into()),
            client_token: Some("tok".into()),
            login_settings: Some(LoginSettings {
                password: Some(Secret::new("Passw0rd!x")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"Placement":{"Zone":"ap-guangzhou-3"},"ImageId":"img-pi0ii46r","LoginSettings":{"Password":"Passw0rd!x"},"ClientToken":"tok"}"#
        );
        assert!(
            !format!("{req:?}").contains("Passw0rd!x"),
            "Debug must redact the password"
        );
        let err =
            serde_json::from_str::<StartInstancesRequest>(r#"{"InstanceIds": [], "Bogus": 1}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `Bogus`"));
        let err = serde_json::from_str::<StartInstancesRequest>("{}").unwrap_err();
        assert!(err.to_string().contains("missing field `InstanceIds`"));
    }

    #[test]
    fn in_place_requests_keep_secrets_out_of_debug_and_match_the_examples() {
        // The members of api.json's examples, in the model's order.
        let req = ResetInstancesPasswordRequest {
            instance_ids: vec!["ins-r8hr2upy".into()],
            password: Secret::new("abc123ABC!@#"),
            user_name: Some("root".into()),
            force_stop: Some(true),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"InstanceIds":["ins-r8hr2upy"],"Password":"abc123ABC!@#","UserName":"root","ForceStop":true}"#
        );
        assert!(!format!("{req:?}").contains("abc123ABC"));
        let reset = ResetInstanceRequest {
            instance_id: "ins-r8hr2upy".into(),
            image_id: Some("img-pmqg1cw7".into()),
            login_settings: Some(LoginSettings {
                password: Some(Secret::new("Passw0rd!x")),
                ..Default::default()
            }),
            user_data: Some(Secret::new("IyEvYmluL2Jhc2gK")),
            ..Default::default()
        };
        let shown = format!("{reset:?}");
        assert!(
            !shown.contains("Passw0rd") && !shown.contains("IyEvYmlu"),
            "{shown}"
        );
        let keys: InstancesKeyPairsRequest = serde_json::from_str(
            r#"{"InstanceIds": ["ins-1xh8ex4w"], "KeyIds": ["skey-cg8q3z7i"], "ForceStop": true}"#,
        )
        .unwrap();
        assert_eq!(keys.key_ids, ["skey-cg8q3z7i"]);
        let disks = ResizeInstanceDisksRequest {
            instance_id: "ins-1xh8ex4w".into(),
            data_disks: Some(vec![DataDisk {
                disk_id: Some("disk-12345678".into()),
                disk_size: Some(200),
                ..Default::default()
            }]),
            resize_online: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&disks).unwrap(),
            r#"{"InstanceId":"ins-1xh8ex4w","DataDisks":[{"DiskSize":200,"DiskId":"disk-12345678"}],"ResizeOnline":true}"#
        );
    }
}
