//! The credential sources behind a [`CredentialProvider`], as the official
//! SDKs implement them: static keys, STS AssumeRole (`RoleArnProvider`), TKE
//! workload identity (`DefaultTkeOIDCRoleArnProvider`, the `TKE_*`
//! environment → AssumeRoleWithWebIdentity) and the CVM instance role
//! (`CvmRoleProvider`, the metadata service).

use super::client::CvmClient;
use super::credentials::{Credentials, Secret};
use super::error::CloudError;
use super::metadata::{MetadataClient, valid_role_name};
use super::provider::{CredentialError, CredentialProvider, Identity, Lease, RefreshPolicy};
use super::sts;
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Environment of TKE workload identity, as the official SDKs name it.
pub const ENV_TKE_REGION: &str = "TKE_REGION";
pub const ENV_TKE_PROVIDER_ID: &str = "TKE_PROVIDER_ID";
pub const ENV_TKE_WEB_IDENTITY_TOKEN_FILE: &str = "TKE_WEB_IDENTITY_TOKEN_FILE";
pub const ENV_TKE_ROLE_ARN: &str = "TKE_ROLE_ARN";

/// `RoleSessionName` when none is configured: stable, so CloudAudit shows
/// who acted.
pub const DEFAULT_SESSION_NAME: &str = "cvm-operator";

/// An STS role and how long its credentials should last.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSession {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: u64,
    /// Region the STS call is made in (the SDKs default to ap-guangzhou).
    pub region: String,
}

impl RoleSession {
    pub fn new(role_arn: impl Into<String>) -> Self {
        Self {
            role_arn: role_arn.into(),
            session_name: DEFAULT_SESSION_NAME.into(),
            duration_secs: sts::DEFAULT_DURATION_SECS,
            region: sts::DEFAULT_REGION.into(),
        }
    }

    fn validate(&self) -> Result<(), CredentialError> {
        let bad = |why: String| Err(CredentialError::Config(why));
        if sts::role_account(&self.role_arn).is_none() {
            return bad(format!(
                "role ARN {:?} is not of the form qcs::cam::uin/<account>:roleName/<name>",
                self.role_arn
            ));
        }
        if !sts::valid_session_name(&self.session_name) {
            return bad(format!(
                "role session name {:?} must be 2 to 128 of letters, digits and _+=,.@-",
                self.session_name
            ));
        }
        if !(1..=sts::MAX_DURATION_SECS).contains(&self.duration_secs) {
            return bad(format!(
                "duration {} s is outside 1..={} s",
                self.duration_secs,
                sts::MAX_DURATION_SECS
            ));
        }
        if !super::endpoint::valid_region(&self.region) {
            return bad(format!("STS region {:?} is not a region name", self.region));
        }
        Ok(())
    }
}

/// TKE workload identity: an OIDC token file, exchanged for a role.
#[derive(Debug, Clone, PartialEq)]
pub struct WebIdentity {
    pub provider_id: String,
    pub token_file: PathBuf,
    pub role: RoleSession,
}

impl WebIdentity {
    /// From `TKE_REGION`, `TKE_PROVIDER_ID`, `TKE_WEB_IDENTITY_TOKEN_FILE`
    /// and `TKE_ROLE_ARN`, which TKE injects into pods of a service account
    /// bound to a role (the names the official SDKs read).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let get = |k: &'static str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(CredentialError::MissingEnv(k))
        };
        let mut role = RoleSession::new(get(ENV_TKE_ROLE_ARN)?);
        role.region = get(ENV_TKE_REGION)?;
        Ok(Self {
            provider_id: get(ENV_TKE_PROVIDER_ID)?,
            token_file: get(ENV_TKE_WEB_IDENTITY_TOKEN_FILE)?.into(),
            role,
        })
    }

    /// Reads the token now: TKE rotates the projected file, so every
    /// exchange reads it afresh (as the SDKs do).
    fn token(&self) -> Result<Secret, CredentialError> {
        let failed = |message: String| CredentialError::TokenFile {
            path: self.token_file.display().to_string(),
            message,
        };
        // A few hundred bytes on a local (projected) volume.
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| failed(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(failed("the file is empty".into()));
        }
        Ok(Secret::new(token))
    }
}

