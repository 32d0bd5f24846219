//! The cluster side of a plan: the live objects, and what admission says
//! of the manifests — a server-side dry run (schema and CEL rules,
//! transition rules against the live object) when a cluster is reachable,
//! else the CEL rules in-process. Nothing is written: every request is a
//! read or carries `dryRun=All`.

use super::output::{Change, Impact, ResourcePlan};
use crate::api::CvmInstance;
use crate::api::set::CvmInstanceSet;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, PostParams};
use kube::core::cel::ValidationErrors;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// The field manager of the dry runs (never persisted: dry runs store
/// nothing).
pub const FIELD_MANAGER: &str = "cvm-operator-plan";

/// A field admission refuses, and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldRefusal {
    pub field: String,
    pub message: String,
}

/// What admission says of a manifest.
#[derive(Debug, Clone)]
pub enum Admission<K> {
    /// Admitted: the object as the apiserver would store it (defaults
    /// applied, the generation it would have).
    Admitted(Box<K>),
    Refused(Vec<FieldRefusal>),
    /// Not checked (say the dry run is forbidden): why.
    Unchecked(String),
}

/// A kind whose manifests are planned.
pub trait Declared:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
{
    /// Takes `from`'s spec.
    fn take_spec(&mut self, from: &Self);
    fn same_spec(&self, other: &Self) -> bool;
    /// The CEL rules in-process (transition rules against `old`).
    fn check_cel(&self, old: Option<&Self>) -> Result<(), ValidationErrors>;
}

macro_rules! declared {
    ($kind:ty) => {
        impl Declared for $kind {
            fn take_spec(&mut self, from: &Self) {
                self.spec = from.spec.clone();
            }
            fn same_spec(&self, other: &Self) -> bool {
                self.spec == other.spec
            }
            fn check_cel(&self, old: Option<&Self>) -> Result<(), ValidationErrors> {
                match old {
                    Some(old) => self.validate_cel_update(old),
                    None => self.validate_cel(),
                }
            }
        }
    };
}

declared!(CvmInstance);
declared!(CvmInstanceSet);

/// The object a GitOps tool makes of `manifest` over `live`: the manifest's
/// spec replaces the live one (the repository is the source of truth), its
/// labels and annotations are laid over the live ones (others' annotations,
/// say a restart request, stay), the rest of the metadata is the live one.
pub fn merged<K: Declared>(manifest: &K, live: Option<&K>) -> K {
    let Some(live) = live else {
        return manifest.clone();
    };
    let mut out = live.clone();
    out.take_spec(manifest);
    let lay = |live: &mut Option<BTreeMap<String, String>>,
               ours: &Option<BTreeMap<String, String>>| {
        if let Some(ours) = ours {
            live.get_or_insert_with(Default::default)
                .extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    };
    let ours = manifest.meta();
    lay(&mut out.meta_mut().labels, &ours.labels);
    lay(&mut out.meta_mut().annotations, &ours.annotations);
    if !out.same_spec(live) {
        // What the apiserver does on a spec change.
        out.meta_mut().generation = live.meta().generation.map(|g| g + 1);
    }
    out
}

/// A server-side dry run of creating or replacing `desired`.
pub async fn admit<K: Declared>(api: &Api<K>, desired: &K, exists: bool) -> Admission<K> {
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let name = desired.meta().name.clone().unwrap_or_default();
    let answer = if exists {
        api.replace(&name, &params, desired).await
    } else {
        api.create(&params, desired).await
    };
    match answer {
        Ok(stored) => Admission::Admitted(Box::new(stored)),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            let causes: Vec<FieldRefusal> = s
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| FieldRefusal {
                    field: c.field.clone(),
                    message: c.message.clone(),
                })
                .collect();
            if causes.is_empty() {
                return Admission::Refused(vec![FieldRefusal {
                    field: String::new(),
                    message: s.message,
                }]);
            }
            Admission::Refused(causes)
        }
        Err(e) => Admission::Unchecked(format!("the server-side dry run failed: {e}")),
    }
}

/// Without a cluster: the CEL rules, in-process (no schema check).
pub fn admit_offline<K: Declared>(desired: &K, live: Option<&K>) -> Admission<K> {
    match desired.check_cel(live) {
        Ok(()) => Admission::Admitted(Box::new(desired.clone())),
        Err(errors) => Admission::Refused(
            errors
                .into_vec()
                .into_iter()
                .map(|e| FieldRefusal {
                    field: e.field_path,
                    message: e.message,
                })
                .collect(),
        ),
    }
}

