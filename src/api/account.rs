//! The `CvmAccount` API (cluster-scoped, `cvm.tencentcloud.io/v1alpha1`): a
//! cloud account an admin lets namespaces use. It says how the operator
//! obtains the account's credentials (one [`CredentialSourceConfig`]) and
//! which namespaces may use them; a `CvmInstance` names it in
//! `spec.accountRef` (or uses the account named `default`).
//!
//! Only admins create these (a cluster-scoped kind): a tenant with rights on
//! `CvmInstance` alone can choose among the accounts that select its
//! namespace, and nothing else. The operator's own credentials
//! (`credentials.source: Environment`) are one such account, so no namespace
//! gets them unless an admin says so.

use crate::cloud::source_config::CredentialSourceConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::core::{Selector, SelectorExt};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The account used when a `CvmInstance` names none.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The label every namespace carries with its own name (Kubernetes ≥ 1.21):
/// the way to select namespaces by name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A Tencent Cloud account and the namespaces that may use it.
// kube-derive hands the `kube(...)` list of a cluster-scoped kind on to a
// generated item, where clippy then sees each repeated `type_` as duplicated.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cvm.tencentcloud.io",
    version = "v1alpha1",
    kind = "CvmAccount",
    shortname = "cvmaccount",
    category = "tencentcloud",
    status = "CvmAccountStatus",
    derive = "PartialEq",
    doc = "A Tencent Cloud account (how to obtain its credentials) and the namespaces whose CvmInstances may use it.",
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.credentials.source"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        json_path = ".spec.credentials.assumeRole.roleArn",
        priority = "1"
    ),
    printcolumn(name = "UIN", type_ = "string", json_path = ".status.uin"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[x_kube(
    validation = Rule::new("!(has(self.allNamespaces) && self.allNamespaces && has(self.namespaceSelector))").message("spec.allNamespaces and spec.namespaceSelector are mutually exclusive"),
)]
#[serde(rename_all = "camelCase")]
pub struct CvmAccountSpec {
    /// How the operator obtains the credentials: exactly one `source` —
    /// `Environment` (the operator's own credentials: its environment keys,
    /// TKE workload identity or instance role, as it was started with),
    /// `Secret` (with `secretRef: {namespace, name}` holding `SecretId`,
    /// `SecretKey` and optional `Token`), `WebIdentity` (with
    /// `webIdentity`) or `InstanceRole` (with `instanceRole`) — optionally
    /// followed by `assumeRole` (a role, possibly in another account,
    /// assumed with the source's credentials).
    #[x_kube(
        validation = Rule::new("(self.source == 'Secret') == has(self.secretRef)").message("spec.credentials.secretRef is required with source Secret and only allowed with it"),
        validation = Rule::new("!has(self.secretRef) || has(self.secretRef.__namespace__)").message("spec.credentials.secretRef.namespace is required (a CvmAccount has no namespace of its own)"),
        validation = Rule::new("!has(self.webIdentity) || self.source == 'WebIdentity'").message("spec.credentials.webIdentity is only allowed with source WebIdentity"),
        validation = Rule::new("!has(self.instanceRole) || self.source == 'InstanceRole'").message("spec.credentials.instanceRole is only allowed with source InstanceRole"),
    )]
    pub credentials: CredentialSourceConfig,

    /// The namespaces whose `CvmInstance`s may use this account. An empty
    /// selector selects none (not all): use `allNamespaces` for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Every namespace may use this account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_namespaces: bool,

    /// The account id (UIN) the credentials must act in; credentials that
    /// resolve to another account are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20), regex(pattern = r"^[0-9]+$"))]
    pub uin: Option<String>,
}

/// What the operator verified. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CvmAccountStatus {
    /// The account the credentials act in (STS GetCallerIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub uin: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the credentials were obtained and verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Vec<Condition>,
}

/// What supplied a resource's credentials.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AccountKind {
    /// A `CvmAccount` (`spec.accountRef`, or the `default` one).
    CvmAccount,
    /// The resource's own Secret (`spec.credentialsSecretRef`).
    Secret,
}

/// The account a resource's instance lives in, as recorded at create or
/// adoption.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    pub kind: AccountKind,
    /// The CvmAccount's or the Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The account id the credentials acted in.
    #[schemars(length(max = 20))]
    pub uin: String,
}

impl std::fmt::Display for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            AccountKind::CvmAccount => "CvmAccount",
            AccountKind::Secret => "Secret",
        };
        write!(f, "{kind} {} (account {})", self.name, self.uin)
    }
}

/// Whether an account lets a namespace use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Selected,
    NotSelected,
    /// The selector does not parse (the apiserver validates little of it).
    Invalid,
}

