//! The CVM instance metadata service, for the credentials of the role bound
//! to the instance the operator runs on (the official SDKs'
//! `CvmRoleProvider`/`CVMRoleCredential`): `GET
//! /latest/meta-data/cam/security-credentials/` names the role,
//! `GET …/<role>` returns its temporary credentials.

use super::credentials::Secret;
use super::provider::CredentialError;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The link-local metadata host of every CVM.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://metadata.tencentyun.com";
/// Path of the role listing; the role's credentials are under it.
pub const SECURITY_CREDENTIALS_PATH: &str = "/latest/meta-data/cam/security-credentials/";

/// The answer for one role (the SDKs' `roleRsp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RoleCredentials {
    pub tmp_secret_id: String,
    pub tmp_secret_key: Secret,
    pub token: Secret,
    /// Unix seconds.
    pub expired_time: i64,
    /// The same instant, ISO 8601 UTC.
    pub expiration: String,
    /// `Success` when the rest is meaningful.
    pub code: String,
}

/// A role name as it may appear in a URL path segment.
pub fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// Reads the metadata service. Never through a proxy: the service answers
/// only on the instance's own link.
#[derive(Clone)]
pub struct MetadataClient {
    http: reqwest::Client,
    base: Url,
}

impl std::fmt::Debug for MetadataClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataClient({})", self.base)
    }
}

impl MetadataClient {
    /// `base` is `http://metadata.tencentyun.com` on a CVM, the simulator's
    /// address in tests.
    pub fn new(base: &str) -> Result<Self, CredentialError> {
        let config = |why: String| CredentialError::Config(format!("metadata endpoint: {why}"));
        let base = Url::parse(base).map_err(|e| config(format!("`{base}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(config(format!(
                "`{base}` must be an http(s) URL with a host"
            )));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| config(e.to_string()))?;
        Ok(Self { http, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<String, CredentialError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| CredentialError::Config(format!("metadata path {path}: {e}")))?;
        let failed =
            |message: String, transient: bool| CredentialError::Metadata { message, transient };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(e.to_string(), true))?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(failed(
                    "no CAM role is bound to this instance (404)".into(),
                    false,
                ));
            }
            other => return Err(failed(format!("HTTP status {other}"), other >= 500)),
        }
        resp.text().await.map_err(|e| failed(e.to_string(), true))
    }

    /// The name of the role bound to the instance.
    pub async fn role_name(&self) -> Result<String, CredentialError> {
        let text = self.get(SECURITY_CREDENTIALS_PATH).await?;
        let name = text.lines().next().unwrap_or_default().trim().to_string();
        if !valid_role_name(&name) {
            return Err(CredentialError::Metadata {
                message: "the role listing names no usable role".into(),
                transient: false,
            });
        }
        Ok(name)
    }

    /// The role's current temporary credentials.
    pub async fn role_credentials(&self, role: &str) -> Result<RoleCredentials, CredentialError> {
        if !valid_role_name(role) {
            return Err(CredentialError::Config(format!(
                "instance role name {role:?} has characters a role name cannot have"
            )));
        }
        let text = self
            .get(&format!("{SECURITY_CREDENTIALS_PATH}{role}"))
            .await?;
        let creds: RoleCredentials =
            serde_json::from_str(&text).map_err(|e| CredentialError::Metadata {
                // Position only: a serde message may quote the value, a key.
                message: format!(
                    "the credentials of role {role} do not decode ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
                transient: true,
            })?;
        if creds.code != "Success" {
            return Err(CredentialError::Metadata {
                message: format!(
                    "the credentials of role {role} answer Code={:?}",
                    creds.code
                ),
                transient: true,
            });
        }
        Ok(creds)
    }
}
