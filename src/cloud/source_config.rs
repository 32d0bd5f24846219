//! How an account obtains its credentials, as configuration (serde and JSON
//! schema, for the coming `CvmAccount` resource) and the constructor of the
//! matching [`CredentialProvider`].
//!
//! The shape is flat and not recursive, so it embeds in a CRD schema as is:
//! a `source` of base credentials, its settings, and optionally a role to
//! assume with them (a role in another account):
//!
//! ```yaml
//! source: Secret                 # Environment | Secret | WebIdentity | InstanceRole
//! secretRef: {namespace: team-a, name: cvm-keys}
//! assumeRole:
//!   roleArn: qcs::cam::uin/200000000001:roleName/cvm-operator
//!   externalId: team-a
//! ```

use super::client::CvmClient;
use super::credentials::{Credentials, CredentialsError, Secret};
use super::metadata::{DEFAULT_METADATA_ENDPOINT, MetadataClient};
use super::provider::{CredentialError, CredentialProvider, RefreshPolicy};
use super::sources::{
    ENV_TKE_PROVIDER_ID, ENV_TKE_REGION, ENV_TKE_ROLE_ARN, ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
    RoleSession, WebIdentity,
};
use super::sts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the base credentials come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceKind {
    /// The operator's own credentials: the provider the caller hands in
    /// ([`SourceContext::operator`], which `cvm-operator run` builds from
    /// its environment keys, TKE workload identity or instance role), else
    /// `TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY`, optional
    /// `TENCENTCLOUD_SESSION_TOKEN`.
    #[default]
    Environment,
    /// `SecretId`, `SecretKey` and optional `Token` of a Kubernetes Secret
    /// (`secretRef`), read by the caller.
    Secret,
    /// TKE workload identity: the pod's OIDC token exchanged for a role
    /// (`webIdentity`, each field defaulting to the `TKE_*` environment).
    WebIdentity,
    /// The role bound to the CVM the operator runs on, from the metadata
    /// service (`instanceRole`).
    InstanceRole,
}

/// A Secret holding `SecretId`, `SecretKey` and optional `Token`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeysRef {
    pub name: String,
    /// Required where the referrer has no namespace of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentityConfig {
    /// Default: `TKE_ROLE_ARN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The OIDC provider. Default: `TKE_PROVIDER_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Default: `TKE_WEB_IDENTITY_TOKEN_FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Region of the STS call. Default: `TKE_REGION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
    /// Default 7200, at most 43200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 43200), extend("format" = "int64"))]
    pub duration_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRoleConfig {
    /// Default: the role the metadata service says is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleConfig {
    /// `qcs::cam::uin/<account>:roleName/<name>`.
    pub role_arn: String,
    /// Default: `cvm-operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
    /// Default 7200, at most 43200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 43200), extend("format" = "int64"))]
    pub duration_seconds: Option<u64>,
    /// Required when the role's trust policy names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Region of the STS call. Default: ap-guangzhou.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// How an account obtains its credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSourceConfig {
    #[serde(default)]
    pub source: SourceKind,
    /// With `source: Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeysRef>,
    /// With `source: WebIdentity` (optional: the `TKE_*` environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentityConfig>,
    /// With `source: InstanceRole` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_role: Option<InstanceRoleConfig>,
    /// Then assume this role with the source's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleConfig>,
}

/// What building a provider needs from its caller.
pub struct SourceContext<'a> {
    /// Makes the STS calls.
    pub client: CvmClient,
    /// `http://metadata.tencentyun.com` on a CVM.
    pub metadata_endpoint: String,
    /// The process environment (or a test's).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The keys of a Secret the caller has read (`None`: not available).
    pub secret: &'a dyn Fn(&SecretKeysRef) -> Option<Credentials>,
    /// What source `Environment` means when set: the process's own provider
    /// (shared as is, cache included).
    pub operator: Option<CredentialProvider>,
    pub policy: RefreshPolicy,
}

impl<'a> SourceContext<'a> {
    /// The real environment and metadata service; no Secrets.
    pub fn new(client: CvmClient, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            client,
            metadata_endpoint: DEFAULT_METADATA_ENDPOINT.into(),
            env,
            secret: &|_| None,
            operator: None,
            policy: RefreshPolicy::default(),
        }
    }
}

