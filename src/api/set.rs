//! The `CvmInstanceSet` API: a fleet of identical `CvmInstance`s, launched
//! up to 100 per RunInstances call, scaled through the scale subresource
//! (`kubectl scale`, an HPA, KEDA) and updated by rolling the template.
//!
//! Members are ordinary `CvmInstance`s owned by the set (controller owner
//! reference, the template's labels plus [`SET_LABEL`]), so everything a
//! `CvmInstance` does — status, drift, restarts, in-place changes, deletion
//! rules — applies to them unchanged. The set's status carries the launch
//! journal that makes every launch exactly-once.

use super::limits::{CONDITIONS_MAX, STATUS_MESSAGE_MAX, bounded_conditions};
use super::{AccountRecord, CvmInstanceSpec, ManagementPolicy};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Rule;
use kube::core::crd::CustomResourceExt;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// On every member: the set's name (`kubectl get cvm -l cvm.tencentcloud.io/set=web`).
pub const SET_LABEL: &str = "cvm.tencentcloud.io/set";
/// On every member: the hash of the template its instance has (see
/// [`template_hash`]).
pub const TEMPLATE_HASH_LABEL: &str = "cvm.tencentcloud.io/template-hash";
/// On every instance a set launches: the set's UID. With the namespace tag
/// and the member's controller owner reference it proves the instance is the
/// member's (no per-instance tag write needed).
pub const SET_TAG: &str = "cvm.tencentcloud.io/set";
/// On every instance a set launches: the launch's sequence number, to find a
/// launch whose answer was lost.
pub const BATCH_TAG: &str = "cvm.tencentcloud.io/batch";
/// Instances per RunInstances call. The official schema allows 500
/// (`InstanceCount` [1, 500]); 100 is the per-call limit of every action
/// that follows (Describe, Start, Stop, Terminate…), so a launch is exactly
/// one call of each, and a launch refused for quota blocks at most 100.
pub const MAX_BATCH: usize = 100;
/// Launches in flight at once (recorded and not yet turned into members):
/// bounds the journal, so status stays small (10 × 100 ids).
pub const MAX_BATCHES_IN_FLIGHT: usize = 10;
/// Replicas a set may ask for.
pub const MAX_REPLICAS: i32 = 5000;
/// A set's name: members are `<name>-<index>` within the 63 characters a
/// `CvmInstance` name may have.
pub const SET_NAME_MAX: usize = 50;
/// Labels and annotations in the template.
const TEMPLATE_META_MAX: usize = 32;

/// A fleet of identical CVM instances.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cvm.tencentcloud.io",
    version = "v1alpha1",
    kind = "CvmInstanceSet",
    namespaced,
    shortname = "cvmset",
    category = "tencentcloud",
    status = "CvmInstanceSetStatus",
    derive = "PartialEq",
    doc = "A fleet of identical Tencent Cloud CVM instances managed by cvm-operator.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Up-to-date", type_ = "integer", json_path = ".status.updatedReplicas"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.availableReplicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    cel,
    validation = Rule::new("self.metadata.name.size() <= 50").message("metadata.name must be at most 50 characters (members are named <name>-<index>)"),
)]
#[x_kube(
    validation = Rule::new("!has(self.template.spec.instanceId)").message("spec.template.spec.instanceId is not allowed: a set launches its members' instances (adopt an existing instance with its own CvmInstance)"),
    validation = Rule::new("!has(self.template.spec.instanceName) || self.template.spec.instanceName.size() <= 48").message("spec.template.spec.instanceName must be at most 48 characters (members' instances are named <instanceName>-<index>)"),
    validation = Rule::new("self.template.spec.managementPolicy != 'ObserveOnly'").message("spec.template.spec.managementPolicy ObserveOnly is not allowed: a set launches and manages its members' instances"),
    validation = Rule::new("!has(self.selector) || !has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])").message("spec.selector.matchLabels must all be among spec.template.metadata.labels, with the same values"),
)]
#[serde(rename_all = "camelCase")]
pub struct CvmInstanceSetSpec {
    /// How many members (instances). Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub replicas: i32,
    /// Which labels identify the members, beyond the set label every member
    /// carries. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.selector is immutable"))]
    pub selector: Option<MemberSelector>,
    /// What every member is.
    pub template: CvmInstanceTemplate,
    /// How template changes reach the members.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
}

fn one() -> i32 {
    1
}

