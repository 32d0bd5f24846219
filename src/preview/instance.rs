//! The plan of one `CvmInstance` manifest: admission, the instance as the
//! cloud (or, failing that, the live object's status) shows it, whose it is,
//! then the operator's own planner iterated to the end
//! ([`sequence`](crate::controller::plan::sequence)), and the price change.

use super::cloud::Cloud;
use super::cluster::{self, Declared, FieldRefusal};
use super::manifests::Document;
use super::output::{Action, Change, Held, Impact, ObservedFrom, PriceChange, ResourcePlan};
use crate::api::CvmInstance;
use crate::cloud::model::{Action as _, InstanceState};
use crate::cloud::tag::ModifyResourceTags;
use crate::controller::act::{self, SecretValues};
use crate::controller::applied::Fingerprints;
use crate::controller::credentials::CredentialStore;
use crate::controller::observation::{Observation, Observed, WriteOnly};
use crate::controller::ownership::{self, Asker, Ownership, Source};
use crate::controller::plan::TypeCheck;
use crate::controller::plan::sequence::{self, End, Predicted, Sequence};
use crate::controller::plan::{Blocked, CloudAction, Disruption, Mode, PlanInput, RestartInput};
use crate::controller::price::Basis;
use crate::controller::reconcile::claims;
use crate::controller::status;
use kube::ResourceExt;
use kube::api::Api;
use std::sync::Arc;

/// What every resource's plan shares.
pub struct Ctx<'a> {
    pub client: Option<&'a kube::Client>,
    pub cloud: Option<&'a Cloud>,
    pub default_namespace: &'a str,
    pub fingerprints: &'a Fingerprints,
}

/// The plan of `doc`, a `CvmInstance` manifest.
pub async fn plan(doc: &Document, ctx: &Ctx<'_>) -> ResourcePlan {
    let ns = doc.namespace().unwrap_or(ctx.default_namespace).to_string();
    let mut out = ResourcePlan::new("CvmInstance", &ns, doc.name(), &doc.origin);
    match parse::<CvmInstance>(doc, &ns) {
        Ok(m) => plan_manifest(m, out, ctx).await,
        Err(refused) => {
            out.refused.push(refused);
            out.settle();
            out
        }
    }
}

/// The plan of `manifest` (in its namespace), filling in `out`.
pub async fn plan_manifest(
    manifest: CvmInstance,
    mut out: ResourcePlan,
    ctx: &Ctx<'_>,
) -> ResourcePlan {
    let ns = out.namespace.clone();
    let api = ctx
        .client
        .map(|c| Api::<CvmInstance>::namespaced(c.clone(), &ns));
    let live = match &api {
        Some(api) => match api.get_opt(&out.name).await {
            Ok(live) => live,
            Err(e) => return out.error(format!("cannot read the live object: {e}")),
        },
        None => None,
    };
    let Some(mut desired) =
        cluster::admitted(&manifest, live.as_ref(), api.as_ref(), &mut out).await
    else {
        out.settle();
        return out;
    };
    desired.status = live.as_ref().and_then(|l| l.status.clone());
    let Some((observed, adopt)) = observe(&desired, live.as_ref(), ctx, &mut out).await else {
        out.settle();
        return out;
    };
    let write_only = write_only(&desired, live.as_ref(), ctx, &mut out).await;
    let type_check = type_check(&desired, &observed, ctx, &mut out).await;
    let last = live
        .as_ref()
        .and_then(|l| l.status.as_ref()?.last_operation.clone());
    // A permanent failure blocks only the generation it failed for.
    let blocked = last
        .as_ref()
        .and_then(|l| Blocked::from_last(l, desired.metadata.generation))
        .filter(|_| live.as_ref().map(|l| &l.spec) == Some(&desired.spec));
    let recorded = live
        .as_ref()
        .and_then(|l| l.status.as_ref()?.restart.clone());
    let name = desired.desired_instance_name();
    let seq = sequence::sequence(&PlanInput {
        spec: &desired.spec,
        instance_name: &name,
        observed: &observed,
        mode: Mode::Apply,
        paused: desired.is_paused(),
        blocked: blocked.as_ref(),
        restart: RestartInput {
            requested: desired.restart_requested(),
            recorded: recorded.as_ref(),
        },
        write_only,
        type_check,
    });
    describe(&seq, adopt, last.as_ref(), &mut out);
    out.price = price(&seq, &desired, live.as_ref(), &observed, ctx, &mut out).await;
    out.settle();
    out.disruptive = seq.disrupts();
    out
}

