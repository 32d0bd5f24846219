//! Admission limits: what the cloud APIs document, and a bound on everything
//! else, so every `CvmInstance` the apiserver admits is one the CVM API could
//! accept and stays small (the unit tests compute the largest object the CRD
//! admits from the generated schema).
//!
//! Sources: the Tag service "Use Limits" page (50 tags per resource; keys 1-127
//! and values 1-255 characters; letters, digits, inner spaces and
//! `+ - = . _ : / @`; keys starting with `qcs:`, `qcloud`, `tencent` or
//! `project` reserved — the union of what the Tag service's CreateTag error
//! codes and the COS tag page name, so nothing admitted is refused later), and the RunInstances / ModifyInstancesAttribute
//! parameters in the CVM API schema (HostName, UserData ≤ 16 KB of base64).
//!
//! The schema keeps the length and count bounds (`maxLength`, `maxItems`,
//! `maxProperties`: the apiserver checks them before any CEL rule and its
//! CEL cost estimates rely on them); CEL rules carry the character rules with
//! messages that name the field and say what is allowed.

use kube::core::{Message, Rule};
use schemars::Schema;
use serde_json::{Value, json};

/// Tags the Tag service allows on one resource.
pub const TAGS_PER_RESOURCE: usize = 50;
/// The operator's own tags on every instance (uid, namespace, name).
pub const OPERATOR_TAGS: usize = 3;
/// `spec.tags` entries: what the Tag service leaves after the operator's tags.
pub const MAX_TAGS: usize = TAGS_PER_RESOURCE - OPERATOR_TAGS;
/// Characters in a tag key (Tag service).
pub const TAG_KEY_MAX: usize = 127;
/// Characters in a tag value (Tag service).
pub const TAG_VALUE_MAX: usize = 255;
/// Characters in all tag keys and values together. Ours, not the Tag
/// service's: 47 tags of the longest keys and values would be 18,000
/// characters, which nobody needs and which would triple the largest object.
pub const TAGS_TOTAL_MAX: usize = 8192;
/// Bytes of decoded user data (RunInstances `UserData`: 16 KB).
pub const USER_DATA_MAX_DECODED: usize = 16 * 1024;
/// Characters of base64 that can hold [`USER_DATA_MAX_DECODED`] bytes.
pub const USER_DATA_MAX_ENCODED: usize = USER_DATA_MAX_DECODED.div_ceil(3) * 4;
/// Host name length for Linux and other non-Windows images (RunInstances).
pub const HOST_NAME_MAX: usize = 60;
/// Entries in a status list (IP addresses, security groups): far above what
/// one instance has, low enough to keep status small.
pub const STATUS_LIST_MAX: usize = 32;
/// Characters in a status message (conditions, `lastOperation.message`).
pub const STATUS_MESSAGE_MAX: usize = 2048;
/// Conditions in status (Ready, Synced and the few that may follow).
pub const CONDITIONS_MAX: usize = 8;
/// A Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME_MAX: usize = 253;

/// Characters the Tag service allows in keys and values, as a regex class body
/// (RE2 for the apiserver, the `regex` crate for client-side checks: both
/// read it the same way).
const TAG_CHARS: &str = r"A-Za-z0-9\p{Han}+\-=._:/@";

/// A tag key or value: allowed characters, spaces only between them.
pub fn tag_text_regex() -> String {
    format!("^[{c}]([{c} ]*[{c}])?$", c = TAG_CHARS)
}

/// Segments of letters and digits joined by single `-` or `.`: no leading,
/// trailing or doubled separator (`web--1` and `a.-b` are refused).
pub const HOST_NAME_REGEX: &str = r"^[A-Za-z0-9]+([.-][A-Za-z0-9]+)*$";

/// Standard base64: groups of four from the standard alphabet, `=` padding
/// only at the end.
pub const BASE64_REGEX: &str = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

/// A Kubernetes object name (DNS-1123 subdomain), for Secret references.
pub const OBJECT_NAME_REGEX: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key in a Secret's data.
pub const SECRET_KEY_REGEX: &str = r"^[-._a-zA-Z0-9]+$";

/// A CEL string literal holding `text` (backslashes doubled: CEL reads `\p`
/// as an invalid escape).
fn cel_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

const TAG_CHARS_HUMAN: &str = "letters, digits, spaces between them, and + - = . _ : / @";

