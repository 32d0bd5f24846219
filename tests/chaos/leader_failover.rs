//! Leader failover under load: two replicas with leader election, hundreds
//! of creates in flight, the leader killed (SIGKILL). The standby must take
//! over within the lease duration, and every create must end with exactly
//! one instance: none lost, none twice.

use crate::common::*;
use crate::knobs::{Case, knob};
use crate::support::*;
use std::time::{Duration, Instant};

fn replica(env: &TestEnv, name: &str, lease_secs: &str) -> Operator {
    env.operator(&[
        "--leader-election",
        "true",
        "--lease-name",
        "cvm-operator",
        "--lease-namespace",
        env.ns.as_str(),
        "--lease-duration",
        lease_secs,
        "--pod-name",
        name,
    ])
}

async fn is_leader(op: &Operator) -> bool {
    op.metric_sum("cvm_operator_leader", "").await == 1.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover() {
    let n = knob("FAILOVER_CREATES", 60, 500) as usize;
    let lease = knob("FAILOVER_LEASE_SECS", 15, 15);
    let mut case = Case::new(
        "leader failover",
        format!("2 replicas, {n} creates in flight"),
        format!("the leader killed (SIGKILL), lease {lease} s"),
    );
    let env = TestEnv::new("failover").await;
    let lease_arg = lease.to_string();
    let mut a = replica(&env, "replica-a", &lease_arg);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_leader(&a).await {
        assert!(Instant::now() < deadline, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut b = replica(&env, "replica-b", &lease_arg);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!is_leader(&b).await, "one leader");

    let names: Vec<String> = (0..n).map(|i| format!("vm-{i:04}")).collect();
    create_all(&env, &names).await;
    // Kill the leader a third of the way through the creates.
    until_sent(&env, n / 3, Duration::from_secs(300)).await;
    let sent = env.stats().calls("RunInstances");
    a.kill_hard();
    let killed = Instant::now();
    while !is_leader(&b).await {
        b.assert_running();
        assert!(
            killed.elapsed() < Duration::from_secs(lease + 10),
            "the standby did not take over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed.elapsed();
    let calls_at_kill = env.stats().requests;
    let first_call = loop {
        if env.stats().requests > calls_at_kill {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(lease + 30),
            "the new leader never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    case.figure(format!(
        "killed after {sent}/{n} RunInstances; standby led {:.1} s later (lease {lease} s), first cloud call at {:.1} s",
        takeover.as_secs_f64(),
        first_call.as_secs_f64()
    ));
    assert!(
        takeover <= Duration::from_secs(lease + 2),
        "takeover {takeover:?} > lease {lease} s"
    );

    let took = until_all(
        &env,
        "all Ready under the new leader",
        n,
        Duration::from_secs(600),
        is_ready,
    )
    .await;
    b.assert_running();
    let s = env.stats();
    assert_eq!(s.instances, n, "exactly one instance per create: {s:?}");
    let mut ids: Vec<String> = all(&env)
        .await
        .iter()
        .filter_map(|o| o.status.as_ref()?.instance_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every resource has its own instance");
    case.figure(format!(
        "all {n} Ready {:.1} s after the takeover; {} instances, {} RunInstances calls",
        took.as_secs_f64(),
        s.instances,
        s.calls("RunInstances")
    ));
}
