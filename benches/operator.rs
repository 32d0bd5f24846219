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
    let list = env
        .api()
        .list(&ListParams::default().labels("bench=1"))
        .await
        .unwrap();
    list.items.iter().filter(|o| ready(o)).count()
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
/// from the patch request to the arrival of ModifyInstancesAttribute.
async fn edit_latency(env: &TestEnv, n: usize, samples: usize) -> (Duration, Duration, Duration) {
    let mut lat = Vec::new();
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
    lat.sort();
    (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        *lat.last().unwrap(),
    )
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
        "  DescribeInstances during convergence: {} ({:.2} per instance)",
        s.calls("DescribeInstances"),
        s.calls("DescribeInstances") as f64 / n as f64
    );

    // Steady state: nothing changes; count DescribeInstances over 3 sweeps.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = env.stats();
    let window = Duration::from_secs(3 * poll + 2);
    tokio::time::sleep(window).await;
    let after = env.stats();
    let describes = after.calls("DescribeInstances") - before.calls("DescribeInstances");
    let all = after.requests - before.requests;
    println!(
        "steady state ({}s poll): {describes} DescribeInstances in {:.0} s = {:.1}/min ({:.2} per 100 instances per poll); all API calls: {all}",
        poll,
        window.as_secs_f64(),
        describes as f64 * 60.0 / window.as_secs_f64(),
        describes as f64 / (window.as_secs_f64() / poll as f64) / (n as f64 / 100.0),
    );
    println!(
        "  at the default 300 s poll this is {:.2} DescribeInstances per minute for {n} instances",
        (n as f64 / 100.0).ceil() * 60.0 / 300.0
    );

    let samples = if big { 50 } else { 100 };
    let (p50, p99, max) = edit_latency(&env, n, samples).await;
    println!(
        "spec change → first cloud call ({samples} edits): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
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
