//! Clock skew: the node's clock is off by more than the API's 300 s
//! signature window, so the API refuses every request's timestamp
//! (`AuthFailure.SignatureExpire`) although the credentials are good.
//!
//! Without correction the resource says so (`Synced=False`, reason
//! `ClockSkew`, the skew measured from the answer's `Date` header; `Stalled`
//! until a person fixes the clock) and the log says it once. With correction
//! (the default) the operator signs with the API's time and converges; when
//! the node's clock is fixed, it re-measures.

use crate::knobs::{Case, knob};
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// "the node's clock is 600 s behind" → 600.
fn skew_in(message: &str) -> Option<i64> {
    let rest = message.split("the node's clock is ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew() {
    // The simulated API's clock runs this far ahead: the node is behind.
    let skew = knob("SKEW_SECS", 600, 600) as i64;
    let mut case = Case::new(
        "clock skew",
        "1 resource",
        format!("node clock {skew} s behind the API"),
    );
    let env = TestEnv::new("skew").await;
    env.sim.sim.set_clock_offset(skew);

    // Correction off: a clear condition naming the skew, not the credentials.
    let strict = env.operator(&["--correct-clock-skew", "false"]);
    let t0 = Instant::now();
    env.create(base_manifest("skewed")).await;
    let o = env
        .wait_for("skewed", Duration::from_secs(30), "ClockSkew", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "ClockSkew")
        })
        .await;
    let (_, _, message) = condition(&o, "Synced").unwrap();
    let measured = skew_in(&message).unwrap_or_else(|| panic!("no skew in {message:?}"));
    assert!((skew - 2..=skew + 2).contains(&measured), "{message}");
    assert!(message.contains("AuthFailure.SignatureExpire"), "{message}");
    assert!(message.contains("NTP"), "{message}");
    let stalled = condition(&o, "Stalled").unwrap();
    assert_eq!(
        (stalled.0.as_str(), stalled.1.as_str()),
        ("True", "ClockSkew")
    );
    case.figure(format!(
        "ClockSkew condition after {:.1} s, skew measured {measured} s",
        t0.elapsed().as_secs_f64()
    ));
    // Retried slowly, without an event or a status write per retry.
    let refused = || env.stats().errors_with("AuthFailure.SignatureExpire");
    let before = refused();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let o2 = env.api().get("skewed").await.unwrap();
    assert_eq!(o2.metadata.resource_version, o.metadata.resource_version);
    let in_10s = refused() - before;
    assert!(in_10s <= 4, "{in_10s} refused calls in 10 s");
    let log = strict.log_text();
    let lines = count(&log, "every call fails until the node's time is fixed");
    assert_eq!(lines, 1, "the skew is logged once:\n{log}");
    assert!(
        log.contains(&format!("skew_secs={measured}"))
            || log.contains(&format!("{measured} s behind"))
    );
    drop(strict);

    // Correction on (the default): converges with one refused call.
    let op = env.operator(&[]);
    let t1 = Instant::now();
    env.wait_ready("skewed").await;
    case.figure(format!(
        "corrected: Ready {:.1} s after the restart",
        t1.elapsed().as_secs_f64()
    ));
    assert_eq!(env.stats().calls("RunInstances"), 1);
    assert_eq!(
        count(&op.log_text(), "signing with the API's time from now on"),
        1
    );

    // NTP fixes the node (here: the API's clock comes back): re-measured.
    env.sim.sim.set_clock_offset(0);
    env.patch_spec("skewed", json!({"instanceName": "after-ntp"}))
        .await;
    env.wait_for("skewed", Duration::from_secs(30), "renamed", |o| {
        o.status.as_ref().and_then(|s| s.instance_name.as_deref()) == Some("after-ntp")
    })
    .await;
    assert_eq!(
        count(&op.log_text(), "signing with the API's time from now on"),
        2,
        "re-measured once after the clock was fixed"
    );
    let total = env
        .stats()
        .errors
        .values()
        .flat_map(|m| m.values())
        .sum::<u64>();
    case.figure(format!("{total} refused calls in all"));
}
