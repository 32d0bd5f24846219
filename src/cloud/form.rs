//! The GET (and form) encoding of API parameters: nested JSON flattened into
//! `Name.N.Field=value` pairs, as the Request Structure page describes
//! (`InstanceIds.0=ins-…&Filters.0.Name=zone&Filters.0.Values.0=…`).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

/// RFC 3986 unreserved characters stay; everything else is %XX (upper-case hex).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Flattens a JSON object into ordered (name, value) pairs. Nulls are skipped.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (k, v) in map {
            flatten_into(k, v, &mut out);
        }
    }
    out
}

fn flatten_into(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(&format!("{prefix}.{i}"), item, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
    }
}

/// `a=1&b=x%20y`, in the given order.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a raw query string (`+` is a space, as the SDKs' urlencode writes it).
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |s: &str| -> Result<String, String> {
        let s = s.replace('+', " ");
        percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| format!("`{s}` is not valid UTF-8"))
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Rebuilds nested JSON from flattened pairs. Every leaf is a string; numeric
/// indices become arrays. Typing the leaves is the caller's business (the
/// simulator knows which parameters are numbers or booleans).
pub fn unflatten(pairs: &[(String, String)]) -> Result<Value, String> {
    let mut root = Value::Object(Default::default());
    for (key, value) in pairs {
        let parts: Vec<&str> = key.split('.').collect();
        insert(&mut root, &parts, value.clone()).map_err(|e| format!("parameter `{key}`: {e}"))?;
    }
    Ok(compact_arrays(root))
}

fn insert(node: &mut Value, path: &[&str], value: String) -> Result<(), String> {
    let (head, rest) = path.split_first().ok_or("empty name")?;
    if head.is_empty() {
        return Err("empty name segment".into());
    }
    // Arrays are built as objects keyed by index and compacted at the end, so
    // indices may arrive in any order.
    let map = match node {
        Value::Object(m) => m,
        _ => return Err("conflicting shapes".into()),
    };
    if rest.is_empty() {
        if map.insert(head.to_string(), Value::String(value)).is_some() {
            return Err("given twice".into());
        }
        return Ok(());
    }
    let child = map
        .entry(head.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    insert(child, rest, value)
}

fn compact_arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let all_indices = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if all_indices {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), compact_arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, compact_arrays(v)))
                        .collect(),
                )
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_and_back() {
        let v = json!({"InstanceIds": ["ins-a", "ins-b"], "Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}], "Limit": 10, "DryRun": false, "X": null});
        let pairs = flatten(&v);
        assert!(pairs.contains(&("InstanceIds.1".into(), "ins-b".into())));
        assert!(pairs.contains(&("Filters.0.Values.0".into(), "ap-guangzhou-3".into())));
        let q = encode_query(&pairs);
        let back = unflatten(&decode_query(&q).unwrap()).unwrap();
        assert_eq!(
            back,
            json!({"InstanceIds": ["ins-a", "ins-b"], "Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}], "Limit": "10", "DryRun": "false"})
        );
    }

    #[test]
    fn encoding_is_rfc3986_and_plus_decodes_as_space() {
        let q = encode_query(&[("InstanceName".into(), "未命名 a/b".into())]);
        assert_eq!(q, "InstanceName=%E6%9C%AA%E5%91%BD%E5%90%8D%20a%2Fb");
        assert_eq!(
            decode_query("A=x+y").unwrap(),
            vec![("A".to_string(), "x y".to_string())]
        );
        assert!(unflatten(&[("A".into(), "1".into()), ("A".into(), "2".into())]).is_err());
    }
}
