//! Calls refused before anything happened (keys not allowed, throttled, a
//! refused connection): they leave nothing behind to wait for.

use crate::support::*;
use cvm_operator::sim::{ErrorFault, Faults};
use std::time::{Duration, Instant};

/// A create the API refuses outright (here: the key may not launch) made
/// nothing: its intent goes, so deleting the resource does not wait out the
/// create grace (60 s) for an instance that cannot exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refused_before_it_was_sent_does_not_hold_up_a_deletion() {
    let env = TestEnv::new("unsent").await;
    env.sim.sim.set_faults(Faults {
        errors: vec![ErrorFault {
            action: Some("RunInstances".into()),
            code: "UnauthorizedOperation".into(),
            rate: 1.0,
            remaining: None,
        }],
        ..Faults::default()
    });
    let _op = env.operator(&[]);
    env.create(base_manifest("refused")).await;
    let o = env
        .wait_for("refused", Duration::from_secs(30), "refused", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "CredentialsRejected")
        })
        .await;
    let last = o.status.as_ref().and_then(|s| s.last_operation.as_ref());
    assert!(
        last.is_none_or(|l| l.state != "Pending"),
        "no create left pending: {last:?}"
    );
    let t0 = Instant::now();
    env.delete("refused").await;
    env.wait_gone("refused", Duration::from_secs(10)).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(env.stats().instances, 0);
}
