//! The hostile tenant, played against the real apiserver: a user with rights
//! on `CvmInstance`s in their own namespace only (impersonated, narrowed
//! RBAC, no Secret access) tries to take over another team's VM — by
//! `spec.instanceId`, by `status.instanceId`, with a borrowed SecretId, by
//! switching accounts, through a label shard. Each attempt is refused with a
//! clear condition; the victim's VM is untouched (checked at the simulator:
//! no operation on it, same tags), and the victim's resource keeps reporting
//! the truth.

use crate::support::*;
use crate::{instance, instance_id};
use cvm_operator::api::CvmInstance;
use cvm_operator::cloud::model::{self, InstanceState};
use cvm_operator::sim::{self, SimAccount, SimConfig};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

/// What must not change on a victim's VM: its last operation (any
/// mutation replaces it), name, protection, state and tags.
#[derive(Debug, PartialEq)]
struct Untouched {
    operation: (Option<String>, Option<String>),
    name: Option<String>,
    protected: Option<bool>,
    state: Option<InstanceState>,
    tags: Vec<(String, String)>,
}

fn untouched(i: &model::Instance) -> Untouched {
    let mut tags: Vec<(String, String)> = i
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    tags.sort();
    Untouched {
        operation: (
            i.latest_operation.clone(),
            i.latest_operation_request_id.clone(),
        ),
        name: i.instance_name.clone(),
        protected: i.disable_api_termination,
        state: i.instance_state.clone(),
        tags,
    }
}

/// Lets `user` do anything to CvmInstances (and their status) in `ns`, and
/// nothing else.
fn grant_tenant(env: &TestEnv, ns: &str, user: &str) {
    let yaml = format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: cvm-tenant, namespace: {ns}}}
rules:
  - apiGroups: ["cvm.tencentcloud.io"]
    resources: ["cvminstances", "cvminstances/status"]
    verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: cvm-tenant, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: cvm-tenant}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
"#
    );
    env.cp
        .run_tool("kubectl", &["apply", "-f", "-"], Some(&yaml));
}

