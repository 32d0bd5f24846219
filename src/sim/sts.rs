//! STS and the instance metadata service, simulated: roles configured on the
//! simulator, the temporary credentials they issue (accepted by the CVM
//! endpoint for the role's account until they expire), web identity trust,
//! and the instance role's credentials served as a CVM's metadata service
//! serves them. Members and codes follow `sts-v20180813.api.json` and the
//! official SDKs' error lists.

use super::engine::{ApiError, api_err};
use crate::cloud::credentials::Secret;
use crate::cloud::metadata::RoleCredentials;
use crate::cloud::sts::{
    self, AssumeRoleRequest, AssumeRoleResponse, AssumeRoleWithWebIdentityRequest,
    GetCallerIdentityResponse, TemporaryCredentials,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A role callers may assume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimRole {
    /// `qcs::cam::uin/<account>:roleName/<name>`: its credentials act in
    /// `<account>`.
    pub arn: String,
    /// Accounts (uins) whose credentials may AssumeRole it.
    #[serde(default)]
    pub trusted_accounts: Vec<String>,
    /// When set, AssumeRole must present this ExternalId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The OIDC provider and tokens AssumeRoleWithWebIdentity accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<SimWebIdentityTrust>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimWebIdentityTrust {
    pub provider_id: String,
    pub tokens: Vec<Secret>,
}

/// The role bound to "the instance" the metadata endpoint describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimInstanceRole {
    pub role_name: String,
    /// Its credentials act in this role's account.
    pub role_arn: String,
    /// Lifetime of the credentials served.
    #[serde(default = "default_duration")]
    pub duration_secs: u64,
}

fn default_duration() -> u64 {
    sts::DEFAULT_DURATION_SECS
}

/// STS and metadata configuration (`SimConfig::sts`, `PUT /_sim/sts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StsConfig {
    pub roles: Vec<SimRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_role: Option<SimInstanceRole>,
}

/// The uin of the account a static key belongs to when none is configured:
/// a stable number derived from the SecretId, so distinct keys are distinct
/// accounts.
pub fn derived_uin(secret_id: &str) -> String {
    let h = Sha256::digest(secret_id.as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    format!("1{:011}", n % 100_000_000_000)
}

/// A role's numeric id, as `GetCallerIdentity` shows it.
fn role_id(arn: &str) -> String {
    let h = Sha256::digest(arn.as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    format!("4611686{:012}", n % 1_000_000_000_000)
}

/// Who signed a request.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The account whose resources the request acts on.
    pub(crate) account: String,
    /// A role session, for temporary credentials.
    pub(crate) session: Option<Session>,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) role_arn: String,
    pub(crate) name: String,
    /// The account that assumed the role.
    pub(crate) principal: String,
}

/// Temporary credentials handed out.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) secret_key: Secret,
    pub(crate) token: Secret,
    /// Unix seconds.
    pub(crate) expires: i64,
    pub(crate) principal: Principal,
}

#[derive(Debug, Default)]
pub(crate) struct StsState {
    pub(crate) config: StsConfig,
    /// TmpSecretId → what it stands for.
    issued: HashMap<String, Issued>,
    /// The instance role's current credentials (TmpSecretId).
    instance_current: Option<String>,
}

fn random_alnum(n: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(n)
        .collect()
}

