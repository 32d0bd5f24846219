//! The parts of a set's pass that deal with launches whose fate is unknown
//! (looked up by their tags) and with the set's deletion: every member is
//! deleted (each by the normal rules), every launched instance without a
//! member is terminated — or kept, as the template's `deletionPolicy` or
//! termination protection say — and the finalizer goes when nothing is left.

use super::journal;
use super::launch;
use super::members::MemberObject;
use super::reconcile::{SetPass, counts};
use super::report::{self, Facts, Problem};
use super::rollout::Plan;
use crate::api::set::{BatchState, LaunchBatch};
use crate::api::{CvmInstance, DeletionPolicy};
use crate::cloud::{Credentials, ErrorClass};
use crate::controller::act::SecretValues;
use crate::controller::plan::CloudAction;
use crate::controller::reconcile::{Error, now};
use crate::controller::report::{Event, EventType};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What the cloud shows of a recorded launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// All its instances, in member order.
    Found(Vec<String>),
    /// None of them: the call never went out (or not yet visible).
    Absent,
    /// Some: the rest may not be visible yet; its token replay returns all.
    Partial(Vec<String>),
    /// The lookup failed (recorded as a problem).
    Failed,
}

/// Looks up the pending launches `seqs` by their tags, concurrently.
pub(super) async fn look_up(
    pass: &mut SetPass<'_>,
    creds: &Credentials,
    seqs: &HashSet<i64>,
) -> HashMap<i64, Lookup> {
    let batches: Vec<LaunchBatch> = pass
        .status
        .batches
        .iter()
        .filter(|b| b.state == BatchState::Pending && seqs.contains(&b.seq))
        .cloned()
        .collect();
    let client = pass.ctx.base.observer.client();
    let region = &pass.set.spec.template.spec.region;
    let prefix = launch::prefix(&pass.set);
    let uid = &pass.uid;
    let lookups = batches.iter().map(|b| async move {
        let found = launch::find(client, creds, region, uid, b.seq).await;
        (b, found)
    });
    let mut out = HashMap::new();
    for (b, found) in futures::future::join_all(lookups).await {
        let lookup = match found {
            Ok(f) if f.is_empty() => Lookup::Absent,
            Ok(f) => {
                let ids: Vec<String> = f.iter().map(|(id, _)| id.clone()).collect();
                let ordered = journal::in_member_order(b, &prefix, &ids, &f);
                if ids.len() == b.count as usize {
                    Lookup::Found(ordered)
                } else {
                    Lookup::Partial(ordered)
                }
            }
            Err(error) => {
                pass.problems.push(Problem::Cloud {
                    action: "DescribeInstances",
                    error,
                });
                Lookup::Failed
            }
        };
        out.insert(b.seq, lookup);
    }
    out
}

/// A member that already exists is fine when it is this set's and adopts
/// the same instance; anything else holds the name.
pub(super) async fn check_existing(
    api: &Api<CvmInstance>,
    want: &CvmInstance,
) -> Result<(), String> {
    let name = want.name_any();
    let have = api
        .get(&name)
        .await
        .map_err(|e| format!("cannot read member {name}: {e}"))?;
    let ours = have
        .owner_references()
        .iter()
        .zip(want.owner_references())
        .any(|(a, b)| a.uid == b.uid)
        && have.spec.instance_id == want.spec.instance_id;
    if ours {
        Ok(())
    } else {
        Err(format!(
            "a CvmInstance named {name} that is not this set's member exists: the instance {} waits for it to be renamed or deleted",
            want.spec.instance_id.as_deref().unwrap_or_default()
        ))
    }
}

/// The deletion pass.
pub(super) async fn delete_pass(
    mut pass: SetPass<'_>,
    members: Vec<Arc<MemberObject>>,
) -> Result<Action, Error> {
    let visible = pass.visible(&members);
    let mut wait = None;
    if !pass.status.batches.is_empty()
        && let Some((creds, account)) = pass.credentials().await
    {
        let foreign = pass.foreign(&account);
        wait = resolve_pending(&mut pass, &creds, &foreign).await;
        release_orphans(&mut pass, &creds, &visible, &foreign).await;
    }
    let live: Vec<String> = members
        .iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .map(|m| m.name_any())
        .collect();
    pass.delete_members(&live).await;
    let facts = Facts {
        counts: counts(&members),
        plan: &Plan::default(),
        problems: &pass.problems,
        events: std::mem::take(&mut pass.events),
        deleting: true,
    };
    let mut report = report::report(&pass.set, pass.status.clone(), facts, &now());
    if let (Some(w), None) = (wait, report.error) {
        report.requeue = crate::controller::report::Requeue::After(w);
    }
    pass.finish(report).await
}