impl CredentialSourceConfig {
    /// Where a process's own credentials come from when it is not told: the
    /// official SDKs' order — the environment's keys
    /// (`TENCENTCLOUD_SECRET_ID`/`_SECRET_KEY`), else TKE workload identity
    /// (all of `TKE_REGION`, `TKE_PROVIDER_ID`, `TKE_WEB_IDENTITY_TOKEN_FILE`,
    /// `TKE_ROLE_ARN`, as TKE's pod identity injects them). `None`: neither.
    /// The CVM instance role is used only when asked for: probing the
    /// metadata service off a CVM would stall start-up.
    pub fn from_environment(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
        let tke = [
            ENV_TKE_REGION,
            ENV_TKE_PROVIDER_ID,
            ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
            ENV_TKE_ROLE_ARN,
        ];
        if set(super::credentials::ENV_SECRET_ID) {
            Some(Self::default())
        } else if tke.iter().all(|k| set(k)) {
            Some(Self {
                source: SourceKind::WebIdentity,
                ..Self::default()
            })
        } else {
            None
        }
    }

    /// The CVM instance role (`role`: the one bound to the CVM when `None`).
    pub fn instance_role(role: Option<String>) -> Self {
        Self {
            source: SourceKind::InstanceRole,
            instance_role: Some(InstanceRoleConfig { role_name: role }),
            ..Self::default()
        }
    }

    /// The Secret the caller must read before [`build`](Self::build).
    pub fn secret_ref(&self) -> Option<&SecretKeysRef> {
        self.secret_ref.as_ref()
    }

    /// Settings that belong to another source are refused rather than
    /// ignored: they mean the author expected something else.
    pub fn validate(&self) -> Result<(), CredentialError> {
        let stray = |field: &str| {
            Err(CredentialError::Config(format!(
                "`{field}` does not go with source {:?}",
                self.source
            )))
        };
        if self.secret_ref.is_some() && self.source != SourceKind::Secret {
            return stray("secretRef");
        }
        if self.web_identity.is_some() && self.source != SourceKind::WebIdentity {
            return stray("webIdentity");
        }
        if self.instance_role.is_some() && self.source != SourceKind::InstanceRole {
            return stray("instanceRole");
        }
        if self.source == SourceKind::Secret && self.secret_ref.is_none() {
            return Err(CredentialError::Config(
                "source Secret needs `secretRef`".into(),
            ));
        }
        Ok(())
    }

    /// The provider this configuration describes.
    pub fn build(&self, ctx: &SourceContext<'_>) -> Result<CredentialProvider, CredentialError> {
        self.validate()?;
        let base = match (self.source, &ctx.operator) {
            (SourceKind::Environment, Some(own)) => own.clone(),
            (SourceKind::Environment, None) => CredentialProvider::fixed(
                Credentials::from_lookup(ctx.env).map_err(|e| match e {
                    CredentialsError::MissingEnv(name) => CredentialError::MissingEnv(name),
                    other => CredentialError::Config(other.to_string()),
                })?,
            ),
            (SourceKind::Secret, _) => {
                let r = self.secret_ref.as_ref().expect("validated");
                CredentialProvider::fixed((ctx.secret)(r).ok_or_else(|| {
                    CredentialError::Config(format!(
                        "the keys of Secret {}{} are not available",
                        r.namespace
                            .as_deref()
                            .map(|n| format!("{n}/"))
                            .unwrap_or_default(),
                        r.name
                    ))
                })?)
            }
            (SourceKind::WebIdentity, _) => {
                CredentialProvider::web_identity(ctx.client.clone(), self.web_identity(ctx.env)?)?
                    .with_policy(ctx.policy)
            }
            (SourceKind::InstanceRole, _) => CredentialProvider::instance_role(
                MetadataClient::new(&ctx.metadata_endpoint)?,
                self.instance_role
                    .as_ref()
                    .and_then(|i| i.role_name.clone()),
            )?
            .with_policy(ctx.policy),
        };
        let Some(a) = &self.assume_role else {
            return Ok(base);
        };
        let mut role = RoleSession::new(a.role_arn.clone());
        if let Some(n) = &a.role_session_name {
            role.session_name = n.clone();
        }
        if let Some(d) = a.duration_seconds {
            role.duration_secs = d;
        }
        if let Some(r) = &a.region {
            role.region = r.clone();
        }
        Ok(CredentialProvider::assume_role(
            ctx.client.clone(),
            base,
            role,
            a.external_id.clone().map(Secret::new),
        )?
        .with_policy(ctx.policy))
    }