/// A label selector of equality terms (the set label is always implied).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_labels)]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A member as the set creates it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CvmInstanceTemplate {
    #[serde(default)]
    pub metadata: TemplateMetadata,
    /// A `CvmInstance` spec. Every field may change: what a `CvmInstance`
    /// changes in place is rolled to the members (`updateStrategy`), what it
    /// cannot change replaces them.
    pub spec: CvmInstanceSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels of every member (the operator adds `cvm.tencentcloud.io/set`
    /// and `cvm.tencentcloud.io/template-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_labels)]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cvm.tencentcloud.io/'))").message("spec.template.metadata.labels must not use the reserved prefix cvm.tencentcloud.io/"))]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations of every member (`cvm.tencentcloud.io/paused: "true"`
    /// pauses them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_annotations)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// How template changes reach the members. A change a member applies without
/// disruption (name, bandwidth, security groups, termination protection,
/// power state, policies) goes to all at once; one that stops, reboots or
/// reinstalls is rolled respecting `maxUnavailable`; one a `CvmInstance`
/// cannot take in place replaces members (new first, up to `maxSurge`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Members that may be unavailable (not Ready, or being changed) during
    /// an update: a number, or a percentage of `replicas` rounded down.
    /// Default 25%. At least one when `maxSurge` is 0.
    #[serde(default = "quarter")]
    #[x_kube(validation = int_or_percent())]
    pub max_unavailable: IntOrString,
    /// Members launched beyond `replicas` while members are replaced: a
    /// number, or a percentage rounded up. Default 0 (no instance is ever
    /// billed beyond `replicas`).
    #[serde(default = "zero")]
    #[x_kube(validation = int_or_percent())]
    pub max_surge: IntOrString,
}

fn int_or_percent() -> Rule {
    // `string(self)` reads both forms (the apiserver types int-or-string
    // values `dyn`); a negative number fails the pattern.
    Rule::new("string(self).matches('^([0-9]{1,4}|[0-9]{1,2}%|100%)$')")
        .message("must be a non-negative number or a percentage from 0% to 100%, such as 25%")
}

fn quarter() -> IntOrString {
    IntOrString::String("25%".into())
}

fn zero() -> IntOrString {
    IntOrString::Int(0)
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        Self {
            max_unavailable: quarter(),
            max_surge: zero(),
        }
    }
}

impl UpdateStrategy {
    /// (maxUnavailable, maxSurge) as counts for `replicas`.
    pub fn resolve(&self, replicas: i32) -> (usize, usize) {
        let replicas = replicas.max(0) as usize;
        let unavailable = count(&self.max_unavailable, replicas, false);
        let surge = count(&self.max_surge, replicas, true);
        // Both zero would never make progress.
        let unavailable = if unavailable == 0 && surge == 0 {
            1
        } else {
            unavailable
        };
        (unavailable, surge)
    }
}

/// A count or a percentage of `of` (rounded up or down).
fn count(v: &IntOrString, of: usize, round_up: bool) -> usize {
    let pct = match v {
        IntOrString::Int(n) => return (*n).max(0) as usize,
        IntOrString::String(s) => s.strip_suffix('%').and_then(|p| p.parse::<usize>().ok()),
    };
    let Some(pct) = pct else {
        return 0;
    };
    let scaled = of * pct;
    if round_up {
        scaled.div_ceil(100)
    } else {
        scaled / 100
    }
}

/// What the operator observes and did. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CvmInstanceSetStatus {
    /// Members (not being deleted).
    #[serde(default)]
    pub replicas: i32,
    /// Members whose `Ready` condition is true.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Members whose instance has the current template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Members ready, in sync with their spec, and with the current template
    /// applied: what `maxUnavailable` counts.
    #[serde(default)]
    pub available_replicas: i32,
    /// The members' label selector, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub selector: Option<String>,
    /// The hash of the current template (members' `template-hash` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub template_hash: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last launch's sequence number (the next one is this plus one).
    #[serde(default)]
    pub last_batch: i64,
    /// The next member's index.
    #[serde(default)]
    pub next_index: i64,
    /// Launches recorded and not yet turned into members, written before
    /// each RunInstances: the journal that makes every launch exactly-once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_BATCHES_IN_FLIGHT))]
    pub batches: Vec<LaunchBatch>,
    /// `Ready`, `Synced` and `Progressing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = bounded_conditions)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One RunInstances call of the set, from before it is sent until its
