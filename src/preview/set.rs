//! The plan of one `CvmInstanceSet` manifest, with the set controller's own
//! pure parts: how each member relates to the new template
//! (`fleet::members::Classifier`), and the rollout (`fleet::rollout::plan`:
//! launches, deletions — not Ready first, then the newest —, in-place
//! updates within `maxUnavailable`, replacements within `maxSurge`). A
//! member to update in place is planned like any `CvmInstance`
//! ([`instance::plan_manifest`] on its new spec), and stands for the others.

use super::cluster;
use super::instance::{self, Ctx};
use super::manifests::Document;
use super::output::{Action, Change, Impact, PriceChange, ResourcePlan, Verdict};
use crate::api::set::{CvmInstanceSet, MAX_BATCH, SET_LABEL, template_hash};
use crate::api::{CvmInstance, GROUP};
use crate::cloud::model::{self, Action as _};
use crate::controller::act::{self, SecretValues};
use crate::controller::fleet::journal;
use crate::controller::fleet::launch::{self, prototype};
use crate::controller::fleet::members::{self, Classifier, MemberObject};
use crate::controller::fleet::rollout::{self, Member, Targets, Update};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use std::collections::HashSet;
use std::sync::Arc;

/// The plan of `doc`, a `CvmInstanceSet` manifest.
pub async fn plan(doc: &Document, ctx: &Ctx<'_>) -> ResourcePlan {
    let ns = doc.namespace().unwrap_or(ctx.default_namespace).to_string();
    let mut out = ResourcePlan::new("CvmInstanceSet", &ns, doc.name(), &doc.origin);
    let manifest = match instance::parse::<CvmInstanceSet>(doc, &ns) {
        Ok(m) => m,
        Err(refused) => {
            out.refused.push(refused);
            out.settle();
            return out;
        }
    };
    let api = ctx
        .client
        .map(|c| Api::<CvmInstanceSet>::namespaced(c.clone(), &ns));
    let live = match &api {
        Some(api) => match api.get_opt(doc.name()).await {
            Ok(live) => live,
            Err(e) => return out.error(format!("cannot read the live object: {e}")),
        },
        None => None,
    };
    let Some(desired) = cluster::admitted(&manifest, live.as_ref(), api.as_ref(), &mut out).await
    else {
        out.settle();
        return out;
    };
    let members = match (ctx.client, &live) {
        (Some(client), Some(live)) => match list_members(client, live).await {
            Ok(m) => m,
            Err(e) => return out.error(format!("cannot list the members: {e}")),
        },
        _ => Vec::new(),
    };
    let before = live.as_ref().map_or(0, |l| l.spec.replicas);
    if before != desired.spec.replicas {
        out.changes.push(Change {
            field: "spec.replicas".into(),
            from: before.to_string(),
            to: desired.spec.replicas.to_string(),
            disruption: Impact::None,
        });
    }
    let rollout = Rollout::of(&desired, live.as_ref(), &members);
    launches(&rollout, &desired, ctx, &mut out).await;
    deletions(&rollout, &mut out);
    updates(&rollout, &desired, &members, ctx, &mut out).await;
    out.settle();
    if live.is_none() && !out.actions.is_empty() {
        out.verdict = Verdict::Create;
    }
    out
}

async fn list_members(
    client: &kube::Client,
    set: &CvmInstanceSet,
) -> Result<Vec<Arc<MemberObject>>, kube::Error> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<MemberObject> = Api::namespaced(client.clone(), &ns);
    let params = ListParams::default().labels(&format!("{SET_LABEL}={}", set.name_any()));
    let uid = set.uid().unwrap_or_default();
    Ok(api
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter(|m| m.owned_by(&uid))
        .map(Arc::new)
        .collect())
}

