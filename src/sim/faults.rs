//! Fault injection, for reliability tests and benchmarks: injected error
//! codes, added latency, and lost responses (the action takes effect but the
//! caller never learns it).

use serde::{Deserialize, Serialize};

/// An error answered instead of executing the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFault {
    /// Only this action; all actions when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub code: String,
    /// Probability per matching request, 0..=1.
    pub rate: f64,
    /// Fire at most this many more times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum LostMode {
    /// Headers go out, then the connection is cut mid-body.
    #[default]
    Drop,
    /// A 502 from a "gateway" instead of the answer.
    ServerError,
    /// The answer is held back for `holdMs` (kill the caller meanwhile).
    Hang,
}

/// The action is executed, but its response is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LostFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub rate: f64,
    #[serde(default)]
    pub mode: LostMode,
    #[serde(default)]
    pub hold_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    #[serde(default)]
    pub errors: Vec<ErrorFault>,
    /// Added to every CVM request.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub lost: Vec<LostFault>,
}

fn applies(action: &Option<String>, name: &str) -> bool {
    action.as_deref().is_none_or(|a| a == name)
}

fn fire(rate: f64, remaining: &mut Option<u32>) -> bool {
    if remaining == &Some(0) || !(rate > 0.0 && fastrand::f64() < rate) {
        return false;
    }
    if let Some(n) = remaining {
        *n -= 1;
    }
    true
}

impl Faults {
    /// The code to answer with instead of executing `action`, if one fires.
    pub fn pick_error(&mut self, action: &str) -> Option<String> {
        self.errors
            .iter_mut()
            .filter(|f| applies(&f.action, action))
            .find_map(|f| fire(f.rate, &mut f.remaining).then(|| f.code.clone()))
    }

    /// Whether (and how) to lose the response of `action`.
    pub fn pick_lost(&mut self, action: &str) -> Option<(LostMode, u64)> {
        self.lost
            .iter_mut()
            .filter(|f| applies(&f.action, action))
            .find_map(|f| fire(f.rate, &mut f.remaining).then_some((f.mode, f.hold_ms)))
    }

    /// `[Action:]Code=RATE` (the `--fault-error` flag).
    pub fn parse_error(spec: &str) -> Result<ErrorFault, String> {
        let (lhs, rate) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("`{spec}`: expected [Action:]Code=RATE"))?;
        let (action, code) = match lhs.split_once(':') {
            Some((a, c)) => (Some(a.to_string()), c.to_string()),
            None => (None, lhs.to_string()),
        };
        Ok(ErrorFault {
            action,
            code,
            rate: parse_rate(spec, rate)?,
            remaining: None,
        })
    }

    /// `[Action=]RATE` (the `--fault-lost` flag).
    pub fn parse_lost(spec: &str, mode: LostMode, hold_ms: u64) -> Result<LostFault, String> {
        let (action, rate) = match spec.split_once('=') {
            Some((a, r)) => (Some(a.to_string()), r),
            None => (None, spec),
        };
        Ok(LostFault {
            action,
            rate: parse_rate(spec, rate)?,
            mode,
            hold_ms,
            remaining: None,
        })
    }
}

fn parse_rate(spec: &str, rate: &str) -> Result<f64, String> {
    rate.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("`{spec}`: RATE must be a number in [0, 1]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_fire() {
        let mut f = Faults {
            errors: vec![Faults::parse_error("RunInstances:InternalError=1").unwrap()],
            lost: vec![LostFault {
                remaining: Some(1),
                ..Faults::parse_lost("StopInstances=1.0", LostMode::ServerError, 0).unwrap()
            }],
            latency_ms: 0,
        };
        assert_eq!(
            f.pick_error("RunInstances").as_deref(),
            Some("InternalError")
        );
        assert_eq!(f.pick_error("StopInstances"), None);
        assert_eq!(
            f.pick_lost("StopInstances"),
            Some((LostMode::ServerError, 0))
        );
        assert_eq!(f.pick_lost("StopInstances"), None, "remaining=1 fires once");
        assert!(Faults::parse_error("InternalError").is_err());
        assert!(Faults::parse_error("InternalError=2").is_err());
        let all = Faults::parse_error("RequestLimitExceeded=0.5").unwrap();
        assert_eq!(all.action, None);
    }
}