/// members exist.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchBatch {
    /// The launch's sequence number (tag `cvm.tencentcloud.io/batch`).
    pub seq: i64,
    /// Instances it launches (members `first_index` … `first_index + count - 1`).
    #[schemars(range(min = 1, max = MAX_BATCH))]
    pub count: i32,
    pub first_index: i64,
    /// `cvmset-<set uid>-<seq>`: every retry and replay sends the same one.
    #[schemars(length(max = 64))]
    pub client_token: String,
    /// Pending: recorded, the call may or may not have been sent.
    /// Launched: the ids are known, the members may not exist yet.
    pub state: BatchState,
    /// The instances, in member order, once known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_BATCH), inner(length(max = 12)))]
    pub instance_ids: Vec<String>,
    /// The template the instances are launched with.
    #[schemars(length(max = 16))]
    pub template_hash: String,
    /// The account the launch is made in, recorded with it: it is only
    /// ever replayed or looked up there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRecord>,
    /// When it was recorded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time: Option<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum BatchState {
    #[default]
    Pending,
    Launched,
}

fn bounded_labels(schema: &mut schemars::Schema) {
    bounded_map(schema, 63);
}

fn bounded_annotations(schema: &mut schemars::Schema) {
    bounded_map(schema, STATUS_MESSAGE_MAX);
}

fn bounded_map(schema: &mut schemars::Schema, value_max: usize) {
    let o = schema.as_object_mut().expect("a map's schema is an object");
    o.insert("maxProperties".into(), TEMPLATE_META_MAX.into());
    o.insert(
        "additionalProperties".into(),
        serde_json::json!({"type": "string", "maxLength": value_max}),
    );
}

impl CvmInstanceSet {
    /// The members' label selector: the set label, and `spec.selector`.
    pub fn selector_string(&self) -> String {
        let own = [(
            SET_LABEL.to_string(),
            self.metadata.name.clone().unwrap_or_default(),
        )];
        let extra = self
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone());
        own.into_iter()
            .chain(extra.into_iter().flatten())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Managing the members' instances is allowed (ObserveOnly is refused
    /// at admission; a stored object from before is treated the same).
    pub fn manages(&self) -> bool {
        self.spec.template.spec.management_policy != ManagementPolicy::ObserveOnly
    }
}

impl super::CvmInstance {
    /// The UID of the `CvmInstanceSet` that is this resource's controller
    /// (its owner reference), when it is a set's member.
    pub fn controlling_set(&self) -> Option<&str> {
        let refs = self.metadata.owner_references.as_deref()?;
        refs.iter()
            .find(|r| {
                r.controller == Some(true)
                    && r.kind == "CvmInstanceSet"
                    && r.api_version.starts_with(super::GROUP)
            })
            .map(|r| r.uid.as_str())
    }
}

/// A stable hash of the template (metadata and spec), the members'
/// `template-hash` label: equal templates hash alike in every process.
pub fn template_hash(template: &CvmInstanceTemplate) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(template).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..5])
}

/// The CRD. The template embeds the `CvmInstance` spec schema without its
/// transition rules (`oldSelf`): a field a `CvmInstance` keeps immutable may
/// change in the template, which replaces the members that have it.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = CvmInstanceSet::crd();
    if let Some(schema) = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
    {
        let mut value = serde_json::to_value(&*schema).expect("the schema serialises");
        if let Some(template_spec) =
            value.pointer_mut("/properties/spec/properties/template/properties/spec")
        {
            drop_transition_rules(template_spec);
        }
        *schema = serde_json::from_value(value).expect("the schema deserialises");
    }
    crd
}

/// Removes every CEL rule that uses `oldSelf`, at any depth.
fn drop_transition_rules(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            if let Some(Value::Array(rules)) = o.get_mut("x-kubernetes-validations") {
                rules.retain(|r| !r["rule"].as_str().unwrap_or_default().contains("oldSelf"));
                if rules.is_empty() {
                    o.remove("x-kubernetes-validations");
                }
            }
            o.values_mut().for_each(drop_transition_rules);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_transition_rules),
        _ => {}
    }
}

/// The CRD as YAML, as committed under `crds/`.
pub fn crd_yaml() -> String {
    let yaml = serde_saphyr::to_string(&crd()).expect("the CRD serialises");
    format!("# Generated by `cvm-operator crd`; do not edit.\n---\n{yaml}")
}

const _: () = assert!(CONDITIONS_MAX >= 3);

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
