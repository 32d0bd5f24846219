//! Accounts: which `CvmAccount` a resource may use, and the account recorded
//! at create that is never swapped for another.

use crate::support::*;
use crate::{instance_id, mutations};
use cvm_operator::api::{AccountKind, AccountRecord};
use cvm_operator::cloud::model::InstanceState;
use cvm_operator::sim::{self, SimAccount, SimConfig};
use serde_json::json;
use std::time::Duration;

/// (status, reason, message) of `Synced`.
fn synced(o: &cvm_operator::api::CvmInstance) -> (String, String, String) {
    condition(o, "Synced").unwrap_or_default()
}

async fn wait_synced_reason(env: &TestEnv, name: &str, reason: &str) -> String {
    let o = env
        .wait_for(name, Duration::from_secs(30), reason, |o| {
            synced(o).1 == reason
        })
        .await;
    synced(&o).2
}

/// Asserts no cloud call at all for `for_` (the refusals come before any).
async fn assert_no_cloud_calls(env: &TestEnv, for_: Duration) {
    tokio::time::sleep(for_).await;
    let s = env.stats();
    assert_eq!(
        (
            s.calls("GetCallerIdentity"),
            s.calls("DescribeInstances"),
            s.calls("RunInstances")
        ),
        (0, 0, 0),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_serves_only_the_namespaces_it_selects() {
    let env = TestEnv::new("acct-select").await;
    let _op = env.operator_with_own_accounts(&[]);
    // No account named, and no `default` this operator serves.
    env.create(base_manifest("orphan")).await;
    let text = wait_synced_reason(&env, "orphan", "NoAccount").await;
    assert!(
        text.contains("an admin creates the CvmAccount default"),
        "{text}"
    );
    let o = env.api().get("orphan").await.unwrap();
    assert_eq!(condition(&o, "Stalled").unwrap().0, "True");

    // An account for another namespace only.
    let account = env
        .account(
            "shared",
            json!({"source": "Environment"}),
            namespaces_named(&["somewhere-else"]),
        )
        .await;
    let uin = env.wait_account_ready(&account).await;
    assert_eq!(uin, SimAccount::new(sim::DEFAULT_SECRET_ID, "").uin);
    let mut web = base_manifest("web");
    web["spec"]["accountRef"] = json!({"name": account});
    env.create(web).await;
    let text = wait_synced_reason(&env, "web", "AccountNotAllowed").await;
    assert!(
        text.contains(&format!("does not allow namespace {}", env.ns)),
        "{text}"
    );
    let verified = env.stats().calls("GetCallerIdentity");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.stats();
    assert_eq!(
        (s.calls("DescribeInstances"), s.calls("RunInstances")),
        (0, 0),
        "refused resources make no cloud call: {s:?}"
    );
    assert_eq!(
        s.calls("GetCallerIdentity"),
        verified,
        "only the account's own check"
    );

    // The admin widens the account: its users are woken and go ahead.
    env.account(
        "shared",
        json!({"source": "Environment"}),
        namespaces_named(&["somewhere-else", &env.ns]),
    )
    .await;
    let o = env.wait_ready("web").await;
    let recorded = o.status.as_ref().unwrap().account.clone();
    assert_eq!(
        recorded,
        Some(AccountRecord {
            kind: AccountKind::CvmAccount,
            name: account.clone(),
            uin,
        })
    );
    assert_eq!(
        synced(&env.api().get("orphan").await.unwrap()).1,
        "NoAccount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resource_makes_no_cloud_call() {
    let env = TestEnv::new("acct-quiet").await;
    let _op = env.operator_with_own_accounts(&[]);
    let mut m = base_manifest("quiet");
    m["spec"]["accountRef"] = json!({"name": "nobody-made-this"});
    env.create(m).await;
    let text = wait_synced_reason(&env, "quiet", "NoAccount").await;
    assert!(
        text.contains("does not exist (this operator serves"),
        "{text}"
    );
    assert_no_cloud_calls(&env, Duration::from_secs(2)).await;
}

fn two_accounts() -> (SimAccount, SimAccount, SimConfig) {
    let a = SimAccount::new("AKIDteamA000000000000000000000000000", "team-a-key");
    let b = SimAccount::new("AKIDteamB000000000000000000000000000", "team-b-key");
    let config = SimConfig {
        accounts: vec![a.clone(), b.clone()],
        ..fast_sim()
    };
    (a, b, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_account_is_never_swapped_for_another() {
    let (a, b, config) = two_accounts();
    let env = TestEnv::with_sim("acct-swap", config).await;
    env.key_secret(&env.ns, "keys-a", &a.secret_id, a.secret_key.expose())
        .await;
    env.key_secret(&env.ns, "keys-b", &b.secret_id, b.secret_key.expose())
        .await;
    let here = namespaces_named(&[&env.ns]);
    let secret =
        |name: &str| json!({"source": "Secret", "secretRef": {"namespace": env.ns, "name": name}});
    let acct_a = env.account("a", secret("keys-a"), here.clone()).await;
    let acct_b = env.account("b", secret("keys-b"), here.clone()).await;
    let _op = env.operator_with_own_accounts(&[]);

    let mut m = base_manifest("vm");
    m["spec"]["accountRef"] = json!({"name": acct_a});
    env.create(m).await;
    let o = env.wait_ready("vm").await;
    let id = instance_id(&o);
    let recorded = o.status.as_ref().unwrap().account.clone().unwrap();
    assert_eq!(
        (recorded.name.as_str(), recorded.uin.as_str()),
        (acct_a.as_str(), a.uin.as_str())
    );

    // Another account: refused, nothing done, and the instance is not "gone".
    let before = mutations(&env.stats());
    env.patch_spec("vm", json!({"accountRef": {"name": acct_b}}))
        .await;
    let text = wait_synced_reason(&env, "vm", "CredentialsAccountChanged").await;
    assert!(text.contains(&acct_a) && text.contains(&a.uin), "{text}");
    env.delete("vm").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = env
        .api()
        .get("vm")
        .await
        .expect("the finalizer holds the resource");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(synced(&held).1, "CredentialsAccountChanged");
    assert_eq!(mutations(&env.stats()), before, "no mutation while refused");
    let vm = env
        .cloud()
        .describe_instances_by_ids(&creds_of(&a), REGION, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(vm[0].instance_state, Some(InstanceState::Running));

    // The recorded account named again: the deletion completes.
    env.patch_spec("vm", json!({"accountRef": {"name": acct_a}}))
        .await;
    env.wait_gone("vm", Duration::from_secs(60)).await;
    let vm = env
        .cloud()
        .describe_instances_by_ids(&creds_of(&a), REGION, &[id])
        .await
        .unwrap();
    assert!(
        vm.is_empty() || vm[0].instance_state == Some(InstanceState::Terminating),
        "{vm:?}"
    );
}

fn creds_of(a: &SimAccount) -> cvm_operator::cloud::Credentials {
    cvm_operator::cloud::Credentials::new(&a.secret_id, a.secret_key.expose(), None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_source_acting_in_another_account_is_refused() {
    let (a, b, config) = two_accounts();
    let env = TestEnv::with_sim("acct-moved", config).await;
    env.key_secret(&env.ns, "keys", &a.secret_id, a.secret_key.expose())
        .await;
    env.key_secret(&env.ns, "own", &a.secret_id, a.secret_key.expose())
        .await;
    env.key_secret(&env.ns, "other", &b.secret_id, b.secret_key.expose())
        .await;
    let acct = env
        .account(
            "moving",
            json!({"source": "Secret", "secretRef": {"namespace": env.ns, "name": "keys"}}),
            namespaces_named(&[&env.ns]),
        )
        .await;
    let _op = env.operator_with_own_accounts(&[]);
    let mut by_account = base_manifest("by-account");
    by_account["spec"]["accountRef"] = json!({"name": acct});
    env.create(by_account).await;
    let mut own_keys = base_manifest("own-keys");
    own_keys["spec"]["credentialsSecretRef"] = json!({"name": "own"});
    env.create(own_keys).await;
    let o = env.wait_ready("own-keys").await;
    let recorded = o.status.as_ref().unwrap().account.clone().unwrap();
    assert_eq!(
        (recorded.kind, recorded.uin.as_str()),
        (AccountKind::Secret, a.uin.as_str())
    );
    let id = instance_id(&env.wait_ready("by-account").await);

    // The account's Secret now holds another account's keys.
    env.key_secret(&env.ns, "keys", &b.secret_id, b.secret_key.expose())
        .await;
    // A resource switches its own Secret.
    env.patch_spec(
        "own-keys",
        json!({"credentialsSecretRef": {"name": "other"}}),
    )
    .await;
    let before = mutations(&env.stats());
    let text = wait_synced_reason(&env, "own-keys", "CredentialsAccountChanged").await;
    assert!(text.contains("Secret own"), "{text}");
    // A change asked of the resource once the Secret cache (10 s) lets the
    // new keys through: refused, not carried out in account b.
    tokio::time::sleep(Duration::from_secs(10)).await;
    env.patch_spec(
        "by-account",
        json!({"internetAccessible": {"internetMaxBandwidthOut": 7}}),
    )
    .await;
    let o = env
        .wait_for("by-account", Duration::from_secs(30), "refused", |o| {
            synced(o).1 == "CredentialsAccountChanged"
        })
        .await;
    assert!(
        synced(&o)
            .2
            .contains(&format!("acting in account {}", b.uin)),
        "{:?}",
        synced(&o)
    );
    assert_eq!(mutations(&env.stats()), before);
    let cloud = env.cloud();
    let b_view = cloud
        .describe_instances_by_ids(&creds_of(&b), REGION, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert!(b_view.is_empty(), "account b does not see it");
    let a_view = cloud
        .describe_instances_by_ids(&creds_of(&a), REGION, &[id])
        .await
        .unwrap();
    assert_eq!(a_view[0].instance_state, Some(InstanceState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_an_account_and_own_keys_together() {
    let env = TestEnv::new("acct-cel").await;
    let mut m = base_manifest("both");
    m["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    m["kind"] = "CvmInstance".into();
    m["metadata"]["namespace"] = env.ns.clone().into();
    m["spec"]["accountRef"] = json!({"name": "a"});
    m["spec"]["credentialsSecretRef"] = json!({"name": "b"});
    let obj: cvm_operator::api::CvmInstance = serde_json::from_value(m).unwrap();
    let err = env
        .api()
        .create(&Default::default(), &obj)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.accountRef and spec.credentialsSecretRef"),
        "{err}"
    );
    let account = account_manifest(
        &format!("{}-bad", env.ns),
        json!({"source": "Secret", "secretRef": {"name": "keys"}}),
        json!({"allNamespaces": true}),
    );
    let account: cvm_operator::api::CvmAccount = serde_json::from_value(account).unwrap();
    let err = env
        .accounts()
        .create(&Default::default(), &account)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("secretRef.namespace is required"), "{err}");
}

/// Accounts whose credentials are temporary — a role assumed with the
/// operator's own keys, a web identity, the instance role — keep working
/// over several lifetimes of their credentials (a few seconds here): the
/// operator refreshes them ahead of expiry, for reconciles and sweeps alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_credentials_accounts_keep_working_across_refreshes() {
    use cvm_operator::cloud::Secret;
    use cvm_operator::sim::{SimInstanceRole, SimRole, SimWebIdentityTrust, StsConfig};
    const LIFETIME: u64 = 6;
    let role_account = "200000000007";
    let arn = |name: &str| format!("qcs::cam::uin/{role_account}:roleName/{name}");
    let env = TestEnv::new("acct-sts").await;
    let own_uin = SimAccount::new(sim::DEFAULT_SECRET_ID, "").uin;
    env.sim.sim.set_sts(StsConfig {
        roles: vec![
            SimRole {
                arn: arn("ops"),
                trusted_accounts: vec![own_uin],
                external_id: Some("team-a".into()),
                web_identity: None,
            },
            SimRole {
                arn: arn("workload"),
                web_identity: Some(SimWebIdentityTrust {
                    provider_id: "tke-oidc".into(),
                    tokens: vec![Secret::new("oidc-token-1")],
                }),
                ..SimRole::default()
            },
        ],
        instance_role: Some(SimInstanceRole {
            role_name: "cvm-node".into(),
            role_arn: arn("node"),
            duration_secs: LIFETIME,
        }),
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "oidc-token-1").unwrap();
    let here = namespaces_named(&[&env.ns]);
    let sources = [
        (
            "assume",
            json!({"source": "Environment", "assumeRole": {
            "roleArn": arn("ops"), "externalId": "team-a", "durationSeconds": LIFETIME}}),
        ),
        (
            "web",
            json!({"source": "WebIdentity", "webIdentity": {
            "roleArn": arn("workload"), "providerId": "tke-oidc", "region": REGION,
            "tokenFile": token.display().to_string(), "durationSeconds": LIFETIME}}),
        ),
        (
            "node",
            json!({"source": "InstanceRole", "instanceRole": {"roleName": "cvm-node"}}),
        ),
    ];
    let mut names = Vec::new();
    for (suffix, credentials) in &sources {
        names.push(env.account(suffix, credentials.clone(), here.clone()).await);
    }
    let endpoint = env.sim.endpoint();
    let _op = env.operator_with_own_accounts(&["--metadata-endpoint", &endpoint]);
    for name in &names {
        assert_eq!(env.wait_account_ready(name).await, role_account);
        let mut m = base_manifest(name);
        m["spec"]["accountRef"] = json!({"name": name});
        env.create(m).await;
    }
    for name in &names {
        let o = env.wait_ready(name).await;
        let recorded = o.status.as_ref().unwrap().account.clone().unwrap();
        assert_eq!(recorded.uin, role_account, "{name}");
    }
    // Past two lifetimes, changes still go through with fresh credentials.
    tokio::time::sleep(Duration::from_secs(2 * LIFETIME)).await;
    for name in &names {
        env.patch_spec(
            name,
            json!({"internetAccessible": {"internetMaxBandwidthOut": 3}}),
        )
        .await;
    }
    for name in &names {
        env.wait_for(name, Duration::from_secs(30), "resized", |o| {
            o.status.as_ref().and_then(|s| s.internet_max_bandwidth_out) == Some(3)
                && condition(o, "Synced").is_some_and(|c| c.0 == "True")
        })
        .await;
    }
    let s = env.stats();
    assert!(s.calls("AssumeRole") >= 3, "refreshed: {s:?}");
    assert!(
        s.calls("AssumeRoleWithWebIdentity") >= 3,
        "refreshed: {s:?}"
    );
    assert!(
        s.metadata >= 3,
        "refreshed from the metadata service: {s:?}"
    );
    assert_eq!(s.instances, 3);
}
