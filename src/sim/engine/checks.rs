//! Parameter checks shared by several actions: id and name formats,
//! passwords, host names, user data, and the documented value sets.

use super::{ApiError, api_err};

pub(super) fn is_short_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|r| {
        r.len() == 8
            && r.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

pub fn is_instance_id(s: &str) -> bool {
    is_short_id(s, "ins-")
}

/// A malformed instance id. An empty one gets the code the official SDK's own
/// integration test observed for `InstanceIds: [""]`; other malformed ids the
/// `InvalidInstanceId.Malformed` of the per-action error lists (no
/// observation says which of the two the service picks for them).
pub(super) fn check_instance_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(api_err(
            "InvalidParameterValue.InstanceIdMalformed",
            "The InstanceId `` is malformed, it should be like `ins-xxxxxxxx`.",
        ));
    }
    if !is_instance_id(id) {
        return Err(api_err(
            "InvalidInstanceId.Malformed",
            format!(
                "The specified InstanceId `{id}` is malformed, it should be like `ins-xxxxxxxx`."
            ),
        ));
    }
    Ok(())
}

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn utc_now_string() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(super) fn check_instance_type_format(t: &str) -> Result<(), ApiError> {
    let ok = t.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(api_err(
            "InvalidInstanceType.Malformed",
            format!(
                "The specified InstanceType `{t}` is malformed, it should be like `S5.MEDIUM4`."
            ),
        ))
    }
}

/// Whether `p` is 8 to 30 characters of letters, digits and `special`,
/// with characters of at least `classes` of the four kinds (lower case,
/// upper case, digits, special).
fn password_ok(p: &str, special: &str, classes: usize) -> bool {
    let kinds = [
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| special.contains(c)),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let allowed = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || special.contains(c));
    (8..=30).contains(&p.chars().count()) && kinds >= classes && allowed
}

/// `LoginSettings.Password` (RunInstances, ResetInstance; Linux): at least
/// two kinds of characters.
pub(super) fn check_password(p: &str) -> Result<(), ApiError> {
    if password_ok(p, "()`~!@#$%^&*-+=|{}[]:;',.?/", 2) {
        Ok(())
    } else {
        Err(api_err(
            "InvalidPassword",
            "Password must be 8 to 30 characters and contain at least two of: lower-case letters, upper-case letters, digits and ()`~!@#$%^&*-+=|{}[]:;',.?/.",
        ))
    }
}

/// ResetInstancesPassword's stricter rule (api.json, Linux): at least three
/// kinds of characters, a wider set of special ones, not starting with `/`.
pub(super) fn check_reset_password(p: &str) -> Result<(), ApiError> {
    if password_ok(p, "()`~!@#$%^&*-+=_|{}[]:;'<>,.?/", 3) && !p.starts_with('/') {
        Ok(())
    } else {
        Err(api_err(
            "InvalidParameterValue.InvalidPassword",
            "Password must be 8 to 30 characters, not start with `/`, and contain at least three of: lower-case letters, upper-case letters, digits and ()`~!@#$%^&*-+=_|{}[]:;'<>,.?/.",
        ))
    }
}

/// A key pair id, `skey-` and 8 characters.
pub(super) fn check_key_id(k: &str) -> Result<(), ApiError> {
    if is_short_id(k, "skey-") {
        Ok(())
    } else {
        Err(api_err(
            "InvalidKeyPairId.Malformed",
            format!("The key pair id `{k}` is malformed, it should be like `skey-xxxxxxxx`."),
        ))
    }
}

pub(super) fn check_host_name(h: &str) -> Result<(), ApiError> {
    let err = || {
        api_err(
            "InvalidParameterValue.IllegalHostName",
            format!(
                "The HostName `{h}` is illegal: 2 to 60 characters, dot-separated segments of letters, digits and `-`, no leading, trailing or repeated `.` or `-`."
            ),
        )
    };
    if !(2..=60).contains(&h.len()) {
        return Err(err());
    }
    for seg in h.split('.') {
        if seg.is_empty()
            || seg.starts_with('-')
            || seg.ends_with('-')
            || seg.contains("--")
            || !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err());
        }
    }
    Ok(())
}

pub(super) fn check_user_data(u: &str) -> Result<(), ApiError> {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(u) {
        Ok(bytes) if bytes.len() <= 16 * 1024 => Ok(()),
        Ok(_) => Err(api_err(
            "InvalidParameterValue.InvalidUserDataFormat",
            "UserData must be at most 16 KB.",
        )),
        Err(_) => Err(api_err(
            "InvalidParameterValue.InvalidUserDataFormat",
            "UserData must be base64-encoded.",
        )),
    }
}

/// What the Tag service refuses in a tag (its rules, which RunInstances'
/// `TagSpecification` shares; each caller names them with its own codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TagProblem {
    /// Keys starting with `qcloud`, `tencent` or `project` are the system's.
    ReservedKey,
    EmptyKey,
    /// More than 127 characters.
    KeyTooLong,
    KeyIllegal,
    /// More than 255 characters (a value may be empty).
    ValueTooLong,
    ValueIllegal,
}

/// The first problem of a tag: keys 1-127 and values up to 255 characters of
/// letters, digits, spaces and `+-=._:/@`.
pub(super) fn tag_problem(key: &str, value: &str) -> Option<TagProblem> {
    let legal = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
    };
    Some(
        if ["qcloud", "tencent", "project"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            TagProblem::ReservedKey
        } else if key.is_empty() {
            TagProblem::EmptyKey
        } else if key.chars().count() > 127 {
            TagProblem::KeyTooLong
        } else if !legal(key) {
            TagProblem::KeyIllegal
        } else if value.chars().count() > 255 {
            TagProblem::ValueTooLong
        } else if !legal(value) {
            TagProblem::ValueIllegal
        } else {
            return None;
        },
    )
}

/// Tags one resource may carry.
pub(super) const MAX_TAGS_PER_RESOURCE: usize = 50;

pub(super) const SYSTEM_DISK_TYPES: &[&str] = &[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
];
pub(super) const DATA_DISK_TYPES: &[&str] = &[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "LOCAL_NVME",
    "LOCAL_PRO",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
];
pub(super) const INTERNET_CHARGE_TYPES: &[&str] = &[
    "BANDWIDTH_PREPAID",
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
];
pub(super) const RENEW_FLAGS: &[&str] = &[
    "NOTIFY_AND_AUTO_RENEW",
    "NOTIFY_AND_MANUAL_RENEW",
    "DISABLE_NOTIFY_AND_MANUAL_RENEW",
];
pub(super) const PREPAID_PERIODS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60];
pub(super) const MAX_BANDWIDTH: i64 = 200;
