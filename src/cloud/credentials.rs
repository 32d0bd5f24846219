//! API credentials. The key and token never leave this type except through
//! [`Secret::expose`], which only the signer path calls: `Debug` and `Display`
//! are redacted so a stray `{:?}` in a log line, an event or a panic message
//! cannot leak them.

use std::fmt;

/// Environment variables the official SDKs and tccli read.
pub const ENV_SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
pub const ENV_SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
pub const ENV_SESSION_TOKEN: &str = "TENCENTCLOUD_SESSION_TOKEN";

/// A string that is never printed.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for signing. Keep the call sites few and obvious.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// On the wire a secret is its plain value; serialising one also tells the
/// error scrubber what to look for (see [`super::scrub`]).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::scrub::note(self.expose());
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("environment variable {0} is not set (or empty)")]
    MissingEnv(&'static str),
    #[error("SecretId and SecretKey must both be non-empty")]
    Empty,
}

/// A SecretId/SecretKey pair, optionally with an STS session token (sent as
/// `X-TC-Token`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    secret_id: String,
    secret_key: Secret,
    token: Option<Secret>,
}

impl Credentials {
    pub fn new(
        secret_id: impl Into<String>,
        secret_key: impl Into<String>,
        token: Option<String>,
    ) -> Result<Self, CredentialsError> {
        let secret_id = secret_id.into().trim().to_string();
        let secret_key = secret_key.into().trim().to_string();
        if secret_id.is_empty() || secret_key.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Self {
            secret_id,
            secret_key: Secret(secret_key),
            token: token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Secret),
        })
    }

    /// Reads `TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY` and the optional
    /// `TENCENTCLOUD_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Same as [`from_env`](Self::from_env) over any lookup (testable).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |k: &'static str| lookup(k).filter(|v| !v.trim().is_empty());
        let id = get(ENV_SECRET_ID).ok_or(CredentialsError::MissingEnv(ENV_SECRET_ID))?;
        let key = get(ENV_SECRET_KEY).ok_or(CredentialsError::MissingEnv(ENV_SECRET_KEY))?;
        Self::new(id, key, get(ENV_SESSION_TOKEN))
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }
    pub fn secret_key(&self) -> &Secret {
        &self.secret_key
    }
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    /// The SecretId with its middle masked, for logs: `AKID…MPLE`.
    pub fn masked_id(&self) -> String {
        let id = &self.secret_id;
        if id.len() <= 8 || !id.is_ascii() {
            return "****".into();
        }
        format!("{}…{}", &id[..4], &id[id.len() - 4..])
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.masked_id())
            .field("secret_key", &self.secret_key)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credentials {}", self.masked_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    const TOKEN: &str = "sts-session-token-0123456789abcdef";

    #[test]
    fn debug_and_display_never_print_key_or_token() {
        let c = Credentials::new(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            KEY,
            Some(TOKEN.into()),
        )
        .unwrap();
        for rendered in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{c}"),
            format!("{:?}", c.secret_key()),
            format!("{}", c.secret_key()),
            format!("{:?}", Some(c.clone())),
        ] {
            assert!(!rendered.contains(KEY), "{rendered}");
            assert!(!rendered.contains(TOKEN), "{rendered}");
            assert!(
                !rendered.contains("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
                "{rendered}"
            );
        }
        assert!(format!("{c:?}").contains("AKID…MPLE"));
        assert_eq!(c.secret_key().expose(), KEY);
        assert_eq!(c.token().unwrap().expose(), TOKEN);
    }

    #[test]
    fn from_environment_names_of_the_official_tools() {
        let env = |k: &str| match k {
            ENV_SECRET_ID => Some("AKIDexample".to_string()),
            ENV_SECRET_KEY => Some("key".to_string()),
            ENV_SESSION_TOKEN => Some("tok".to_string()),
            _ => None,
        };
        let c = Credentials::from_lookup(env).unwrap();
        assert_eq!(c.secret_id(), "AKIDexample");
        assert_eq!(c.token().unwrap().expose(), "tok");

        let no_token = |k: &str| match k {
            ENV_SECRET_ID => Some("AKIDexample".to_string()),
            ENV_SECRET_KEY => Some("key".to_string()),
            _ => None,
        };
        assert!(
            Credentials::from_lookup(no_token)
                .unwrap()
                .token()
                .is_none()
        );
        assert_eq!(
            Credentials::from_lookup(|_| None).unwrap_err(),
            CredentialsError::MissingEnv(ENV_SECRET_ID)
        );
        assert_eq!(
            Credentials::new("id", " ", None).unwrap_err(),
            CredentialsError::Empty
        );
    }
}