/// What the set controller would do, in total (its passes, summed).
struct Rollout {
    /// Instances to launch (new members, and those replacing others).
    launch: usize,
    /// Members deleted because there are too many.
    surplus: Vec<String>,
    /// Members whose spec takes the template in place: quiet, disruptive.
    quiet: Vec<String>,
    disruptive: Vec<String>,
    /// Members a new one replaces.
    replaced: Vec<String>,
    max_unavailable: usize,
    max_surge: usize,
}

impl Rollout {
    fn of(
        set: &CvmInstanceSet,
        live: Option<&CvmInstanceSet>,
        members: &[Arc<MemberObject>],
    ) -> Self {
        let hash = template_hash(&set.spec.template);
        let mut classifier = Classifier::default();
        let views: Vec<Member> = members
            .iter()
            .map(|m| members::view(m, classifier.update(set, &hash, m), false))
            .collect();
        let visible: HashSet<i64> = views.iter().map(|m| m.index).collect();
        let status = live.and_then(|l| l.status.clone()).unwrap_or_default();
        let in_flight = journal::in_flight(&status, &visible);
        let targets = Targets::of(&set.spec, in_flight);
        let replicas = targets.replicas;
        // The first pass deletes the surplus at once; replacements and
        // disruptive updates then roll pass after pass.
        let first = rollout::plan(targets, &views);
        let live_views: Vec<&Member> = views.iter().filter(|m| !m.deleting).collect();
        let named = |u: Update| -> Vec<String> {
            live_views
                .iter()
                .filter(|m| m.update == u && !first.delete.contains(&m.name))
                .map(|m| m.name.clone())
                .collect()
        };
        let replaced: Vec<String> = live_views
            .iter()
            .filter(|m| m.update == Update::Replace)
            .map(|m| m.name.clone())
            .collect();
        let keepers = live_views.len() - replaced.len();
        let surplus = first
            .delete
            .iter()
            .filter(|n| !replaced.contains(n))
            .cloned()
            .collect::<Vec<_>>();
        let kept = keepers.saturating_sub(surplus.len());
        Rollout {
            launch: replicas.saturating_sub(kept + in_flight),
            surplus,
            quiet: named(Update::Quiet),
            disruptive: named(Update::Disruptive),
            replaced,
            max_unavailable: targets.max_unavailable,
            max_surge: targets.max_surge,
        }
    }
}

/// The launches and their price (one inquiry for all of them).
async fn launches(r: &Rollout, set: &CvmInstanceSet, ctx: &Ctx<'_>, out: &mut ResourcePlan) {
    if r.launch == 0 {
        return;
    }
    let calls = r.launch.div_ceil(MAX_BATCH);
    let replacing = match r.replaced.len() {
        0 => String::new(),
        n => format!(", {n} of them replacing members the template change cannot reach in place"),
    };
    out.actions.push(Action {
        api_action: Some(model::RunInstances::NAME.into()),
        verb: "launch".into(),
        description: format!(
            "launching {} as new members ({calls} RunInstances of up to {MAX_BATCH}){replacing}",
            instances(r.launch)
        ),
        disruption: Impact::None,
    });
    let Some(cloud) = ctx.cloud else {
        out.notes
            .push("the price of the launches is not asked (no cloud credentials)".into());
        return;
    };
    let mut run = act::run_request(&prototype(set), &SecretValues::default());
    run.instance_count = Some(r.launch.min(MAX_BATCH) as i64);
    run.instance_name = Some(launch::prefix(set));
    let price = cloud
        .pricer
        .create(cloud.creds(), &set.spec.template.spec.region, &run)
        .await;
    if r.launch > MAX_BATCH {
        out.notes.push(format!(
            "the price is of {MAX_BATCH} instances (InquiryPriceRunInstances prices at most {MAX_BATCH} at once); {} are launched",
            r.launch
        ));
    }
    out.price = Some(PriceChange {
        before: None,
        after: Some(price),
    });
}

fn instances(n: usize) -> String {
    format!("{n} instance{}", if n == 1 { "" } else { "s" })
}

fn members_n(n: usize) -> String {
    format!("{n} member{}", if n == 1 { "" } else { "s" })
}

