//! Operator scale benchmarks against a real kube-apiserver and the simulator:
//! time to Ready, steady-state DescribeInstances cost, spec-change latency to
//! the first cloud call, and resident memory, for 100, 1,000 and 10,000
//! CvmInstances. `BENCH_SIZES=100,1000` picks the sizes (default all three).
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
        "  DescribeInstances during convergence: {} ({:.2} per instance); InquiryPriceRunInstances: {} (one per create)",
        s.calls("DescribeInstances"),
        s.calls("DescribeInstances") as f64 / n as f64,
        s.calls("InquiryPriceRunInstances")
    );

    // Steady state: nothing changes; count DescribeInstances over 3 sweeps.
    // Wait one poll first: the last instances to turn RUNNING are still on
    // the fast sweep for a few seconds (hot tail), and the slow sweep that
    // follows may still split the fleet into the two groups the tail left.
    tokio::time::sleep(Duration::from_secs(poll + 5)).await;
    let before = env.stats();
    let window = Duration::from_secs(3 * poll + 2);
    tokio::time::sleep(window).await;
    let after = env.stats();
    let describes = after.calls("DescribeInstances") - before.calls("DescribeInstances");
    let all = after.requests - before.requests;
    let prices: u64 = ["InquiryPriceRunInstances", "InquiryPriceResetInstancesType"]
        .iter()
        .map(|a| after.calls(a) - before.calls(a))
        .sum();
    println!(
        "steady state ({}s poll): {describes} DescribeInstances in {:.0} s = {:.1}/min ({:.2} per 100 instances per poll); all API calls: {all}, price inquiries: {prices}",
        poll,
        window.as_secs_f64(),
        describes as f64 * 60.0 / window.as_secs_f64(),
        describes as f64 / (window.as_secs_f64() / poll as f64) / (n as f64 / 100.0),
    );
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
}
