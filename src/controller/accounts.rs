//! Which credentials a resource uses, and whose account they act in.
//!
//! A `CvmInstance` uses a `CvmAccount` (named, or `default`) that selects its
//! namespace, or its own keys (`spec.credentialsSecretRef`). The rules are in
//! [`ownership`](super::ownership); this adapter does the reading: the
//! accounts (a watch, filtered by the operator's `--account-selector`), the
//! namespace's labels, the Secrets, and STS `GetCallerIdentity` for the
//! account id (UIN) the credentials act in. It keeps one
//! [`CredentialProvider`] per account (rebuilt when the account or its
//! Secret changes, so temporary credentials are shared and refreshed once)
//! and the UIN per credential identity.
//!
//! The operator's own credentials are only ever the `Environment` source of
//! some `CvmAccount`: a resource that names no account gets the `default`
//! one if it exists and selects its namespace, never the operator's
//! credentials by default.

use super::credentials::{CredentialStore, CredentialsError};
use super::ownership::{self, AccountChoice, AccountLookup, Refusal};
use super::status::reason;
use crate::api::{AccountRecord, CvmAccount, CvmInstance};
use crate::cloud::source_config::{SourceContext, SourceKind};
use crate::cloud::{
    CloudError, CredentialError, CredentialProvider, CvmClient, ErrorClass, Identity, sts,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Labels = BTreeMap<String, String>;

/// How long a namespace's labels are trusted.
const NAMESPACE_TTL: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct AccountsConfig {
    /// The operator's own credentials: what source `Environment` means.
    pub operator: Option<CredentialProvider>,
    /// The CVM metadata service (instance-role sources).
    pub metadata_endpoint: String,
    /// The label selector this operator's account watch uses, if any.
    pub selector: Option<String>,
}

/// The credentials a resource uses, and the account they act in.
#[derive(Clone, Debug)]
pub struct Access {
    pub provider: CredentialProvider,
    pub record: AccountRecord,
}

/// Why a resource's credentials cannot be had. Texts name accounts, Secrets
/// and roles, never a key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessError {
    /// The resource may not use the account (no Secret read, no cloud call).
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error(transparent)]
    Secret(#[from] CredentialsError),
    #[error("{what}: {error}")]
    Source {
        what: String,
        error: Box<CredentialError>,
    },
    #[error("{what}: STS GetCallerIdentity failed: {error}")]
    Verify {
        what: String,
        error: Box<CloudError>,
    },
    #[error(
        "CvmAccount {account} uses the operator's own credentials (source Environment), but the operator has none: start it with TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, TKE workload identity or an instance role"
    )]
    NoOperatorCredentials { account: String },
    #[error("cannot read namespace {namespace}: {message}")]
    Namespace { namespace: String, message: String },
}

impl AccessError {
    /// The condition (and event) reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AccessError::Refused(r) => r.reason,
            AccessError::Secret(e) => e.reason(),
            AccessError::NoOperatorCredentials { .. } => reason::CREDENTIALS_NOT_FOUND,
            AccessError::Namespace { .. } => reason::CREDENTIALS_UNREADABLE,
            AccessError::Source { .. } | AccessError::Verify { .. } => match self.class() {
                ErrorClass::Auth => reason::CREDENTIALS_REJECTED,
                // The keys may be fine: the node's clock is not.
                ErrorClass::ClockSkew => reason::CLOCK_SKEW,
                ErrorClass::Unreachable => reason::CLOUD_UNREACHABLE,
                ErrorClass::Permanent => reason::CREDENTIALS_INVALID,
                _ => reason::CREDENTIALS_UNREADABLE,
            },
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            AccessError::Source { error, .. } => error.class(),
            AccessError::Verify { error, .. } => error.class(),
            AccessError::Namespace { .. } => ErrorClass::Transient,
            _ => ErrorClass::Auth,
        }
    }

    /// Whether a deletion may use the credentials that last worked instead
    /// (say a namespace deletion removed the Secret first). Not when the
    /// resource is refused the account: that makes no cloud call at all.
    pub fn allows_fallback(&self) -> bool {
        !matches!(self, AccessError::Refused(r) if r.reason != reason::NO_ACCOUNT)
    }
}

/// A provider built for an account, and what it was built from.
struct Built {
    config: crate::cloud::CredentialSourceConfig,
    /// The identity of the Secret's keys, for a Secret source.
    keys: Option<Identity>,
    provider: CredentialProvider,
}

