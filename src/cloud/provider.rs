//! One abstraction over every way of obtaining credentials: static keys, an
//! STS role (AssumeRole), a web identity (TKE workload identity) and the CVM
//! instance role. A [`CredentialProvider`] hands out the current
//! [`Credentials`], cached and refreshed ahead of expiry; concurrent callers
//! share one refresh; a failed refresh keeps the old credentials while they
//! are still valid. Its [`Identity`] names who the credentials act as and is
//! what caches and shared observations must be keyed on, never the bare
//! SecretId (which travels in every Authorization header and proves nothing).

use super::credentials::Credentials;
use super::error::{CloudError, ErrorClass};
use super::sources::Source;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Who a provider's credentials act as: a keyed hash over what decides it
/// (static keys: the SecretId and the SecretKey; AssumeRole: the role ARN,
/// the ExternalId and the identity of its source; web identity: the provider
/// id, role ARN and token file; instance role: the metadata endpoint and
/// role). It does not change when temporary credentials are refreshed, and
/// nobody who only knows a SecretId can produce the identity of its owner's
/// keys.
///
/// The hash key is drawn at random once per process: an identity is for
/// keying in-memory state, and is worthless to anyone who reads it in a log
/// (it is not an offline-checkable checksum of key material). Do not persist
/// it; record the account's name instead.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(Arc<str>);

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        // Two v4 UUIDs: 244 bits from the operating system's generator.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

impl Identity {
    /// A keyed hash of `kind` and `parts`, each length-prefixed so no two
    /// different lists of parts hash alike.
    pub(crate) fn derive(kind: &str, parts: &[&str]) -> Identity {
        let mut mac = Hmac::<Sha256>::new_from_slice(process_key()).expect("any key length");
        for p in std::iter::once(&kind).chain(parts) {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        Identity(hex::encode(mac.finalize().into_bytes()).into())
    }

    /// The identity of a static key pair.
    pub fn of_static(creds: &Credentials) -> Identity {
        Identity::derive("static", &[creds.secret_id(), creds.secret_key().expose()])
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}…)", &self.0[..12])
    }
}

/// Why no credentials could be had. Texts name the source (role ARN, file,
/// endpoint) and never a key or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    #[error("invalid credential source: {0}")]
    Config(String),
    #[error("environment variable {0} is not set (or empty)")]
    MissingEnv(&'static str),
    #[error("{what}: {error}")]
    Sts { what: String, error: CloudError },
    #[error("{what}: the answer has no {missing}")]
    Malformed { what: String, missing: &'static str },
    #[error("web identity token file {path}: {message}")]
    TokenFile { path: String, message: String },
    #[error("instance metadata: {message}")]
    Metadata { message: String, transient: bool },
    #[error("{what}: its source credentials: {error}")]
    Source {
        what: String,
        error: Box<CredentialError>,
    },
}

impl CredentialError {
    /// Whether trying again can help, in the client's vocabulary.
    pub fn class(&self) -> ErrorClass {
        match self {
            CredentialError::Config(_) | CredentialError::MissingEnv(_) => ErrorClass::Permanent,
            CredentialError::Sts { error, .. } => error.class(),
            CredentialError::Malformed { .. } | CredentialError::TokenFile { .. } => {
                ErrorClass::Transient
            }
            CredentialError::Metadata { transient, .. } => {
                if *transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Auth
                }
            }
            CredentialError::Source { error, .. } => error.class(),
        }
    }
}

/// When to refresh temporary credentials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshPolicy {
    /// Refresh at most this long before expiry (the SDKs' 300 s for the
    /// instance role, which also covers the 300 s timestamp window)…
    pub max_ahead: Duration,
    /// …or after this share of the lifetime is left, when that is sooner to
    /// expiry (short-lived credentials).
    pub ahead_share: f64,
    /// After a failed refresh, the old credentials serve this long (at most
    /// a quarter of what is left of them) before the next try.
    pub retry_after: Duration,
    /// Credentials are not handed out in their last stretch (at most this,
    /// at most a tenth of their lifetime): a request signed then would reach
    /// the service after they expired.
    pub safety: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            max_ahead: Duration::from_secs(300),
            ahead_share: 0.2,
            retry_after: Duration::from_secs(5),
            safety: Duration::from_secs(2),
        }
    }
}

/// Credentials with their validity.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) creds: Credentials,
    pub(crate) obtained: SystemTime,
    /// `None`: never expires.
    pub(crate) expires: Option<SystemTime>,
}

impl Lease {
    fn lifetime(&self) -> Duration {
        self.expires
            .and_then(|e| e.duration_since(self.obtained).ok())
            .unwrap_or_default()
    }

