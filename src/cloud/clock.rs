//! The clock requests are signed with, and its correction.
//!
//! The API refuses a request whose `X-TC-Timestamp` is more than 300 s from
//! its own time (`AuthFailure.SignatureExpire`), so a node whose clock drifted
//! fails every call while its credentials are perfectly good. The answer's
//! `Date` header says what the API's time is; the difference is the node's
//! skew, which errors report (it is the fact a person needs).
//!
//! With correction on (the default), the client also adopts that difference
//! as an offset for the timestamps it signs, and resends the refused request
//! once. The official SDKs do not; AWS's SDKs do, for the same reason: a VM
//! manager that stops working because NTP broke helps nobody, and the offset
//! takes nothing from the signature's protection — the window still bounds a
//! replay, and the server's time is what it is measured against. The `Date`
//! comes from the endpoint over TLS; a wrong one can only make requests fail,
//! which they did anyway. The offset is re-measured whenever the API refuses
//! a timestamp again (the node's clock was fixed, or drifted further).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The error code of a refused timestamp.
pub const SIGNATURE_EXPIRE: &str = "AuthFailure.SignatureExpire";

/// A correction smaller than this is not worth a resend: the `Date` header
/// has one-second resolution and the request took some time.
const TOLERANCE_SECS: i64 = 2;

/// The node's wall clock, in Unix seconds.
pub fn node_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The API's time minus the node's, from an HTTP `Date` header read at
/// `node_now` (positive: the node is behind).
pub fn skew_from_date(date: &str, node_now: i64) -> Option<i64> {
    let server = jiff::fmt::rfc2822::parse(date.trim()).ok()?.timestamp();
    Some(server.as_second() - node_now)
}

/// "612 s behind" / "75 s ahead of".
pub fn describe_skew(skew_secs: i64) -> String {
    if skew_secs >= 0 {
        format!("{skew_secs} s behind")
    } else {
        format!("{} s ahead of", -skew_secs)
    }
}

#[derive(Debug)]
pub struct SigningClock {
    offset: AtomicI64,
    correct: bool,
    /// The last skew logged (`i64::MIN`: none yet), so a node that stays
    /// off logs it once, not once per call.
    reported: AtomicI64,
}

impl SigningClock {
    /// `offset` seconds added to the node's clock; `correct`: adopt the
    /// API's time after a refused timestamp.
    pub fn new(offset: i64, correct: bool) -> Self {
        Self {
            offset: AtomicI64::new(offset),
            correct,
            reported: AtomicI64::new(i64::MIN),
        }
    }

    /// The timestamp to sign with.
    pub fn now(&self) -> i64 {
        node_now() + self.offset()
    }

    /// Seconds currently added to the node's clock.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// After a refused timestamp with the node's `skew` measured: logs it
    /// (once per new value) and, when correcting, adopts it as the offset.
    /// True when the refused request is worth sending again.
    pub fn adopt(&self, skew: i64) -> bool {
        let reported = self.reported.swap(skew, Ordering::Relaxed);
        let news = reported == i64::MIN || (reported - skew).abs() >= TOLERANCE_SECS;
        let off = describe_skew(skew);
        if !self.correct {
            if news {
                tracing::error!(
                    skew_secs = skew,
                    "the node's clock is {off} the CVM API's (the Date header of an {SIGNATURE_EXPIRE} answer): every call fails until the node's time is fixed (NTP); clock-skew correction is off"
                );
            }
            return false;
        }
        let previous = self.offset.swap(skew, Ordering::Relaxed);
        if (previous - skew).abs() < TOLERANCE_SECS {
            return false;
        }
        tracing::warn!(
            skew_secs = skew,
            previous_offset_secs = previous,
            "the node's clock is {off} the CVM API's (the Date header of an {SIGNATURE_EXPIRE} answer); signing with the API's time from now on — fix the node's time (NTP)"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_measured_from_an_http_date() {
        // Thu, 01 Jan 1970 00:10:00 GMT = 600.
        let date = "Thu, 01 Jan 1970 00:10:00 GMT";
        assert_eq!(skew_from_date(date, 0), Some(600));
        assert_eq!(skew_from_date(date, 700), Some(-100));
        assert_eq!(skew_from_date("yesterday", 0), None);
        assert_eq!(describe_skew(600), "600 s behind");
        assert_eq!(describe_skew(-100), "100 s ahead of");
    }

    #[test]
    fn a_correction_is_adopted_once_and_only_when_enabled() {
        let clock = SigningClock::new(0, true);
        assert!(clock.adopt(600), "a new offset is worth a resend");
        assert_eq!(clock.offset(), 600);
        assert!((clock.now() - node_now() - 600).abs() <= 1);
        assert!(!clock.adopt(601), "within the Date header's resolution");
        assert!(clock.adopt(0), "the node's clock was fixed");
        assert_eq!(clock.offset(), 0);
        let off = SigningClock::new(0, false);
        assert!(!off.adopt(600));
        assert_eq!(off.offset(), 0);
    }
}