/// Scale-down and replacement: members' instances terminated (disruptive).
fn deletions(r: &Rollout, out: &mut ResourcePlan) {
    out.disruptive |= !r.surplus.is_empty() || !r.replaced.is_empty();
    if !r.surplus.is_empty() {
        out.actions.push(Action {
            api_action: Some(model::TerminateInstances::NAME.into()),
            verb: "delete".into(),
            description: format!(
                "deleting {} (not Ready first, then the newest): {}",
                members_n(r.surplus.len()),
                r.surplus.join(", ")
            ),
            disruption: Impact::Replace,
        });
    }
    if !r.replaced.is_empty() {
        out.actions.push(Action {
            api_action: Some(model::TerminateInstances::NAME.into()),
            verb: "replace".into(),
            description: format!(
                "replacing {} whose instance cannot take the template (at most {} out of service, {} extra at a time): {}",
                members_n(r.replaced.len()),
                r.max_unavailable,
                r.max_surge,
                r.replaced.join(", ")
            ),
            disruption: Impact::Replace,
        });
    }
}

/// In-place updates: one member planned as a `CvmInstance` with its new
/// spec, standing for every member that takes the template alike.
async fn updates(
    r: &Rollout,
    set: &CvmInstanceSet,
    members: &[Arc<MemberObject>],
    ctx: &Ctx<'_>,
    out: &mut ResourcePlan,
) {
    let names: Vec<&String> = r.disruptive.iter().chain(&r.quiet).collect();
    let Some(first) = names.first() else {
        return;
    };
    let Some(member) = members.iter().find(|m| m.name_any() == **first) else {
        return;
    };
    let member_plan = plan_member(set, member, ctx).await;
    out.changes
        .extend(member_plan.changes.iter().map(|c| Change {
            field: c.field.replacen("spec.", "spec.template.spec.", 1),
            ..c.clone()
        }));
    let worst = member_plan
        .actions
        .iter()
        .map(|a| a.disruption)
        .find(|d| d.disrupts())
        .unwrap_or(Impact::None);
    let pace = match r.disruptive.len() {
        0 => "all at once".to_string(),
        _ => format!("at most {} out of service at a time", r.max_unavailable),
    };
    out.actions.push(Action {
        api_action: None,
        verb: "update".into(),
        description: format!(
            "updating {} in place, {pace}; each: {} (as {first})",
            members_n(names.len()),
            super::render::sequence(&member_plan),
        ),
        disruption: worst,
    });
    out.notes
        .extend(member_plan.notes.iter().map(|n| format!("{first}: {n}")));
    if let Some(p) = member_plan.price {
        let each = |s: Option<&crate::api::price::PriceStatus>| {
            s.map(|p| p.line()).unwrap_or("unknown".into())
        };
        out.notes.push(format!(
            "each updated member's price: {} → {}",
            each(p.before.as_ref()),
            each(p.after.as_ref())
        ));
    }
    out.disruptive |= member_plan.disruptive;
}

/// `member` with the spec the current template gives it.
async fn plan_member(set: &CvmInstanceSet, member: &MemberObject, ctx: &Ctx<'_>) -> ResourcePlan {
    let ns = member.namespace().unwrap_or_default();
    let name = member.name_any();
    let mut out = ResourcePlan::new("CvmInstance", &ns, &name, "(member)");
    let Some(client) = ctx.client else {
        return out;
    };
    let api: Api<CvmInstance> = Api::namespaced(client.clone(), &ns);
    let mut manifest = match api.get(&name).await {
        Ok(m) => m,
        Err(e) => return out.error(format!("cannot read member {name}: {e}")),
    };
    let index = journal::index_of(&set.name_any(), &name).unwrap_or(0);
    let id = member.instance_id().unwrap_or_default();
    manifest.spec = members::member_spec(set, index, &id);
    manifest.status = None;
    out.origin = format!("{}/{} (member)", GROUP, name);
    instance::plan_manifest(manifest, out, ctx).await
}
