//! GitOps for fleets: Argo CD's health check for `CvmInstanceSet`
//! (deploy/argocd/health-cvminstanceset.lua, run in Lua 5.4) and Flux's
//! kstatus on sets as the apiserver serves them — launching, all ready, a
//! change not seen yet, scaling, a launch the API refuses, no account.

use crate::fleet::{create_set, scale, set_manifest, sets, wait_settled};
use crate::gitops::{kstatus, run_health_script, slow_launches, without_stalled};
use crate::support::*;
use cvm_operator::api::set::CvmInstanceSet;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn argocd_health(obj: &Value) -> (String, String) {
    run_health_script("health-cvminstanceset.lua", obj)
}

/// The set as kubectl, Argo CD and Flux read it.
fn live(env: &TestEnv, name: &str) -> Value {
    let args = ["get", "cvmset", name, "-n", &env.ns, "-o", "json"];
    serde_json::from_str(&env.cp.run_tool("kubectl", &args, None)).unwrap()
}

/// Waits until set `name` satisfies `pred` (its status seen for the
/// current generation).
async fn wait_set(env: &TestEnv, name: &str, what: &str, pred: impl Fn(&CvmInstanceSet) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let set = sets(env).get(name).await.unwrap();
        let seen =
            set.status.as_ref().and_then(|s| s.observed_generation) == set.metadata.generation;
        if seen && pred(&set) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "set {name} never {what}: {:?}",
            set.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition_is(set: &CvmInstanceSet, type_: &str, status: &str, reason: &str) -> bool {
    set.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_health_and_kstatus_follow_live_sets() {
    let env = TestEnv::with_sim("gitops-set", slow_launches()).await;
    let op = env.operator(&[]);

    // Before the operator reports anything, and while the members launch.
    create_set(&env, set_manifest("web", 3)).await;
    let argo = argocd_health(&live(&env, "web"));
    assert_eq!(argo.0, "Progressing", "{argo:?}");
    wait_set(&env, "web", "launched", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.replicas == 3 && st.ready_replicas < 3)
    })
    .await;
    let obj = live(&env, "web");
    let (argo, ks) = (argocd_health(&obj), kstatus(&obj));
    assert_eq!(argo.0, "Progressing", "{argo:?} {obj}");
    assert!(argo.1.contains("of 3 members ready"), "{argo:?}");
    assert_eq!(ks.0, "InProgress", "{ks:?} {obj}");

    // All ready and up to date.
    wait_settled(&env, "web", 3, Duration::from_secs(60)).await;
    let obj = live(&env, "web");
    let (argo, ks) = (argocd_health(&obj), kstatus(&obj));
    assert_eq!(
        argo,
        (
            "Healthy".into(),
            "all 3 members are ready and up to date".into()
        ),
        "{obj}"
    );
    assert_eq!(ks.0, "Current", "{ks:?} {obj}");
    assert_eq!(argocd_health(&without_stalled(&obj)).0, "Healthy");

    // A change the operator has not seen (it is down).
    drop(op);
    scale(&env, "web", 4).await;
    let obj = live(&env, "web");
    let (argo, ks) = (argocd_health(&obj), kstatus(&obj));
    assert_eq!(argo.0, "Progressing", "{argo:?} {obj}");
    assert!(argo.1.contains("generation 2"), "{argo:?}");
    assert_eq!(ks.0, "InProgress", "{ks:?}");

    // Seen, the fourth member launching: still Progressing, saying why.
    let _op = env.operator(&[]);
    wait_set(&env, "web", "scaling", |s| {
        s.status.as_ref().is_some_and(|st| st.ready_replicas == 3)
            && (condition_is(s, "Progressing", "True", "ScalingUp")
                || condition_is(s, "Progressing", "True", "Launching"))
    })
    .await;
    let obj = live(&env, "web");
    let argo = argocd_health(&obj);
    assert_eq!(argo.0, "Progressing", "{argo:?} {obj}");
    assert!(argo.1.starts_with("3 of 4 members ready"), "{argo:?}");
    wait_settled(&env, "web", 4, Duration::from_secs(60)).await;
    assert_eq!(argocd_health(&live(&env, "web")).0, "Healthy");

    // A launch the API refuses whatever the retry: Degraded and Failed.
    let mut bad = set_manifest("bad", 2);
    bad["spec"]["template"]["spec"]["instanceType"] = "S5.HUGE999".into();
    create_set(&env, bad).await;
    wait_set(&env, "bad", "stalled", |s| {
        condition_is(s, "Stalled", "True", "ReconcileError")
    })
    .await;
    let obj = live(&env, "bad");
    let (argo, ks) = (argocd_health(&obj), kstatus(&obj));
    assert_eq!(argo.0, "Degraded", "{argo:?} {obj}");
    assert!(
        argo.1.starts_with(
            "ReconcileError: RunInstances failed: InvalidParameterValue.InstanceTypeNotFound"
        ),
        "{argo:?}"
    );
    assert_eq!(ks.0, "Failed", "{ks:?} {obj}");
    assert!(ks.1.contains("InstanceTypeNotFound"), "{ks:?}");

    // No account to launch with: Degraded, from Stalled or (an older
    // operator's object) from Synced's reason alike.
    let mut lost = set_manifest("lost", 1);
    lost["spec"]["template"]["spec"]["accountRef"] = json!({"name": "nobody-made-this"});
    create_set(&env, lost).await;
    wait_set(&env, "lost", "stalled", |s| {
        condition_is(s, "Stalled", "True", "NoAccount")
    })
    .await;
    let obj = live(&env, "lost");
    let argo = argocd_health(&obj);
    assert_eq!(argo.0, "Degraded", "{argo:?} {obj}");
    assert!(argo.1.starts_with("NoAccount"), "{argo:?}");
    assert_eq!(argocd_health(&without_stalled(&obj)), argo);
    assert_eq!(kstatus(&obj).0, "Failed");
    assert_eq!(env.stats().instances, 4, "nothing launched for either");
}
