//! What status tells a GitOps reviewer: `status.price` (asked once per
//! create or price-changing change, never per poll, never holding a create
//! back) and `status.pendingChanges` (what the operator will not do now,
//! and why).

use crate::support::*;
use cvm_operator::api::CvmInstance;
use cvm_operator::api::price::PriceStatus;
use cvm_operator::sim::{ErrorFault, Faults, Stats};
use serde_json::json;
use std::time::Duration;

const PRICE_CALLS: &[&str] = &[
    "InquiryPriceRunInstances",
    "InquiryPriceResetInstancesType",
    "InquiryPriceResetInstancesInternetMaxBandwidth",
];

fn price(o: &CvmInstance) -> PriceStatus {
    o.status
        .as_ref()
        .and_then(|s| s.price.clone())
        .expect("status.price")
}

fn calls(s: &Stats) -> Vec<u64> {
    PRICE_CALLS.iter().map(|a| s.calls(a)).collect()
}

fn instance_unit(p: &PriceStatus) -> String {
    p.instance
        .as_ref()
        .and_then(|i| i.unit_price.clone())
        .expect("an instance unit price")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_price_is_asked_at_create_and_after_a_resize_and_never_per_poll() {
    let env = TestEnv::new("price").await;
    let _op = env.operator(&[]);
    env.create(base_manifest("web")).await;
    let o = env.wait_synced("web").await;
    let at_create = price(&o);
    assert_eq!(
        at_create.action.as_deref(),
        Some("InquiryPriceRunInstances")
    );
    assert_eq!(at_create.currency.as_deref(), Some("CNY"));
    assert_eq!(at_create.instance_type.as_deref(), Some("S5.SMALL1"));
    let instance = at_create.instance.clone().unwrap();
    assert_eq!(instance.charge_unit.as_deref(), Some("HOUR"));
    assert!(at_create.bandwidth.is_some(), "{at_create:?}");
    assert!(at_create.request_id.is_some());
    assert_eq!(calls(&env.stats()), [1, 0, 0]);

    // Steady state: two poll intervals (5 s in tests) of sweeps, no price.
    let before = env.stats();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let after = env.stats();
    assert!(
        after.calls("DescribeInstances") > before.calls("DescribeInstances"),
        "the sweeps ran"
    );
    assert_eq!(calls(&after), [1, 0, 0], "no price call per poll");

    env.patch_spec("web", json!({"instanceType": "S5.MEDIUM4"}))
        .await;
    env.wait_for("web", Duration::from_secs(60), "resized", |o| {
        o.status.as_ref().and_then(|s| s.instance_type.as_deref()) == Some("S5.MEDIUM4")
    })
    .await;
    let o = env.wait_synced("web").await;
    let resized = price(&o);
    assert_eq!(resized.instance_type.as_deref(), Some("S5.MEDIUM4"));
    assert_eq!(
        resized.action.as_deref(),
        Some("InquiryPriceResetInstancesType")
    );
    assert_ne!(instance_unit(&resized), instance_unit(&at_create));
    assert_eq!(resized.bandwidth, at_create.bandwidth, "kept");
    assert_eq!(calls(&env.stats()), [1, 1, 0]);

    env.patch_spec(
        "web",
        json!({"internetAccessible": {"internetMaxBandwidthOut": 10}}),
    )
    .await;
    let o = env.wait_synced("web").await;
    let widened = price(&o);
    assert_eq!(widened.internet_max_bandwidth_out, Some(10));
    assert_eq!(widened.instance, resized.instance, "kept");
    assert_eq!(calls(&env.stats()), [1, 1, 1]);
    // kubectl get -o wide shows it.
    let wide = env.cp.run_tool(
        "kubectl",
        &["get", "cvm", "web", "-n", &env.ns, "-o", "wide"],
        None,
    );
    let summary = widened.summary.unwrap();
    assert!(wide.contains("PRICE") && wide.contains(&summary), "{wide}");
}

/// `action` always answers with error `code`.
fn always(action: &str, code: &str) -> Faults {
    Faults {
        errors: vec![ErrorFault {
            action: Some(action.into()),
            code: code.into(),
            rate: 1.0,
            remaining: None,
        }],
        ..Faults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_price_inquiry_never_holds_the_create_back() {
    let env = TestEnv::new("price-fail").await;
    env.sim
        .sim
        .set_faults(always("InquiryPriceRunInstances", "InternalError"));
    let _op = env.operator(&[]);
    env.create(base_manifest("web")).await;
    let o = env.wait_synced("web").await;
    let p = price(&o);
    assert!(p.instance.is_none());
    let why = p.unknown_reason.unwrap();
    assert!(
        why.starts_with("InquiryPriceRunInstances failed: InternalError"),
        "{why}"
    );
    assert_eq!(p.summary.as_deref(), Some("unknown"));
    assert_eq!(env.stats().calls("RunInstances"), 1);
}

fn pending(o: &CvmInstance) -> Vec<(String, String, String, String)> {
    o.status
        .iter()
        .flat_map(|s| s.pending_changes.iter())
        .map(|p| {
            (
                p.field.clone(),
                p.from.clone(),
                p.to.clone(),
                p.disruption.clone(),
            )
        })
        .collect()
}

fn row(field: &str, from: &str, to: &str, disruption: &str) -> (String, String, String, String) {
    (field.into(), from.into(), to.into(), disruption.into())
}

async fn wait_reason(env: &TestEnv, name: &str, reason: &str) -> CvmInstance {
    env.wait_for(name, Duration::from_secs(60), reason, |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
            && condition(o, "Synced").is_some_and(|c| c.1 == reason)
    })
    .await
}

const BANDWIDTH: &str = "spec.internetAccessible.internetMaxBandwidthOut";

/// Each "will not act" case lists what it holds back, with the condition
/// that says why; acting again empties the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_changes_say_why_a_change_is_not_applied() {
    let env = TestEnv::new("pending").await;
    let _op = env.operator(&[]);
    for name in ["never", "paused", "observed", "failing"] {
        env.create(base_manifest(name)).await;
    }
    for name in ["never", "paused", "observed", "failing"] {
        let o = env.wait_synced(name).await;
        assert!(pending(&o).is_empty(), "{name}: nothing held while in sync");
    }
    // A disruption the policy refuses.
    env.patch_spec(
        "never",
        json!({"instanceType": "S5.MEDIUM4", "disruptionPolicy": {"stopStart": "Never"}}),
    )
    .await;
    // Paused.
    let paused = json!({"metadata": {"annotations": {"cvm.tencentcloud.io/paused": "true"}}});
    let params = kube::api::PatchParams::default();
    env.api()
        .patch("paused", &params, &kube::api::Patch::Merge(paused))
        .await
        .unwrap();
    env.patch_spec(
        "paused",
        json!({"internetAccessible": {"internetMaxBandwidthOut": 5}}),
    )
    .await;
    // ObserveOnly.
    env.patch_spec(
        "observed",
        json!({"managementPolicy": "ObserveOnly", "instanceName": "renamed"}),
    )
    .await;
    // A permanent error.
    env.sim
        .sim
        .set_faults(always("ModifyInstancesAttribute", "InvalidParameterValue"));
    env.patch_spec("failing", json!({"instanceName": "refused"}))
        .await;

    let o = wait_reason(&env, "never", "StopRequired").await;
    let stop = row("spec.instanceType", "S5.SMALL1", "S5.MEDIUM4", "Stop");
    assert_eq!(pending(&o), [stop]);
    let o = wait_reason(&env, "paused", "ReconcilePaused").await;
    assert_eq!(pending(&o), [row(BANDWIDTH, "1", "5", "None")]);
    let o = wait_reason(&env, "observed", "DriftDetected").await;
    assert_eq!(
        pending(&o),
        [row("spec.instanceName", "observed", "renamed", "None")]
    );
    let o = wait_reason(&env, "failing", "ReconcileError").await;
    assert_eq!(
        pending(&o),
        [row("spec.instanceName", "failing", "refused", "None")]
    );

    // Allowed, unpaused, fixed: applied, and the lists empty.
    env.sim.sim.set_faults(Faults::default());
    env.patch_spec(
        "never",
        json!({"disruptionPolicy": {"stopStart": "Allowed"}}),
    )
    .await;
    let unpause = json!({"metadata": {"annotations": {"cvm.tencentcloud.io/paused": null}}});
    env.api()
        .patch("paused", &params, &kube::api::Patch::Merge(unpause))
        .await
        .unwrap();
    env.patch_spec("failing", json!({"instanceName": "accepted"}))
        .await;
    for name in ["never", "paused", "failing"] {
        let o = env.wait_synced(name).await;
        assert!(pending(&o).is_empty(), "{name}: {:?}", pending(&o));
    }
}