/// What the apiserver would store of `manifest` over `live`, or `None` when
/// admission refuses it (`out` says what it refuses, and what those fields
/// would change: a replacement the operator refuses).
pub async fn admitted<K: Declared>(
    manifest: &K,
    live: Option<&K>,
    api: Option<&Api<K>>,
    out: &mut ResourcePlan,
) -> Option<K> {
    let desired = merged(manifest, live);
    let admission = match api {
        Some(api) => admit(api, &desired, live.is_some()).await,
        None => {
            out.notes
                .push("admission checked in-process (the CEL rules only: no cluster)".into());
            admit_offline(&desired, live)
        }
    };
    match admission {
        Admission::Admitted(stored) => Some(*stored),
        Admission::Unchecked(why) => {
            out.notes.push(format!("admission not checked: {why}"));
            Some(desired)
        }
        Admission::Refused(refused) => {
            out.changes = refused
                .iter()
                .filter_map(|r| refused_change(r, live, &desired))
                .collect();
            out.refused = refused;
            None
        }
    }
}

/// A refused field whose value the manifest changes.
fn refused_change<K: Declared>(r: &FieldRefusal, live: Option<&K>, desired: &K) -> Option<Change> {
    let pointer = format!("/{}", r.field.replace('.', "/"));
    let value = |o: &K| serde_json::to_value(o).ok()?.pointer(&pointer).cloned();
    let (from, to) = (value(live?), value(desired));
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => "(unset)".into(),
    };
    (from != to).then(|| Change {
        field: r.field.clone(),
        from: text(from),
        to: text(to),
        disruption: Impact::ReplaceRefused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvm(spec: serde_json::Value, meta: serde_json::Value) -> CvmInstance {
        let mut m = serde_json::json!({"name": "web", "namespace": "shop"});
        for (k, v) in meta.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": m, "spec": spec,
        }))
        .unwrap()
    }

    fn spec(zone: &str, t: &str) -> serde_json::Value {
        serde_json::json!({"region": "ap-guangzhou", "zone": zone,
            "imageId": "img-pi0ii46r", "instanceType": t})
    }

    #[test]
    fn the_manifest_spec_replaces_and_its_annotations_lay_over() {
        let live = cvm(
            spec("ap-guangzhou-3", "S5.SMALL1"),
            serde_json::json!({"generation": 4, "uid": "u-1", "resourceVersion": "9",
                "annotations": {"cvm.tencentcloud.io/restartedAt": "t1", "team": "a"}}),
        );
        let manifest = cvm(
            spec("ap-guangzhou-3", "S5.MEDIUM4"),
            serde_json::json!({"annotations": {"team": "b"}}),
        );
        let m = merged(&manifest, Some(&live));
        assert_eq!(m.spec.instance_type, "S5.MEDIUM4");
        assert_eq!(m.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(m.metadata.resource_version.as_deref(), Some("9"));
        assert_eq!(
            m.metadata.generation,
            Some(5),
            "a spec change is a new generation"
        );
        let a = m.metadata.annotations.unwrap();
        assert_eq!(a["team"], "b");
        assert_eq!(a["cvm.tencentcloud.io/restartedAt"], "t1");
        let same = merged(&live, Some(&live));
        assert_eq!(same.metadata.generation, Some(4));
    }

    #[test]
    fn offline_admission_runs_the_transition_rules() {
        let live = cvm(spec("ap-guangzhou-3", "S5.SMALL1"), serde_json::json!({}));
        let moved = cvm(spec("ap-guangzhou-4", "S5.SMALL1"), serde_json::json!({}));
        let Admission::Refused(r) = admit_offline(&moved, Some(&live)) else {
            panic!("a zone change must be refused");
        };
        assert!(
            r.iter()
                .any(|f| f.message.contains("spec.zone is immutable")),
            "{r:?}"
        );
        let resized = cvm(spec("ap-guangzhou-3", "S5.MEDIUM4"), serde_json::json!({}));
        assert!(matches!(
            admit_offline(&resized, Some(&live)),
            Admission::Admitted(_)
        ));
    }
}
