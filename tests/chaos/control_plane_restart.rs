//! The apiserver and etcd restart under a running operator (same data, new
//! processes, every watch connection cut), and etcd is compacted so the
//! watch's resourceVersion expires.
//!
//! Three rounds: both killed while creates are in flight; etcd compacted and
//! the apiserver restarted alone (its watch cache starts afresh, so the
//! operator's watch cannot resume and must list again); etcd compacted and
//! killed alone (the apiserver's own watch on etcd must list again). After
//! each, edits, deletes and creates are made at once. The operator runs
//! with leader election, as the chart runs it, with a lease shorter than
//! the outage (it cannot renew it meanwhile; nobody else can take it). It
//! must recover without a restart of its own, miss none of the changes, and
//! send no cloud action twice (counted at the simulator).

use crate::common::*;
use crate::knobs::{Case, knob};
use crate::support::processes::Stop;
use crate::support::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

async fn rename(env: &TestEnv, name: &str, to: &str) {
    let patch = Patch::Merge(json!({"spec": {"instanceName": to}}));
    let (api, params) = (env.api(), PatchParams::default());
    retrying("rename", || api.patch(name, &params, &patch)).await;
}

async fn delete(env: &TestEnv, name: &str) {
    let (api, params) = (env.api(), DeleteParams::default());
    retrying("delete", || api.delete(name, &params)).await;
}

fn name_of(o: &cvm_operator::api::CvmInstance) -> Option<&str> {
    o.status.as_ref()?.instance_name.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart() {
    let n = knob("RESTART_RESOURCES", 20, 100) as usize;
    let down = Duration::from_secs(knob("RESTART_DOWN_SECS", 4, 15));
    let k = (n / 5).max(2);
    let mut case = Case::new(
        "apiserver + etcd restart",
        format!("{n} creates in flight; then {k} edits, {k} deletes, {k} creates per round"),
        format!(
            "both killed {} s; compaction + apiserver restart; compaction + etcd killed",
            down.as_secs()
        ),
    );
    let plane = OwnPlane::start();
    let cp = plane.0;
    let env = TestEnv::on(cp, "restart", fast_sim()).await;
    // With leader election, as the chart runs it, and a lease shorter than
    // the outage: the lease cannot be renewed while the apiserver is away.
    let lease = (down.as_secs() / 2).max(2).to_string();
    let mut op = env.operator(&[
        "--leader-election",
        "true",
        "--lease-namespace",
        env.ns.as_str(),
        "--lease-duration",
        lease.as_str(),
    ]);
    let pid = op.pid();
    let mut names: Vec<String> = (0..n).map(|i| format!("vm-{i:03}")).collect();
    create_all(&env, &names).await;

    // Round 1: both die (SIGKILL) while the creates are in flight.
    until_sent(&env, n / 3, Duration::from_secs(300)).await;
    let sent_before = env.stats().calls("RunInstances");
    let away = blocking(|| {
        let t = Instant::now();
        cp.stop("kube-apiserver", Stop::Kill);
        cp.stop("etcd", Stop::Kill);
        std::thread::sleep(down);
        cp.start_component("etcd").unwrap();
        cp.start_component("kube-apiserver").unwrap();
        t.elapsed()
    });
    let recovered = until_all(
        &env,
        "Ready after the restart",
        n,
        Duration::from_secs(180),
        is_ready,
    )
    .await;
    case.figure(format!(
        "round 1: {sent_before}/{n} creates sent when both died, away {:.1} s, all Ready {:.1} s after",
        away.as_secs_f64(),
        recovered.as_secs_f64()
    ));
    op.assert_running();

    let mut renamed = Vec::new();
    let mut deleted = Vec::new();
    let rounds = ["compaction + apiserver restart", "compaction + etcd killed"];
    for (round_no, label) in rounds.into_iter().enumerate() {
        let revision = blocking(|| cp.compact_etcd()).expect("compaction");
        let away = blocking(|| match round_no {
            0 => cp.restart("kube-apiserver", Stop::Graceful, Duration::from_secs(1)),
            _ => cp.restart("etcd", Stop::Kill, Duration::from_secs(1)),
        })
        .expect("restart");
        // At once: edits, deletes and creates the watch must deliver.
        let base = round_no * 2 * k;
        let edits: Vec<String> = names[base..base + k].to_vec();
        let gone: Vec<String> = names[base + k..base + 2 * k].to_vec();
        for name in &edits {
            rename(&env, name, &format!("{name}-r{round_no}")).await;
        }
        for name in &gone {
            delete(&env, name).await;
        }
        let fresh: Vec<String> = (0..k).map(|i| format!("new{round_no}-{i:03}")).collect();
        create_all(&env, &fresh).await;
        renamed.extend(
            edits
                .iter()
                .map(|e| (e.clone(), format!("{e}-r{round_no}"))),
        );
        deleted.extend(gone);
        names.retain(|n| !deleted.contains(n));
        names.extend(fresh);
        let want = names.len();
        let took = until_all(&env, label, want, Duration::from_secs(120), |o| {
            let name = o.metadata.name.as_deref().unwrap_or_default();
            let expected = renamed
                .iter()
                .find(|(from, _)| from == name)
                .map_or(name, |(_, to)| to.as_str());
            is_ready(o) && name_of(o) == Some(expected) && o.metadata.deletion_timestamp.is_none()
        })
        .await;
        case.figure(format!(
            "round {}: {label} at revision {revision}, away {:.1} s, every change applied {:.1} s after",
            round_no + 2,
            away.as_secs_f64(),
            took.as_secs_f64()
        ));
        op.assert_running();
    }

    // Nothing lost, nothing twice, and the operator is the one it was.
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.stats().instances != names.len() {
        assert!(
            Instant::now() < deadline,
            "deleted instances linger: {:?}",
            env.stats()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let s = env.stats();
    assert_eq!(op.pid(), pid, "no restart of its own");
    op.assert_running();
    let created = (n + 2 * k) as u64;
    assert_eq!(
        s.calls("RunInstances"),
        created,
        "one RunInstances per resource: {s:?}"
    );
    assert_eq!(
        s.calls("ModifyInstancesAttribute"),
        renamed.len() as u64,
        "one rename per edit: {s:?}"
    );
    assert!(
        s.calls("TerminateInstances") <= deleted.len() as u64,
        "{s:?}"
    );
    let errors = metric(&op, "cvm_operator_reconciles_total", "result=\"error\"").await;
    // The watch could not resume where it was and listed again.
    let relists = op
        .log_text()
        .lines()
        .filter(|l| l.contains("too old resource version"))
        .count();
    case.figure(format!(
        "{created} RunInstances for {created} resources, {} renames, {} terminates; {errors} reconciles failed on the apiserver (retried); the watch expired and listed again {relists} times",
        s.calls("ModifyInstancesAttribute"),
        s.calls("TerminateInstances")
    ));
}
