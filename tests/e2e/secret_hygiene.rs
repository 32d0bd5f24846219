//! What a resource's status and events say about a Secret they reference:
//! the same words whether it is missing, lacks a key, or may not be read by
//! the operator (the chart's RBAC), so a tenant who cannot read Secrets
//! learns nothing about them through a CvmInstance.

use crate::support::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

/// A kubeconfig that acts as `user` (impersonation by the test's admin).
fn kubeconfig_as(env: &TestEnv, user: &str, dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(&env.cp.kubeconfig).unwrap();
    let mut kc: Value = serde_saphyr::from_str(&text).unwrap();
    kc["users"][0]["user"]["as"] = user.into();
    let path = dir.join(format!("kubeconfig-{}", user.replace(':', "-")));
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    path.display().to_string()
}

/// Installs the chart (for its RBAC) in the test's namespace, listing
/// `secret_namespaces`; its ServiceAccount's user name.
fn install_chart(env: &TestEnv, release: &str, secret_namespaces: &[&str]) -> String {
    let list = format!("rbac.secretNamespaces={{{}}}", secret_namespaces.join(","));
    let values: &[&str] = if secret_namespaces.is_empty() {
        &[]
    } else {
        &[&list]
    };
    crate::chart_rbac::install(env.cp, release, &env.ns, values)
}

/// The Synced condition and the CredentialsNotFound events of `name`, with
/// the Secret's name replaced (it is the one thing that differs).
async fn what_it_says(env: &TestEnv, name: &str, secret: &str) -> (String, Vec<String>) {
    let o = env
        .wait_for(name, Duration::from_secs(30), "CredentialsNotFound", |o| {
            condition(o, "Synced").is_some_and(|c| c.1 == "CredentialsNotFound")
        })
        .await;
    let synced = condition(&o, "Synced").unwrap();
    let anon = |s: &str| s.replace(&format!("/{secret} "), "/<secret> ");
    let events = env
        .events(name)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "CredentialsNotFound")
        .map(|(_, note)| anon(&note))
        .collect::<std::collections::BTreeSet<_>>();
    (anon(&synced.2), events.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_a_missing_key_and_a_forbidden_secret_read_the_same() {
    let env = TestEnv::new("secrets").await;
    let dir = tempfile::tempdir().unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let put = |name: &str, data: Value| {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        let secrets = secrets.clone();
        async move { secrets.create(&PostParams::default(), &s).await.unwrap() }
    };
    put("partial", json!({"SecretId": "AKIDpartial"})).await;
    put(
        "complete",
        json!({"SecretId": cvm_operator::sim::DEFAULT_SECRET_ID, "SecretKey": cvm_operator::sim::DEFAULT_SECRET_KEY}),
    )
    .await;
    let with_secret = |name: &str, secret: &str| {
        let mut m = base_manifest(name);
        m["spec"]["credentialsSecretRef"] = json!({"name": secret});
        m
    };

    // The operator as the chart's ServiceAccount, with this namespace listed.
    let listed = install_chart(&env, "hyg-listed", &[&env.ns]);
    let mut op = env.operator(&["--kubeconfig", &kubeconfig_as(&env, &listed, dir.path())]);
    env.create(with_secret("missing", "absent")).await;
    env.create(with_secret("no-key", "partial")).await;
    let missing = what_it_says(&env, "missing", "absent").await;
    let no_key = what_it_says(&env, "no-key", "partial").await;
    op.assert_running();
    drop(op);

    // The same, unlisted: the operator may not read the complete Secret.
    let unlisted = install_chart(&env, "hyg-unlisted", &[]);
    let op = env.operator(&["--kubeconfig", &kubeconfig_as(&env, &unlisted, dir.path())]);
    env.create(with_secret("forbidden", "complete")).await;
    let forbidden = what_it_says(&env, "forbidden", "complete").await;

    let expected = format!(
        "credentials Secret {}/<secret> is missing, unreadable or incomplete (needs SecretId and SecretKey)",
        env.ns
    );
    assert_eq!(missing.0, expected);
    assert!(!missing.1.is_empty(), "a Warning event was published");
    assert_eq!(missing, no_key, "a missing Secret and a missing key");
    assert_eq!(missing, forbidden, "a missing Secret and a forbidden one");
    assert_eq!(env.stats().calls("RunInstances"), 0);
    // The admin, who reads the operator's log, gets the cause.
    assert!(
        op.log_text().contains("rbac.secretNamespaces"),
        "{}",
        op.log_text()
    );
}
