//! The cloud goes away for minutes — connection refused, then timeouts,
//! then a gateway's 503 — while resources are being created and edited.
//!
//! What must hold: no hot loop (calls per resource per minute during the
//! outage are bounded, counted by the operator and the simulator), the
//! resources that wait say so once (`Synced=False`, `CloudUnreachable`, no
//! event per retry), `/readyz` stays 200 and says what is wrong, and after
//! the cloud returns everything converges within one poll interval (the
//! operator probes and wakes what waited), with no duplicate instance.

use crate::knobs::{Case, knob};
use crate::support::*;
use cvm_operator::sim::{OutageMode, OutagePhase, OutagePlan};
use serde_json::json;
use std::time::{Duration, Instant};

/// The operator's poll interval in these tests (tests/support).
const POLL: Duration = Duration::from_secs(5);

async fn all_converged(env: &TestEnv, names: &[String], renamed: &[String]) -> usize {
    converged(env, names, renamed).await.0
}

/// How many converged, and the status of one that did not.
async fn converged(env: &TestEnv, names: &[String], renamed: &[String]) -> (usize, String) {
    let mut done = 0;
    let mut lagging = String::new();
    for name in names {
        let Ok(o) = env.api().get(name).await else {
            continue;
        };
        let ready = condition(&o, "Ready").is_some_and(|c| c.0 == "True");
        let synced = condition(&o, "Synced").is_some_and(|c| c.0 == "True");
        let want = if renamed.contains(name) {
            format!("{name}-renamed")
        } else {
            name.clone()
        };
        let named = o.status.as_ref().and_then(|s| s.instance_name.as_deref()) == Some(&want);
        if ready && synced && named {
            done += 1;
        } else {
            lagging = format!("{name}: {}", serde_json::to_string(&o.status).unwrap());
        }
    }
    (done, lagging)
}

async fn readyz(op: &Operator) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}/readyz", op.metrics_port);
    let r = reqwest::get(url).await.expect("readyz answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn attempts(op: &Operator) -> f64 {
    op.metric_sum("cvm_operator_cloud_calls_total", "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_outage() {
    let n = knob("OUTAGE_RESOURCES", 10, 40) as usize;
    let phase = knob("OUTAGE_PHASE_SECS", 8, 60) as f64;
    let in_flight = (n / 5).max(2);
    let mut case = Case::new(
        "cloud outage",
        format!("{n} resources, {in_flight} creates + {in_flight} edits in flight"),
        format!("refused {phase} s, timeouts {phase} s, 503 {phase} s"),
    );
    let env = TestEnv::new("outage").await;
    let op = env.operator(&["--request-timeout", "2"]);
    let mut names: Vec<String> = (0..n).map(|i| format!("vm-{i:03}")).collect();
    for name in &names {
        env.create(base_manifest(name)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_converged(&env, &names, &[]).await < n {
        assert!(Instant::now() < deadline, "not all Ready before the outage");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The cloud goes away; creates and edits are sent into the outage.
    let plan = OutagePlan {
        phases: [
            OutageMode::Refuse,
            OutageMode::Blackhole,
            OutageMode::ServerError,
        ]
        .map(|mode| OutagePhase {
            mode,
            seconds: phase,
        })
        .to_vec(),
    };
    let (calls_before, sim_before) = (attempts(&op).await, env.stats());
    env.sim.sim.schedule_outage(plan.clone());
    let outage_start = Instant::now();
    let renamed: Vec<String> = names[..in_flight].to_vec();
    for name in &renamed {
        env.patch_spec(name, json!({"instanceName": format!("{name}-renamed")}))
            .await;
    }
    for i in 0..in_flight {
        let name = format!("new-{i:03}");
        env.create(base_manifest(&name)).await;
        names.push(name);
    }

    // While it lasts: one condition, readiness truthful, few calls.
    let mut said_unreachable = false;
    let mut breaker: Option<(Instant, f64)> = None;
    while outage_start.elapsed() < plan.duration() {
        let (code, body) = readyz(&op).await;
        assert_eq!(code, 200, "an outage does not make the operator unready");
        if breaker.is_none() && body.contains("has not answered since") {
            breaker = Some((Instant::now(), attempts(&op).await));
        }
        let o = env.api().get("new-000").await.unwrap();
        said_unreachable |= condition(&o, "Synced").is_some_and(|c| c.1 == "CloudUnreachable");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (outage, end_calls) = (outage_start.elapsed(), attempts(&op).await);
    let sim_after = env.stats();
    let (opened, calls_at_open) = breaker.expect("/readyz never named the outage");
    assert!(
        said_unreachable,
        "the waiting resource never said CloudUnreachable"
    );
    let calls = end_calls - calls_before;
    let per_resource_minute = calls / names.len() as f64 / (outage.as_secs_f64() / 60.0);
    case.figure(format!(
        "{calls} calls in {:.0} s ({per_resource_minute:.2} per resource per minute)",
        outage.as_secs_f64()
    ));
    // Once the operator knows, one probe per interval (poll/4 here): the
    // rate does not grow with the number of resources.
    let open_for = opened.elapsed().as_secs_f64() / 60.0;
    let per_minute = (end_calls - calls_at_open) / open_for;
    let probes_per_minute = 60.0 / (POLL.as_secs_f64() / 4.0);
    case.figure(format!(
        "known down after {:.1} s, then {per_minute:.0} calls/min (probe cap {probes_per_minute:.0}/min)",
        (opened - outage_start).as_secs_f64()
    ));
    assert!(
        per_minute <= probes_per_minute * 1.5,
        "{per_minute} calls per minute while known down"
    );
    assert!(
        calls <= (names.len() * 8) as f64 + probes_per_minute * outage.as_secs_f64() / 60.0 * 1.5,
        "{calls} calls for {} resources in {outage:?}",
        names.len()
    );
    let reached: u64 =
        sim_after.outage.values().sum::<u64>() - sim_before.outage.values().sum::<u64>();
    case.figure(format!(
        "{reached} reached the simulator's timeouts and 503s"
    ));
    let warnings = env
        .events("new-000")
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "CloudAPIError")
        .count();
    assert!(
        warnings <= 2,
        "{warnings} CloudAPIError events for one waiting resource"
    );

    // The cloud is back: converged within one poll interval.
    let back = Instant::now();
    let deadline = back + POLL * 3;
    loop {
        let (done, lagging) = converged(&env, &names, &renamed).await;
        if done == names.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{} converged {:?} after the cloud came back; {lagging}",
            names.len(),
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converged = back.elapsed();
    case.figure(format!(
        "all converged {:.1} s after the cloud returned (poll interval {} s)",
        converged.as_secs_f64(),
        POLL.as_secs()
    ));
    assert!(converged <= POLL, "{converged:?} > one poll interval");
    let s = env.stats();
    assert_eq!(s.instances, names.len(), "no duplicate, none missing");
    let (code, body) = readyz(&op).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
}
