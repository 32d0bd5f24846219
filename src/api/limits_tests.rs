//! The admission limits: the CEL rules refuse what the APIs refuse (checked
//! client-side with the same rules the CRD carries), and the generated
//! schema bounds every field, which puts a ceiling on the whole object.

use super::*;
use crate::api::CvmInstance;
use kube::core::CustomResourceExt;
use serde_json::{Value, json};

fn with_spec(field: &str, value: Value) -> CvmInstance {
    let mut v = crate::api::tests::base();
    v["spec"][field] = value;
    serde_json::from_value(v).expect("a CvmInstance")
}

/// The CEL errors for `spec.<field> = value`, empty when admitted.
fn refusal(field: &str, value: Value) -> String {
    match with_spec(field, value).validate_cel() {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

fn assert_refused(field: &str, value: Value, message: &str) {
    let err = refusal(field, value.clone());
    assert!(
        err.contains(message),
        "spec.{field}={value}: expected {message:?}, got {err:?}"
    );
}

fn assert_admitted(field: &str, value: Value) {
    let err = refusal(field, value.clone());
    assert!(err.is_empty(), "spec.{field}={value}: {err}");
}

#[test]
fn host_names_follow_the_cvm_rules() {
    for good in ["web-1", "db.internal", "Web01", "a1", "a-b-c.d-e.f", "123"] {
        assert_admitted("hostName", json!(good));
    }
    for bad in [
        "web--1", "web..1", "a.-b", "a-.b", "-web", "web-", ".web", "web.", "web_1", "web 1",
    ] {
        assert_refused("hostName", json!(bad), "spec.hostName must be");
    }
}

#[test]
fn user_data_must_be_standard_base64_within_16_kib() {
    use base64::Engine as _;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![b'x'; n]);
    for good in ["ZWNobyBoaQ==", "ZWNobyBo", "ZWNobyBoaQo=", "+/+/"] {
        assert_admitted("userData", json!(good));
    }
    for bad in [
        "abcde",        // length not a multiple of 4
        "ZW=obyBoaQ==", // padding inside
        "ZWNobyBoaQ=a", // data after padding
        "ZWNo byBo",    // a space
        "ZWNo-_Bo",     // the URL-safe alphabet
        "ZWNobyBoaQ===",
    ] {
        assert_refused(
            "userData",
            json!(bad),
            "spec.userData must be standard base64",
        );
    }
    // 16 KiB exactly is fine, one byte more is not, whatever the padding.
    assert_admitted("userData", json!(b64(USER_DATA_MAX_DECODED)));
    assert_eq!(b64(USER_DATA_MAX_DECODED).len(), USER_DATA_MAX_ENCODED);
    for over in [1, 2, 3] {
        assert_refused(
            "userData",
            json!(b64(USER_DATA_MAX_DECODED + over)),
            "spec.userData must decode to at most 16384 bytes",
        );
    }
}

#[test]
fn tags_follow_the_tag_service_rules() {
    for good in [
        json!({"team": "payments", "env": "prod"}),
        json!({"cost center": "R+D 2"}),
        json!({"团队": "研发 一", "a:b/c@d": "x=y+z_w.v-u"}),
        json!({"k": "v"}),
        json!({}),
    ] {
        assert_admitted("tags", good);
    }
    for (bad, message) in [
        (json!({"te#am": "a"}), "spec.tags keys must be"),
        (json!({" team": "a"}), "spec.tags keys must be"),
        (json!({"team ": "a"}), "spec.tags keys must be"),
        (
            json!({"k".repeat(TAG_KEY_MAX + 1): "a"}),
            "spec.tags keys must be",
        ),
        (json!({"team": "a!"}), "spec.tags values must be"),
        (json!({"team": " a"}), "spec.tags values must be"),
        (
            json!({"qcs:team": "a"}),
            "must not start with qcs:, qcloud, tencent or project",
        ),
        (
            json!({"tencent-x": "a"}),
            "must not start with qcs:, qcloud, tencent or project",
        ),
        (json!({"team": "a(b)"}), "spec.tags values must be"),
        (
            json!({"project:x": "a"}),
            "must not start with qcs:, qcloud, tencent or project",
        ),
    ] {
        assert_refused("tags", bad, message);
    }
    // 40 tags of 250 characters pass each tag's limits but not the total.
    let big: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("k{i}"), json!("v".repeat(250))))
        .collect();
    assert_refused("tags", Value::Object(big), "at most 8192 characters");
    assert_eq!(MAX_TAGS + OPERATOR_TAGS, TAGS_PER_RESOURCE);
}

#[test]
fn clipped_cuts_characters_not_bytes() {
    assert_eq!(clipped("研发研发".into(), 3), "研发研");
    assert_eq!(clipped("abc".into(), 3), "abc");
    assert_eq!(clipped("abcd".into(), 0), "");
    // A multi-byte character straddling a byte limit is not split.
    let long = "é".repeat(STATUS_MESSAGE_MAX + 10);
    assert_eq!(
        clipped(long, STATUS_MESSAGE_MAX).chars().count(),
        STATUS_MESSAGE_MAX
    );
}

/// The schema of `path` (dot-separated properties) in the CRD.
fn schema_at<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(root, |node, p| {
        node.get("properties")
            .and_then(|props| props.get(p))
            .or_else(|| node.get("items").and_then(|i| i.get("properties")?.get(p)))
            .unwrap_or_else(|| panic!("no {p} in {path}"))
    })
}

