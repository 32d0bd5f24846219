//! The wire contract checked against the OFFICIAL API schema: tccli's
//! `services/<service>/<version>/api.json` from PyPI (installed by
//! `hack/api-schema.sh`, found through `CVM_API_SCHEMA_DIR`; `make test` and
//! `make unit` set it). Nothing here is hand-copied from the schema.
//!
//! - every request member the client model can send, at any depth, is a
//!   member of that action's input object, with the same kind of value, and
//!   marked `#[deprecated]` exactly where api.json marks it `disabled`;
//! - every input member api.json has is accepted by the model (the simulator
//!   must not answer `UnknownParameter` to a valid request);
//! - every response member the model can read, and every member the
//!   simulator actually answers, is an output member of that action; the
//!   answers carry every `output_required` member, and `null` only where
//!   api.json allows it.
//!
//! Checked for CVM (`cloud::model`) and STS (`cloud::sts`); the Tag service
//! joins with one more contract list when its model exists. The member trees
//! of the model come from its serde attributes ([`crate::cloud::fields`]),
//! so a misspelt field fails here.

use crate::cloud::fields::{Leaf, Shape, shape_of};
use crate::cloud::model::{self, Action};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Where `hack/api-schema.sh` puts the schemas: `CVM_API_SCHEMA_DIR`, else the
/// project venv. Missing schemas fail the test: it never passes vacuously.
fn schema_dir() -> PathBuf {
    let how = "run `hack/api-schema.sh` once (make test and make unit do it) or set \
               CVM_API_SCHEMA_DIR to tccli's `services` directory";
    if let Ok(dir) = std::env::var("CVM_API_SCHEMA_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("cvm").is_dir(),
            "CVM_API_SCHEMA_DIR={} holds no official API schema: {how}",
            dir.display()
        );
        return dir;
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/tccli/services"))
        .find(|dir| dir.join("cvm").is_dir())
        .unwrap_or_else(|| panic!("the official API schema (tccli) is not installed: {how}"))
}

/// One service's api.json.
pub(super) struct ApiSchema {
    service: &'static str,
    doc: Value,
}

impl ApiSchema {
    pub(super) fn load(service: &'static str, version: &str) -> Self {
        let path = schema_dir().join(service).join(version).join("api.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self {
            service,
            doc: serde_json::from_str(&text).expect("api.json is JSON"),
        }
    }

    /// The input and output object names of `action`.
    fn io(&self, action: &str) -> (&str, &str) {
        let a = &self.doc["actions"][action];
        let name = |k: &str| {
            a[k].as_str()
                .unwrap_or_else(|| panic!("{}: no action {action}", self.service))
        };
        (name("input"), name("output"))
    }

    fn is_object(&self, name: &str) -> bool {
        self.doc["objects"].get(name).is_some()
    }

