//! The Secret values the operator reads: keys (a resource's
//! `spec.credentialsSecretRef`, a `CvmAccount`'s `secretRef`), login
//! passwords and user data. Which credentials a resource uses is decided in
//! `accounts.rs`. Secrets are read on demand, by name (no cluster-wide
//! Secret watch; a read is reused for a few seconds, then dropped, and at
//! most 1024 are held).
//!
//! A Secret that is missing, lacks a key, holds unusable values or may not
//! be read (the chart grants `get` only in listed namespaces) is reported in
//! one text: a tenant learns nothing about Secrets from a CvmInstance. The
//! operator's log has the cause.

use super::status::reason;
use crate::api::SecretKeyRef;
use crate::cloud::{Credentials, Secret};
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const KEY_SECRET_ID: &str = "SecretId";
pub const KEY_SECRET_KEY: &str = "SecretKey";
pub const KEY_TOKEN: &str = "Token";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    /// The Secret does not exist, lacks a key, holds unusable values, or the
    /// operator may not read it: one text and one reason for all, so that a
    /// resource's status and events tell a tenant nothing about a Secret
    /// they cannot read themselves. The cause goes to the operator's log.
    #[error("{what} {namespace}/{name} is missing, unreadable or incomplete (needs {needs})")]
    Unavailable {
        /// "credentials Secret", or "Secret" for a password or user data.
        what: &'static str,
        namespace: String,
        name: String,
        /// "SecretId and SecretKey", or "key <key>".
        needs: String,
    },
    /// The apiserver did not answer (a transient failure, retried). Says
    /// nothing about the Secret.
    #[error("cannot ask the API server for Secret {namespace}/{name} now; retrying")]
    ApiUnavailable { namespace: String, name: String },
}

impl CredentialsError {
    /// The condition (and event) reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::Unavailable { .. } => reason::CREDENTIALS_NOT_FOUND,
            CredentialsError::ApiUnavailable { .. } => reason::CREDENTIALS_UNREADABLE,
        }
    }
}

/// The data of one Secret, or None when the operator cannot use it (absent,
/// forbidden): the two are not told apart beyond the log.
type SecretData = Option<BTreeMap<String, Secret>>;

/// Secrets read in the last few seconds, so a reconcile that needs a Secret
/// twice (keys, then the token) reads it once. Expired entries are removed
/// on every insert and the map never holds more than `capacity` Secrets:
/// Secret values do not outlive the TTL in memory, and a tenant creating
/// resources that name ever new Secrets cannot grow it.
struct SecretCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<(String, String), (Instant, SecretData)>,
}

impl SecretCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    fn get(&self, key: &(String, String), now: Instant) -> Option<SecretData> {
        let (at, data) = self.entries.get(key)?;
        (now.duration_since(*at) < self.ttl).then(|| data.clone())
    }

    fn insert(&mut self, key: (String, String), data: SecretData, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, (at, _)| now.duration_since(*at) < ttl);
        while self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.entries.insert(key, (now, data));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

pub struct CredentialStore {
    client: kube::Client,
    secrets: Mutex<SecretCache>,
}

/// How long a Secret read is reused, and how many are kept.
const SECRET_TTL: Duration = Duration::from_secs(10);
const SECRET_CACHE_CAPACITY: usize = 1024;