fn crd_schema() -> Value {
    let crd = serde_json::to_value(CvmInstance::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn rules(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|r| r["rule"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_limits_are_in_the_generated_crd() {
    let s = crd_schema();
    let tags = schema_at(&s, "spec.tags");
    assert_eq!(tags["maxProperties"], json!(47));
    assert_eq!(tags["additionalProperties"]["maxLength"], json!(255));
    assert_eq!(tags["additionalProperties"]["minLength"], json!(1));
    let tag_rules = rules(tags).join("\n");
    assert!(
        tag_rules.contains("k.size() <= 127 && k.matches("),
        "{tag_rules}"
    );
    assert!(tag_rules.contains("self[k].matches("), "{tag_rules}");
    assert!(tag_rules.contains(".sum() <= 8192"), "{tag_rules}");
    assert!(tag_rules.contains("startsWith('qcs:')"), "{tag_rules}");

    let user_data = schema_at(&s, "spec.userData");
    assert_eq!(user_data["maxLength"], json!(21848));
    assert!(rules(user_data).iter().any(|r| r.contains("self.matches(")));
    assert!(rules(user_data).iter().any(|r| r.contains("<= 16384")));

    let host = schema_at(&s, "spec.hostName");
    assert_eq!(
        (host["minLength"].clone(), host["maxLength"].clone()),
        (json!(2), json!(60))
    );
    assert!(rules(host)[0].contains(HOST_NAME_REGEX));

    for (path, max) in [
        ("spec.securityGroupIds", 5),
        ("spec.loginSettings.keyIds", 10),
    ] {
        let list = schema_at(&s, path);
        assert_eq!(list["x-kubernetes-list-type"], json!("set"), "{path}");
        assert_eq!(list["maxItems"], json!(max), "{path}");
    }
    assert_eq!(schema_at(&s, "spec.dataDisks")["maxItems"], json!(21));
    let conditions = schema_at(&s, "status.conditions");
    assert_eq!(conditions["maxItems"], json!(CONDITIONS_MAX));
    assert_eq!(
        conditions["items"]["properties"]["message"]["maxLength"],
        json!(STATUS_MESSAGE_MAX)
    );
}

/// The largest JSON text (in characters) the schema admits at `path`, or
/// the paths nothing bounds.
fn largest(schema: &Value, path: &str) -> Result<usize, Vec<String>> {
    let unbounded = || Err(vec![path.to_string()]);
    let quoted = |n: usize| n + 2;
    if let Some(values) = schema["enum"].as_array() {
        return Ok(values
            .iter()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(4));
    }
    match schema["type"].as_str() {
        Some("string") => schema["maxLength"]
            .as_u64()
            .map(|n| quoted(n as usize))
            .ok_or_else(|| vec![path.to_string()]),
        Some("integer") | Some("number") => Ok(20),
        Some("boolean") => Ok(5),
        Some("array") => {
            let item = largest(&schema["items"], &format!("{path}[]"))?;
            match schema["maxItems"].as_u64() {
                Some(n) => Ok(2 + n as usize * (item + 1)),
                None => unbounded(),
            }
        }
        Some("object") if schema.get("additionalProperties").is_some() => {
            // Map keys have no schema: the only map is spec.tags, whose key
            // length and total size are CEL rules (checked above).
            if path != "spec.tags" {
                return unbounded();
            }
            let n = schema["maxProperties"]
                .as_u64()
                .ok_or_else(|| vec![path.to_string()])? as usize;
            let value = largest(&schema["additionalProperties"], &format!("{path}.*"))?;
            let text = (n * (TAG_KEY_MAX + value)).min(TAGS_TOTAL_MAX);
            Ok(2 + text + n * 6)
        }
        Some("object") => {
            let mut total = 2;
            let mut missing = vec![];
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (name, prop) in &props {
                match largest(prop, &format!("{path}.{name}")) {
                    Ok(n) => total += quoted(name.len()) + 1 + n + 1,
                    Err(paths) => missing.extend(paths),
                }
            }
            if missing.is_empty() {
                Ok(total)
            } else {
                Err(missing)
            }
        }
        _ => unbounded(),
    }
}

#[test]
fn every_field_is_bounded_and_the_whole_object_is_small() {
    let s = crd_schema();
    let spec = largest(&s["properties"]["spec"], "spec");
    let status = largest(&s["properties"]["status"], "status");
    let (spec, status) = match (spec, status) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!(
            "fields without maxLength/maxItems/maxProperties: {:?}",
            [a.err(), b.err()]
                .into_iter()
                .flatten()
                .flatten()
                .collect::<Vec<_>>()
        ),
    };
    // metadata is the apiserver's (names ≤ 253, annotations ≤ 256 KiB in all).
    println!("largest admitted spec: {spec} characters, status: {status} characters");
    assert!(spec <= 40 * 1024, "spec can reach {spec} characters");
    // 32 KiB until status.pendingChanges (16 × about 400) and status.price
    // (about 1 KiB) came.
    assert!(status <= 40 * 1024, "status can reach {status} characters");
    // So at most 80 KiB of JSON (ASCII); the old CRD admitted a 1.3 MB object.
}