/// The manifest as a `K` in `ns`, or the field it gets wrong.
pub fn parse<K: Declared>(doc: &Document, ns: &str) -> Result<K, FieldRefusal> {
    let mut m: K =
        serde_path_to_error::deserialize(doc.value.clone()).map_err(|e| FieldRefusal {
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    m.meta_mut().namespace = Some(ns.to_string());
    Ok(m)
}

/// The instance: from the cloud, else from the live object's status. `None`
/// when it is not this resource's to plan for (`out` says why); the flag:
/// it would be adopted first.
async fn observe(
    desired: &CvmInstance,
    live: Option<&CvmInstance>,
    ctx: &Ctx<'_>,
    out: &mut ResourcePlan,
) -> Option<(Observed, bool)> {
    let known = desired.known_instance_id().map(str::to_string);
    let region = &desired.spec.region;
    let uid = live.and_then(|l| l.uid());
    let Some(cloud) = ctx.cloud else {
        return Some((from_status(desired, live, out), false));
    };
    let found = match (&known, &uid) {
        (Some(id), _) => cloud.describe(region, id).await,
        (None, Some(uid)) => cloud.find_by_uid(region, uid).await,
        (None, None) => Ok(None),
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            out.notes.push(format!("the cloud could not be read: {e}"));
            return Some((from_status(desired, live, out), false));
        }
    };
    let seen_by_operator = live.is_some_and(|l| {
        l.status
            .as_ref()
            .and_then(|s| s.instance_state.as_ref())
            .is_some()
    });
    if let (None, Some(id), true) = (&found, &known, seen_by_operator) {
        // The operator sees it, these credentials do not: another account.
        out.notes.push(format!(
            "instance {id} is not visible with these credentials (the resource's account may be another)"
        ));
        return Some((from_status(desired, live, out), false));
    }
    let observed = Observed::from_lookup(known.as_deref(), found);
    let Observed::Present(o) = &observed else {
        out.observed_from = ObservedFrom::Cloud;
        out.instance_id = known;
        return Some((observed, false));
    };
    out.observed_from = ObservedFrom::Cloud;
    out.instance_id = Some(o.id.clone());
    out.instance_state = Some(o.state.as_str().to_string());
    let adopt = match whose(desired, uid.as_deref(), o, ctx).await {
        Ownership::Owned => false,
        Ownership::Adopt => true,
        Ownership::Refused(r) => {
            out.held = Some(Held {
                reason: r.reason.into(),
                message: r.message,
            });
            out.instance_state = None;
            return None;
        }
        Ownership::AskClaimant => unreachable!("asked in whose()"),
    };
    let mut o = (**o).clone();
    if adopt {
        o.uid_tag = uid.clone().or(Some(String::new()));
    }
    Some((Observed::Present(Arc::new(o)), adopt))
}

/// The operator's ownership rule, with the claimant looked up when it asks.
async fn whose(
    desired: &CvmInstance,
    uid: Option<&str>,
    o: &Observation,
    ctx: &Ctx<'_>,
) -> Ownership {
    let source = Source::of(desired);
    let asker = Asker::of(desired, uid.unwrap_or_default());
    let first = ownership::ownership(asker, source, o, None);
    if first != Ownership::AskClaimant {
        return first;
    }
    let claimant = match ctx.client {
        Some(client) => claims::claimant(client, o).await,
        None => ownership::Claimant::Unknown,
    };
    ownership::ownership(asker, source, o, Some(claimant))
}

/// The operator's last observation, from the live object's status: what
/// status records of the instance, the rest as the live spec declares it.
fn from_status(
    desired: &CvmInstance,
    live: Option<&CvmInstance>,
    out: &mut ResourcePlan,
) -> Observed {
    let Some(live) = live else {
        return Observed::NotCreated;
    };
    let status = live.status.clone().unwrap_or_default();
    let Some(id) = status
        .instance_id
        .clone()
        .or(desired.spec.instance_id.clone())
    else {
        return Observed::NotCreated;
    };
    out.observed_from = ObservedFrom::Status;
    out.instance_id = Some(id.clone());
    out.instance_state = status.instance_state.clone();
    out.notes.push(format!(
        "planned from the operator's last observation in status (observedGeneration {}); what status does not record is taken as the live spec declares it",
        status.observed_generation.unwrap_or_default()
    ));
    let mut o = sequence::as_specified(&live.spec, &live.desired_instance_name());
    o.id = id;
    o.uid_tag = live.uid();
    if let Some(s) = status.instance_state {
        o.state = InstanceState::from(s);
    }
    o.instance_type = status.instance_type.map_or(o.instance_type, Into::into);
    o.name = status.instance_name.unwrap_or(o.name);
    o.zone = status.zone.map_or(o.zone, Into::into);
    o.bandwidth_out = status.internet_max_bandwidth_out.unwrap_or(o.bandwidth_out);
    o.private_ips = status.private_ip_addresses;
    o.public_ips = status.public_ip_addresses;
    if !status.security_group_ids.is_empty() {
        o.security_group_ids = status.security_group_ids;
    }
    Observed::Present(Arc::new(o))
}

/// The write-only values compared with what status says was applied (the
/// Secrets they come from read with the caller's rights, if it has them).
async fn write_only(
    desired: &CvmInstance,
    live: Option<&CvmInstance>,
    ctx: &Ctx<'_>,
    out: &mut ResourcePlan,
) -> WriteOnly {
    if !act::wants_secret_values(&desired.spec) {
        return WriteOnly::default();
    }
    let values = match ctx.client {
        Some(c) if act::reads_secrets(&desired.spec) => {
            match act::secret_values(desired, &CredentialStore::new(c.clone())).await {
                Ok(v) => v,
                Err(e) => {
                    out.notes.push(format!(
                        "user data and password from Secrets not compared: {e}"
                    ));
                    return WriteOnly::default();
                }
            }
        }
        _ if act::reads_secrets(&desired.spec) => return WriteOnly::default(),
        _ => SecretValues {
            user_data: desired
                .spec
                .user_data
                .clone()
                .map(crate::cloud::Secret::new),
            password: None,
        },
    };
    let applied = live.and_then(|l| l.status.as_ref()?.applied.as_ref());
    ctx.fingerprints
        .write_only(applied, values.user_data.as_ref(), values.password.as_ref())
}

/// DescribeInstancesModification for a type change, as the operator asks it
/// before any stop.
async fn type_check(
    desired: &CvmInstance,
    observed: &Observed,
    ctx: &Ctx<'_>,
    out: &mut ResourcePlan,
) -> TypeCheck {
    let (Some(o), Some(cloud)) = (observed.instance(), ctx.cloud) else {
        return TypeCheck::Unchecked;
    };
    let want = &desired.spec.instance_type;
    if *want == o.instance_type {
        return TypeCheck::Unchecked;
    }
    let region = &desired.spec.region;
    match act::check_type(cloud.client(), cloud.creds(), (region, &o.id), want).await {
        Ok(check) => check,
        Err(e) => {
            out.notes
                .push(format!("the type change was not checked: {e}"));
            TypeCheck::Unchecked
        }
    }
}

fn impact(d: Disruption) -> Impact {
    match d {
        Disruption::None => Impact::None,
        Disruption::Reboot => Impact::Reboot,
        Disruption::Stop => Impact::Stop,
        Disruption::Reinstall => Impact::Reinstall,
    }
}

/// The sequence as changes, actions and where it stops.
fn describe(
    seq: &Sequence,
    adopt: bool,
    last: Option<&crate::api::LastOperation>,
    out: &mut ResourcePlan,
) {
    out.changes = seq
        .pending
        .iter()
        .map(|p| Change {
            field: p.field.into(),
            from: p.from.clone(),
            to: p.to.clone(),
            disruption: impact(p.disruption),
        })
        .collect();
    if adopt {
        out.actions.push(Action {
            api_action: Some(ModifyResourceTags::NAME.into()),
            verb: "adopt".into(),
            description: "adopting the instance (tagging it with this resource's UID)".into(),
            disruption: Impact::None,
        });
    }
    out.actions.extend(seq.steps.iter().map(|p| Action {
        api_action: p.api_action().map(str::to_string),
        verb: p.verb().into(),
        description: p.describe(),
        disruption: impact(p.disruption),
    }));
    if seq.type_assumed {
        out.notes
            .push("the new type is taken as available (not checked: no cloud access)".into());
    }
    match &seq.end {
        End::InSync => {}
        End::Waits(w) => {
            let (reason, message) = status::explain(w, last);
            out.held = Some(Held {
                reason: reason.into(),
                message,
            });
        }
        End::Diverged => out.notes.push(format!(
            "the plan stops after {} steps without reaching the spec (a bug: please report it)",
            sequence::MAX_STEPS
        )),
    }
}

/// The price before and after: the create's, or the type and bandwidth
/// changes', each asked as the operator asks it.
async fn price(
    seq: &Sequence,
    desired: &CvmInstance,
    live: Option<&CvmInstance>,
    observed: &Observed,
    ctx: &Ctx<'_>,
    out: &mut ResourcePlan,
) -> Option<PriceChange> {
    let priced: Vec<&Predicted> = seq
        .steps
        .iter()
        .map(|p| &p.step)
        .filter(|s| match s {
            Predicted::Create => true,
            Predicted::Act(a) => {
                crate::controller::price::changes_price(a)
                    || crate::controller::price::invalidated(a, None).is_some()
            }
            Predicted::Boots { .. } => false,
        })
        .collect();
    if priced.is_empty() {
        return None;
    }
    let before = live.and_then(|l| l.status.as_ref()?.price.clone());
    let Some(cloud) = ctx.cloud else {
        out.notes
            .push("the new price is not asked (no cloud credentials)".into());
        return Some(PriceChange {
            before,
            after: None,
        });
    };
    let region = &desired.spec.region;
    let mut after = before.clone();
    let mut basis = observed.instance().map(Basis::of);
    for step in priced {
        match (step, &basis) {
            (Predicted::Create, _) => {
                let run = act::run_request(desired, &SecretValues::default());
                after = Some(cloud.pricer.create(cloud.creds(), region, &run).await);
                basis = Some(Basis::of_create(&run));
            }
            (Predicted::Act(action), _) if !crate::controller::price::changes_price(action) => {
                after = crate::controller::price::invalidated(action, after.as_ref());
            }
            (Predicted::Act(action), Some(b)) => {
                let id = observed
                    .instance()
                    .map(|o| o.id.clone())
                    .unwrap_or_default();
                let p = &cloud.pricer;
                after = p
                    .change(cloud.creds(), region, (&id, b), action, after.as_ref())
                    .await;
                basis = Some(next_basis(b, action));
            }
            _ => {}
        }
    }
    Some(PriceChange { before, after })
}

fn next_basis(b: &Basis, action: &CloudAction) -> Basis {
    match action {
        CloudAction::ResetType { instance_type } => Basis {
            instance_type: instance_type.clone(),
            ..b.clone()
        },
        CloudAction::SetBandwidth { mbps } => Basis {
            bandwidth_out: Some(*mbps),
            ..b.clone()
        },
        _ => b.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fallback_takes_what_status_records_and_the_live_spec_for_the_rest() {
        let live: CvmInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r",
                     "instanceType": "S5.MEDIUM4", "hostName": "web-1", "tags": {"team": "a"}},
            "status": {"instanceId": "ins-abcd1234", "instanceState": "STOPPED",
                       "instanceType": "S5.SMALL1", "internetMaxBandwidthOut": 3,
                       "observedGeneration": 2},
        }))
        .unwrap();
        let mut out = ResourcePlan::new("CvmInstance", "shop", "web", "f");
        let observed = from_status(&live, Some(&live), &mut out);
        let o = observed.instance().expect("an instance");
        assert_eq!(o.id, "ins-abcd1234");
        assert_eq!(o.state, InstanceState::Stopped);
        assert_eq!(o.instance_type, "S5.SMALL1", "status wins");
        assert_eq!(o.bandwidth_out, 3);
        assert_eq!(o.settings.host_name, "web-1", "the live spec for the rest");
        assert_eq!(o.settings.tags, [("team".to_string(), "a".to_string())]);
        assert_eq!(o.uid_tag.as_deref(), Some("u-1"), "the operator's own");
        assert_eq!(out.observed_from, ObservedFrom::Status);
        assert_eq!(out.instance_state.as_deref(), Some("STOPPED"));
        assert!(
            out.notes[0].contains("observedGeneration 2"),
            "{:?}",
            out.notes
        );
        let mut fresh = ResourcePlan::new("CvmInstance", "shop", "web", "f");
        assert_eq!(from_status(&live, None, &mut fresh), Observed::NotCreated);
    }
}