fn iso_utc(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl StsState {
    /// Replaces the configuration; credentials already issued stay valid.
    pub(crate) fn configure(&mut self, config: StsConfig) {
        self.config = config;
        self.instance_current = None;
    }

    pub(crate) fn issued(&self, secret_id: &str) -> Option<&Issued> {
        self.issued.get(secret_id)
    }

    fn issue(&mut self, principal: Principal, duration: u64, now: i64) -> (String, Issued) {
        // Keep the table small: forget what expired a while ago.
        self.issued.retain(|_, i| i.expires > now - 3600);
        let id = format!("AKID{}", random_alnum(32));
        let issued = Issued {
            secret_key: Secret::new(random_alnum(32)),
            token: Secret::new(random_alnum(96)),
            expires: now + duration as i64,
            principal,
        };
        self.issued.insert(id.clone(), issued.clone());
        (id, issued)
    }

    fn answer(&mut self, principal: Principal, duration: u64, now: i64) -> AssumeRoleResponse {
        let (id, i) = self.issue(principal, duration, now);
        AssumeRoleResponse {
            credentials: Some(TemporaryCredentials {
                token: Some(i.token),
                tmp_secret_id: Some(id),
                tmp_secret_key: Some(i.secret_key),
            }),
            expired_time: Some(i.expires),
            expiration: Some(iso_utc(i.expires)),
        }
    }

    fn role(&self, arn: &str) -> Result<&SimRole, ApiError> {
        if sts::role_account(arn).is_none() {
            return Err(api_err(
                "InvalidParameter.ParamError",
                format!("The RoleArn `{arn}` is malformed."),
            ));
        }
        self.config
            .roles
            .iter()
            .find(|r| r.arn == arn)
            .ok_or_else(|| {
                api_err(
                    "ResourceNotFound.RoleNotFound",
                    format!("The role `{arn}` does not exist."),
                )
            })
    }

    pub(crate) fn assume_role(
        &mut self,
        caller: &Principal,
        req: AssumeRoleRequest,
        now: i64,
    ) -> Result<AssumeRoleResponse, ApiError> {
        let duration = check_session(&req.role_session_name, req.duration_seconds)?;
        let role = self.role(&req.role_arn)?;
        if !role.trusted_accounts.contains(&caller.account) {
            return Err(api_err(
                "UnauthorizedOperation",
                format!(
                    "The account `{}` is not allowed to assume the role `{}`.",
                    caller.account, role.arn
                ),
            ));
        }
        if let Some(want) = &role.external_id
            && req.external_id.as_ref().map(Secret::expose) != Some(want.as_str())
        {
            return Err(api_err(
                "UnauthorizedOperation",
                format!(
                    "The ExternalId does not match the trust policy of the role `{}`.",
                    role.arn
                ),
            ));
        }
        let principal = session_principal(&req.role_arn, &req.role_session_name, &caller.account);
        Ok(self.answer(principal, duration, now))
    }

    pub(crate) fn assume_role_with_web_identity(
        &mut self,
        req: AssumeRoleWithWebIdentityRequest,
        now: i64,
    ) -> Result<AssumeRoleResponse, ApiError> {
        let duration = check_session(
            &req.role_session_name,
            req.duration_seconds.map(|d| d.max(0) as u64),
        )?;
        let role = self.role(&req.role_arn)?;
        let Some(trust) = role
            .web_identity
            .as_ref()
            .filter(|t| t.provider_id == req.provider_id)
        else {
            return Err(api_err(
                "UnauthorizedOperation",
                format!(
                    "The role `{}` does not trust the identity provider `{}`.",
                    role.arn, req.provider_id
                ),
            ));
        };
        if !trust.tokens.contains(&req.web_identity_token) {
            return Err(api_err(
                "InvalidParameter.WebIdentityTokenError",
                "The WebIdentityToken is invalid or expired.",
            ));
        }
        let principal = session_principal(&req.role_arn, &req.role_session_name, &req.provider_id);
        Ok(self.answer(principal, duration, now))
    }

    /// The instance role's credentials, as the metadata service serves them:
    /// the same ones until less than half their lifetime is left.
    pub(crate) fn instance_credentials(
        &mut self,
        role_name: &str,
        now: i64,
    ) -> Option<RoleCredentials> {
        let r = self
            .config
            .instance_role
            .clone()
            .filter(|r| r.role_name == role_name)?;
        let duration = r.duration_secs.max(1);
        let current = self
            .instance_current
            .as_ref()
            .and_then(|id| Some((id.clone(), self.issued.get(id)?.clone())))
            .filter(|(_, i)| (i.expires - now) * 2 > duration as i64);
        let (id, i) = match current {
            Some(c) => c,
            None => {
                let principal = session_principal(&r.role_arn, &r.role_name, "cvm");
                let (id, i) = self.issue(principal, duration, now);
                self.instance_current = Some(id.clone());
                (id, i)
            }
        };
        Some(RoleCredentials {
            tmp_secret_id: id,
            tmp_secret_key: i.secret_key,
            token: i.token,
            expired_time: i.expires,
            expiration: iso_utc(i.expires),
            code: "Success".into(),
        })
    }
}

/// The principal of a role session: it acts in the role's account.
fn session_principal(arn: &str, name: &str, by: &str) -> Principal {
    Principal {
        account: sts::role_account(arn).unwrap_or_default().to_string(),
        session: Some(Session {
            role_arn: arn.to_string(),
            name: name.to_string(),
            principal: by.to_string(),
        }),
    }
}

/// `RoleSessionName` and `DurationSeconds` → the duration.
fn check_session(name: &str, duration: Option<u64>) -> Result<u64, ApiError> {
    if !sts::valid_session_name(name) {
        return Err(api_err(
            "InvalidParameter.ParamError",
            "The RoleSessionName must be 2 to 128 characters of [\\w+=,.@-].",
        ));
    }
    let d = duration.unwrap_or(sts::DEFAULT_DURATION_SECS);
    if d == 0 || d > sts::MAX_DURATION_SECS {
        return Err(api_err(
            "InvalidParameter.OverTimeError",
            format!(
                "The DurationSeconds {d} is outside 1 to {}.",
                sts::MAX_DURATION_SECS
            ),
        ));
    }
    Ok(d)
}

/// GetCallerIdentity for `p`.
pub(crate) fn caller_identity(p: &Principal) -> GetCallerIdentityResponse {
    match &p.session {
        None => GetCallerIdentityResponse {
            arn: Some(format!("qcs::cam::uin/{0}:uin/{0}", p.account)),
            account_id: Some(p.account.clone()),
            user_id: Some(p.account.clone()),
            principal_id: Some(p.account.clone()),
            kind: Some("CAMUser".into()),
        },
        Some(s) => {
            let id = role_id(&s.role_arn);
            GetCallerIdentityResponse {
                arn: Some(format!("qcs::sts:{}:assumed-role/{id}", p.account)),
                account_id: Some(p.account.clone()),
                user_id: Some(format!("{id}:{}", s.name)),
                principal_id: Some(s.principal.clone()),
                kind: Some("CAMRole".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "qcs::cam::uin/200000000002:roleName/cvm";

    fn state() -> StsState {
        let mut s = StsState::default();
        s.configure(StsConfig {
            roles: vec![SimRole {
                arn: ROLE.into(),
                trusted_accounts: vec!["100000000001".into()],
                external_id: Some("ext-1".into()),
                web_identity: Some(SimWebIdentityTrust {
                    provider_id: "OIDC".into(),
                    tokens: vec![Secret::new("good-token")],
                }),
            }],
            instance_role: Some(SimInstanceRole {
                role_name: "node".into(),
                role_arn: ROLE.into(),
                duration_secs: 100,
            }),
        });
        s
    }

    fn caller(account: &str) -> Principal {
        Principal {
            account: account.into(),
            session: None,
        }
    }

    fn assume(ext: Option<&str>, arn: &str) -> AssumeRoleRequest {
        AssumeRoleRequest {
            role_arn: arn.into(),
            role_session_name: "s1".into(),
            duration_seconds: Some(60),
            external_id: ext.map(Secret::new),
            ..Default::default()
        }
    }

    #[test]
    fn assume_role_checks_trust_external_id_and_duration() {
        let mut s = state();
        let ok = s
            .assume_role(&caller("100000000001"), assume(Some("ext-1"), ROLE), 1000)
            .unwrap();
        assert_eq!(ok.expired_time, Some(1060));
        assert_eq!(ok.expiration.as_deref(), Some("1970-01-01T00:17:40Z"));
        let id = ok.credentials.unwrap().tmp_secret_id.unwrap();
        let issued = s.issued(&id).unwrap();
        assert_eq!(issued.principal.account, "200000000002");
        let code = |r: Result<AssumeRoleResponse, ApiError>| r.unwrap_err().code;
        assert_eq!(
            code(s.assume_role(&caller("100000000009"), assume(Some("ext-1"), ROLE), 0)),
            "UnauthorizedOperation"
        );
        assert_eq!(
            code(s.assume_role(&caller("100000000001"), assume(Some("ext-2"), ROLE), 0)),
            "UnauthorizedOperation"
        );
        assert_eq!(
            code(s.assume_role(&caller("100000000001"), assume(None, ROLE), 0)),
            "UnauthorizedOperation"
        );
        assert_eq!(
            code(s.assume_role(
                &caller("100000000001"),
                assume(Some("ext-1"), "qcs::cam::uin/200000000002:roleName/other"),
                0
            )),
            "ResourceNotFound.RoleNotFound"
        );
        let mut long = assume(Some("ext-1"), ROLE);
        long.duration_seconds = Some(43201);
        assert_eq!(
            code(s.assume_role(&caller("100000000001"), long, 0)),
            "InvalidParameter.OverTimeError"
        );
    }

    #[test]
    fn web_identity_needs_the_provider_and_a_known_token() {
        let mut s = state();
        let req = |provider: &str, token: &str| AssumeRoleWithWebIdentityRequest {
            provider_id: provider.into(),
            web_identity_token: Secret::new(token),
            role_arn: ROLE.into(),
            role_session_name: "pod".into(),
            duration_seconds: None,
        };
        let ok = s
            .assume_role_with_web_identity(req("OIDC", "good-token"), 0)
            .unwrap();
        assert_eq!(ok.expired_time, Some(7200));
        assert_eq!(
            s.assume_role_with_web_identity(req("OIDC", "forged"), 0)
                .unwrap_err()
                .code,
            "InvalidParameter.WebIdentityTokenError"
        );
        assert_eq!(
            s.assume_role_with_web_identity(req("Other", "good-token"), 0)
                .unwrap_err()
                .code,
            "UnauthorizedOperation"
        );
    }

    #[test]
    fn instance_credentials_rotate_at_half_life() {
        let mut s = state();
        let a = s.instance_credentials("node", 0).unwrap();
        assert_eq!(a.code, "Success");
        assert_eq!(a.expired_time, 100);
        let same = s.instance_credentials("node", 49).unwrap();
        assert_eq!(same.tmp_secret_id, a.tmp_secret_id);
        let next = s.instance_credentials("node", 51).unwrap();
        assert_ne!(next.tmp_secret_id, a.tmp_secret_id);
        assert!(s.instance_credentials("other", 0).is_none());
        assert_eq!(
            s.issued(&next.tmp_secret_id).unwrap().principal.account,
            "200000000002"
        );
    }

    #[test]
    fn derived_accounts_are_stable_and_distinct() {
        assert_eq!(derived_uin("AKIDa"), derived_uin("AKIDa"));
        assert_ne!(derived_uin("AKIDa"), derived_uin("AKIDb"));
        assert_eq!(derived_uin("AKIDa").len(), 12);
        let who = caller_identity(&session_principal(ROLE, "s", "100000000001"));
        assert_eq!(who.kind.as_deref(), Some("CAMRole"));
        assert_eq!(who.account_id.as_deref(), Some("200000000002"));
        assert_eq!(who.principal_id.as_deref(), Some("100000000001"));
    }
}