pub struct Accounts {
    kube: kube::Client,
    cloud: CvmClient,
    config: AccountsConfig,
    store: Store<CvmAccount>,
    secrets: Arc<CredentialStore>,
    built: Mutex<HashMap<String, Built>>,
    uins: Mutex<HashMap<Identity, String>>,
    /// One GetCallerIdentity at a time: many resources discovering a new
    /// account at once share the first answer.
    uin_turn: tokio::sync::Mutex<()>,
    namespaces: Mutex<HashMap<String, (Instant, Labels)>>,
    /// The access that last worked per resource UID (for cleanup).
    remembered: Mutex<Remembered>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Accounts {
    pub fn new(
        kube: kube::Client,
        cloud: CvmClient,
        store: Store<CvmAccount>,
        secrets: Arc<CredentialStore>,
        config: AccountsConfig,
    ) -> Self {
        Self {
            kube,
            cloud,
            config,
            store,
            secrets,
            built: Mutex::new(HashMap::new()),
            uins: Mutex::new(HashMap::new()),
            uin_turn: tokio::sync::Mutex::new(()),
            namespaces: Mutex::new(HashMap::new()),
            remembered: Mutex::new(Remembered::default()),
        }
    }

    /// The credentials `obj` may use for `choice`, and the account they act
    /// in. An account that does not admit the namespace is refused before
    /// any Secret is read or cloud call made.
    pub async fn resolve(
        &self,
        obj: &CvmInstance,
        choice: &AccountChoice,
    ) -> Result<Access, AccessError> {
        let ns = obj.namespace().unwrap_or_default();
        let (provider, account) = match choice {
            AccountChoice::Account { name, .. } => {
                let found = self.store.get(&ObjectRef::new(name));
                let lookup = match (&found, &self.config.selector) {
                    (Some(a), _) => AccountLookup::Found(a),
                    (None, Some(selector)) => AccountLookup::NotServed { selector },
                    (None, None) => AccountLookup::Missing,
                };
                let labels = match &found {
                    Some(a) if !a.spec.all_namespaces => self.namespace_labels(&ns).await?,
                    _ => BTreeMap::new(),
                };
                ownership::admit_account(choice, lookup, &ns, &labels)
                    .map_err(AccessError::Refused)?;
                let account = found.expect("admitted accounts exist");
                (self.provider_for(&account).await?, Some(account))
            }
            AccountChoice::Secret { name } => {
                let keys = self.secrets.secret_keys(&ns, name).await?;
                (CredentialProvider::fixed(keys), None)
            }
        };
        let uin = self.uin(&provider, false).await?;
        if let Some(a) = &account {
            check_uin(a, &uin)?;
        }
        let record = AccountRecord {
            kind: choice.kind(),
            name: choice.name().to_string(),
            uin,
        };
        Ok(Access { provider, record })
    }

    /// Forgets the Secret `choice` takes its keys from (a resource's own, or
    /// its account's), so the next [`resolve`](Self::resolve) reads it
    /// afresh.
    pub fn forget_keys(&self, namespace: &str, choice: &AccountChoice) {
        match choice {
            AccountChoice::Secret { name } => self.secrets.forget_secret(namespace, name),
            AccountChoice::Account { name, .. } => {
                let Some(account) = self.store.get(&ObjectRef::new(name)) else {
                    return;
                };
                if let Some(r) = account.spec.credentials.secret_ref() {
                    let ns = r.namespace.as_deref().unwrap_or_default();
                    self.secrets.forget_secret(ns, &r.name);
                }
            }
        }
    }

    /// The provider of an account's credentials: the one built before, as
    /// long as neither the account's source nor its Secret's keys changed.
    pub async fn provider_for(
        &self,
        account: &CvmAccount,
    ) -> Result<CredentialProvider, AccessError> {
        let name = account.name_any();
        let config = &account.spec.credentials;
        if config.source == SourceKind::Environment && self.config.operator.is_none() {
            return Err(AccessError::NoOperatorCredentials { account: name });
        }
        let keys = match config.secret_ref() {
            Some(r) => {
                let ns = r.namespace.as_deref().unwrap_or_default();
                Some(self.secrets.secret_keys(ns, &r.name).await?)
            }
            None => None,
        };
        let keys_identity = keys.as_ref().map(Identity::of_static);
        if let Some(b) = lock(&self.built).get(&name)
            && b.config == *config
            && b.keys == keys_identity
        {
            return Ok(b.provider.clone());
        }
        let env = |k: &str| std::env::var(k).ok();
        let secret = |_: &crate::cloud::source_config::SecretKeysRef| keys.clone();
        let ctx = SourceContext {
            metadata_endpoint: self.config.metadata_endpoint.clone(),
            secret: &secret,
            operator: self.config.operator.clone(),
            ..SourceContext::new(self.cloud.clone(), &env)
        };
        let provider = config.build(&ctx).map_err(|error| AccessError::Source {
            what: format!("CvmAccount {name}"),
            error: Box::new(error),
        })?;
        tracing::info!(account = %name, source = %provider.describe(), "account credentials ready");
        lock(&self.built).insert(
            name,
            Built {
                config: config.clone(),
                keys: keys_identity,
                provider: provider.clone(),
            },
        );
        Ok(provider)
    }

    /// The account (UIN) `provider`'s credentials act in, by STS
    /// GetCallerIdentity: remembered per identity, asked again when `fresh`.
    pub async fn uin(
        &self,
        provider: &CredentialProvider,
        fresh: bool,
    ) -> Result<String, AccessError> {
        let known = || lock(&self.uins).get(provider.identity()).cloned();
        if !fresh && let Some(uin) = known() {
            return Ok(uin);
        }
        let _turn = self.uin_turn.lock().await;
        if !fresh && let Some(uin) = known() {
            return Ok(uin);
        }
        let what = provider.describe().to_string();
        let creds = provider
            .credentials()
            .await
            .map_err(|error| AccessError::Source {
                what: what.clone(),
                error: Box::new(error),
            })?;
        let request = sts::GetCallerIdentityRequest::default();
        let reply = self
            .cloud
            .call::<sts::GetCallerIdentity>(&creds, sts::DEFAULT_REGION, &request)
            .await;
        let uin = match reply {
            Ok(r) => r.body.account_id.filter(|a| !a.is_empty()),
            Err(error) => {
                if error.class() == ErrorClass::Auth {
                    provider.invalidate(&creds);
                }
                let error = Box::new(error);
                return Err(AccessError::Verify { what, error });
            }
        };
        let uin = uin.ok_or_else(|| AccessError::Source {
            what,
            error: Box::new(CredentialError::Malformed {
                what: "GetCallerIdentity".into(),
                missing: "AccountId",
            }),
        })?;
        lock(&self.uins).insert(provider.identity().clone(), uin.clone());
        Ok(uin)
    }

    /// A namespace's labels (cached briefly: an admin's relabelling takes
    /// effect within seconds).
    async fn namespace_labels(&self, ns: &str) -> Result<BTreeMap<String, String>, AccessError> {
        if let Some((at, labels)) = lock(&self.namespaces).get(ns)
            && at.elapsed() < NAMESPACE_TTL
        {
            return Ok(labels.clone());
        }
        let api: Api<Namespace> = Api::all(self.kube.clone());
        let labels = api
            .get(ns)
            .await
            .map_err(|e| AccessError::Namespace {
                namespace: ns.into(),
                message: e.to_string(),
            })?
            .metadata
            .labels
            .unwrap_or_default();
        let mut cache = lock(&self.namespaces);
        cache.retain(|_, (at, _)| at.elapsed() < NAMESPACE_TTL);
        cache.insert(ns.to_string(), (Instant::now(), labels.clone()));
        Ok(labels)
    }

    /// Remembers what worked for resource `uid` (used to clean up when its
    /// Secret or account is gone by the time it is deleted).
    pub fn remember(&self, uid: &str, access: &Access) {
        lock(&self.remembered).insert(uid, access);
    }

    pub fn remembered(&self, uid: &str) -> Option<Access> {
        lock(&self.remembered)
            .by_uid
            .get(uid)
            .map(|a| (**a).clone())
    }

    pub fn forget(&self, uid: &str) {
        lock(&self.remembered).by_uid.remove(uid);
    }
}

/// The access that last worked per resource. Thousands of resources share
/// a few accounts, so they share one `Access` per account too (replaced
/// when the account's provider is rebuilt) rather than a copy of its
/// strings each: at 10,000 resources that was about 3 MB.
#[derive(Default)]
struct Remembered {
    by_uid: HashMap<Box<str>, Arc<Access>>,
    by_account: HashMap<AccountRecord, Arc<Access>>,
}

impl Remembered {
    fn insert(&mut self, uid: &str, access: &Access) {
        let shared = match self.by_account.get(&access.record) {
            Some(a) if a.provider.same_as(&access.provider) => a.clone(),
            _ => {
                let a = Arc::new(access.clone());
                self.by_account.insert(access.record.clone(), a.clone());
                a
            }
        };
        self.by_uid.insert(uid.into(), shared);
    }
}

/// An account whose `spec.uin` says where its credentials must act.
pub fn check_uin(account: &CvmAccount, uin: &str) -> Result<(), AccessError> {
    match account.spec.uin.as_deref() {
        Some(want) if want != uin => Err(AccessError::Refused(Refusal {
            reason: reason::CREDENTIALS_INVALID,
            message: format!(
                "CvmAccount {}: the credentials act in account {uin}, but spec.uin is {want}",
                account.name_any()
            ),
        })),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_one_account_share_one_remembered_access() {
        use crate::api::AccountKind;
        use crate::cloud::{CredentialProvider, Credentials};
        let provider = || CredentialProvider::fixed(Credentials::new("AKID", "key", None).unwrap());
        let record = |name: &str| AccountRecord {
            kind: AccountKind::CvmAccount,
            name: name.into(),
            uin: "100012345678".into(),
        };
        let (p, q) = (provider(), provider());
        let access = |p: &CredentialProvider, name: &str| Access {
            provider: p.clone(),
            record: record(name),
        };
        let mut r = Remembered::default();
        r.insert("u1", &access(&p, "default"));
        r.insert("u2", &access(&p, "default"));
        r.insert("u3", &access(&p, "other"));
        assert!(Arc::ptr_eq(&r.by_uid["u1"], &r.by_uid["u2"]));
        assert!(!Arc::ptr_eq(&r.by_uid["u1"], &r.by_uid["u3"]));
        assert_eq!(r.by_uid["u3"].record.name, "other");
        // The account's provider rebuilt: later resources get the new one,
        // earlier ones keep what worked for them.
        r.insert("u4", &access(&q, "default"));
        assert!(r.by_uid["u4"].provider.same_as(&q));
        assert!(r.by_uid["u1"].provider.same_as(&p));
        assert!(!p.same_as(&q));
    }

    #[test]
    fn reasons_and_fallbacks_by_kind_of_failure() {
        let refused = |r| {
            AccessError::Refused(Refusal {
                reason: r,
                message: "m".into(),
            })
        };
        let not_allowed = refused(reason::ACCOUNT_NOT_ALLOWED);
        assert_eq!(not_allowed.reason(), reason::ACCOUNT_NOT_ALLOWED);
        assert!(!not_allowed.allows_fallback(), "no cloud call when refused");
        assert!(!refused(reason::CREDENTIALS_ACCOUNT_CHANGED).allows_fallback());
        assert!(refused(reason::NO_ACCOUNT).allows_fallback());
        let rejected = AccessError::Verify {
            what: "static keys AKID…0000".into(),
            error: Box::new(CloudError::Api {
                action: "GetCallerIdentity".into(),
                code: "AuthFailure.SignatureFailure".into(),
                message: "bad signature".into(),
                request_id: "r".into(),
            }),
        };
        assert_eq!(rejected.reason(), reason::CREDENTIALS_REJECTED);
        assert!(rejected.allows_fallback());
        let skewed = AccessError::Verify {
            what: "static keys AKID…0000".into(),
            error: Box::new(CloudError::ClockSkew {
                action: "GetCallerIdentity".into(),
                message: "expired".into(),
                request_id: "r".into(),
                skew_secs: Some(600),
            }),
        };
        assert_eq!(skewed.reason(), reason::CLOCK_SKEW, "not the keys' fault");
        let config = AccessError::Source {
            what: "CvmAccount a".into(),
            error: Box::new(CredentialError::Config("bad".into())),
        };
        assert_eq!(config.reason(), reason::CREDENTIALS_INVALID);
        let gone = AccessError::Secret(CredentialsError::Unavailable {
            what: "credentials Secret",
            namespace: "n".into(),
            name: "s".into(),
            needs: "SecretId and SecretKey".into(),
        });
        assert_eq!(gone.reason(), reason::CREDENTIALS_NOT_FOUND);
    }

    #[test]
    fn an_account_pinned_to_a_uin_refuses_credentials_acting_elsewhere() {
        let account: CvmAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmAccount",
            "metadata": {"name": "team-a"},
            "spec": {"credentials": {"source": "Environment"}, "uin": "100000000001"}
        }))
        .unwrap();
        assert!(check_uin(&account, "100000000001").is_ok());
        let err = check_uin(&account, "200000000002").unwrap_err();
        assert_eq!(err.reason(), reason::CREDENTIALS_INVALID);
        assert!(err.to_string().contains("spec.uin is 100000000001"));
    }
}
