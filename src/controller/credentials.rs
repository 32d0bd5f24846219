//! Which credentials a resource uses, and the Secret values it references.
//!
//! Per-resource credentials come from `spec.credentialsSecretRef`; otherwise
//! the operator's own. Secrets are read on demand (no cluster-wide Secret
//! watch, so no Secret data is cached beyond a short TTL) and the last
//! credentials that worked for each resource are remembered, so a resource
//! can still be cleaned up when its namespace deletion removed the Secret
//! first.

use super::status::reason;
use crate::api::{CvmInstance, SecretKeyRef};
use crate::cloud::{Credentials, Secret};
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::ResourceExt;
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const KEY_SECRET_ID: &str = "SecretId";
pub const KEY_SECRET_KEY: &str = "SecretKey";
pub const KEY_TOKEN: &str = "Token";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    #[error(
        "no credentials: the operator has none (TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY) and spec.credentialsSecretRef is not set"
    )]
    NoDefault,
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name}: {why}")]
    Invalid {
        namespace: String,
        name: String,
        why: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {message}")]
    Unreadable {
        namespace: String,
        name: String,
        message: String,
    },
}

impl CredentialsError {
    /// The condition (and event) reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::NoDefault | CredentialsError::SecretNotFound { .. } => {
                reason::CREDENTIALS_NOT_FOUND
            }
            CredentialsError::MissingKey { .. } | CredentialsError::Invalid { .. } => {
                reason::CREDENTIALS_INVALID
            }
            CredentialsError::Unreadable { .. } => reason::CREDENTIALS_UNREADABLE,
        }
    }
}

type SecretData = BTreeMap<String, Secret>;
/// (namespace, name) → when read, and the data (None: no such Secret).
type SecretCache = HashMap<(String, String), (Instant, Option<SecretData>)>;

pub struct CredentialStore {
    client: kube::Client,
    default: Option<Credentials>,
    ttl: Duration,
    secrets: Mutex<SecretCache>,
    last_used: Mutex<HashMap<String, Credentials>>,
}

impl CredentialStore {
    pub fn new(client: kube::Client, default: Option<Credentials>) -> Self {
        Self {
            client,
            default,
            ttl: Duration::from_secs(10),
            secrets: Mutex::new(HashMap::new()),
            last_used: Mutex::new(HashMap::new()),
        }
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<SecretData>, CredentialsError> {
        let key = (namespace.to_string(), name.to_string());
        if let Some((at, data)) = self
            .secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(data.clone());
        }
        let api: Api<K8sSecret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await
            .map_err(|e| CredentialsError::Unreadable {
                namespace: namespace.into(),
                name: name.into(),
                message: e.to_string(),
            })?;
        let data = secret.map(|s| {
            let mut out = SecretData::new();
            for (k, v) in s.string_data.unwrap_or_default() {
                out.insert(k, Secret::new(v));
            }
            for (k, v) in s.data.unwrap_or_default() {
                if let Ok(text) = String::from_utf8(v.0) {
                    out.insert(k, Secret::new(text));
                }
            }
            out
        });
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), data.clone()));
        Ok(data)
    }

    /// One value of a Secret in `namespace`.
    pub async fn secret_value(
        &self,
        namespace: &str,
        r: &SecretKeyRef,
    ) -> Result<Secret, CredentialsError> {
        let data =
            self.secret(namespace, &r.name)
                .await?
                .ok_or(CredentialsError::SecretNotFound {
                    namespace: namespace.into(),
                    name: r.name.clone(),
                })?;
        data.get(&r.key)
            .cloned()
            .ok_or(CredentialsError::MissingKey {
                namespace: namespace.into(),
                name: r.name.clone(),
                key: r.key.clone(),
            })
    }

    /// The credentials `obj` uses now.
    pub async fn for_object(&self, obj: &CvmInstance) -> Result<Credentials, CredentialsError> {
        let creds = match &obj.spec.credentials_secret_ref {
            None => self.default.clone().ok_or(CredentialsError::NoDefault)?,
            Some(r) => {
                let ns = obj.namespace().unwrap_or_default();
                let id = self
                    .secret_value(
                        &ns,
                        &SecretKeyRef {
                            name: r.name.clone(),
                            key: KEY_SECRET_ID.into(),
                        },
                    )
                    .await?;
                let key = self
                    .secret_value(
                        &ns,
                        &SecretKeyRef {
                            name: r.name.clone(),
                            key: KEY_SECRET_KEY.into(),
                        },
                    )
                    .await?;
                let token = self
                    .secret(&ns, &r.name)
                    .await?
                    .and_then(|d| d.get(KEY_TOKEN).cloned())
                    .map(|t| t.expose().to_string());
                Credentials::new(id.expose(), key.expose(), token).map_err(|e| {
                    CredentialsError::Invalid {
                        namespace: ns.clone(),
                        name: r.name.clone(),
                        why: e.to_string(),
                    }
                })?
            }
        };
        // Remembered only for per-resource Secrets: the operator's own
        // credentials are always at hand (and need no copy per resource).
        if obj.spec.credentials_secret_ref.is_some()
            && let Some(uid) = obj.uid()
        {
            self.last_used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, creds.clone());
        }
        Ok(creds)
    }

    /// The last credentials that worked for this resource (for cleanup).
    pub fn remembered(&self, uid: &str) -> Option<Credentials> {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }

    /// The operator's own credentials.
    pub fn default_credentials(&self) -> Option<&Credentials> {
        self.default.as_ref()
    }

    pub fn forget(&self, uid: &str) {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}