    /// From when a refresh is due.
    pub(crate) fn refresh_at(&self, p: &RefreshPolicy) -> Option<SystemTime> {
        let ahead = p.max_ahead.min(self.lifetime().mul_f64(p.ahead_share));
        self.expires.map(|e| e - ahead)
    }

    /// Until when the credentials may be handed out.
    pub(crate) fn usable_until(&self, p: &RefreshPolicy) -> Option<SystemTime> {
        let margin = p.safety.min(self.lifetime() / 10);
        self.expires.map(|e| e - margin)
    }

    fn fresh(&self, now: SystemTime, p: &RefreshPolicy) -> bool {
        self.refresh_at(p).is_none_or(|t| now < t)
    }

    fn usable(&self, now: SystemTime, p: &RefreshPolicy) -> bool {
        self.usable_until(p).is_none_or(|t| now < t)
    }
}

#[derive(Default)]
struct State {
    lease: Option<Lease>,
    /// The last refresh attempt's failure, cleared by a success.
    failure: Option<(SystemTime, CredentialError)>,
    /// Refresh attempts so far: a caller that waited for someone else's
    /// attempt takes its outcome instead of trying again at once.
    attempts: u64,
}

struct Inner {
    identity: Identity,
    label: String,
    source: Source,
    policy: RefreshPolicy,
    state: Mutex<State>,
    refreshing: tokio::sync::Mutex<()>,
}

/// A source of credentials. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CredentialProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("source", &self.inner.label)
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