#[derive(Clone)]
pub(crate) enum Source {
    Static(Credentials),
    AssumeRole {
        client: CvmClient,
        source: CredentialProvider,
        role: RoleSession,
        external_id: Option<Secret>,
    },
    WebIdentity {
        client: CvmClient,
        web: WebIdentity,
    },
    InstanceRole {
        metadata: MetadataClient,
        /// Configured, or learnt from the metadata service on first use.
        role_name: Arc<Mutex<Option<String>>>,
    },
}

impl Source {
    pub(crate) fn identity(&self) -> Identity {
        match self {
            Source::Static(c) => Identity::of_static(c),
            Source::AssumeRole {
                source,
                role,
                external_id,
                ..
            } => Identity::derive(
                "assume-role",
                &[
                    &role.role_arn,
                    external_id.as_ref().map_or("", Secret::expose),
                    source.identity().as_str(),
                ],
            ),
            Source::WebIdentity { web, .. } => Identity::derive(
                "web-identity",
                &[
                    &web.provider_id,
                    &web.role.role_arn,
                    &web.token_file.display().to_string(),
                ],
            ),
            Source::InstanceRole {
                metadata,
                role_name,
                ..
            } => {
                let role = role_name.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Identity::derive(
                    "instance-role",
                    &[metadata.base().as_str(), role.as_deref().unwrap_or("")],
                )
            }
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Source::Static(c) => format!("static keys {}", c.masked_id()),
            Source::AssumeRole { source, role, .. } => {
                format!("AssumeRole {} (from {})", role.role_arn, source.describe())
            }
            Source::WebIdentity { web, .. } => {
                format!("web identity {} via {}", web.role.role_arn, web.provider_id)
            }
            Source::InstanceRole { role_name, .. } => {
                let role = role_name.lock().unwrap_or_else(|e| e.into_inner()).clone();
                format!(
                    "instance role {}",
                    role.as_deref().unwrap_or("(bound to the instance)")
                )
            }
        }
    }

    /// Obtains new credentials. Boxed: an AssumeRole source fetches through
    /// another provider, which may fetch through this code again.
    pub(crate) fn fetch(&self) -> BoxFuture<'_, Result<Lease, CredentialError>> {
        Box::pin(async move { self.fetch_now().await })
    }

    async fn fetch_now(&self) -> Result<Lease, CredentialError> {
        match self {
            Source::Static(c) => Ok(Lease {
                creds: c.clone(),
                obtained: SystemTime::now(),
                expires: None,
            }),
            Source::AssumeRole {
                client,
                source,
                role,
                external_id,
            } => {
                let what = format!("AssumeRole {}", role.role_arn);
                let src = source
                    .credentials()
                    .await
                    .map_err(|e| CredentialError::Source {
                        what: what.clone(),
                        error: Box::new(e),
                    })?;
                let req = sts::AssumeRoleRequest {
                    role_arn: role.role_arn.clone(),
                    role_session_name: role.session_name.clone(),
                    duration_seconds: Some(role.duration_secs),
                    external_id: external_id.clone(),
                    ..Default::default()
                };
                let reply = client
                    .call::<sts::AssumeRole>(&src, &role.region, &req)
                    .await
                    .map_err(|error| {
                        if refused_credentials(&error) {
                            source.invalidate(&src);
                        }
                        CredentialError::Sts {
                            what: what.clone(),
                            error,
                        }
                    })?;
                lease_from(&what, reply.body)
            }
            Source::WebIdentity { client, web } => {
                let what = format!("AssumeRoleWithWebIdentity {}", web.role.role_arn);
                let req = sts::AssumeRoleWithWebIdentityRequest {
                    provider_id: web.provider_id.clone(),
                    web_identity_token: web.token()?,
                    role_arn: web.role.role_arn.clone(),
                    role_session_name: web.role.session_name.clone(),
                    duration_seconds: Some(web.role.duration_secs as i64),
                };
                let reply = client
                    .call_unsigned::<sts::AssumeRoleWithWebIdentity>(&web.role.region, &req)
                    .await
                    .map_err(|error| CredentialError::Sts {
                        what: what.clone(),
                        error,
                    })?;
                lease_from(&what, reply.body)
            }
            Source::InstanceRole {
                metadata,
                role_name,
                ..
            } => {
                let known = role_name.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let role = match known {
                    Some(r) => r,
                    None => {
                        let r = metadata.role_name().await?;
                        *role_name.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
                        r
                    }
                };
                let c = metadata.role_credentials(&role).await?;
                let creds = Credentials::new(
                    c.tmp_secret_id,
                    c.tmp_secret_key.expose(),
                    Some(c.token.expose().to_string()),
                )
                .map_err(|_| CredentialError::Malformed {
                    what: format!("instance role {role}"),
                    missing: "TmpSecretId/TmpSecretKey",
                })?;
                Ok(Lease {
                    creds,
                    obtained: SystemTime::now(),
                    expires: Some(unix_time(c.expired_time)),
                })
            }
        }
    }
}