impl CredentialStore {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            secrets: Mutex::new(SecretCache::new(SECRET_TTL, SECRET_CACHE_CAPACITY)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SecretCache> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A Secret's data; None when it is absent or the operator may not read
    /// it (the cause is logged for the admin, never reported).
    /// Drops what was read of a Secret: the next use reads it afresh (the
    /// API refused the keys it held: they may have been replaced).
    pub fn forget_secret(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.cache().entries.remove(&key);
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<SecretData, CredentialsError> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(data) = self.cache().get(&key, Instant::now()) {
            return Ok(data);
        }
        let api: Api<K8sSecret> = Api::namespaced(self.client.clone(), namespace);
        let data = match api.get_opt(name).await {
            Ok(Some(s)) => Some(secret_data(s)),
            Ok(None) => {
                tracing::warn!(namespace, name, "Secret not found");
                None
            }
            Err(kube::Error::Api(e)) if e.code < 500 && e.code != 429 => {
                tracing::warn!(namespace, name, code = e.code, error = %e.message,
                    "Secret not readable (is its namespace in the chart's rbac.secretNamespaces?)");
                None
            }
            Err(e) => {
                tracing::warn!(namespace, name, error = %e, "cannot read Secret");
                return Err(CredentialsError::ApiUnavailable {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
        };
        self.cache().insert(key, data.clone(), Instant::now());
        Ok(data)
    }

    /// One value of a Secret in `namespace`.
    pub async fn secret_value(
        &self,
        namespace: &str,
        r: &SecretKeyRef,
    ) -> Result<Secret, CredentialsError> {
        let data = self.secret(namespace, &r.name).await?;
        value_from(namespace, r, data)
    }

    /// The keys in Secret `ns/name`: `SecretId`, `SecretKey`, optional `Token`.
    pub async fn secret_keys(&self, ns: &str, name: &str) -> Result<Credentials, CredentialsError> {
        let data = self.secret(ns, name).await?;
        credentials_from(ns, name, data)
    }
}

/// `r`'s value in a Secret's data (None: the Secret is absent or not readable).
fn value_from(ns: &str, r: &SecretKeyRef, data: SecretData) -> Result<Secret, CredentialsError> {
    let value = data.and_then(|mut d| d.remove(&r.key));
    value.ok_or_else(|| {
        tracing::warn!(namespace = ns, name = %r.name, key = %r.key, "Secret absent, not readable or without the key");
        CredentialsError::Unavailable {
            what: "Secret",
            namespace: ns.into(),
            name: r.name.clone(),
            needs: format!("key {}", r.key),
        }
    })
}

/// Keys from a credentials Secret's data: SecretId, SecretKey, optional Token.
fn credentials_from(
    ns: &str,
    name: &str,
    data: SecretData,
) -> Result<Credentials, CredentialsError> {
    let unavailable = |cause: &str| {
        tracing::warn!(namespace = ns, name, cause, "credentials Secret unusable");
        CredentialsError::Unavailable {
            what: "credentials Secret",
            namespace: ns.into(),
            name: name.into(),
            needs: format!("{KEY_SECRET_ID} and {KEY_SECRET_KEY}"),
        }
    };
    let data = data.ok_or_else(|| unavailable("absent or not readable"))?;
    let (Some(id), Some(key)) = (data.get(KEY_SECRET_ID), data.get(KEY_SECRET_KEY)) else {
        return Err(unavailable("a key is missing"));
    };
    let token = data.get(KEY_TOKEN).map(|t| t.expose().to_string());
    Credentials::new(id.expose(), key.expose(), token)
        .map_err(|e| unavailable(&format!("unusable values: {e}")))
}

/// The readable data of a Secret (binary values are left out: no key the
/// operator reads is binary).
fn secret_data(s: K8sSecret) -> BTreeMap<String, Secret> {
    let mut out = BTreeMap::new();
    for (k, v) in s.data.unwrap_or_default() {
        if let Ok(text) = String::from_utf8(v.0) {
            out.insert(k, Secret::new(text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn every_unusable_credentials_secret_reads_the_same() {
        let cases = [
            ("absent or forbidden", None),
            ("no SecretKey", data(&[("SecretId", "AKIDx")])),
            ("no SecretId", data(&[("SecretKey", "k")])),
            (
                "empty values",
                data(&[("SecretId", " "), ("SecretKey", "")]),
            ),
            ("other keys only", data(&[("password", "p")])),
        ];
        for (case, d) in cases {
            let e = credentials_from("team-b", "creds", d).unwrap_err();
            assert_eq!(
                e.to_string(),
                "credentials Secret team-b/creds is missing, unreadable or incomplete (needs SecretId and SecretKey)",
                "{case}"
            );
            assert_eq!(e.reason(), reason::CREDENTIALS_NOT_FOUND, "{case}");
        }
        let ok = credentials_from(
            "team-b",
            "creds",
            data(&[("SecretId", "AKIDx"), ("SecretKey", "k"), ("Token", "t")]),
        )
        .unwrap();
        assert_eq!(ok.secret_id(), "AKIDx");
    }

    #[test]
    fn a_missing_secret_and_a_missing_key_read_the_same() {
        let r = SecretKeyRef {
            name: "login".into(),
            key: "password".into(),
        };
        let texts: Vec<(String, &str)> = [None, data(&[("other", "x")])]
            .into_iter()
            .map(|d| {
                let e = value_from("team-b", &r, d).unwrap_err();
                (e.to_string(), e.reason())
            })
            .collect();
        assert_eq!(texts[0], texts[1]);
        assert_eq!(
            texts[0].0,
            "Secret team-b/login is missing, unreadable or incomplete (needs key password)"
        );
        let v = value_from("team-b", &r, data(&[("password", "p")])).unwrap();
        assert_eq!(v.expose(), "p");
    }

    #[test]
    fn secret_cache_drops_expired_entries_and_stays_bounded() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut cache = SecretCache::new(ttl, 3);
        let key = |n: &str| ("ns".to_string(), n.to_string());
        cache.insert(key("a"), data(&[("k", "1")]), t0);
        cache.insert(key("b"), None, t0 + Duration::from_secs(1));
        assert!(cache.get(&key("a"), t0 + Duration::from_secs(9)).is_some());
        assert_eq!(
            cache.get(&key("b"), t0 + Duration::from_secs(2)),
            Some(None)
        );
        // Past its TTL an entry is not served, and the next insert removes it.
        assert_eq!(cache.get(&key("a"), t0 + ttl), None);
        cache.insert(key("c"), None, t0 + ttl);
        assert_eq!(cache.len(), 2, "a expired and was removed");
        // Full of live entries: the oldest goes first, never more than the capacity.
        let mut cache = SecretCache::new(ttl, 3);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for (i, n) in ["p", "q", "r", "s", "t"].into_iter().enumerate() {
            cache.insert(key(n), None, at(i as u64));
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        for (n, kept) in [
            ("p", false),
            ("q", false),
            ("r", true),
            ("s", true),
            ("t", true),
        ] {
            assert_eq!(cache.get(&key(n), at(10)).is_some(), kept, "{n}");
        }
        // Everything expires: one insert later only the new entry is left.
        cache.insert(key("f"), None, at(10) + ttl);
        assert_eq!(cache.len(), 1);
    }
}