impl CredentialProvider {
    pub(crate) fn from_source(source: Source, policy: RefreshPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity: source.identity(),
                label: source.label(),
                source,
                policy,
                state: Mutex::new(State::default()),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A provider of fixed keys (from a Secret or the environment).
    pub fn fixed(creds: Credentials) -> Self {
        Self::from_source(Source::Static(creds), RefreshPolicy::default())
    }

    /// The same source with another refresh policy (and a cache of its own).
    pub fn with_policy(&self, policy: RefreshPolicy) -> Self {
        Self::from_source(self.inner.source.clone(), policy)
    }

    /// The same provider (one source, one cache), not merely the same
    /// identity.
    pub fn same_as(&self, other: &CredentialProvider) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// What the credentials come from, for logs and messages: the kind, the
    /// role ARN or the masked SecretId; never a key or token.
    pub fn describe(&self) -> &str {
        &self.inner.label
    }

    /// Until when the credentials handed out now stay valid (`None`: static,
    /// or none obtained yet).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.state().lease.as_ref().and_then(|l| l.expires)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The service refused `creds` (an expired or revoked token): the next
    /// call fetches new ones instead of handing these out again.
    pub fn invalidate(&self, creds: &Credentials) {
        let mut st = self.state();
        if st
            .lease
            .as_ref()
            .is_some_and(|l| l.creds.secret_id() == creds.secret_id())
        {
            st.lease = None;
        }
    }

    /// The current credentials, refreshed when due.
    pub async fn credentials(&self) -> Result<Credentials, CredentialError> {
        if let Source::Static(c) = &self.inner.source {
            return Ok(c.clone());
        }
        let policy = &self.inner.policy;
        let seen = {
            let st = self.state();
            if let Some(l) = st
                .lease
                .as_ref()
                .filter(|l| l.fresh(SystemTime::now(), policy))
            {
                return Ok(l.creds.clone());
            }
            st.attempts
        };
        // Due. While someone else refreshes, usable credentials are served
        // without waiting; only callers with nothing usable wait.
        let _turn = match self.inner.refreshing.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                if let Some(c) = self.usable() {
                    return Ok(c);
                }
                self.inner.refreshing.lock().await
            }
        };
        {
            let st = self.state();
            let now = SystemTime::now();
            if let Some(l) = st.lease.as_ref().filter(|l| l.fresh(now, policy)) {
                return Ok(l.creds.clone());
            }
            let usable = st.lease.as_ref().filter(|l| l.usable(now, policy));
            if st.attempts != seen {
                // Someone refreshed while we waited: take their outcome.
                match (usable, &st.failure) {
                    (Some(l), _) => return Ok(l.creds.clone()),
                    (None, Some((_, e))) => return Err(e.clone()),
                    (None, None) => {}
                }
            }
            if let (Some(l), Some((at, _))) = (usable, &st.failure)
                && now < *at + self.retry_delay(l, now)
            {
                return Ok(l.creds.clone());
            }
        }
        let result = self.inner.source.fetch().await;
        self.settle(result)
    }

    /// Credentials that may still be handed out, fresh or not.
    fn usable(&self) -> Option<Credentials> {
        let st = self.state();
        st.lease
            .as_ref()
            .filter(|l| l.usable(SystemTime::now(), &self.inner.policy))
            .map(|l| l.creds.clone())
    }

    /// How long to keep serving `lease` after a failed refresh.
    fn retry_delay(&self, lease: &Lease, now: SystemTime) -> Duration {
        let left = lease
            .usable_until(&self.inner.policy)
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or_default();
        self.inner.policy.retry_after.min(left / 4)
    }

    /// Records a refresh's outcome and answers the caller that made it.
    fn settle(
        &self,
        result: Result<Lease, CredentialError>,
    ) -> Result<Credentials, CredentialError> {
        let mut st = self.state();
        st.attempts += 1;
        let now = SystemTime::now();
        match result {
            Ok(lease) => {
                tracing::debug!(
                    source = %self.inner.label,
                    secret_id = %lease.creds.masked_id(),
                    valid_for = ?lease.expires.and_then(|e| e.duration_since(now).ok()),
                    "credentials refreshed"
                );
                let creds = lease.creds.clone();
                st.lease = Some(lease);
                st.failure = None;
                Ok(creds)
            }
            Err(e) => {
                st.failure = Some((now, e.clone()));
                match st
                    .lease
                    .as_ref()
                    .filter(|l| l.usable(now, &self.inner.policy))
                {
                    Some(l) => {
                        tracing::warn!(
                            source = %self.inner.label,
                            error = %e,
                            "credential refresh failed; the current credentials serve until they expire"
                        );
                        Ok(l.creds.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(life_secs: u64) -> Lease {
        let obtained = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        Lease {
            creds: Credentials::new("AKIDtmp0000000000", "k", Some("t".into())).unwrap(),
            obtained,
            expires: Some(obtained + Duration::from_secs(life_secs)),
        }
    }

    #[test]
    fn refresh_is_due_ahead_of_expiry() {
        let p = RefreshPolicy::default();
        // Two hours: 300 s ahead, like the SDKs.
        let l = lease(7200);
        let exp = l.expires.unwrap();
        assert_eq!(l.refresh_at(&p), Some(exp - Duration::from_secs(300)));
        assert_eq!(l.usable_until(&p), Some(exp - Duration::from_secs(2)));
        assert!(l.fresh(exp - Duration::from_secs(301), &p));
        assert!(!l.fresh(exp - Duration::from_secs(299), &p));
        assert!(l.usable(exp - Duration::from_secs(3), &p));
        assert!(!l.usable(exp - Duration::from_secs(1), &p));
        // Ten seconds: a fifth ahead, a tenth of safety.
        let short = lease(10);
        let exp = short.expires.unwrap();
        assert_eq!(short.refresh_at(&p), Some(exp - Duration::from_secs(2)));
        assert_eq!(short.usable_until(&p), Some(exp - Duration::from_secs(1)));
        // Static keys never expire.
        let forever = Lease {
            expires: None,
            ..lease(1)
        };
        assert!(forever.fresh(SystemTime::now(), &p));
        assert!(forever.usable(SystemTime::now(), &p));
    }

    #[test]
    fn identities_are_stable_distinct_and_unforgeable_from_a_secret_id() {
        let a = Credentials::new("AKIDvictim000000", "right-key", None).unwrap();
        let same = Credentials::new("AKIDvictim000000", "right-key", Some("tok".into())).unwrap();
        let forged = Credentials::new("AKIDvictim000000", "wrong-key", None).unwrap();
        assert_eq!(Identity::of_static(&a), Identity::of_static(&same));
        assert_ne!(Identity::of_static(&a), Identity::of_static(&forged));
        assert_eq!(Identity::of_static(&a).as_str().len(), 64);
        assert!(!Identity::of_static(&a).as_str().contains("AKID"));
        // Length prefixes: moving a boundary changes the identity.
        assert_ne!(
            Identity::derive("k", &["ab", "c"]),
            Identity::derive("k", &["a", "bc"])
        );
        assert_ne!(Identity::derive("x", &["a"]), Identity::derive("y", &["a"]));
        let p = CredentialProvider::fixed(a.clone());
        assert_eq!(p.identity(), &Identity::of_static(&a));
        let shown = format!("{p:?} {}", p.describe());
        assert!(!shown.contains("right-key"), "{shown}");
        assert!(!shown.contains("AKIDvictim000000"), "{shown}");
    }

    #[tokio::test]
    async fn static_keys_are_served_as_they_are() {
        let c = Credentials::new("AKIDstatic000000", "key", None).unwrap();
        let p = CredentialProvider::fixed(c.clone());
        assert_eq!(p.credentials().await.unwrap(), c);
        p.invalidate(&c);
        assert_eq!(p.credentials().await.unwrap(), c);
        assert_eq!(p.expires_at(), None);
    }
}
