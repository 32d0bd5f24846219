//! The member tree of a wire type: which names it has on the wire, at every
//! depth, and what kind of value each holds. Derived from the type's serde
//! attributes (through its `schemars::JsonSchema` derive), so it is always
//! what serde reads and writes, never a second hand-kept list.
//!
//! The simulator uses it to refuse parameter names the model does not know
//! (`UnknownParameter`, at any depth) while nested wire types stay tolerant
//! for the client; the schema conformance test compares it with the official
//! API schema.

use schemars::JsonSchema;
use serde_json::Value;
use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// The shape of one value on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Anything (a `serde_json::Value` the model keeps opaque).
    Any,
    Leaf(Leaf),
    Object(BTreeMap<String, Member>),
    List(Box<Shape>),
}

/// The scalar kinds the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    String,
    Integer,
    Number,
    Boolean,
}

/// One named member of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub shape: Shape,
    /// Always present in what the model accepts (a plain, non-`Option` field).
    pub required: bool,
    /// Marked deprecated in the model (`#[deprecated]`, or
    /// `#[schemars(extend("deprecated" = true))]` where a rustc warning would
    /// hit callers that still name the field).
    pub deprecated: bool,
}

/// The shape of `T`, computed once per type.
pub fn shape_of<T: JsonSchema + 'static>() -> Arc<Shape> {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Shape>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(TypeId::of::<T>())
        .or_insert_with(|| {
            let root = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
            let root = root.as_value();
            let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
            Arc::new(shape(root, &defs))
        })
        .clone()
}

/// Follows `$ref` and drops the `null` alternative of an `Option`.
fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return resolve(&defs[name], defs);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let mut real = alts
                .iter()
                .filter(|a| a.get("type") != Some(&"null".into()));
            if let (Some(one), None) = (real.next(), real.next()) {
                return resolve(one, defs);
            }
        }
    }
    schema
}

fn shape(schema: &Value, defs: &Value) -> Shape {
    let schema = resolve(schema, defs);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return Shape::Object(
            props
                .iter()
                .map(|(name, s)| {
                    let member = Member {
                        shape: shape(s, defs),
                        required: required.contains(&name.as_str()),
                        deprecated: s.get("deprecated") == Some(&Value::Bool(true)),
                    };
                    (name.clone(), member)
                })
                .collect(),
        );
    }
    if let Some(items) = schema.get("items") {
        return Shape::List(Box::new(shape(items, defs)));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let leaf = |t| types.contains(&t);
    if leaf("object") {
        // An object without declared members (an empty struct) has none.
        Shape::Object(BTreeMap::new())
    } else if leaf("string") {
        Shape::Leaf(Leaf::String)
    } else if leaf("integer") {
        Shape::Leaf(Leaf::Integer)
    } else if leaf("number") {
        Shape::Leaf(Leaf::Number)
    } else if leaf("boolean") {
        Shape::Leaf(Leaf::Boolean)
    } else {
        Shape::Any
    }
}

impl Shape {
    /// The first member name in `value` that this shape does not have, as a
    /// dotted path (`DataDisks.0.KmsKey`). Values are not type-checked here
    /// (serde does that).
    pub fn unknown_member(&self, value: &Value) -> Option<String> {
        match (self, value) {
            (Shape::Object(members), Value::Object(map)) => {
                map.iter().find_map(|(k, v)| match members.get(k) {
                    None => Some(k.clone()),
                    Some(m) => m.shape.unknown_member(v).map(|p| format!("{k}.{p}")),
                })
            }
            (Shape::List(item), Value::Array(items)) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| item.unknown_member(v).map(|p| format!("{i}.{p}"))),
            _ => None,
        }
    }

    /// Every member path with its leaf kind, `[]` marking list items
    /// (`DataDisks[].DiskSize`).
    pub fn leaves(&self) -> Vec<(String, Option<Leaf>)> {
        let mut out = Vec::new();
        self.collect("", &mut out);
        out
    }

    fn collect(&self, path: &str, out: &mut Vec<(String, Option<Leaf>)>) {
        match self {
            Shape::Object(members) => {
                for (name, m) in members {
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    m.shape.collect(&p, out);
                }
            }
            Shape::List(item) => item.collect(&format!("{path}[]"), out),
            Shape::Leaf(l) => out.push((path.to_string(), Some(*l))),
            Shape::Any => out.push((path.to_string(), None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        #[serde(skip_serializing_if = "Option::is_none")]
        disk_size: Option<i64>,
        #[serde(rename = "CPU")]
        cpu: Option<f64>,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "PascalCase")]
    struct Outer {
        instance_ids: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_disks: Option<Vec<Inner>>,
        single: Option<Inner>,
        #[deprecated]
        force: Option<bool>,
        opaque: Option<Value>,
    }

    #[test]
    fn the_shape_follows_serde_names_options_lists_and_refs() {
        let s = shape_of::<Outer>();
        let Shape::Object(m) = &*s else {
            panic!("{s:?}")
        };
        assert!(m["InstanceIds"].required);
        assert!(!m["DataDisks"].required);
        assert!(m["Force"].deprecated && !m["Single"].deprecated);
        assert_eq!(m["Opaque"].shape, Shape::Any);
        let leaves = s.leaves();
        for (path, kind) in [
            ("InstanceIds[]", Some(Leaf::String)),
            ("DataDisks[].DiskSize", Some(Leaf::Integer)),
            ("DataDisks[].CPU", Some(Leaf::Number)),
            ("Single.DiskSize", Some(Leaf::Integer)),
            ("Force", Some(Leaf::Boolean)),
            ("Opaque", None),
        ] {
            assert!(
                leaves.contains(&(path.to_string(), kind)),
                "{path}: {leaves:?}"
            );
        }
        assert_eq!(leaves.len(), 7, "{leaves:?}");
    }

    #[test]
    fn unknown_members_are_found_at_any_depth_but_not_inside_opaque_values() {
        let s = shape_of::<Outer>();
        let ok = json!({"InstanceIds": ["a"], "DataDisks": [{"DiskSize": 10}], "Opaque": {"X": 1}});
        assert_eq!(s.unknown_member(&ok), None);
        let top = json!({"InstanceIds": [], "Bogus": 1});
        assert_eq!(s.unknown_member(&top).as_deref(), Some("Bogus"));
        let deep = json!({"DataDisks": [{"DiskSize": 10}, {"KmsKey": "k"}]});
        assert_eq!(
            s.unknown_member(&deep).as_deref(),
            Some("DataDisks.1.KmsKey")
        );
        let nested = json!({"Single": {"Cpu": 1}});
        assert_eq!(s.unknown_member(&nested).as_deref(), Some("Single.Cpu"));
    }
}
