//! Simulator throughput: DescribeInstances of 100 ids against 10,000
//! instances. Two numbers:
//! 1. the engine alone (the action's server CPU without HTTP), in-process;
//! 2. the whole server (HTTP, TC3 verification, JSON) as a separate
//!    `cvm-operator simulator` process, driven over loopback, with its CPU
//!    time read from /proc.
//!
//! Run with `cargo bench --bench simulator` (or `make bench`).

use cvm_operator::cloud::model;
use cvm_operator::cloud::{
    ClientConfig, Credentials, CvmClient, Endpoint, RateLimits, RetryPolicy,
};
use cvm_operator::sim::engine::{Ctx, Engine, EngineConfig};
use cvm_operator::sim::{self, catalogue::Catalogue};
use std::io::BufRead;
use std::time::{Duration, Instant};

const REGION: &str = "ap-guangzhou";

fn run_request(count: i64) -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some("S5.SMALL1".into()),
        instance_count: Some(count),
        internet_accessible: Some(model::InternetAccessible {
            internet_max_bandwidth_out: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn engine_only() -> f64 {
    let mut engine = Engine::new(
        EngineConfig {
            instance_quota: 100_000,
            ..EngineConfig::default()
        },
        Catalogue::default(),
    );
    let ctx = Ctx {
        account: sim::DEFAULT_SECRET_ID,
        region: REGION,
        request_id: "bench",
        now: Duration::ZERO,
        chinese: false,
    };
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(
            engine
                .run_instances(&ctx, run_request(100))
                .unwrap()
                .instance_id_set
                .unwrap(),
        );
    }
    let ctx = Ctx {
        now: Duration::from_secs(60),
        ..ctx
    };
    engine.advance(ctx.now);
    let iterations = 5_000;
    let start = Instant::now();
    let mut total = 0;
    for i in 0..iterations {
        let chunk: Vec<String> = (0..100)
            .map(|k| ids[(i * 37 + k * 101) % ids.len()].clone())
            .collect();
        let resp = engine
            .describe_instances(
                &ctx,
                model::DescribeInstancesRequest {
                    instance_ids: Some(chunk),
                    limit: Some(100),
                    ..Default::default()
                },
            )
            .unwrap();
        // Serialising the answer is part of the server's work.
        total += serde_json::to_vec(&resp).unwrap().len();
    }
    let per_call = start.elapsed().as_secs_f64() / iterations as f64;
    // The same without serialising, to see where the time goes.
    let t = Instant::now();
    for i in 0..iterations {
        let chunk: Vec<String> = (0..100)
            .map(|k| ids[(i * 37 + k * 101) % ids.len()].clone())
            .collect();
        let resp = engine
            .describe_instances(
                &ctx,
                model::DescribeInstancesRequest {
                    instance_ids: Some(chunk),
                    limit: Some(100),
                    ..Default::default()
                },
            )
            .unwrap();
        std::hint::black_box(resp.len());
    }
    println!(
        "engine: of which the lookup and copy: {:.1} µs",
        t.elapsed().as_secs_f64() / iterations as f64 * 1e6
    );
    println!(
        "engine: DescribeInstances(100 ids) over 10,000 instances: {:.1} µs per call incl. JSON ({} KiB per answer)",
        per_call * 1e6,
        total / iterations / 1024
    );
    per_call
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn whole_server() {
    let bin = env!("CARGO_BIN_EXE_cvm-operator");
    let mut child = std::process::Command::new(bin)
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--no-rate-limits",
            "--time-scale",
            "100",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let endpoint = line.trim().rsplit(' ').next().unwrap().to_string();
    let client = CvmClient::new(ClientConfig {
        endpoint: Endpoint::parse(&endpoint).unwrap(),
        rate_limits: RateLimits::disabled(),
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    })
    .unwrap();
    let creds = Credentials::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY, None).unwrap();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let r = client
            .call::<model::RunInstances>(&creds, REGION, &run_request(100))
            .await
            .unwrap();
        ids.extend(r.body.instance_id_set.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.id();
    let duration = Duration::from_secs(10);
    let cpu0 = proc_cpu_seconds(pid);
    let start = Instant::now();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, creds, ids) = (client.clone(), creds.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut i = w;
            while start.elapsed() < duration {
                let chunk: Vec<String> = (0..100)
                    .map(|k| ids[(i * 37 + k * 101) % ids.len()].clone())
                    .collect();
                let found = client
                    .describe_instances_by_ids(&creds, REGION, &chunk)
                    .await
                    .unwrap();
                assert_eq!(found.len(), 100);
                n += 1;
                i += workers;
            }
            n
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(pid) - cpu0;
    println!(
        "server: {:.0} DescribeInstances(100 ids)/s over HTTP with TC3 checks ({} calls in {:.1} s, 8 concurrent clients on the same 2 cores)",
        calls as f64 / elapsed,
        calls,
        elapsed
    );
    println!(
        "server: {:.0} µs of simulator CPU per call (user+system, from /proc)",
        cpu / calls as f64 * 1e6
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("simulator benchmark: skipped (run with cargo bench)");
        return;
    }
    engine_only();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(whole_server());
}
