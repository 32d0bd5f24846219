//! A long run: many resources for a long time, with 5 % of the cloud calls
//! failing (half answered `InternalError`, half executed with the answer
//! lost) and a random spec edit every few seconds. The operator's RSS and
//! open sockets are sampled; at the end every resource matches its last
//! edit, there is one instance each, reconcile errors are only of the
//! injected kinds, and deleting everything leaves no finalizer stuck.
//!
//! Knobs: `CHAOS_LONG_RESOURCES`, `CHAOS_LONG_SECS` (the hour the issue asks
//! for: `CHAOS_LONG_SECS=3600`), `CHAOS_LONG_EDIT_MS`.

use crate::common::*;
use crate::knobs::{Case, knob};
use crate::support::*;
use cvm_operator::sim::{ErrorFault, Faults, LostFault, LostMode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Open sockets of a process (its fds that are sockets).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// One random edit: a new name, bandwidth or power state.
fn edit(i: u64) -> Value {
    match fastrand::u8(0..3) {
        0 => json!({"instanceName": format!("edit-{i}")}),
        1 => json!({"internetAccessible": {"internetMaxBandwidthOut": fastrand::i64(1..=10)}}),
        _ => json!({"runState": if fastrand::bool() { "Running" } else { "Stopped" }}),
    }
}

/// Whether the observed instance matches every field `spec` sets.
fn matches(o: &cvm_operator::api::CvmInstance, spec: &Value) -> bool {
    let Some(s) = o.status.as_ref() else {
        return false;
    };
    let name_ok = spec["instanceName"]
        .as_str()
        .is_none_or(|n| s.instance_name.as_deref() == Some(n));
    let bw_ok = spec["internetAccessible"]["internetMaxBandwidthOut"]
        .as_i64()
        .is_none_or(|b| s.internet_max_bandwidth_out == Some(b));
    let state_ok = match spec["runState"].as_str() {
        Some("Stopped") => s.instance_state.as_deref() == Some("STOPPED"),
        _ => s.instance_state.as_deref() == Some("RUNNING"),
    };
    name_ok && bw_ok && state_ok
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    sockets: usize,
}

fn faults() -> Faults {
    Faults {
        errors: vec![ErrorFault {
            action: None,
            code: "InternalError".into(),
            rate: 0.025,
            remaining: None,
        }],
        lost: vec![LostFault {
            action: None,
            rate: 0.025,
            mode: LostMode::Drop,
            hold_ms: 0,
            remaining: None,
        }],
        ..Faults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_run() {
    let n = knob("LONG_RESOURCES", 100, 1000) as usize;
    let secs = knob("LONG_SECS", 60, 480);
    let edit_every = Duration::from_millis(knob("LONG_EDIT_MS", 2000, 3000));
    let mut case = Case::new(
        "long run",
        format!(
            "{n} resources for {secs} s, an edit every {:.0} s",
            edit_every.as_secs_f64()
        ),
        "5 % of calls fail (2.5 % InternalError, 2.5 % answer lost)",
    );
    let env = TestEnv::new("long").await;
    let mut op = env.operator(&["--poll-interval", "10"]);
    let pid = op.pid();
    let names: Vec<String> = (0..n).map(|i| format!("vm-{i:04}")).collect();
    env.sim.sim.set_faults(faults());
    let t0 = Instant::now();
    create_all(&env, &names).await;
    until_all(&env, "all Ready", n, Duration::from_secs(900), is_ready).await;
    case.figure(format!(
        "{n} Ready {:.0} s after the first create",
        t0.elapsed().as_secs_f64()
    ));

    // The run: edits, with samples of the operator's footprint.
    let mut desired: HashMap<String, Value> = HashMap::new();
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut next_sample = start;
    let mut edits = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        op.assert_running();
        if Instant::now() >= next_sample {
            samples.push(Sample {
                at: start.elapsed(),
                rss_kib: op.rss_kib().unwrap_or(0),
                sockets: sockets(pid),
            });
            next_sample += Duration::from_secs(10);
        }
        let name = &names[fastrand::usize(..n)];
        let change = edit(edits);
        edits += 1;
        let merged = desired.entry(name.clone()).or_insert_with(|| json!({}));
        for (k, v) in change.as_object().unwrap() {
            merged[k] = v.clone();
        }
        env.patch_spec(name, change).await;
        tokio::time::sleep(edit_every).await;
    }

    // Every resource ends as its last edit says.
    env.sim.sim.set_faults(Faults::default());
    let settled = until_all(
        &env,
        "matching the last edits",
        n,
        Duration::from_secs(300),
        |o| {
            let name = o.metadata.name.as_deref().unwrap_or_default();
            let spec = desired.get(name).cloned().unwrap_or_else(|| json!({}));
            let ready = condition(o, "Synced").is_some_and(|c| c.0 == "True");
            ready && matches(o, &spec)
        },
    )
    .await;
    let s = env.stats();
    assert_eq!(s.instances, n, "one instance per resource: {s:?}");
    let (first, last) = (&samples[0], samples.last().unwrap());
    let max_rss = samples.iter().map(|x| x.rss_kib).max().unwrap_or(0);
    case.figure(format!(
        "{edits} edits; all matched {:.1} s after the last; RSS {:.1} → {:.1} MiB (max {:.1}), sockets {} → {}",
        settled.as_secs_f64(),
        first.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
        max_rss as f64 / 1024.0,
        first.sockets,
        last.sockets
    ));
    let injected: u64 =
        s.errors.values().flat_map(|m| m.values()).sum::<u64>() + s.lost.values().sum::<u64>();
    let mut by_class = Vec::new();
    for class in [
        "transient",
        "busy",
        "throttled",
        "not_found",
        "unreachable",
        "permanent",
        "auth",
        "clock_skew",
    ] {
        let v = op
            .metric_sum(
                "cvm_operator_reconcile_errors_total",
                &format!("class=\"{class}\""),
            )
            .await;
        if v > 0.0 {
            by_class.push(format!("{class} {v}"));
        }
        if matches!(class, "permanent" | "auth" | "clock_skew") {
            assert_eq!(v, 0.0, "{class} errors: none were injected");
        }
    }
    case.figure(format!(
        "{injected} faults injected of {} calls; reconcile errors: {}",
        s.requests,
        by_class.join(", ")
    ));
    let step = (samples.len() / 4).max(1);
    let mut points: Vec<&Sample> = samples.iter().step_by(step).collect();
    if !std::ptr::eq(points[points.len() - 1], last) {
        points.push(last);
    }
    let curve: Vec<String> = points
        .iter()
        .map(|x| {
            format!(
                "{:.0} s {:.1} MiB",
                x.at.as_secs_f64(),
                x.rss_kib as f64 / 1024.0
            )
        })
        .collect();
    case.figure(format!("RSS curve: {}", curve.join(", ")));
    // Flat: no growth beyond allocator noise over the run.
    assert!(
        last.rss_kib <= first.rss_kib * 3 / 2 + 20 * 1024,
        "RSS grew from {} to {} KiB over {secs} s",
        first.rss_kib,
        last.rss_kib
    );
    assert!(
        last.sockets <= first.sockets + 20,
        "sockets {} → {}",
        first.sockets,
        last.sockets
    );

    // Deleting everything leaves no finalizer stuck and no instance.
    let deleting = Instant::now();
    for name in &names {
        env.delete(name).await;
    }
    while !all(&env).await.is_empty() || env.stats().instances > 0 {
        let stuck = deleting.elapsed() > Duration::from_secs(300);
        assert!(!stuck, "deletions stuck: {:?}", env.stats());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    case.figure(format!(
        "all {n} deleted {:.0} s after the first delete",
        deleting.elapsed().as_secs_f64()
    ));
}