impl CvmAccount {
    /// Whether the namespace with these labels may use the account:
    /// `allNamespaces`, or a non-empty selector that matches.
    pub fn selects(&self, namespace_labels: &BTreeMap<String, String>) -> Selection {
        if self.spec.all_namespaces {
            return Selection::Selected;
        }
        let Some(raw) = self.spec.namespace_selector.clone() else {
            return Selection::NotSelected;
        };
        let Ok(selector) = Selector::try_from(raw) else {
            return Selection::Invalid;
        };
        // An empty selector would match everything: here it means nobody.
        if !selector.selects_all() && selector.matches(namespace_labels) {
            Selection::Selected
        } else {
            Selection::NotSelected
        }
    }
}

/// The CRD as YAML, as committed under `crds/`.
pub fn crd_yaml() -> String {
    use kube::core::crd::CustomResourceExt;
    let crd = CvmAccount::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("the CRD serialises");
    format!("# Generated by `cvm-operator crd --kind CvmAccount`; do not edit.\n---\n{yaml}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::crd::CustomResourceExt;
    use serde_json::json;

    fn account(spec: serde_json::Value) -> CvmAccount {
        serde_json::from_value(json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmAccount",
            "metadata": {"name": "team-a"}, "spec": spec,
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selection_is_explicit_an_empty_selector_selects_nobody() {
        let team_a = labels(&[(NAMESPACE_NAME_LABEL, "team-a"), ("tier", "prod")]);
        let team_b = labels(&[(NAMESPACE_NAME_LABEL, "team-b")]);
        let cases = [
            (json!({}), Selection::NotSelected, Selection::NotSelected),
            (
                json!({"namespaceSelector": {}}),
                Selection::NotSelected,
                Selection::NotSelected,
            ),
            (
                json!({"namespaceSelector": {"matchLabels": {}}}),
                Selection::NotSelected,
                Selection::NotSelected,
            ),
            (
                json!({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "team-a"}}}),
                Selection::Selected,
                Selection::NotSelected,
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}]}}),
                Selection::Selected,
                Selection::NotSelected,
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}}),
                Selection::NotSelected,
                Selection::Selected,
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Sideways"}]}}),
                Selection::Invalid,
                Selection::Invalid,
            ),
            (
                json!({"allNamespaces": true}),
                Selection::Selected,
                Selection::Selected,
            ),
        ];
        for (extra, want_a, want_b) in cases {
            let mut spec = json!({"credentials": {"source": "Environment"}});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let a = account(spec.clone());
            assert_eq!(a.selects(&team_a), want_a, "{spec}");
            assert_eq!(a.selects(&team_b), want_b, "{spec}");
        }
    }

    #[test]
    fn cel_wants_exactly_one_source_and_a_namespaced_secret() {
        let ok = [
            json!({"source": "Environment"}),
            json!({"source": "Secret", "secretRef": {"namespace": "cvm-system", "name": "keys"}}),
            json!({"source": "WebIdentity", "webIdentity": {"roleArn": "qcs::cam::uin/1:roleName/r"}}),
            json!({"source": "InstanceRole"}),
            json!({"source": "Environment", "assumeRole": {"roleArn": "qcs::cam::uin/1:roleName/r"}}),
        ];
        for c in ok {
            let a = account(json!({"credentials": c, "allNamespaces": true}));
            assert!(a.validate_cel().is_ok(), "{c}: {:?}", a.validate_cel());
        }
        let bad = [
            (json!({"source": "Secret"}), "secretRef is required"),
            (
                json!({"source": "Secret", "secretRef": {"name": "keys"}}),
                "secretRef.namespace is required",
            ),
            (
                json!({"source": "Environment", "secretRef": {"namespace": "n", "name": "keys"}}),
                "secretRef is required with source Secret and only allowed",
            ),
            (
                json!({"source": "InstanceRole", "webIdentity": {}}),
                "webIdentity is only allowed",
            ),
            (
                json!({"source": "WebIdentity", "instanceRole": {}}),
                "instanceRole is only allowed",
            ),
        ];
        for (c, msg) in bad {
            let a = account(json!({"credentials": c}));
            let err = format!("{:?}", a.validate_cel());
            assert!(err.contains(msg), "{c}: {err}");
        }
        let both = account(json!({"credentials": {"source": "Environment"},
            "allNamespaces": true, "namespaceSelector": {"matchLabels": {"a": "b"}}}));
        let err = format!("{:?}", both.validate_cel());
        assert!(err.contains("mutually exclusive"), "{err}");
    }

    #[test]
    fn generated_crd_is_cluster_scoped_structural_and_committed() {
        let crd = CvmAccount::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.plural, "cvmaccounts");
        let json = serde_json::to_string(&crd).unwrap();
        for forbidden in ["\"$ref\"", "\"anyOf\"", "\"oneOf\"", "\"allOf\""] {
            assert!(!json.contains(forbidden), "{forbidden} in the CRD");
        }
        assert!(json.contains("x-kubernetes-validations"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/cvmaccounts.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "crds/cvmaccounts.yaml is stale: run `make crds`"
        );
    }
}
