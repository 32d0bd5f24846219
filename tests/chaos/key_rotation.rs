//! Credentials rotated mid-flight: while creates and deletes run, the
//! Secrets holding an account's keys change to a new key of the same
//! account, and the old key is then disabled. Both ways a resource gets its
//! keys are covered: a `CvmAccount` with a Secret source, and the
//! resource's own `credentialsSecretRef`. Nothing may fail permanently and
//! nothing may be orphaned.

use crate::common::*;
use crate::knobs::{Case, knob};
use crate::support::*;
use cvm_operator::cloud::Credentials;
use cvm_operator::sim::SimAccount;
use serde_json::json;
use std::time::{Duration, Instant};

const UIN: &str = "200000000042";
const OLD: (&str, &str) = (
    "AKIDROTATEOLD00000000000000000000001",
    "rotate-old-key-0000000000000000001",
);
const NEW: (&str, &str) = (
    "AKIDROTATENEW00000000000000000000002",
    "rotate-new-key-0000000000000000002",
);

fn manifest(name: &str, i: usize, account: &str) -> serde_json::Value {
    let mut m = base_manifest(name);
    if i.is_multiple_of(2) {
        m["spec"]["accountRef"] = json!({"name": account});
    } else {
        m["spec"]["credentialsSecretRef"] = json!({"name": "own-keys"});
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation() {
    let n = knob("ROTATION_RESOURCES", 20, 100) as usize;
    let churn = (n / 4).max(2);
    let mut case = Case::new(
        "keys rotated mid-flight",
        format!(
            "{n} creates, then {churn} deletes + {churn} creates; half by CvmAccount, half by own Secret"
        ),
        "Secrets switched to a new key of the same account, then the old key disabled",
    );
    let mut cfg = fast_sim();
    for (id, key) in [OLD, NEW] {
        cfg.accounts.push(SimAccount::new(id, key).in_account(UIN));
    }
    let env = TestEnv::with_sim("rotate", cfg).await;
    let ns = env.ns.clone();
    env.key_secret(&ns, "admin-keys", OLD.0, OLD.1).await;
    env.key_secret(&ns, "own-keys", OLD.0, OLD.1).await;
    let source = json!({"source": "Secret", "secretRef": {"namespace": ns, "name": "admin-keys"}});
    let account = env
        .account("tenant", source, namespaces_named(&[&ns]))
        .await;
    let op = env.operator_with_own_accounts(&[]);
    env.wait_account_ready(&account).await;

    // Half settle before the rotation (nothing wakes them: only their
    // sweeps find out), half are being created when it happens.
    let mut names: Vec<String> = (0..n).map(|i| format!("vm-{i:03}")).collect();
    for (i, name) in names[..n / 2].iter().enumerate() {
        env.create(manifest(name, i, &account)).await;
    }
    until_all(
        &env,
        "the first half Ready",
        n / 2,
        Duration::from_secs(60),
        is_ready,
    )
    .await;
    for (i, name) in names.iter().enumerate().skip(n / 2) {
        env.create(manifest(name, i, &account)).await;
    }
    until_sent(&env, n / 2 + n / 6, Duration::from_secs(60)).await;
    // Rotate: the new key in both Secrets, then the old one disabled.
    env.key_secret(&ns, "admin-keys", NEW.0, NEW.1).await;
    env.key_secret(&ns, "own-keys", NEW.0, NEW.1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.sim.sim.revoke_key(OLD.0);
    let revoked = Instant::now();
    // Deletes and creates go on.
    for name in names.drain(..churn).collect::<Vec<_>>() {
        env.delete(&name).await;
    }
    for i in 0..churn {
        let name = format!("late-{i:03}");
        env.create(manifest(&name, i, &account)).await;
        names.push(name);
    }

    until_all(
        &env,
        "all Ready with the new key",
        names.len(),
        Duration::from_secs(180),
        is_ready,
    )
    .await;
    let converged = revoked.elapsed();
    // A rotation is not wrong credentials: no 30 s (doubling) auth backoff.
    assert!(
        converged < Duration::from_secs(30),
        "{converged:?} to converge"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.stats().instances != names.len() {
        assert!(
            Instant::now() < deadline,
            "orphaned instances: {:?}",
            env.stats()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let refused = env.stats().errors_with("AuthFailure.SecretIdNotFound");
    case.figure(format!(
        "converged {:.1} s after the old key was disabled; {refused} calls refused with it",
        converged.as_secs_f64()
    ));
    // Nothing goes on using the old key: the sweeps of the settled half
    // moved to the new one too (two poll intervals of quiet).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let late = env.stats().errors_with("AuthFailure.SecretIdNotFound") - refused;
    assert_eq!(late, 0, "calls still made with the disabled key");
    // Every instance is the account's, and there are exactly the live ones.
    let new = Credentials::new(NEW.0, NEW.1, None).unwrap();
    let ids: Vec<String> = all(&env)
        .await
        .iter()
        .filter_map(|o| o.status.as_ref()?.instance_id.clone())
        .collect();
    let seen = env
        .cloud()
        .describe_instances_by_ids(&new, REGION, &ids)
        .await
        .unwrap();
    assert_eq!(seen.len(), names.len(), "every instance in the account");
    for name in &names {
        let events = env.events(name).await;
        assert!(
            !events.iter().any(|(r, _)| r == "OrphanedInstance"),
            "{name}: {events:?}"
        );
    }
    drop(op);
}
