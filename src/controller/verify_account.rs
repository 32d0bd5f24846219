//! The `CvmAccount` reconciler: obtains the account's credentials, asks STS
//! which account (UIN) they act in, and reports it — `status.uin` and the
//! `Ready` condition — so an admin sees at once whether an account works.
//! When an account changes (its source, its selection, whether it works),
//! the `CvmInstance`s that use it are woken to re-resolve their access.
//!
//! It makes one STS call per verification (every [`REVERIFY`], and on each
//! change); instances share the account's provider and UIN.

use super::accounts::{Accounts, check_uin};
use super::cache::CachedInstance;
use super::observe::ResourceKey;
use super::ownership::AccountChoice;
use super::status;
use crate::api::{CvmAccount, CvmAccountStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a working account is verified again (credentials can be
/// revoked, roles' trust changed).
pub const REVERIFY: Duration = Duration::from_secs(600);
/// First retry of an account that does not work; doubled per failure.
const RETRY: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(300);

pub struct AccountContext {
    pub client: kube::Client,
    pub accounts: Arc<Accounts>,
    /// The instances the operator watches (whom to wake).
    pub instances: Store<CachedInstance>,
    pub wake: mpsc::UnboundedSender<ResourceKey>,
    /// When the process started: accounts created later wake their users on
    /// first sight (the ones seen at start-up need not: every instance is
    /// reconciled then anyway).
    pub started: jiff::Timestamp,
    /// Per account: the generation and readiness last seen, and failures in a row.
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Clone, PartialEq, Eq)]
struct Seen {
    generation: Option<i64>,
    ready: bool,
    uin: Option<String>,
    failures: u32,
}

impl AccountContext {
    pub fn new(
        client: kube::Client,
        accounts: Arc<Accounts>,
        instances: Store<CachedInstance>,
        wake: mpsc::UnboundedSender<ResourceKey>,
    ) -> Self {
        Self {
            client,
            accounts,
            instances,
            wake,
            started: jiff::Timestamp::now(),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
}

/// Verifies one account and reports it.
pub async fn reconcile(
    account: Arc<CvmAccount>,
    ctx: Arc<AccountContext>,
) -> Result<Action, Error> {
    let name = account.name_any();
    let verified = verify(&account, &ctx.accounts).await;
    let generation = account.metadata.generation;
    let prev = account.status.clone().unwrap_or_default();
    let now = now();
    let (ready, uin, source) = match &verified {
        Ok((uin, source)) => (Ok(uin.as_str()), Some(uin.clone()), source.clone()),
        Err(e) => (
            Err((e.reason(), e.to_string())),
            prev.uin.clone(),
            String::new(),
        ),
    };
    let condition = status::account_ready(&prev.conditions, ready, &source, generation, &now);
    let is_ready = verified.is_ok();
    let status = CvmAccountStatus {
        uin,
        observed_generation: generation,
        conditions: vec![condition],
    };
    if !same_status(&prev, &status) {
        let api: Api<CvmAccount> = Api::all(ctx.client.clone());
        let patch = serde_json::json!({"status": status});
        let params = PatchParams {
            field_manager: Some(crate::api::FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api
            .patch_status(&name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Err(e) = &verified {
        tracing::warn!(account = %name, error = %e, "account not ready");
    }
    let failures = note(&ctx, &account, is_ready, status.uin.clone());
    Ok(Action::requeue(if is_ready {
        REVERIFY
    } else {
        RETRY.saturating_mul(1 << failures.min(5)).min(RETRY_MAX)
    }))
}

/// The account's credentials, their UIN (asked afresh) and where they come from.
async fn verify(
    account: &CvmAccount,
    accounts: &Accounts,
) -> Result<(String, String), super::accounts::AccessError> {
    let provider = accounts.provider_for(account).await?;
    let uin = accounts.uin(&provider, true).await?;
    check_uin(account, &uin)?;
    Ok((uin, format!("credentials from {}", provider.describe())))
}

/// The same status apart from transition times (which only move on a flip).
fn same_status(a: &CvmAccountStatus, b: &CvmAccountStatus) -> bool {
    let key = |s: &CvmAccountStatus| {
        let conds: Vec<_> = s
            .conditions
            .iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect();
        (s.uin.clone(), s.observed_generation, conds)
    };
    key(a) == key(b)
}

/// Records what was seen of the account, wakes its users when it changed,
/// and returns its failures in a row.
fn note(ctx: &AccountContext, account: &CvmAccount, ready: bool, uin: Option<String>) -> u32 {
    let name = account.name_any();
    let generation = account.metadata.generation;
    let (changed, failures) = {
        let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.get(&name).cloned();
        let failures = match (ready, &before) {
            (true, _) => 0,
            (false, Some(b)) => b.failures + 1,
            (false, None) => 0,
        };
        let now = Seen {
            generation,
            ready,
            uin,
            failures,
        };
        let created_after_start = account
            .meta()
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| t.0 > ctx.started);
        // A new source, selection or UIN, or (not) working any more.
        let changed = match &before {
            Some(b) => (b.generation, b.ready, &b.uin) != (now.generation, now.ready, &now.uin),
            None => created_after_start,
        };
        seen.insert(name.clone(), now);
        (changed, failures)
    };
    if changed {
        wake_users(ctx, &name);
    }
    failures
}

/// Wakes every watched instance that uses account `name`.
fn wake_users(ctx: &AccountContext, name: &str) {
    let mut woken = 0;
    for cached in ctx.instances.state() {
        let uses = matches!(cached.account_choice(), Some(AccountChoice::Account { name: n, .. }) if n == name);
        if !uses {
            continue;
        }
        let key = ResourceKey {
            namespace: cached.namespace().unwrap_or_default(),
            name: cached.name_any(),
        };
        woken += 1;
        let _ = ctx.wake.send(key);
    }
    tracing::info!(account = %name, woken, "account changed; its instances look again");
}

/// The controller's error policy for accounts: retry Kubernetes errors soon.
pub fn error_policy(account: Arc<CvmAccount>, error: &Error, _: Arc<AccountContext>) -> Action {
    tracing::warn!(account = %account.name_any(), %error, "account reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn now() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}
