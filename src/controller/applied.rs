//! What was applied of the values the API never shows back — user data and
//! the login password — so a change of them (a new `userData`, a rotated
//! Secret) is seen: each is kept in `status.applied` as a salted, slow hash
//! (PBKDF2-HMAC-SHA256, a random salt per value), never as the value.
//!
//! A status readable by tenants must not help anyone guess a password, so
//! the hash is slow; it is computed once per value and salt in a process
//! (a memo keyed by a keyed hash, in memory only), so a reconcile costs a
//! lookup.

use super::observation::{Compared, WriteOnly};
use crate::api::AppliedValues;
use crate::cloud::model::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// PBKDF2 rounds: about a millisecond in a release build.
const ROUNDS: u32 = 20_000;
const SCHEME: &str = "pbkdf2-sha256";
/// Memo entries kept (one per resource and value is plenty).
const MEMO_MAX: usize = 16_384;

/// Computes and checks fingerprints. One per process.
#[derive(Default)]
pub struct Fingerprints {
    memo: Mutex<HashMap<[u8; 32], String>>,
}

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

/// PBKDF2-HMAC-SHA256 with one output block (32 bytes).
fn pbkdf2(value: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let prf = Hmac::<Sha256>::new_from_slice(value).expect("any key length");
    let mut mac = prf.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut mac = prf.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

impl Fingerprints {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new fingerprint of `value`, with a fresh salt.
    pub fn of(&self, value: &Secret) -> String {
        let salt = *uuid::Uuid::new_v4().as_bytes();
        self.with_salt(value, &salt)
    }

    fn with_salt(&self, value: &Secret, salt: &[u8]) -> String {
        let mut key = Hmac::<Sha256>::new_from_slice(process_key()).expect("any key length");
        key.update(&(salt.len() as u64).to_be_bytes());
        key.update(salt);
        key.update(value.expose().as_bytes());
        let key: [u8; 32] = key.finalize().into_bytes().into();
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = memo.get(&key) {
            return f.clone();
        }
        let hash = pbkdf2(value.expose().as_bytes(), salt, ROUNDS);
        let f = format!(
            "{SCHEME}${ROUNDS}${}${}",
            hex::encode(salt),
            hex::encode(hash)
        );
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(key, f.clone());
        f
    }

    /// Whether `value` is the one `fingerprint` was made of.
    pub fn matches(&self, fingerprint: &str, value: &Secret) -> bool {
        let mut parts = fingerprint.split('$');
        let (Some(SCHEME), Some(rounds), Some(salt), Some(_), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let Ok(salt) = hex::decode(salt) else {
            return false;
        };
        // Only our own rounds: a status edited to cheap rounds proves nothing.
        rounds == ROUNDS.to_string() && self.with_salt(value, &salt) == fingerprint
    }

    /// How `want` compares with what `recorded` says was applied.
    pub fn compare(&self, recorded: Option<&str>, want: Option<&Secret>) -> Compared {
        match (want, recorded) {
            (None, _) => Compared::Unset,
            (Some(_), None) => Compared::Unrecorded,
            (Some(v), Some(f)) if self.matches(f, v) => Compared::Same,
            (Some(_), Some(_)) => Compared::Changed,
        }
    }

    /// Both values compared with `status.applied`.
    pub fn write_only(
        &self,
        applied: Option<&AppliedValues>,
        user_data: Option<&Secret>,
        password: Option<&Secret>,
    ) -> WriteOnly {
        WriteOnly {
            user_data: self.compare(applied.and_then(|a| a.user_data.as_deref()), user_data),
            password: self.compare(applied.and_then(|a| a.password.as_deref()), password),
        }
    }

    /// `status.applied` taking as applied the values nothing was recorded
    /// for (an adopted instance, or one created by an older version), when
    /// there are any.
    pub fn baseline(
        &self,
        recorded: Option<&AppliedValues>,
        w: WriteOnly,
        user_data: Option<&Secret>,
        password: Option<&Secret>,
    ) -> Option<AppliedValues> {
        let u = user_data.filter(|_| w.user_data == Compared::Unrecorded);
        let p = password.filter(|_| w.password == Compared::Unrecorded);
        (u.is_some() || p.is_some()).then(|| self.record(recorded, u, p))
    }

    /// `status.applied` after the values in `sent` were applied: new
    /// fingerprints for them, the recorded ones kept for the others (a
    /// value still matching keeps its fingerprint, so the status does not
    /// change for nothing).
    pub fn record(
        &self,
        recorded: Option<&AppliedValues>,
        user_data: Option<&Secret>,
        password: Option<&Secret>,
    ) -> AppliedValues {
        let keep = |old: Option<&String>, new: Option<&Secret>| match (old, new) {
            (old, None) => old.cloned(),
            (Some(f), Some(v)) if self.matches(f, v) => Some(f.clone()),
            (_, Some(v)) => Some(self.of(v)),
        };
        AppliedValues {
            user_data: keep(recorded.and_then(|a| a.user_data.as_ref()), user_data),
            password: keep(recorded.and_then(|a| a.password.as_ref()), password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", c=1, dkLen=64),
        // first block.
        let got = pbkdf2(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(got),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        // RFC 7914 §11, c=80000 ("Password", "NaCl"), first block.
        let got = pbkdf2(b"Password", b"NaCl", 80_000);
        assert_eq!(
            hex::encode(got),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        );
    }

    #[test]
    fn fingerprints_are_salted_never_the_value_and_compare() {
        let f = Fingerprints::new();
        let pw = Secret::new("Sup3r-Secret-Passw0rd!");
        let a = f.of(&pw);
        let b = f.of(&pw);
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("Sup3r") && a.starts_with("pbkdf2-sha256$20000$"));
        assert!(a.len() <= 128, "{a}");
        assert!(f.matches(&a, &pw) && f.matches(&b, &pw));
        assert!(!f.matches(&a, &Secret::new("other")));
        // A forged, cheaper scheme is never taken as a match.
        let cheap = a.replacen("$20000$", "$1$", 1);
        assert!(!f.matches(&cheap, &pw));
        assert!(!f.matches("garbage", &pw));
        assert_eq!(f.compare(Some(&a), Some(&pw)), Compared::Same);
        assert_eq!(
            f.compare(Some(&a), Some(&Secret::new("rotated"))),
            Compared::Changed
        );
        assert_eq!(f.compare(None, Some(&pw)), Compared::Unrecorded);
        assert_eq!(f.compare(Some(&a), None), Compared::Unset);
    }

    #[test]
    fn recording_keeps_what_still_matches() {
        let f = Fingerprints::new();
        let (ud, pw) = (Secret::new("IyEvYmluL3NoCg=="), Secret::new("pw-1"));
        let first = f.record(None, Some(&ud), Some(&pw));
        let again = f.record(Some(&first), Some(&ud), Some(&pw));
        assert_eq!(first, again, "unchanged values keep their fingerprint");
        // Nothing recorded for the password yet: taken as applied.
        let half = AppliedValues {
            password: None,
            ..first.clone()
        };
        let w = f.write_only(Some(&half), Some(&ud), Some(&pw));
        assert_eq!(w.password, Compared::Unrecorded);
        let base = f.baseline(Some(&half), w, Some(&ud), Some(&pw)).unwrap();
        assert_eq!(base.user_data, first.user_data);
        assert!(f.matches(base.password.as_deref().unwrap(), &pw));
        let w = f.write_only(Some(&first), Some(&ud), Some(&pw));
        assert_eq!(f.baseline(Some(&first), w, Some(&ud), Some(&pw)), None);
        let rotated = f.record(Some(&first), None, Some(&Secret::new("pw-2")));
        assert_eq!(rotated.user_data, first.user_data);
        assert_ne!(rotated.password, first.password);
        let w = f.write_only(Some(&rotated), Some(&ud), Some(&pw));
        assert_eq!(
            w,
            WriteOnly {
                user_data: Compared::Same,
                password: Compared::Changed
            }
        );
    }
}
