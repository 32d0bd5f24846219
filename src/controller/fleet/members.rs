//! A set's members: how the set's watch keeps them, what each one is
//! (index, readiness, how it relates to the template), and the manifest of
//! a new one. Pure but for the watch cache type.

use super::journal::{index_of, member_name};
use super::rollout::{Member, Update};
use crate::api::set::{CvmInstanceSet, SET_LABEL, TEMPLATE_HASH_LABEL};
use crate::api::{self, CvmInstance, CvmInstanceSpec, DeletionPolicy};
use crate::controller::status::{READY, SYNCED};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};

/// The label value of a member launched with a template that changed before
/// the member was created: what its instance has is not known, so it is
/// replaced.
pub const UNKNOWN_TEMPLATE: &str = "unknown";

/// A member as the set's watch keeps it: the metadata the set reads, the
/// spec as JSON text (parsed only when the template changed), and the
/// status fields that say whether it serves.
#[derive(Resource, Clone, Debug, Deserialize, Serialize)]
#[resource(inherit = "CvmInstance")]
pub struct MemberObject {
    pub metadata: ObjectMeta,
    spec: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<MemberStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<MemberCondition>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
struct MemberCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

impl MemberObject {
    /// Drops what the set never reads: managed fields, annotations, other
    /// labels.
    pub fn slim(&mut self) {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.annotations = None;
        if let Some(labels) = &mut meta.labels {
            labels.retain(|k, _| k == SET_LABEL || k == TEMPLATE_HASH_LABEL);
        }
    }

    /// Whether set `uid` is its controller.
    pub fn owned_by(&self, uid: &str) -> bool {
        self.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid)
    }

    pub fn template_hash(&self) -> Option<&str> {
        self.labels().get(TEMPLATE_HASH_LABEL).map(String::as_str)
    }

    pub fn spec(&self) -> Result<CvmInstanceSpec, serde_json::Error> {
        serde_json::from_str(self.spec.get())
    }

    pub fn instance_id(&self) -> Option<String> {
        let from_spec = serde_json::from_str::<serde_json::Value>(self.spec.get())
            .ok()
            .and_then(|v| v["instanceId"].as_str().map(str::to_string));
        from_spec.or_else(|| self.status.as_ref()?.instance_id.clone())
    }

    fn condition(&self, type_: &str) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        })
    }

    /// Ready, and in sync with the spec it has now.
    fn available(&self) -> bool {
        let observed = self.status.as_ref().and_then(|s| s.observed_generation);
        self.condition(READY) && self.condition(SYNCED) && observed == self.metadata.generation
    }
}

/// Remembers how each old template relates to the current one, so one
/// classification serves every member that has it.
#[derive(Default)]
pub struct Classifier {
    by_hash: HashMap<String, Update>,
}

impl Classifier {
    /// How `member` relates to the set's current template (hash `current`).
    pub fn update(&mut self, set: &CvmInstanceSet, current: &str, member: &MemberObject) -> Update {
        let Some(hash) = member.template_hash() else {
            return Update::Replace;
        };
        if hash == current {
            return Update::Current;
        }
        if hash == UNKNOWN_TEMPLATE {
            return Update::Replace;
        }
        if let Some(u) = self.by_hash.get(hash) {
            return *u;
        }
        let u = match member.spec() {
            Ok(old) => classify(&old, &desired_spec(set, member, &old)),
            Err(_) => Update::Replace,
        };
        self.by_hash.insert(hash.to_string(), u);
        u
    }
}

/// A member's spec for the current template, keeping what is the member's
/// own (its instance, its index).
fn desired_spec(
    set: &CvmInstanceSet,
    member: &MemberObject,
    old: &CvmInstanceSpec,
) -> CvmInstanceSpec {
    let index = index_of(&set.name_any(), &member.name_any()).unwrap_or(0);
    member_spec(set, index, old.instance_id.as_deref().unwrap_or_default())
}

/// Spec fields a member changes without disrupting its instance: nothing
/// at all (policies, how to stop), calls that leave it running (what
/// `plan/drift.rs` says needs nothing: name, bandwidth, security groups,
/// termination protection, CAM role, tags, user data; and the project), or
/// the power state itself, which the template asks of every member alike.
/// Anything else — the type, the host name, the image, and fields this
/// list does not know yet — is rolled within `maxUnavailable`.
const QUIET_FIELDS: &[&str] = &[
    "instanceName",
    "internetAccessible",
    "securityGroupIds",
    "disableApiTermination",
    "camRoleName",
    "userData",
    "userDataSecretRef",
    "projectId",
    "tags",
    "runState",
    "stopType",
    "stoppedMode",
    "disruptionPolicy",
    "resizePolicy",
    "deletionPolicy",
];

/// Fields whose change makes another account's instance: replaced.
const ACCOUNT_FIELDS: &[&str] = &["credentialsSecretRef", "accountRef"];