    /// The web identity settings, each from the configuration or the `TKE_*`
    /// environment.
    fn web_identity(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebIdentity, CredentialError> {
        let cfg = self.web_identity.clone().unwrap_or_default();
        let pick = |given: Option<String>, name: &'static str| {
            given
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env(name).filter(|v| !v.trim().is_empty()))
                .ok_or(CredentialError::MissingEnv(name))
        };
        let mut role = RoleSession::new(pick(cfg.role_arn, ENV_TKE_ROLE_ARN)?);
        role.region = pick(cfg.region, ENV_TKE_REGION)?;
        if let Some(n) = cfg.role_session_name {
            role.session_name = n;
        }
        role.duration_secs = cfg.duration_seconds.unwrap_or(sts::DEFAULT_DURATION_SECS);
        Ok(WebIdentity {
            provider_id: pick(cfg.provider_id, ENV_TKE_PROVIDER_ID)?,
            token_file: pick(cfg.token_file, ENV_TKE_WEB_IDENTITY_TOKEN_FILE)?.into(),
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ClientConfig;
    use crate::cloud::credentials::{ENV_SECRET_ID, ENV_SECRET_KEY};

    const ROLE: &str = "qcs::cam::uin/200000000001:roleName/cvm-operator";

    fn client() -> CvmClient {
        CvmClient::new(ClientConfig::default()).unwrap()
    }

    #[test]
    fn yaml_shape_round_trips() {
        let text = r#"{"source":"Secret","secretRef":{"name":"cvm-keys","namespace":"team-a"},
            "assumeRole":{"roleArn":"qcs::cam::uin/200000000001:roleName/cvm-operator","externalId":"team-a","durationSeconds":900}}"#;
        let cfg: CredentialSourceConfig = serde_json::from_str(text).unwrap();
        assert_eq!(cfg.source, SourceKind::Secret);
        assert_eq!(
            cfg.assume_role.as_ref().unwrap().duration_seconds,
            Some(900)
        );
        let back: CredentialSourceConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        // The default is the operator's environment.
        let env: CredentialSourceConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(env.source, SourceKind::Environment);
        // A schema exists and is not recursive (a CRD cannot hold $ref).
        let schema = serde_json::to_string(&schemars::schema_for!(CredentialSourceConfig)).unwrap();
        assert!(schema.contains("assumeRole") && schema.contains("WebIdentity"));
        assert!(serde_json::from_str::<CredentialSourceConfig>(r#"{"source":"Magic"}"#).is_err());
    }

    #[test]
    fn own_credentials_follow_the_sdks_order() {
        let tke = |k: &str| match k {
            ENV_TKE_REGION => Some("ap-guangzhou".to_string()),
            ENV_TKE_PROVIDER_ID => Some("OIDC".into()),
            ENV_TKE_WEB_IDENTITY_TOKEN_FILE => Some("/var/run/token".into()),
            ENV_TKE_ROLE_ARN => Some(ROLE.into()),
            _ => None,
        };
        let both = |k: &str| match k {
            crate::cloud::credentials::ENV_SECRET_ID => Some("AKIDenv".to_string()),
            other => tke(other),
        };
        let partial = |k: &str| (k != ENV_TKE_PROVIDER_ID).then(|| tke(k)).flatten();
        let blank =
            |k: &str| (k == crate::cloud::credentials::ENV_SECRET_ID).then(|| " ".to_string());
        let source = |env: &dyn Fn(&str) -> Option<String>| {
            CredentialSourceConfig::from_environment(env).map(|c| c.source)
        };
        assert_eq!(source(&both), Some(SourceKind::Environment));
        assert_eq!(source(&tke), Some(SourceKind::WebIdentity));
        assert_eq!(source(&partial), None, "a partial TKE setup is not used");
        assert_eq!(source(&blank), None);
        assert_eq!(source(&|_| None), None);
        let role = CredentialSourceConfig::instance_role(Some("cvm-node".into()));
        assert!(role.validate().is_ok());
    }

    #[test]
    fn builds_each_source_and_refuses_stray_or_missing_settings() {
        let env = |k: &str| match k {
            ENV_SECRET_ID => Some("AKIDenvironment0000".into()),
            ENV_SECRET_KEY => Some("env-key".into()),
            ENV_TKE_REGION => Some("ap-guangzhou".into()),
            ENV_TKE_PROVIDER_ID => Some("OIDC".into()),
            ENV_TKE_WEB_IDENTITY_TOKEN_FILE => Some("/var/run/secrets/tke/token".into()),
            ENV_TKE_ROLE_ARN => Some(ROLE.into()),
            _ => None,
        };
        let keys = Credentials::new("AKIDsecret00000000", "secret-key", None).unwrap();
        let secret = |r: &SecretKeysRef| (r.name == "cvm-keys").then(|| keys.clone());
        let ctx = SourceContext {
            secret: &secret,
            ..SourceContext::new(client(), &env)
        };
        let build = |json: &str| {
            serde_json::from_str::<CredentialSourceConfig>(json)
                .unwrap()
                .build(&ctx)
        };

        let from_env = build("{}").unwrap();
        assert!(
            from_env.describe().contains("AKID…0000"),
            "{}",
            from_env.describe()
        );
        let from_secret = build(r#"{"source":"Secret","secretRef":{"name":"cvm-keys"}}"#).unwrap();
        assert_eq!(
            from_secret.identity(),
            &crate::cloud::Identity::of_static(&keys)
        );
        let web = build(r#"{"source":"WebIdentity"}"#).unwrap();
        assert!(web.describe().contains(ROLE), "{}", web.describe());
        let instance =
            build(r#"{"source":"InstanceRole","instanceRole":{"roleName":"cvm-node"}}"#).unwrap();
        assert!(instance.describe().contains("cvm-node"));
        let role = format!(
            r#"{{"source":"Secret","secretRef":{{"name":"cvm-keys"}},"assumeRole":{{"roleArn":"{ROLE}"}}}}"#
        );
        let assumed = build(&role).unwrap();
        assert!(assumed.describe().contains(ROLE));
        assert_ne!(assumed.identity(), from_secret.identity());
        // The same role from other source keys is another identity.
        let other_src = format!(r#"{{"assumeRole":{{"roleArn":"{ROLE}"}}}}"#);
        assert_ne!(build(&other_src).unwrap().identity(), assumed.identity());

        for (bad, why) in [
            (r#"{"source":"Secret"}"#, "secretRef"),
            (
                r#"{"source":"Secret","secretRef":{"name":"other"}}"#,
                "not available",
            ),
            (
                r#"{"source":"Environment","secretRef":{"name":"cvm-keys"}}"#,
                "secretRef",
            ),
            (
                r#"{"source":"InstanceRole","webIdentity":{}}"#,
                "webIdentity",
            ),
            (
                r#"{"source":"InstanceRole","instanceRole":{"roleName":"a/../b"}}"#,
                "role name",
            ),
            (
                r#"{"assumeRole":{"roleArn":"arn:aws:iam::1:role/x"}}"#,
                "role ARN",
            ),
            (
                &format!(r#"{{"assumeRole":{{"roleArn":"{ROLE}","durationSeconds":43201}}}}"#),
                "duration",
            ),
            (
                &format!(r#"{{"assumeRole":{{"roleArn":"{ROLE}","region":"ap-gz.evil"}}}}"#),
                "region",
            ),
            (
                &format!(r#"{{"assumeRole":{{"roleArn":"{ROLE}","roleSessionName":"a b"}}}}"#),
                "session name",
            ),
        ] {
            let err = build(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let no_env = SourceContext::new(client(), &|_| None);
        let err = serde_json::from_str::<CredentialSourceConfig>(r#"{"source":"WebIdentity"}"#)
            .unwrap()
            .build(&no_env)
            .unwrap_err();
        assert!(err.to_string().contains("TKE_ROLE_ARN"), "{err}");
    }
}
