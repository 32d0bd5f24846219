//! The ownership step of a pass, between observing and planning: whose the
//! observed instance is ([`ownership::ownership`], pure) and what follows.
//! An owned instance is registered for the sweeps and worked on; an
//! adoptable one is claimed first (tagged with this resource's UID); any
//! other ends the pass, reporting nothing of the instance (no state, no
//! IPs) and changing nothing. A deletion whose known instance is not its own
//! — or is gone — looks for its own instance by the UID tag before letting
//! go, so a rewritten `status.instanceId` can neither make the operator
//! terminate someone else's instance nor leak this resource's own.

use super::Reconciling;
use crate::api::{self, CvmInstance};
use crate::cloud::Credentials;
use crate::cloud::model::Action as _;
use crate::cloud::tag::ModifyResourceTags;
use crate::controller::accounts::Access;
use crate::controller::observation::{Observation, Observed};
use crate::controller::observe::FleetKey;
use crate::controller::ownership::{self, Asker, Claimant, Ownership, Source};
use crate::controller::plan::Mode;
use crate::controller::report::{Done, Report, event_action};
use crate::controller::status::reason;
use kube::ResourceExt;
use kube::api::Api;
use std::sync::Arc;

impl Reconciling<'_> {
    /// Whose `observed` is, and what follows (see the module docs).
    pub(super) async fn own(
        &mut self,
        access: &Access,
        creds: &Credentials,
        key: &FleetKey,
        mode: Mode,
        observed: Observed,
    ) -> Result<Observed, Report> {
        let source = self.source();
        let o = match &observed {
            Observed::Present(o) => o.clone(),
            // A status id that is gone: this resource's own instance may
            // still be around (the id may have been rewritten).
            Observed::Missing { .. } if mode == Mode::Delete && source == Source::Status => {
                return self.own_by_uid(access, creds, key, observed, None).await;
            }
            _ => return Ok(observed),
        };
        let asker = Asker::of(&self.obj, &self.uid);
        let mut decision = ownership::ownership(asker, source, &o, None);
        if decision == Ownership::AskClaimant {
            let claimant = self.claimant(&o).await;
            decision = ownership::ownership(asker, source, &o, Some(claimant));
        }
        match (decision, mode) {
            (Ownership::Owned, _) => {
                self.register(access, key, &o.id);
                Ok(observed)
            }
            (Ownership::Adopt, Mode::Apply) => Err(self.adopt(access, creds, key, o).await),
            (Ownership::Refused(r), Mode::Apply) => {
                tracing::warn!(instance_id = %o.id, reason = r.reason, "not this resource's instance");
                let action = event_action::OBSERVE;
                Err(Report::credentials_failed(
                    mode, r.reason, r.message, action,
                ))
            }
            (Ownership::Refused(r), Mode::Delete) => {
                let why = Some(r.message);
                self.own_by_uid(access, creds, key, observed, why).await
            }
            // Deleted before the claim: it was never this resource's.
            (_, Mode::Delete) => {
                let why = "it was never adopted by this resource".to_string();
                self.own_by_uid(access, creds, key, observed, Some(why))
                    .await
            }
            (Ownership::AskClaimant, Mode::Apply) => unreachable!("asked above"),
        }
    }

    /// How the resource came to the instance it looks at.
    fn source(&self) -> Source {
        Source::of(&self.obj)
    }

    /// Deleting, and the known instance is not this resource's (`not_ours`
    /// says why) or is gone: the instance carrying its UID tag, if any, is
    /// the one to delete; else the finalizer goes and the other is left.
    async fn own_by_uid(
        &mut self,
        access: &Access,
        creds: &Credentials,
        key: &FleetKey,
        observed: Observed,
        not_ours: Option<String>,
    ) -> Result<Observed, Report> {
        let found = self
            .find_own(creds, key)
            .await
            .map_err(|e| self.unobservable(Mode::Delete, e))?;
        match (found, not_ours) {
            (Some(own), _) => {
                self.register(access, key, &own.id);
                Ok(Observed::Present(own))
            }
            (None, None) => Ok(observed),
            (None, Some(why)) => {
                let id = observed.instance_id().unwrap_or_default();
                Err(Report::released_not_owned(id, &why))
            }
        }
    }

    /// An owned instance: observed by the sweeps on this resource's behalf,
    /// and its account recorded (if it is not yet).
    fn register(&mut self, access: &Access, key: &FleetKey, id: &str) {
        tracing::Span::current().record("instance_id", id);
        let ns = self.obj.namespace().unwrap_or_default();
        let name = self.obj.name_any();
        let observer = &self.ctx.observer;
        observer.register(key, &access.provider, id, &ns, &name);
        self.recording = Some(access.record.clone());
    }

    /// Whether the resource an instance's UID tag names still exists.
    async fn claimant(&self, o: &Observation) -> Claimant {
        claimant(&self.ctx.client, o).await
    }

    /// Claims an instance given to this namespace: tags it with this
    /// resource's UID and name (not while paused: a tag write is a change).
    async fn adopt(
        &mut self,
        access: &Access,
        creds: &Credentials,
        key: &FleetKey,
        o: Arc<Observation>,
    ) -> Report {
        let action = ModifyResourceTags::NAME;
        if self.obj.is_paused() {
            let message = format!(
                "paused by {}; next step would be adopting instance {} (tagging it with this resource's UID)",
                api::PAUSED_ANNOTATION,
                o.id
            );
            let pause = reason::RECONCILE_PAUSED;
            return Report::credentials_failed(Mode::Apply, pause, message, action);
        }
        let (region, uin) = (&self.obj.spec.region, &access.record.uin);
        let timing = self.ctx.timing;
        let sent = self
            .ctx
            .actor
            .claim(creds, region, uin, &o.id, &self.obj)
            .await;
        match sent {
            Ok(request_id) => {
                self.register(access, key, &o.id);
                self.changed(key, &o.id);
                let done = Done::adopt(&o.id, &request_id);
                let last = self.succeeded(&done);
                Report::acted(Mode::Apply, Observed::Present(o), done, last, timing)
            }
            Err(error) => {
                self.failed(action, &error);
                Report::failed_unobserved(Mode::Apply, action, error, timing)
            }
        }
    }
}

/// Whether the resource an instance's UID tag names (found by the instance's
/// namespace and name tags) still exists (also asked by `plan`).
pub(crate) async fn claimant(client: &kube::Client, o: &Observation) -> Claimant {
    let (Some(ns), Some(name), Some(uid)) = (&o.namespace_tag, &o.name_tag, &o.uid_tag) else {
        return Claimant::Unknown;
    };
    let api: Api<CvmInstance> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(r)) if r.uid().as_deref() == Some(uid.as_str()) => Claimant::Live,
        Ok(_) => Claimant::Gone,
        Err(e) => {
            tracing::warn!(namespace = %ns, name = %name, error = %e, "cannot look up the resource an instance's UID tag names");
            Claimant::Unknown
        }
    }
}