    fn members(&self, object: &str) -> &[Value] {
        self.doc["objects"][object]["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn member(&self, object: &str, name: &str) -> Option<&Value> {
        self.members(object).iter().find(|m| m["name"] == name)
    }
}

fn flag(member: &Value, key: &str) -> bool {
    member[key].as_bool() == Some(true)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Problems found, each naming the member path and the object.
pub(super) type Problems = Vec<String>;

/// Every member of `shape` must be a member of api.json's `object`, with the
/// same kind of value, `#[deprecated]` exactly where api.json says `disabled`.
pub(super) fn check_model(api: &ApiSchema, shape: &Shape, object: &str, path: &str) -> Problems {
    let mut out = Problems::new();
    let Shape::Object(members) = shape else {
        out.push(format!(
            "{path}: the model is not an object, api.json has {object}"
        ));
        return out;
    };
    for (name, m) in members {
        let p = join(path, name);
        let Some(am) = api.member(object, name) else {
            out.push(format!("{p}: not a member of {object}"));
            continue;
        };
        if m.deprecated != flag(am, "disabled") {
            out.push(format!(
                "{p}: api.json disabled={}, the model's #[deprecated]={}",
                flag(am, "disabled"),
                m.deprecated
            ));
        }
        let element = am["member"].as_str().unwrap_or_default();
        match (am["type"].as_str(), &m.shape) {
            (_, Shape::Any) => {}
            (Some("list"), Shape::List(item)) => {
                out.extend(check_kind(api, item, element, &format!("{p}[]")))
            }
            (Some("list"), _) => out.push(format!("{p}: api.json has a list, the model not")),
            (_, s) => out.extend(check_kind(api, s, element, &p)),
        }
    }
    out
}

/// A single value of api.json type `element` (a scalar name or an object).
fn check_kind(api: &ApiSchema, shape: &Shape, element: &str, path: &str) -> Problems {
    let ok = match (element, shape) {
        (_, Shape::Any) => true,
        ("string" | "datetime" | "datetime_iso" | "date" | "binary", Shape::Leaf(Leaf::String)) => {
            true
        }
        ("int" | "int64" | "uint64", Shape::Leaf(Leaf::Integer)) => true,
        ("float" | "double", Shape::Leaf(Leaf::Number)) => true,
        ("bool", Shape::Leaf(Leaf::Boolean)) => true,
        (object, Shape::Object(_)) if api.is_object(object) => {
            return check_model(api, shape, object, path);
        }
        _ => false,
    };
    if ok {
        Problems::new()
    } else {
        vec![format!(
            "{path}: api.json has {element}, the model {shape:?}"
        )]
    }
}

/// Every member of api.json's `object` must be accepted by `shape`, at every
/// depth the model spells out (opaque values accept anything).
pub(super) fn check_accepts(api: &ApiSchema, shape: &Shape, object: &str, path: &str) -> Problems {
    let Shape::Object(members) = shape else {
        return Problems::new();
    };
    let mut out = Problems::new();
    for am in api.members(object) {
        let name = am["name"].as_str().unwrap_or_default();
        let p = join(path, name);
        let Some(m) = members.get(name) else {
            out.push(format!(
                "{p}: a member of {object} the model does not accept"
            ));
            continue;
        };
        let element = am["member"].as_str().unwrap_or_default();
        let inner = match &m.shape {
            Shape::List(item) => item,
            s => s,
        };
        if api.is_object(element) {
            out.extend(check_accepts(api, inner, element, &p));
        }
    }
    out
}

/// A real answer of the simulator against api.json's output `object`:
/// members known, `output_required` ones present, `null` only where allowed.
pub(super) fn check_answer(api: &ApiSchema, value: &Value, object: &str, path: &str) -> Problems {
    let mut out = Problems::new();
    let Value::Object(map) = value else {
        out.push(format!("{path}: not an object ({object})"));
        return out;
    };
    for (name, v) in map {
        let p = join(path, name);
        let Some(am) = api.member(object, name) else {
            out.push(format!("{p}: not a member of {object}"));
            continue;
        };
        let element = am["member"].as_str().unwrap_or_default();
        match v {
            Value::Null if !flag(am, "value_allowed_null") && !null_documented(object, name) => {
                out.push(format!("{p}: null, which api.json does not allow"))
            }
            Value::Null => {}
            Value::Array(items) if am["type"] == "list" => {
                for (i, item) in items.iter().enumerate() {
                    out.extend(check_json_kind(api, item, element, &format!("{p}.{i}")));
                }
            }
            _ if am["type"] == "list" => out.push(format!("{p}: api.json has a list")),
            v => out.extend(check_json_kind(api, v, element, &p)),
        }
    }
    for am in api.members(object) {
        let name = am["name"].as_str().unwrap_or_default();
        if flag(am, "output_required") && !map.contains_key(name) {
            out.push(format!("{}: output_required but absent", join(path, name)));
        }
    }
    out
}

/// api.json marks these non-nullable, but their own documents say "null for
/// postpaid" (后付费模式本项为null), and that is what the simulator answers.
fn null_documented(object: &str, name: &str) -> bool {
    object == "Instance" && (name == "RenewFlag" || name == "ExpiredTime")
}

fn check_json_kind(api: &ApiSchema, v: &Value, element: &str, path: &str) -> Problems {
    let ok = match element {
        "string" | "datetime" | "datetime_iso" | "date" | "binary" => v.is_string(),
        "int" | "int64" | "uint64" => v.is_i64() || v.is_u64(),
        "float" | "double" => v.is_number(),
        "bool" => v.is_boolean(),
        object if api.is_object(object) => return check_answer(api, v, object, path),
        _ => false,
    };
    if ok {
        Problems::new()
    } else {
        vec![format!("{path}: {v} is not a {element}")]
    }
}

/// An action's name and the member trees of its request and response types.
pub(super) struct Contract {
    pub name: &'static str,
    pub request: Arc<Shape>,
    pub response: Arc<Shape>,
}

fn contract<A: Action>() -> Contract {
    Contract {
        name: A::NAME,
        request: shape_of::<A::Request>(),
        response: shape_of::<A::Response>(),
    }
}

/// Every CVM action of the model.
pub(super) fn cvm_contracts() -> Vec<Contract> {
    use model::*;
    vec![
        contract::<RunInstances>(),
        contract::<DescribeInstances>(),
        contract::<DescribeInstancesStatus>(),
        contract::<StartInstances>(),
        contract::<StopInstances>(),
        contract::<RebootInstances>(),
        contract::<TerminateInstances>(),
        contract::<ResetInstancesType>(),
        contract::<ResetInstancesInternetMaxBandwidth>(),
        contract::<ModifyInstancesAttribute>(),
        contract::<InquiryPriceRunInstances>(),
        contract::<DescribeZones>(),
        contract::<DescribeInstanceTypeConfigs>(),
        contract::<DescribeImages>(),
        contract::<ResetInstance>(),
        contract::<ModifyInstancesProject>(),
        contract::<ModifyInstancesChargeType>(),
        contract::<ModifyInstancesRenewFlag>(),
        contract::<AssociateInstancesKeyPairs>(),
        contract::<DisassociateInstancesKeyPairs>(),
        contract::<ResetInstancesPassword>(),
        contract::<ResizeInstanceDisks>(),
        contract::<DescribeInstancesModification>(),
        contract::<ModifyInstancesVpcAttribute>(),
        contract::<ModifyInstancesDisasterRecoverGroup>(),
        contract::<InquiryPriceResetInstancesType>(),
        contract::<InquiryPriceResetInstancesInternetMaxBandwidth>(),
    ]
}

/// Every STS action of the model.
pub(super) fn sts_contracts() -> Vec<Contract> {
    use crate::cloud::sts::*;
    vec![
        contract::<AssumeRole>(),
        contract::<AssumeRoleWithWebIdentity>(),
        contract::<GetCallerIdentity>(),
    ]
}

/// Every Tag service action of the model.
pub(super) fn tag_contracts() -> Vec<Contract> {
    use crate::cloud::tag::*;
    vec![
        contract::<ModifyResourceTags>(),
        contract::<DescribeResourceTagsByResourceIds>(),
    ]
}

/// Fails with every distinct problem, list indices folded (`InstanceSet[]`)
/// so one cause is reported once.
fn assert_none(what: &str, problems: Problems) {
    let mut distinct: Vec<String> = problems
        .iter()
        .map(|p| {
            p.split('.')
                .map(|seg| {
                    if seg.parse::<usize>().is_ok() {
                        "[]"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join(".")
                .replace(".[]", "[]")
        })
        .collect();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.is_empty(),
        "{what}: {} problem(s):\n  {}",
        distinct.len(),
        distinct.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvm() -> ApiSchema {
        ApiSchema::load("cvm", "v20170312")
    }

    fn sts() -> ApiSchema {
        ApiSchema::load("sts", "v20180813")
    }

    fn tag() -> ApiSchema {
        ApiSchema::load("tag", "v20180813")
    }

    #[test]
    fn every_action_of_the_model_is_checked() {
        let checked: Vec<&str> = cvm_contracts().iter().map(|c| c.name).collect();
        assert_eq!(checked, model::ACTIONS);
        let checked: Vec<&str> = sts_contracts().iter().map(|c| c.name).collect();
        assert_eq!(checked, crate::cloud::sts::ACTIONS);
        let checked: Vec<&str> = tag_contracts().iter().map(|c| c.name).collect();
        assert_eq!(checked, crate::cloud::tag::ACTIONS);
    }

    fn requests(api: &ApiSchema, contracts: &[Contract]) -> Problems {
        let mut problems = Problems::new();
        for c in contracts {
            let (input, _) = api.io(c.name);
            problems.extend(check_model(api, &c.request, input, c.name));
            problems.extend(check_accepts(api, &c.request, input, c.name));
        }
        problems
    }

    fn responses(api: &ApiSchema, contracts: &[Contract]) -> Problems {
        let mut problems = Problems::new();
        for c in contracts {
            let (_, output) = api.io(c.name);
            problems.extend(check_model(api, &c.response, output, c.name));
        }
        problems
    }

    #[test]
    fn request_members_are_official_and_every_official_one_is_accepted() {
        assert_none("CVM requests", requests(&cvm(), &cvm_contracts()));
        assert_none("STS requests", requests(&sts(), &sts_contracts()));
        assert_none("Tag requests", requests(&tag(), &tag_contracts()));
    }

    #[test]
    fn response_members_are_official() {
        assert_none("CVM responses", responses(&cvm(), &cvm_contracts()));
        assert_none("STS responses", responses(&sts(), &sts_contracts()));
        assert_none("Tag responses", responses(&tag(), &tag_contracts()));
    }

    /// The checker itself: a misspelt, a mistyped and a missing member are
    /// each reported.
    #[test]
    fn a_misspelt_mistyped_or_missing_member_is_reported() {
        #[derive(schemars::JsonSchema)]
        #[serde(rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct Misspelt {
            instance_ids: Vec<String>,
            stop_tipe: Option<String>,
            stopped_mode: Option<i64>,
        }
        let api = cvm();
        let shape = shape_of::<Misspelt>();
        let (input, _) = api.io("StopInstances");
        let found = check_model(&api, &shape, input, "StopInstances");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("StopInstances.StopTipe: not a member"))
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("StopInstances.StoppedMode: api.json has string"))
        );
        let missing = check_accepts(&api, &shape, input, "StopInstances");
        assert!(
            missing
                .iter()
                .any(|p| p.starts_with("StopInstances.StopType: a member"))
        );
        let answer =
            serde_json::json!({"InstanceStatusSet": [{"InstanceId": "ins-1", "Bogus": 1}]});
        let (_, output) = api.io("DescribeInstancesStatus");
        let found = check_answer(&api, &answer, output, "");
        assert!(
            found
                .iter()
                .any(|p| p == "InstanceStatusSet.0.Bogus: not a member of InstanceStatus")
        );
        assert!(
            found
                .iter()
                .any(|p| p == "TotalCount: output_required but absent")
        );
    }

    /// What the simulator really answers, for instances in many states and
    /// shapes, checked member by member.
    #[test]
    fn simulator_answers_carry_official_members_only_and_all_required_ones() {
        let samples = [
            (cvm(), answers::cvm()),
            (cvm(), answers::in_place()),
            (sts(), answers::sts()),
            (tag(), answers::tag()),
        ];
        for (api, sample) in samples {
            let mut problems = Problems::new();
            for (action, answer) in sample {
                let (_, output) = api.io(action);
                problems.extend(check_answer(&api, &answer, output, action));
            }
            assert_none(&format!("{} answers", api.service), problems);
        }
    }
}

/// Real engine answers for the conformance test.
#[cfg(test)]
mod answers;
