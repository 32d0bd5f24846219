//! Operator scale benchmarks against a real kube-apiserver and the simulator:
//! time to Ready, steady-state DescribeInstances cost, spec-change latency to
//! the first cloud call, and resident memory, for 100, 1,000 and 10,000
//! CvmInstances, and the deletion of them all (batched TerminateInstances).
//! `BENCH_SIZES=100,1000` picks the sizes (default all three).
//!
//! The fleet case: a `CvmInstanceSet` of `BENCH_FLEET` replicas (default
//! 1,000) at the documented quotas and the simulator's default 2 s launch —
//! time until all Ready, RunInstances calls, DescribeInstances while
//! converging and at steady state, and the calls of scaling it to zero.
//!
//! Run with `cargo bench --bench operator` (or `make bench`).

#[path = "../tests/support/mod.rs"]
mod support;

use cvm_operator::api::CvmInstance;
use cvm_operator::cloud::RateLimits;
use cvm_operator::sim::SimConfig;
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

fn ready(o: &CvmInstance) -> bool {
    condition(o, "Ready").is_some_and(|c| c.0 == "True")
}

async fn create_many(env: &TestEnv, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let mut m = base_manifest(&format!("vm-{i:05}"));
            m["metadata"]["labels"] = json!({"bench": "1"});
            env.create(m).await;
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

async fn count_ready(env: &TestEnv) -> usize {
    // A 10,000-item list from a busy 2-core apiserver is sometimes cut off
    // (IncompleteMessage); the next poll asks again.
    match env
        .api()
        .list(&ListParams::default().labels("bench=1"))
        .await
    {
        Ok(list) => list.items.iter().filter(|o| ready(o)).count(),
        Err(e) => {
            eprintln!("listing for the Ready count failed ({e}); trying again");
            0
        }
    }
}

async fn wait_all_ready(env: &TestEnv, op: &mut Operator, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        op.assert_running();
        let r = count_ready(env).await;
        if r == n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "only {r}/{n} Ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Patches instanceName of `samples` resources, one at a time, and measures
/// spec change → first cloud call three ways: from just before the PATCH is
/// sent (the apiserver's own write included), the PATCH round trip alone,
/// and from the PATCH answer to the call (the operator's share). On this
/// 2-core machine the tail of the first is the apiserver's.
type Latencies = (Vec<Duration>, Vec<Duration>, Vec<Duration>);

async fn edit_latency(env: &TestEnv, n: usize, samples: usize) -> Latencies {
    let mut lat = Vec::new();
    let mut patch = Vec::new();
    for k in 0..samples {
        let name = format!("vm-{:05}", (k * 7919) % n);
        let t0 = Instant::now();
        env.api()
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"instanceName": format!("renamed-{k}")}})),
            )
            .await
            .unwrap();
        patch.push(t0.elapsed());
        let deadline = t0 + Duration::from_secs(30);
        loop {
            if let Some(t) = env.sim.sim.arrivals("ModifyInstancesAttribute", t0).first() {
                lat.push(t.duration_since(t0));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no ModifyInstancesAttribute for {name}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Stay under the write quota (10/s), as a person editing would.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From the PATCH answer (the change is committed by then) to the call:
    // the operator's own share, watch delivery included.
    let mut after: Vec<Duration> = lat
        .iter()
        .zip(&patch)
        .map(|(l, p)| l.saturating_sub(*p))
        .collect();
    lat.sort();
    patch.sort();
    after.sort();
    (lat, patch, after)
}

/// Steady state: nothing changes; counts DescribeInstances over 3 sweeps.
/// Waits one poll first: the last instances to turn RUNNING are still on
/// the fast sweep for a few seconds (hot tail), and the slow sweep that
/// follows may still split the fleet into the two groups the tail left.
async fn steady_state(env: &TestEnv, n: usize, poll: u64) {
    tokio::time::sleep(Duration::from_secs(poll + 5)).await;
    let before = env.stats();
    let window = Duration::from_secs(3 * poll + 2);
    tokio::time::sleep(window).await;
    let after = env.stats();
    let describes = after.calls("DescribeInstances") - before.calls("DescribeInstances");
    let prices: u64 = ["InquiryPriceRunInstances", "InquiryPriceResetInstancesType"]
        .iter()
        .map(|a| after.calls(a) - before.calls(a))
        .sum();
    println!(
        "steady state ({poll}s poll): {describes} DescribeInstances in {:.0} s = {:.1}/min ({:.2} per 100 instances per poll); all API calls: {}, mutating: {}, price inquiries: {prices}",
        window.as_secs_f64(),
        describes as f64 * 60.0 / window.as_secs_f64(),
        describes as f64 / (window.as_secs_f64() / poll as f64) / (n as f64 / 100.0),
        after.requests - before.requests,
        mutating_calls(&after) - mutating_calls(&before),
    );
}

async fn scenario(n: usize) {
    println!("\n== {n} CvmInstances");
    let big = n > 1000;
    // Up to 1,000: the simulator enforces the documented quotas (RunInstances
    // 10/s, DescribeInstances 40/s) and real-time transitions. 10,000 would
    // take 17 minutes at 10 creates/s, so there the quotas are raised on both
    // sides and transitions run 10× faster: that run measures memory.
    let sim_config = SimConfig {
        time_scale: if big { 10.0 } else { 1.0 },
        rate_limits: if big {
            RateLimits::disabled()
        } else {
            RateLimits::default()
        },
        ..SimConfig::default()
    };
    let env = TestEnv::with_sim("bench", sim_config).await;
    let poll = 30;
    let mut args: Vec<String> = vec![
        "--poll-interval".into(),
        poll.to_string(),
        "--fast-poll-ms".into(),
        "2000".into(),
    ];
    if big {
        for a in [
            "RunInstances=1000",
            "DescribeInstances=1000",
            "ModifyInstancesAttribute=1000",
        ] {
            args.push("--rate-limit".into());
            args.push(a.into());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut op = Operator::start_logging(&env, &args, "warn");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = op.rss_kib().unwrap_or(0);

    let start = Instant::now();
    create_many(&env, n).await;
    let created = start.elapsed();
    let converge = wait_all_ready(
        &env,
        &mut op,
        n,
        Duration::from_secs(if big { 3600 } else { 900 }),
    )
    .await
        + created;
    let s = env.stats();
    println!(
        "time to all Ready: {:.1} s (manifests written in {:.1} s); RunInstances calls: {}; instances: {}",
        converge.as_secs_f64(),
        created.as_secs_f64(),
        s.calls("RunInstances"),
        s.instances
    );
    if !big {
        println!(
            "  lower bound at the RunInstances quota of 10/s plus a 2 s launch: {:.1} s",
            n as f64 / 10.0 + 2.0
        );
    }
    println!(
        "  DescribeInstances during convergence: {} ({:.2} per instance); InquiryPriceRunInstances: {} (one per configuration)",
        s.calls("DescribeInstances"),
        s.calls("DescribeInstances") as f64 / n as f64,
        s.calls("InquiryPriceRunInstances")
    );

    steady_state(&env, n, poll).await;
    println!(
        "  at the default 300 s poll this is {:.2} DescribeInstances per minute for {n} instances",
        (n as f64 / 100.0).ceil() * 60.0 / 300.0
    );

    let samples = if big { 50 } else { 200 };
    let (lat, patch, after) = edit_latency(&env, n, samples).await;
    let line = |what: &str, v: &[Duration]| {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().unwrap()),
        )
    };
    line(
        &format!("spec change → first cloud call ({samples} edits, from PATCH sent)"),
        &lat,
    );
    line("  the apiserver's PATCH round trip", &patch);
    line("  from the PATCH answer (committed) to the call", &after);
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "operator RSS: {:.1} MiB with {n} CvmInstances (idle before: {:.1} MiB)",
        op.rss_kib().unwrap_or(0) as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    delete_all(&env, n).await;
}

/// Deletes every CvmInstance at once: how long until all are gone, and how
/// many TerminateInstances that took.
async fn delete_all(env: &TestEnv, n: usize) {
    env.sim.sim.reset_stats();
    let start = Instant::now();
    let lp = ListParams::default().labels("bench=1");
    env.api()
        .delete_collection(&Default::default(), &lp)
        .await
        .expect("delete all");
    let deadline = start + Duration::from_secs(1800);
    while env.stats().instances > 0
        || !env
            .api()
            .list(&lp.clone().limit(1))
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "deletion did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = env.stats();
    println!(
        "delete all {n}: {:.1} s; TerminateInstances calls: {} ({:.0} instances per call)",
        start.elapsed().as_secs_f64(),
        s.calls("TerminateInstances"),
        n as f64 / s.calls("TerminateInstances").max(1) as f64
    );
}

/// The mutating calls the simulator saw.
fn mutating_calls(s: &cvm_operator::sim::Stats) -> u64 {
    s.calls
        .iter()
        .filter(|(a, _)| {
            !a.starts_with("Describe")
                && !a.starts_with("Inquiry")
                && a.as_str() != "GetCallerIdentity"
        })
        .map(|(_, n)| n)
        .sum()
}

/// The set's status, once `pred` holds (panics after `timeout`).
async fn wait_set(
    env: &TestEnv,
    op: &mut Operator,
    timeout: Duration,
    pred: impl Fn(&cvm_operator::api::set::CvmInstanceSetStatus) -> bool,
) -> Duration {
    let sets: kube::Api<cvm_operator::api::set::CvmInstanceSet> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let start = Instant::now();
    loop {
        op.assert_running();
        let st = sets
            .get("fleet")
            .await
            .ok()
            .and_then(|s| s.status)
            .unwrap_or_default();
        if pred(&st) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "the set did not get there: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fleet_scenario(n: usize) {
    println!("\n== a CvmInstanceSet of {n} replicas");
    let env = TestEnv::with_sim("bench-fleet", SimConfig::default()).await;
    let poll = 30;
    let args = ["--poll-interval", "30", "--fast-poll-ms", "2000"];
    let mut op = Operator::start_logging(&env, &args, "warn");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let manifest = json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstanceSet",
        "metadata": {"name": "fleet", "namespace": env.ns},
        "spec": {"replicas": n, "template": {"spec": base_manifest("x")["spec"]}},
    });
    let set: cvm_operator::api::set::CvmInstanceSet = serde_json::from_value(manifest).unwrap();
    let sets: kube::Api<cvm_operator::api::set::CvmInstanceSet> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    sets.create(&Default::default(), &set)
        .await
        .expect("create the set");
    let want = n as i32;
    let ready = wait_set(&env, &mut op, Duration::from_secs(900), |st| {
        st.ready_replicas == want && st.updated_replicas == want
    })
    .await;
    let s = env.stats();
    println!(
        "time to all Ready: {:.1} s; RunInstances calls: {}; instances: {}; DescribeInstances while converging: {} ({:.2} per instance)",
        ready.as_secs_f64(),
        s.calls("RunInstances"),
        s.instances,
        s.calls("DescribeInstances"),
        s.calls("DescribeInstances") as f64 / n as f64
    );
    steady_state(&env, n, poll).await;
    println!(
        "operator RSS: {:.1} MiB",
        op.rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    env.sim.sim.reset_stats();
    let patch = Patch::Merge(json!({"spec": {"replicas": 0}}));
    sets.patch("fleet", &PatchParams::default(), &patch)
        .await
        .expect("scale to zero");
    let start = Instant::now();
    while env.stats().instances > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "scale to zero did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = start.elapsed();
    wait_set(&env, &mut op, Duration::from_secs(300), |st| {
        st.replicas == 0
    })
    .await;
    let s = env.stats();
    println!(
        "scale to zero: {:.1} s; TerminateInstances calls: {}; all mutating calls: {}",
        gone.as_secs_f64(),
        s.calls("TerminateInstances"),
        mutating_calls(&s)
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("operator benchmark: skipped (run with cargo bench)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(scenario(n));
    }
    let fleets: Vec<usize> = std::env::var("BENCH_FLEET")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for n in fleets {
        rt.block_on(fleet_scenario(n));
    }
}