/// A CvmInstance manifest for `ns`, labelled for this test's operator.
fn manifest(env: &TestEnv, ns: &str, name: &str, spec: Value) -> CvmInstance {
    let mut m = base_manifest(name);
    m["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    m["kind"] = "CvmInstance".into();
    m["metadata"]["namespace"] = ns.into();
    m["metadata"]["labels"] = json!({"tenancy": env.ns});
    for (k, v) in spec.as_object().unwrap() {
        m["spec"][k] = v.clone();
    }
    serde_json::from_value(m).unwrap()
}

async fn wait_in(
    api: &Api<CvmInstance>,
    name: &str,
    what: &str,
    pred: impl Fn(&CvmInstance) -> bool,
) -> CvmInstance {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let o = api.get(name).await.unwrap();
        if pred(&o) {
            return o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never {what}: {:?}",
            o.status
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn reason(o: &CvmInstance) -> String {
    condition(o, "Synced").map(|c| c.1).unwrap_or_default()
}

/// Nothing of the victim's instance in a refused resource's status (what
/// is there, if anything, was observed of the resource's own instance
/// before).
fn reports_nothing_of(o: &CvmInstance, victim: &model::Instance) {
    let s = o.status.clone().unwrap_or_default();
    let ips = victim.private_ip_addresses.clone().unwrap_or_default();
    assert!(
        s.private_ip_addresses.iter().all(|ip| !ips.contains(ip)),
        "{s:?}"
    );
    let public = victim.public_ip_addresses.clone().unwrap_or_default();
    assert!(
        s.public_ip_addresses.iter().all(|ip| !public.contains(ip)),
        "{s:?}"
    );
    assert_ne!(s.instance_name, victim.instance_name, "{s:?}");
    // Not createdTime: it has whole-second resolution, and two instances
    // made in the same second share it.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_take_over_another_teams_vm() {
    let env = TestEnv::new("tenancy").await;
    let (team_a, team_b) = (env.ns.clone(), env.namespace("b").await);
    let shared = env
        .account(
            "shared",
            json!({"source": "Environment"}),
            namespaces_named(&[&team_a, &team_b]),
        )
        .await;
    let selector = format!("tenancy={}", env.ns);
    let _op =
        env.operator_with_own_accounts(&["--watch-namespace", "", "--label-selector", &selector]);
    let admin_a: Api<CvmInstance> = Api::namespaced(env.client.clone(), &team_a);
    let spec = |extra: Value| {
        let mut s = json!({"accountRef": {"name": shared}});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };

    // team-a's VM: kept on deletion and protected from termination.
    let victim = manifest(
        &env,
        &team_a,
        "db",
        spec(json!({"deletionPolicy": "Retain", "disableApiTermination": true})),
    );
    admin_a
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    let victim_id = instance_id(
        &wait_in(&admin_a, "db", "Ready", |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await,
    );
    let v = instance(&env, &victim_id).await.unwrap();
    let before = untouched(&v);

    // The tenant: CvmInstances in team-b, nothing else.
    grant_tenant(&env, &team_b, "mallory");
    let tenant = env.cp.client_as("mallory").await;
    let mallory: Api<CvmInstance> = Api::namespaced(tenant.clone(), &team_b);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(tenant, &team_b);
    assert!(
        secrets.list(&Default::default()).await.is_err(),
        "no Secret access"
    );

    // 1. spec.instanceId: refused, nothing reported, not even ObserveOnly.
    let grab = manifest(
        &env,
        &team_b,
        "grab",
        spec(json!({"instanceId": victim_id,
        "deletionPolicy": "Delete", "disableApiTermination": false, "instanceName": "pwned"})),
    );
    mallory.create(&PostParams::default(), &grab).await.unwrap();
    let peek = manifest(
        &env,
        &team_b,
        "peek",
        spec(json!({"instanceId": victim_id, "managementPolicy": "ObserveOnly"})),
    );
    mallory.create(&PostParams::default(), &peek).await.unwrap();
    for name in ["grab", "peek"] {
        let o = wait_in(&mallory, name, "refused", |o| {
            reason(o) == "AdoptionRefused"
        })
        .await;
        let text = condition(&o, "Synced").unwrap().2;
        assert!(
            text.contains(&format!("cvm.tencentcloud.io/namespace={team_b}")),
            "{text}"
        );
        reports_nothing_of(&o, &v);
        mallory
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    // 2. status.instanceId: the tenant's own resource pointed at the VM.
    let mine = manifest(&env, &team_b, "mine", spec(json!({})));
    mallory.create(&PostParams::default(), &mine).await.unwrap();
    let own_id = instance_id(
        &wait_in(&mallory, "mine", "Ready", |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await,
    );
    let params = PatchParams::default();
    let point = Patch::Merge(json!({"status": {"instanceId": victim_id}}));
    mallory.patch_status("mine", &params, &point).await.unwrap();
    let change =
        Patch::Merge(json!({"spec": {"instanceName": "pwned", "disableApiTermination": false}}));
    mallory.patch("mine", &params, &change).await.unwrap();
    let o = wait_in(&mallory, "mine", "refused", |o| {
        reason(o) == "InstanceNotOwned"
    })
    .await;
    reports_nothing_of(&o, &v);
    // Deleting it terminates its own VM (found by its UID tag), not the victim's.
    mallory
        .delete("mine", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..300 {
        if mallory.get_opt("mine").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(mallory.get_opt("mine").await.unwrap().is_none(), "released");
    let own = instance(&env, &own_id).await;
    assert!(
        own.is_none_or(|i| i.instance_state == Some(InstanceState::Terminating)),
        "no leak: its own VM is terminated"
    );

    // 3. A borrowed SecretId (it travels in every request) with a wrong key.
    env.key_secret(&team_b, "borrowed", sim::DEFAULT_SECRET_ID, "not-the-key")
        .await;
    let borrow = manifest(
        &env,
        &team_b,
        "borrow",
        json!({"credentialsSecretRef": {"name": "borrowed"}, "instanceId": victim_id}),
    );
    mallory
        .create(&PostParams::default(), &borrow)
        .await
        .unwrap();
    let o = wait_in(&mallory, "borrow", "refused", |o| {
        reason(o) == "CredentialsRejected"
    })
    .await;
    reports_nothing_of(&o, &v);

    // 4. Switching to an account that does not admit team-b.
    let only_a = env
        .account(
            "only-a",
            json!({"source": "Environment"}),
            namespaces_named(&[&team_a]),
        )
        .await;
    let hop = manifest(
        &env,
        &team_b,
        "hop",
        json!({"accountRef": {"name": only_a}, "instanceId": victim_id}),
    );
    mallory.create(&PostParams::default(), &hop).await.unwrap();
    wait_in(&mallory, "hop", "refused", |o| {
        reason(o) == "AccountNotAllowed"
    })
    .await;

    // The victim's VM: untouched; no tag was written by anyone.
    let s = env.stats();
    assert_eq!(s.calls("ModifyResourceTags"), 0, "{s:?}");
    assert_eq!(
        s.calls("TerminateInstances"),
        1,
        "only the tenant's own VM: {s:?}"
    );
    assert_eq!(
        untouched(&instance(&env, &victim_id).await.unwrap()),
        before
    );
    // Its resource still reports the truth: stopped behind its back, it
    // says so (and, being in sync before, corrects it).
    let stop = model::StopInstancesRequest {
        instance_ids: vec![victim_id.clone()],
        ..Default::default()
    };
    env.cloud()
        .call::<model::StopInstances>(&env.creds(), REGION, &stop)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(env.client.clone(), &team_a);
        let events = api.list(&Default::default()).await.unwrap();
        let seen = events.items.iter().any(|e| {
            e.reason.as_deref() == Some("DriftDetected")
                && e.note.as_deref().is_some_and(|n| n.contains("STOP"))
        });
        if seen {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the victim never saw its VM stop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_in(&admin_a, "db", "Ready again", |o| {
        o.status.as_ref().and_then(|s| s.instance_state.as_deref()) == Some("RUNNING")
            && condition(o, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
}

fn two_accounts() -> (SimAccount, SimAccount, SimConfig) {
    let a = SimAccount::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY);
    let b = SimAccount::new("AKIDshardB0000000000000000000000000", "shard-b-key");
    let config = SimConfig {
        accounts: vec![a.clone(), b.clone()],
        ..fast_sim()
    };
    (a, b, config)
}

/// Two operators shard the resources by label, each with credentials of
/// its own and serving only its own accounts: a tenant's label picks the
/// operator, never its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_shard_cannot_pick_another_operators_credentials() {
    let (a, b, config) = two_accounts();
    let env = TestEnv::with_sim("shards", config).await;
    let (team_a, team_b) = (env.ns.clone(), env.namespace("b").await);
    let label = |shard: &str| format!("cvm-test={},shard={shard}", env.ns);
    let account = |shard: &str, ns: &str, uin: &str| {
        let mut m = account_manifest(
            &format!("{}-{shard}", env.ns),
            json!({"source": "Environment"}),
            namespaces_named(&[ns]),
        );
        m["metadata"]["labels"] = json!({"cvm-test": env.ns, "shard": shard});
        m["spec"]["uin"] = uin.into();
        serde_json::to_string(&m).unwrap()
    };
    env.cp.run_tool(
        "kubectl",
        &["apply", "-f", "-"],
        Some(&account("a", &team_a, &a.uin)),
    );
    env.cp.run_tool(
        "kubectl",
        &["apply", "-f", "-"],
        Some(&account("b", &team_b, &b.uin)),
    );
    let (acct_a, acct_b) = (format!("{}-a", env.ns), format!("{}-b", env.ns));
    let shard = |s: &str| format!("tenancy={},shard={s}", env.ns);
    let (sel_a, acc_a) = (shard("a"), label("a"));
    let _op_a = Operator::start(
        &env,
        &[
            "--watch-namespace",
            "",
            "--label-selector",
            &sel_a,
            "--account-selector",
            &acc_a,
        ],
    );
    let (sel_b, acc_b) = (shard("b"), label("b"));
    let _op_b = Operator::start_with_env(
        &env,
        &[
            "--watch-namespace",
            "",
            "--label-selector",
            &sel_b,
            "--account-selector",
            &acc_b,
        ],
        &[
            ("TENCENTCLOUD_SECRET_ID", &b.secret_id),
            ("TENCENTCLOUD_SECRET_KEY", b.secret_key.expose()),
        ],
    );
    let in_shard = |ns: &str, name: &str, s: &str, spec: Value| {
        let mut m = manifest(&env, ns, name, spec);
        m.metadata
            .labels
            .get_or_insert_default()
            .insert("shard".into(), s.into());
        m
    };
    let admin_a: Api<CvmInstance> = Api::namespaced(env.client.clone(), &team_a);
    let victim = in_shard(
        &team_a,
        "db",
        "a",
        json!({"accountRef": {"name": acct_a}, "deletionPolicy": "Retain"}),
    );
    admin_a
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    let victim_id = instance_id(
        &wait_in(&admin_a, "db", "Ready", |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await,
    );
    let creds_a =
        cvm_operator::cloud::Credentials::new(&a.secret_id, a.secret_key.expose(), None).unwrap();
    let look = |id: String| {
        let (cloud, creds) = (env.cloud(), creds_a.clone());
        async move {
            cloud
                .describe_instances_by_ids(&creds, REGION, &[id])
                .await
                .unwrap()
                .remove(0)
        }
    };
    let before = untouched(&look(victim_id.clone()).await);

    grant_tenant(&env, &team_b, "eve");
    let eve: Api<CvmInstance> = Api::namespaced(env.cp.client_as("eve").await, &team_b);
    // The tenant labels resources for shard a, whose operator holds team-a's credentials.
    let attempts = [
        ("hop-default", json!({"instanceId": victim_id}), "NoAccount"),
        (
            "hop-own",
            json!({"instanceId": victim_id, "accountRef": {"name": acct_b}}),
            "NoAccount",
        ),
        (
            "hop-theirs",
            json!({"instanceId": victim_id, "accountRef": {"name": acct_a}}),
            "AccountNotAllowed",
        ),
        (
            "hop-new",
            json!({"accountRef": {"name": acct_a}}),
            "AccountNotAllowed",
        ),
    ];
    for (name, spec, _) in &attempts {
        eve.create(
            &PostParams::default(),
            &in_shard(&team_b, name, "a", spec.clone()),
        )
        .await
        .unwrap();
    }
    for (name, _, want) in &attempts {
        let o = wait_in(&eve, name, want, |o| reason(o) == *want).await;
        assert!(
            o.status.as_ref().unwrap().instance_id.is_none(),
            "{:?}",
            o.status
        );
    }
    // A resource of shard b relabelled to shard a: its account is not served there.
    let legit = in_shard(
        &team_b,
        "legit",
        "b",
        json!({"accountRef": {"name": acct_b}}),
    );
    eve.create(&PostParams::default(), &legit).await.unwrap();
    let o = wait_in(&eve, "legit", "Ready", |o| {
        condition(o, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        o.status.as_ref().unwrap().account.as_ref().unwrap().uin,
        b.uin
    );
    let relabel = Patch::Merge(json!({"metadata": {"labels": {"shard": "a"}}}));
    eve.patch("legit", &PatchParams::default(), &relabel)
        .await
        .unwrap();
    wait_in(&eve, "legit", "refused in shard a", |o| {
        reason(o) == "NoAccount"
    })
    .await;

    let s = env.stats();
    assert_eq!(
        s.calls("RunInstances"),
        2,
        "the victim's and legit's only: {s:?}"
    );
    assert_eq!(untouched(&look(victim_id).await), before);
}