pub fn tag_keys_rule() -> Rule {
    Rule::new(format!(
        "self.all(k, k.size() <= {TAG_KEY_MAX} && k.matches({}))",
        cel_str(&tag_text_regex())
    ))
    .message(Message::Message(format!(
        "spec.tags keys must be 1-{TAG_KEY_MAX} characters: {TAG_CHARS_HUMAN}"
    )))
}

pub fn tag_values_rule() -> Rule {
    Rule::new(format!(
        "self.all(k, self[k].matches({}))",
        cel_str(&tag_text_regex())
    ))
    .message(Message::Message(format!(
        "spec.tags values must be 1-{TAG_VALUE_MAX} characters: {TAG_CHARS_HUMAN}"
    )))
}

/// Tag key prefixes Tencent Cloud reserves: the spec may not use them, and
/// the operator leaves such tags on an instance alone.
pub const RESERVED_TAG_PREFIXES: &[&str] = &["qcs:", "qcloud", "tencent", "project"];

pub fn tag_reserved_rule() -> Rule {
    let each: Vec<String> = RESERVED_TAG_PREFIXES
        .iter()
        .map(|p| format!("!k.startsWith('{p}')"))
        .collect();
    Rule::new(format!("self.all(k, {})", each.join(" && ")))
        .message("spec.tags keys must not start with qcs:, qcloud, tencent or project (reserved by Tencent Cloud)")
}

pub fn tags_total_rule() -> Rule {
    Rule::new(format!(
        "self.map(k, k.size() + self[k].size()).sum() <= {TAGS_TOTAL_MAX}"
    ))
    .message(Message::Message(format!(
        "spec.tags must hold at most {TAGS_TOTAL_MAX} characters of keys and values in total"
    )))
}

pub fn host_name_rule() -> Rule {
    Rule::new(format!("self.matches({})", cel_str(HOST_NAME_REGEX))).message(Message::Message(format!(
        "spec.hostName must be 2-{HOST_NAME_MAX} letters and digits in segments joined by single '-' or '.', \
         not starting or ending with either (web-1, db.internal); Windows images also need 2-15 characters, \
         no '.', not all digits"
    )))
}

pub fn user_data_base64_rule() -> Rule {
    Rule::new(format!("self.matches({})", cel_str(BASE64_REGEX))).message(
        "spec.userData must be standard base64: A-Z a-z 0-9 + /, a length that is a multiple of 4, \
         '=' only as padding at the end (base64 -w0 file)",
    )
}

pub fn user_data_size_rule() -> Rule {
    Rule::new(format!(
        "self.size() / 4 * 3 - (self.endsWith('==') ? 2 : (self.endsWith('=') ? 1 : 0)) <= {USER_DATA_MAX_DECODED}"
    ))
    .message(Message::Message(format!(
        "spec.userData must decode to at most {USER_DATA_MAX_DECODED} bytes (the CVM API limit)"
    )))
}

/// The value schema of a `type: object` map, after `Option` and friends.
fn object_schema(schema: &mut Schema) -> &mut serde_json::Map<String, Value> {
    schema.as_object_mut().expect("a map's schema is an object")
}

/// `spec.tags`: entry count and value lengths (key rules are CEL: a CRD
/// schema cannot constrain map keys).
pub fn bounded_tags(schema: &mut Schema) {
    let o = object_schema(schema);
    o.insert("maxProperties".into(), json!(MAX_TAGS));
    o.insert(
        "additionalProperties".into(),
        json!({"type": "string", "minLength": 1, "maxLength": TAG_VALUE_MAX}),
    );
}

/// `status.conditions`: count and string lengths (the upstream `Condition`
/// schema bounds none of them).
pub fn bounded_conditions(schema: &mut Schema) {
    let o = object_schema(schema);
    o.insert("maxItems".into(), json!(CONDITIONS_MAX));
    let Some(props) = o
        .get_mut("items")
        .and_then(|i| i.get_mut("properties"))
        .and_then(Value::as_object_mut)
    else {
        panic!("status.conditions items have properties");
    };
    for (field, max) in [
        ("type", 64),
        ("status", 8),
        ("reason", 128),
        ("message", STATUS_MESSAGE_MAX),
        ("lastTransitionTime", 64),
    ] {
        if let Some(p) = props.get_mut(field).and_then(Value::as_object_mut) {
            p.insert("maxLength".into(), json!(max));
        }
    }
}

/// `text` cut to at most `max` characters (the unit of `maxLength`), on a
/// character boundary: what the operator writes into a bounded status field.
pub fn clipped(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
