//! Removing secret values from error texts.
//!
//! A cloud error message ends up in events and status, where every tenant of
//! the namespace can read it. Services sometimes echo what they were sent
//! ("the password `…` does not meet …"), so whatever secret went into a
//! request — a password, user data, a session token, a key — is cut out of
//! the error before anyone sees it. The values are learnt while the request
//! is serialised: every [`Secret`](super::Secret) field reports itself to
//! [`collecting`], so a new secret field in a request type is covered
//! without anyone remembering to list it.

use base64::Engine as _;
use std::cell::RefCell;

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not looked for: no password, key, token or
/// meaningful user data is that short, and cutting every "ab" out of a
/// message would make it unreadable without protecting anything.
const MIN_LEN: usize = 4;

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f` (a serialisation) and returns what it produced plus every secret
/// value serialised meanwhile on this thread.
pub fn collecting<T>(f: impl FnOnce() -> T) -> (T, SecretValues) {
    let outer = COLLECTOR.replace(Some(Vec::new()));
    let out = f();
    let seen = COLLECTOR.replace(outer).unwrap_or_default();
    let mut values = SecretValues::default();
    for v in seen {
        values.add(&v);
    }
    (out, values)
}

/// Called by `Secret`'s `Serialize`.
pub(crate) fn note(value: &str) {
    COLLECTOR.with_borrow_mut(|c| {
        if let Some(seen) = c {
            seen.push(value.to_string());
        }
    });
}

/// The secret values of one request, in every form a service might echo.
#[derive(Default, Clone)]
pub struct SecretValues(Vec<String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValues({} redacted)", self.0.len())
    }
}

impl SecretValues {
    /// Adds a value, its JSON-escaped form (a message may quote the raw
    /// request) and, for base64 such as user data, the decoded text.
    pub fn add(&mut self, value: &str) {
        let mut push = |v: String| {
            if v.len() >= MIN_LEN && !self.0.contains(&v) {
                self.0.push(v);
            }
        };
        push(value.to_string());
        let escaped = serde_json::to_string(value).unwrap_or_default();
        push(escaped[1..escaped.len() - 1].to_string());
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value.trim())
            && let Ok(text) = String::from_utf8(bytes)
        {
            push(text.trim().to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every known value replaced by [`REDACTED`]. Longer values
    /// first, so a value containing another is removed whole.
    pub fn scrub(&self, text: &str) -> String {
        let mut values: Vec<&String> = self.0.iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for v in values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Secret;

    #[derive(serde::Serialize)]
    struct Req {
        name: String,
        password: Secret,
        user_data: Option<Secret>,
    }

    #[test]
    fn secrets_serialised_in_a_request_are_collected_and_scrubbed() {
        let user_data = base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho hunter2");
        let req = Req {
            name: "web-1".into(),
            password: Secret::new("Pa\"ss-w0rd!"),
            user_data: Some(Secret::new(user_data.clone())),
        };
        let (json, secrets) = collecting(|| serde_json::to_string(&req).unwrap());
        assert!(json.contains("web-1"));
        let message = format!(
            "The password `Pa\"ss-w0rd!` is too weak; raw request {json}; user data `{user_data}` decodes to `#!/bin/sh\necho hunter2`; instance web-1"
        );
        let clean = secrets.scrub(&message);
        for leaked in [
            "Pa\"ss-w0rd!",
            "Pa\\\"ss-w0rd!",
            user_data.as_str(),
            "echo hunter2",
        ] {
            assert!(!clean.contains(leaked), "{leaked} in {clean}");
        }
        assert!(clean.contains("instance web-1"), "{clean}");
        assert!(clean.contains(REDACTED));
        // Outside `collecting`, serialising records nothing (and costs nothing).
        let (_, none) = collecting(|| ());
        let _ = serde_json::to_string(&req).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn short_values_are_not_looked_for_and_longer_ones_win() {
        let mut s = SecretValues::default();
        s.add("ab");
        s.add("token-1");
        s.add("token-12345");
        assert_eq!(
            s.scrub("ab token-12345 token-1"),
            "ab <redacted> <redacted>"
        );
        assert!(!format!("{s:?}").contains("token"));
    }
}
