//! Wire types of STS (`sts`, version `2018-08-13`), the service that turns a
//! role into temporary credentials. Shared by the client's credential
//! providers and the simulator; the same conventions as [`super::model`]
//! (required request members are plain fields, unknown ones are refused,
//! every response member is optional). Every member exists in the official
//! schema `sts-v20180813.api.json`.

use super::credentials::Secret;
use super::model::Action;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "sts";
pub const API_VERSION: &str = "2018-08-13";
/// The official SDKs call STS in this region when none is configured.
pub const DEFAULT_REGION: &str = "ap-guangzhou";
/// `DurationSeconds` when none is given, and the most any call may ask for.
pub const DEFAULT_DURATION_SECS: u64 = 7200;
pub const MAX_DURATION_SECS: u64 = 43200;

/// A session tag (`Tag` in the schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Temporary credentials (`Credentials` in the schema). Key and token are
/// [`Secret`]s: redacted in `Debug`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct TemporaryCredentials {
    pub token: Option<Secret>,
    pub tmp_secret_id: Option<String>,
    pub tmp_secret_key: Option<Secret>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub role_session_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_code: Option<Secret>,
}

/// The answer of AssumeRole and AssumeRoleWithWebIdentity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct AssumeRoleResponse {
    pub credentials: Option<TemporaryCredentials>,
    /// Unix seconds.
    pub expired_time: Option<i64>,
    /// The same instant, ISO 8601 UTC.
    pub expiration: Option<String>,
}

pub struct AssumeRole;
impl Action for AssumeRole {
    const NAME: &'static str = "AssumeRole";
    const SERVICE: &'static str = SERVICE;
    const VERSION: &'static str = API_VERSION;
    type Request = AssumeRoleRequest;
    type Response = AssumeRoleResponse;
    /// A retry only mints another set of credentials.
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AssumeRoleWithWebIdentityRequest {
    pub provider_id: String,
    pub web_identity_token: Secret,
    pub role_arn: String,
    pub role_session_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

pub struct AssumeRoleWithWebIdentity;
impl Action for AssumeRoleWithWebIdentity {
    const NAME: &'static str = "AssumeRoleWithWebIdentity";
    const SERVICE: &'static str = SERVICE;
    const VERSION: &'static str = API_VERSION;
    /// The OIDC token is the proof; the schema marks the action `skip_sign`.
    const UNSIGNED: bool = true;
    type Request = AssumeRoleWithWebIdentityRequest;
    type Response = AssumeRoleResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCallerIdentityRequest {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetCallerIdentityResponse {
    pub arn: Option<String>,
    pub account_id: Option<String>,
    pub user_id: Option<String>,
    pub principal_id: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
}

pub struct GetCallerIdentity;
impl Action for GetCallerIdentity {
    const NAME: &'static str = "GetCallerIdentity";
    const SERVICE: &'static str = SERVICE;
    const VERSION: &'static str = API_VERSION;
    type Request = GetCallerIdentityRequest;
    type Response = GetCallerIdentityResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// Every STS action the client and the simulator know.
pub const ACTIONS: &[&str] = &[
    AssumeRole::NAME,
    AssumeRoleWithWebIdentity::NAME,
    GetCallerIdentity::NAME,
];

/// The account (uin) a role belongs to, from its ARN:
/// `qcs::cam::uin/<uin>:roleName/<name>` or `qcs::cam::uin/<uin>:role/<id>`
/// (service roles add a path after `role/`).
pub fn role_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("qcs::cam::uin/")?;
    let (uin, what) = rest.split_once(':')?;
    let name = what
        .strip_prefix("roleName/")
        .or_else(|| what.strip_prefix("role/"))?;
    (!uin.is_empty() && uin.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()).then_some(uin)
}

/// `RoleSessionName`: 2 to 128 of `[\w+=,.@-]`.
pub fn valid_session_name(name: &str) -> bool {
    (2..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_schema_and_redact_secrets() {
        let req = AssumeRoleWithWebIdentityRequest {
            provider_id: "OIDC".into(),
            web_identity_token: Secret::new("eyJhbGciOiJSUzI1NiJ9.payload.sig"),
            role_arn: "qcs::cam::uin/100000000001:roleName/cvm".into(),
            role_session_name: "cvm-operator".into(),
            duration_seconds: Some(1800),
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"ProviderId":"OIDC","WebIdentityToken":"eyJhbGciOiJSUzI1NiJ9.payload.sig","RoleArn":"qcs::cam::uin/100000000001:roleName/cvm","RoleSessionName":"cvm-operator","DurationSeconds":1800}"#
        );
        assert!(!format!("{req:?}").contains("payload.sig"));
        let err = serde_json::from_str::<AssumeRoleRequest>(
            r#"{"RoleArn":"a","RoleSessionName":"b","Colour":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Colour"));
    }

    #[test]
    fn the_documented_answer_decodes() {
        // The schema's example, unmasked values replaced by ours.
        let body = r#"{"Credentials": {"Token": "da1e-token", "TmpSecretId": "AKIDtmp", "TmpSecretKey": "q95K-key"},
            "ExpiredTime": 1543914376, "Expiration": "2018-12-04T09:06:16Z", "RequestId": "4daec797"}"#;
        let r: AssumeRoleResponse = serde_json::from_str(body).unwrap();
        let c = r.credentials.clone().unwrap();
        assert_eq!(c.tmp_secret_id.as_deref(), Some("AKIDtmp"));
        assert_eq!(c.token.unwrap().expose(), "da1e-token");
        assert_eq!(r.expired_time, Some(1543914376));
        assert!(!format!("{r:?}").contains("q95K-key"));
        let who: GetCallerIdentityResponse = serde_json::from_str(
            r#"{"Type": "CAMRole", "AccountId": "1000262", "UserId": "4611:s", "PrincipalId": "1000261", "Arn": "qcs::sts:1000262:assumed-role/4611"}"#,
        )
        .unwrap();
        assert_eq!(who.kind.as_deref(), Some("CAMRole"));
    }

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            role_account("qcs::cam::uin/12345678:roleName/testRoleName"),
            Some("12345678")
        );
        assert_eq!(
            role_account("qcs::cam::uin/12345678:role/4611686018427397919"),
            Some("12345678")
        );
        assert_eq!(
            role_account("qcs::cam::uin/12345678:role/tencentcloudServiceRole/4611686018427397920"),
            Some("12345678")
        );
        for bad in [
            "",
            "arn:aws:iam::1:role/x",
            "qcs::cam::uin/abc:roleName/x",
            "qcs::cam::uin/1:roleName/",
            "qcs::cam::uin/1:user/x",
        ] {
            assert_eq!(role_account(bad), None, "{bad}");
        }
        assert!(valid_session_name("cvm-operator@team_a.1"));
        assert!(!valid_session_name("x"));
        assert!(!valid_session_name("has space"));
        assert!(!valid_session_name(&"a".repeat(129)));
    }
}
