//! `status.pendingChanges`: what the operator would change but will not now
//! (ObserveOnly, paused, a disruption `disruptionPolicy` does not allow, a
//! permanent error), from the same planner output the `plan` command prints,
//! so `kubectl get cvm -o yaml` answers "why is my change not applied".

use super::limits::clipped;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Entries kept in `status.pendingChanges`: the first ones in the order
/// they would be applied (one per spec field; more than one edit usually
/// holds back).
pub const PENDING_CHANGES_MAX: usize = 16;
/// Characters of a `from`/`to` value (a longer one, say a tag list, is cut).
pub const PENDING_VALUE_MAX: usize = 128;

/// One change not applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingChangeStatus {
    /// The spec field, e.g. `spec.instanceType`.
    #[schemars(length(max = 64))]
    pub field: String,
    /// What the instance has (never a secret value: write-only values show
    /// as `(as last applied)`).
    #[schemars(length(max = PENDING_VALUE_MAX))]
    pub from: String,
    /// What the spec asks for.
    #[schemars(length(max = PENDING_VALUE_MAX))]
    pub to: String,
    /// What applying it would cost the instance from where it stands: None,
    /// Reboot, Stop or Reinstall.
    #[schemars(length(max = 16))]
    pub disruption: String,
}

impl PendingChangeStatus {
    /// Bounded as the CRD requires.
    pub fn new(field: &str, from: String, to: String, disruption: &str) -> Self {
        Self {
            field: clipped(field.to_string(), 64),
            from: clipped(from, PENDING_VALUE_MAX),
            to: clipped(to, PENDING_VALUE_MAX),
            disruption: disruption.to_string(),
        }
    }
}