/// Pending launches of a deleted set are never sent again: found ones are
/// treated as launched, absent ones dropped once a create sent before could
/// no longer appear. Returns how soon to look again when one may still.
async fn resolve_pending(
    pass: &mut SetPass<'_>,
    creds: &Credentials,
    foreign: &HashSet<i64>,
) -> Option<Duration> {
    let seqs: HashSet<i64> = pass
        .status
        .batches
        .iter()
        .filter(|b| b.state == BatchState::Pending && !foreign.contains(&b.seq))
        .map(|b| b.seq)
        .collect();
    let grace = pass.ctx.base.config.create_grace;
    let mut wait = None;
    for (seq, lookup) in look_up(pass, creds, &seqs).await {
        let Some(b) = pass.status.batches.iter_mut().find(|b| b.seq == seq) else {
            continue;
        };
        let age = b
            .time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .and_then(|t| jiff::Timestamp::now().duration_since(t).try_into().ok())
            .unwrap_or(grace);
        match lookup {
            Lookup::Found(ids) => {
                b.state = BatchState::Launched;
                b.instance_ids = ids;
            }
            Lookup::Absent | Lookup::Partial(_) if age < grace => {
                wait = Some(Duration::from_secs(2))
            }
            Lookup::Partial(ids) => {
                b.state = BatchState::Launched;
                b.instance_ids = ids;
            }
            Lookup::Absent => b.count = 0,
            Lookup::Failed => {}
        }
    }
    pass.status.batches.retain(|b| b.count > 0);
    wait
}

/// Launched instances without a visible member: terminated (batched with
/// every other termination), or kept when the template says Retain or
/// protects them. Launches whose instances are all handled leave the journal.
async fn release_orphans(
    pass: &mut SetPass<'_>,
    creds: &Credentials,
    visible: &HashSet<i64>,
    foreign: &HashSet<i64>,
) {
    let template = &pass.set.spec.template.spec;
    let keep = template.deletion_policy == Some(DeletionPolicy::Retain)
        || template.disable_api_termination == Some(true);
    let region = template.region.clone();
    let launched: Vec<LaunchBatch> = pass
        .status
        .batches
        .iter()
        .filter(|b| b.state == BatchState::Launched && !foreign.contains(&b.seq))
        .cloned()
        .collect();
    let orphans: Vec<String> = launched
        .iter()
        .flat_map(|b| journal::indexes(b).zip(b.instance_ids.clone()))
        .filter(|(i, _)| !visible.contains(i))
        .map(|(_, id)| id)
        .collect();
    let mut failed = HashSet::new();
    if keep && !orphans.is_empty() {
        let note = format!(
            "kept {} launched instances without a member (deletionPolicy Retain or termination protection): {}",
            orphans.len(),
            orphans.join(",")
        );
        pass.events.push(Event {
            type_: EventType::Normal,
            reason: crate::controller::report::event_reason::RETAINED,
            action: "Delete",
            note,
        });
    } else {
        let actor = &pass.ctx.base.actor;
        let (terminate, none) = (CloudAction::Terminate, SecretValues::default());
        let sent = futures::future::join_all(
            orphans
                .iter()
                .map(|id| actor.act_on(creds, &region, id, &terminate, &none)),
        )
        .await;
        for (id, result) in orphans.iter().zip(sent) {
            match result {
                Err(e) if e.class() != ErrorClass::NotFound => {
                    failed.insert(id.clone());
                    pass.problems.push(Problem::Cloud {
                        action: "TerminateInstances",
                        error: e,
                    });
                }
                _ => {}
            }
        }
    }
    let done: HashSet<i64> = launched
        .iter()
        .filter(|b| !b.instance_ids.iter().any(|id| failed.contains(id)))
        .map(|b| b.seq)
        .collect();
    pass.status.batches.retain(|b| !done.contains(&b.seq));
}