/// How a member whose spec is `old` takes `new`: the `CvmInstance` CRD's
/// own transition rules (evaluated here, the same rules the apiserver runs)
/// say whether it can at all; [`QUIET_FIELDS`] whether it disrupts.
pub fn classify(old: &CvmInstanceSpec, new: &CvmInstanceSpec) -> Update {
    let (o, n) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let empty = serde_json::Map::new();
    let (o, n) = (
        o.as_object().unwrap_or(&empty),
        n.as_object().unwrap_or(&empty),
    );
    let changed: Vec<&str> = o
        .keys()
        .chain(n.keys())
        .filter(|k| o.get(*k) != n.get(*k))
        .map(String::as_str)
        .collect();
    if changed.iter().any(|f| ACCOUNT_FIELDS.contains(f)) || !transition_allowed(old, new) {
        return Update::Replace;
    }
    if changed.iter().all(|f| QUIET_FIELDS.contains(f)) {
        Update::Quiet
    } else {
        Update::Disruptive
    }
}

/// The `CvmInstance` transition rules (those with `oldSelf`) pass.
fn transition_allowed(old: &CvmInstanceSpec, new: &CvmInstanceSpec) -> bool {
    let (old, new) = (
        CvmInstance::new("member", old.clone()),
        CvmInstance::new("member", new.clone()),
    );
    match new.validate_cel_update(&old) {
        Ok(()) => true,
        Err(errors) => !errors.as_slice().iter().any(|e| e.rule.contains("oldSelf")),
    }
}

/// The rollout's view of a member.
pub fn view(member: &MemberObject, update: Update, deleting: bool) -> Member {
    let set = member.labels().get(SET_LABEL).cloned().unwrap_or_default();
    Member {
        name: member.name_any(),
        index: index_of(&set, &member.name_any()).unwrap_or(-1),
        deleting: deleting || member.metadata.deletion_timestamp.is_some(),
        ready: member.condition(READY),
        available: member.available(),
        update,
    }
}

/// The spec of member `index` adopting instance `id`.
pub fn member_spec(set: &CvmInstanceSet, index: i64, id: &str) -> CvmInstanceSpec {
    let template = &set.spec.template.spec;
    let mut spec = template.clone();
    spec.instance_id = Some(id.to_string());
    spec.instance_name = template
        .instance_name
        .as_deref()
        .map(|n| member_name(n, index));
    // The set launched the instance: deleting the member terminates it
    // unless the template says otherwise (an adopted instance's default is
    // Retain).
    spec.deletion_policy = Some(template.deletion_policy.unwrap_or(DeletionPolicy::Delete));
    spec
}

/// Member `index` of the set: the template's labels and annotations plus the
/// set label and the template hash, the set as its controller, our
/// finalizer already in place (its instance exists: the member guards it
/// from its first moment), adopting instance `id`.
pub fn manifest(set: &CvmInstanceSet, index: i64, id: &str, hash: &str) -> CvmInstance {
    let set_name = set.name_any();
    let meta = &set.spec.template.metadata;
    let mut labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
    labels.insert(SET_LABEL.into(), set_name.clone());
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut member = CvmInstance::new(&member_name(&set_name, index), member_spec(set, index, id));
    member.metadata = ObjectMeta {
        name: Some(member_name(&set_name, index)),
        namespace: set.namespace(),
        labels: Some(labels),
        annotations: meta.annotations.clone(),
        owner_references: Some(vec![owner_reference(set)]),
        finalizers: Some(vec![api::FINALIZER.into()]),
        ..Default::default()
    };
    member
}

/// The merge patch (RFC 7386) that turns `old` into `new`: changed members
/// with their new values, removed ones as `null`, objects recursively.
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) if ov == v => {}
                    Some(ov) => {
                        patch.insert(k.clone(), merge_patch(ov, v));
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// The patch that brings `member` to the current template (hash `hash`):
/// its spec, the template's labels and annotations, the new hash.
pub fn update_patch(set: &CvmInstanceSet, member: &MemberObject, hash: &str) -> Value {
    let index = index_of(&set.name_any(), &member.name_any()).unwrap_or(0);
    let old: Value = serde_json::from_str(member.spec.get()).unwrap_or_default();
    let id = member.instance_id().unwrap_or_default();
    let new = serde_json::to_value(member_spec(set, index, &id)).unwrap_or_default();
    let meta = &set.spec.template.metadata;
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    serde_json::json!({
        "metadata": {"labels": labels, "annotations": meta.annotations.clone().unwrap_or_default()},
        "spec": merge_patch(&old, &new),
    })
}

fn owner_reference(set: &CvmInstanceSet) -> OwnerReference {
    OwnerReference {
        api_version: "cvm.tencentcloud.io/v1alpha1".into(),
        kind: "CvmInstanceSet".into(),
        name: set.name_any(),
        uid: set.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

#[cfg(test)]
#[path = "members_tests.rs"]
mod tests;