/// The service said the credentials themselves are no good (expired or
/// revoked token, unknown key): the source must mint new ones.
fn refused_credentials(e: &CloudError) -> bool {
    matches!(
        e.code(),
        "AuthFailure.TokenFailure" | "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId"
    )
}

fn unix_time(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

fn lease_from(what: &str, r: sts::AssumeRoleResponse) -> Result<Lease, CredentialError> {
    let missing = |missing| CredentialError::Malformed {
        what: what.to_string(),
        missing,
    };
    let c = r.credentials.ok_or(missing("Credentials"))?;
    let creds = Credentials::new(
        c.tmp_secret_id.ok_or(missing("TmpSecretId"))?,
        c.tmp_secret_key.ok_or(missing("TmpSecretKey"))?.expose(),
        Some(c.token.ok_or(missing("Token"))?.expose().to_string()),
    )
    .map_err(|_| missing("non-empty TmpSecretId/TmpSecretKey"))?;
    Ok(Lease {
        creds,
        obtained: SystemTime::now(),
        expires: Some(unix_time(r.expired_time.ok_or(missing("ExpiredTime"))?)),
    })
}

impl CredentialProvider {
    /// Temporary credentials of `role`, obtained with `source`'s
    /// credentials (a role in another account, or role chaining).
    pub fn assume_role(
        client: CvmClient,
        source: CredentialProvider,
        role: RoleSession,
        external_id: Option<Secret>,
    ) -> Result<Self, CredentialError> {
        role.validate()?;
        Ok(Self::from_source(
            Source::AssumeRole {
                client,
                source,
                role,
                external_id,
            },
            RefreshPolicy::default(),
        ))
    }

    /// Temporary credentials for a web identity (TKE workload identity).
    pub fn web_identity(client: CvmClient, web: WebIdentity) -> Result<Self, CredentialError> {
        web.role.validate()?;
        if web.provider_id.is_empty() {
            return Err(CredentialError::Config(
                "the OIDC provider id is empty".into(),
            ));
        }
        Ok(Self::from_source(
            Source::WebIdentity { client, web },
            RefreshPolicy::default(),
        ))
    }

    /// The CVM instance role from the metadata service; `role_name` `None`
    /// asks the service which role is bound.
    pub fn instance_role(
        metadata: MetadataClient,
        role_name: Option<String>,
    ) -> Result<Self, CredentialError> {
        if let Some(r) = &role_name
            && !valid_role_name(r)
        {
            return Err(CredentialError::Config(format!(
                "instance role name {r:?} has characters a role name cannot have"
            )));
        }
        Ok(Self::from_source(
            Source::InstanceRole {
                metadata,
                role_name: Arc::new(Mutex::new(role_name)),
            },
            RefreshPolicy::default(),
        ))
    }
}
