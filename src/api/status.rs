//! What the operator reports of a `CvmInstance`: the status, its last
//! operation, the restart record and the fingerprints of what was applied.

use super::limits::*;
use super::pending::{PENDING_CHANGES_MAX, PendingChangeStatus};
use super::price::PriceStatus;
use super::{AccountRecord, RESTART_VALUE_MAX};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What the operator observes and did. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CvmInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub instance_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub instance_type: Option<String>,
    /// As the cloud reports it (the console allows 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = STATUS_LIST_MAX), inner(length(max = 45)))]
    pub private_ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = STATUS_LIST_MAX), inner(length(max = 45)))]
    pub public_ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = STATUS_LIST_MAX), inner(length(max = 64)))]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub created_time: Option<String>,
    /// The last cloud operation the operator started (or saw fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<LastOperation>,
    /// The last restart asked for with `cvm.tencentcloud.io/restartedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartStatus>,
    /// The account the instance was created or adopted in. A later change
    /// of account is refused (`CredentialsAccountChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRecord>,
    /// What was applied of the values the API never shows back, as salted
    /// slow hashes (never the values): a change of them is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedValues>,
    /// What the instance costs, as the API quoted it before the create or
    /// the last change that altered the price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceStatus>,
    /// What the operator would change but will not now (ObserveOnly,
    /// paused, a disruption the policy does not allow, a permanent error):
    /// the answer to "why is my change not applied". Empty while it acts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = PENDING_CHANGES_MAX))]
    pub pending_changes: Vec<PendingChangeStatus>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Synced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = bounded_conditions)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    /// The CVM action, e.g. `RunInstances`.
    #[schemars(length(max = 64))]
    pub action: String,
    /// Pending (sent, outcome unknown), Succeeded, Failed.
    #[schemars(with = "String", length(max = 16))]
    pub state: OperationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub request_id: Option<String>,
    /// The Tencent error code when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STATUS_MESSAGE_MAX))]
    pub message: Option<String>,
    /// The spec generation it was attempted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time: Option<String>,
}

/// Fingerprints of write-only values as last applied
/// (`pbkdf2-sha256$<rounds>$<salt>$<hash>`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedValues {
    /// Of the user data (from `userData` or `userDataSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub user_data: Option<String>,
    /// Of the login password (from `loginSettings.passwordSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub password: Option<String>,
}

/// A restart request (`cvm.tencentcloud.io/restartedAt`) and what became of it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    /// The annotation's value this is about.
    #[schemars(length(max = RESTART_VALUE_MAX))]
    pub requested_at: String,
    /// Pending (recorded before RebootInstances is sent: a crash never
    /// reboots twice), Rebooted, Skipped (the instance was stopped), Failed.
    pub state: RestartState,
    /// While Pending: the instance's `LatestOperationRequestId` before the
    /// call. Another one later means the call reached the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub previous_operation: Option<String>,
    /// RebootInstances' RequestId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub request_id: Option<String>,
}

unit_enum!(RestartState {
    Pending,
    Rebooted,
    Skipped,
    Failed
});

/// Where the last operation stands. The schema keeps a plain string (as it
/// always was); the operator writes only these three values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OperationState {
    /// Sent; the answer is not in yet (a create's intent, before the call).
    #[default]
    Pending,
    Succeeded,
    /// Refused permanently: not retried until the spec changes.
    Failed,
}

impl OperationState {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationState::Pending => "Pending",
            OperationState::Succeeded => "Succeeded",
            OperationState::Failed => "Failed",
        }
    }
}

/// Lets callers (and tests) compare with the wire spelling.
impl PartialEq<&str> for OperationState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A failed call, as `lastOperation` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl LastOperation {
    /// Sent (or about to be), outcome unknown: the create guard's intent.
    pub fn pending(action: &str, generation: Option<i64>, time: String) -> Self {
        Self {
            action: action.into(),
            state: OperationState::Pending,
            generation,
            time: Some(time),
            ..Default::default()
        }
    }

    pub fn succeeded(
        action: &str,
        request_id: &str,
        generation: Option<i64>,
        time: String,
    ) -> Self {
        Self {
            action: action.into(),
            state: OperationState::Succeeded,
            request_id: Some(request_id.into()),
            generation,
            time: Some(time),
            ..Default::default()
        }
    }

    pub fn failed(action: &str, failure: Failure, generation: Option<i64>, time: String) -> Self {
        Self {
            action: action.into(),
            state: OperationState::Failed,
            request_id: failure.request_id,
            code: Some(clipped(failure.code, 128)),
            message: Some(clipped(failure.message, STATUS_MESSAGE_MAX)),
            generation,
            time: Some(time),
        }
    }

    /// True when this failed permanently for `generation`: mutations wait
    /// for a spec change.
    pub fn blocks(&self, generation: Option<i64>) -> bool {
        self.state == OperationState::Failed && self.generation == generation
    }
}
