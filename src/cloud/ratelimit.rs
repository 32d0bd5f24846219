//! Client-side rate limits per (account, region, action), so the operator
//! queues behind its own token buckets instead of burning requests on
//! `RequestLimitExceeded`. Defaults are the documented quotas (cvm-api.md §6).

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// Requests per second for each action; anything not listed uses
/// `default_rps`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    pub enabled: bool,
    pub default_rps: u32,
    pub per_action: HashMap<String, u32>,
}

/// The documented per-action quotas.
pub fn documented_quota(action: &str) -> Option<u32> {
    Some(match action {
        "DescribeInstances"
        | "DescribeInstancesStatus"
        | "DescribeInstanceTypeConfigs"
        | "DescribeZoneInstanceConfigInfos"
        | "DescribeImages" => 40,
        "DescribeZones" => 20,
        "RunInstances"
        | "StartInstances"
        | "StopInstances"
        | "RebootInstances"
        | "TerminateInstances"
        | "ResetInstancesType"
        | "ResetInstancesInternetMaxBandwidth"
        | "ModifyInstancesAttribute"
        | "InquiryPriceRunInstances" => 10,
        _ => return None,
    })
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            // Writes are 10/s; an unknown action is safest treated as a write.
            default_rps: 10,
            per_action: HashMap::new(),
        }
    }
}

impl RateLimits {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub fn rps(&self, action: &str) -> u32 {
        self.per_action
            .get(action)
            .copied()
            .or_else(|| documented_quota(action))
            .unwrap_or(self.default_rps)
    }

    /// Parses `Action=N` overrides (the `--rate-limit` flag).
    pub fn with_overrides(mut self, specs: &[String]) -> Result<Self, String> {
        for spec in specs {
            let (action, n) = spec
                .split_once('=')
                .ok_or_else(|| format!("rate limit `{spec}` must be Action=N"))?;
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("rate limit `{spec}`: N must be a positive integer"))?;
            self.per_action.insert(action.to_string(), n);
        }
        Ok(self)
    }
}

type Key = (String, String, String);

/// Lazily created token buckets, one per (account, region, action).
#[derive(Debug)]
pub struct Limiters {
    limits: RateLimits,
    /// Burst as a share of the per-second rate.
    burst_share: f64,
    buckets: Mutex<HashMap<Key, Arc<DefaultDirectRateLimiter>>>,
}

impl Limiters {
    /// A caller's buckets: the full rate but half the burst, so network jitter
    /// between us and the service (whose bucket has the full burst) never
    /// turns our paced requests into RequestLimitExceeded.
    pub fn new(limits: RateLimits) -> Self {
        Self::with_burst_share(limits, 0.5)
    }

    /// The service's own buckets (the simulator): burst equal to the rate.
    pub fn server(limits: RateLimits) -> Self {
        Self::with_burst_share(limits, 1.0)
    }

    fn with_burst_share(limits: RateLimits, burst_share: f64) -> Self {
        Self {
            limits,
            burst_share,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    fn bucket(&self, account: &str, region: &str, action: &str) -> Arc<DefaultDirectRateLimiter> {
        let key = (account.to_string(), region.to_string(), action.to_string());
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                let rate = self.limits.rps(action);
                let rps = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new((rate as f64 * self.burst_share).ceil() as u32)
                    .unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rps).allow_burst(burst),
                ))
            })
            .clone()
    }

    /// Waits for a token of this bucket.
    pub async fn acquire(&self, account: &str, region: &str, action: &str) {
        if !self.limits.enabled {
            return;
        }
        self.bucket(account, region, action).until_ready().await;
    }

    /// Takes a token if one is free now (the simulator's server-side check).
    pub fn try_acquire(&self, account: &str, region: &str, action: &str) -> bool {
        !self.limits.enabled || self.bucket(account, region, action).check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn documented_defaults_and_overrides() {
        let l = RateLimits::default();
        assert_eq!(l.rps("DescribeInstances"), 40);
        assert_eq!(l.rps("DescribeInstancesStatus"), 40);
        assert_eq!(l.rps("DescribeInstanceTypeConfigs"), 40);
        assert_eq!(l.rps("DescribeZones"), 20);
        assert_eq!(l.rps("RunInstances"), 10);
        assert_eq!(l.rps("StopInstances"), 10);
        assert_eq!(l.rps("SomethingNew"), 10);
        let l = l.with_overrides(&["RunInstances=3".into()]).unwrap();
        assert_eq!(l.rps("RunInstances"), 3);
        assert!(
            RateLimits::default()
                .with_overrides(&["RunInstances".into()])
                .is_err()
        );
        assert!(
            RateLimits::default()
                .with_overrides(&["RunInstances=0".into()])
                .is_err()
        );
    }

    #[tokio::test]
    async fn bucket_paces_calls_per_account_region_action() {
        let limiters = Limiters::new(
            RateLimits::default()
                .with_overrides(&["StartInstances=5".into()])
                .unwrap(),
        );
        let start = Instant::now();
        // A burst of 3 (half the rate) passes at once; 7 more need 1.4 s.
        for _ in 0..10 {
            limiters
                .acquire("acct", "ap-guangzhou", "StartInstances")
                .await;
        }
        let took = start.elapsed();
        assert!(
            took.as_millis() >= 800,
            "10 calls at 5/s took only {took:?}"
        );
        // Another region, account or action has its own bucket.
        assert!(limiters.try_acquire("acct", "ap-shanghai", "StartInstances"));
        assert!(limiters.try_acquire("other", "ap-guangzhou", "StartInstances"));
        assert!(limiters.try_acquire("acct", "ap-guangzhou", "StopInstances"));
        assert!(!limiters.try_acquire("acct", "ap-guangzhou", "StartInstances"));
        assert!(Limiters::new(RateLimits::disabled()).try_acquire("a", "r", "x"));
    }
}
