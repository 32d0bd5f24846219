//! One reconcile of a `CvmInstanceSet`, the same shape as an instance's:
//! members (from the watch) → [`rollout::plan`] → launches (journal first),
//! new members, deletions, spec updates → a [`SetReport`] → `finish`, which
//! writes the status, publishes the events and says when to look again.
//!
//! A launch is recorded in status before its RunInstances, and its ids when
//! they come back; a recorded launch seen again after a crash is looked up
//! by its tags before its token is replayed. The set never calls the cloud
//! for its members: they are ordinary `CvmInstance`s, whose own reconciles
//! (and batched calls) do the work.

use super::journal;
use super::launch::{self, prototype};
use super::lifecycle::{self, Lookup};
use super::members::{self, Classifier, MemberObject, UNKNOWN_TEMPLATE};
use super::report::{self, Counts, Facts, Problem, SetReport, set_reason};
use super::rollout::{self, Member, Targets, Update};
use crate::api::AccountRecord;
use crate::api::set::{
    BatchState, CvmInstanceSet, CvmInstanceSetStatus, LaunchBatch, template_hash,
};
use crate::api::{self, CvmInstance};
use crate::cloud::Credentials;
use crate::controller::act;
use crate::controller::ownership::AccountChoice;
use crate::controller::reconcile::{Context, Error, now, patch_finalizer, rfc3339_now};
use crate::controller::report::{Event, EventType, Requeue};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Member writes in flight at once (creates, deletes, updates).
const MEMBER_WRITES: usize = 32;
/// How long a member write we made is assumed while the watch does not show it.
const EXPECT_FOR: Duration = Duration::from_secs(30);

/// What every set reconcile shares: the instance controller's context (the
/// client, actor, credentials, events, metrics) and the members' watch.
pub struct SetContext {
    pub base: Arc<Context>,
    members: Store<MemberObject>,
    /// The status each set's last write returned, until the watch shows it:
    /// only the operator writes a set's status, so this is the truth.
    written: Mutex<HashMap<String, CvmInstanceSetStatus>>,
    /// Member deletions and updates sent and not visible yet, per set.
    expected: Mutex<HashMap<String, Expected>>,
}

#[derive(Default)]
struct Expected {
    deleted: HashMap<String, Instant>,
    updated: HashMap<String, Instant>,
}

impl SetContext {
    pub fn new(base: Arc<Context>, members: Store<MemberObject>) -> Self {
        Self {
            base,
            members,
            written: Mutex::new(HashMap::new()),
            expected: Mutex::new(HashMap::new()),
        }
    }

    fn with_expected<T>(&self, uid: &str, f: impl FnOnce(&mut Expected) -> T) -> T {
        let mut all = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        let e = all.entry(uid.to_string()).or_default();
        e.deleted.retain(|_, t| t.elapsed() < EXPECT_FOR);
        e.updated.retain(|_, t| t.elapsed() < EXPECT_FOR);
        f(e)
    }

    /// The status to start from: our last write while the watch lags.
    fn current_status(&self, set: &CvmInstanceSet, uid: &str) -> CvmInstanceSetStatus {
        let cached = set.status.clone().unwrap_or_default();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(uid) {
            Some(w) if *w != cached => w.clone(),
            Some(_) => {
                written.remove(uid);
                cached
            }
            None => cached,
        }
    }
}

/// Entry point for the set controller.
pub async fn reconcile(set: Arc<CvmInstanceSet>, ctx: Arc<SetContext>) -> Result<Action, Error> {
    let span = tracing::info_span!("reconcile_set", namespace = %set.namespace().unwrap_or_default(), name = %set.name_any());
    let started = Instant::now();
    let result = async { SetPass::new(&ctx, Arc::unwrap_or_clone(set))?.run().await }
        .instrument(span)
        .await;
    let metrics = &ctx.base.metrics;
    metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    metrics.reconciled(if result.is_ok() { "ok" } else { "error" });
    if result.is_err() {
        metrics.error(None);
    }
    result
}

pub fn error_policy(set: Arc<CvmInstanceSet>, error: &Error, ctx: Arc<SetContext>) -> Action {
    let requeue = Requeue::backoff(Duration::from_millis(500));
    let delay = ctx.base.delay(&set.uid().unwrap_or_default(), requeue);
    tracing::warn!(name = %set.name_any(), %error, ?delay, "set reconcile failed");
    Action::requeue(delay.unwrap_or(Duration::from_secs(1)))
}

/// One pass over one set.
pub(super) struct SetPass<'a> {
    pub(super) ctx: &'a SetContext,
    pub(super) set: CvmInstanceSet,
    api: Api<CvmInstanceSet>,
    pub(super) members_api: Api<CvmInstance>,
    pub(super) uid: String,
    /// The journal and counters as this pass leaves them.
    pub(super) status: CvmInstanceSetStatus,
    pub(super) problems: Vec<Problem>,
    pub(super) events: Vec<Event>,
}

impl<'a> SetPass<'a> {
    fn new(ctx: &'a SetContext, set: CvmInstanceSet) -> Result<Self, Error> {
        let ns = set.namespace().ok_or(Error::Incomplete("namespace"))?;
        let uid = set.uid().ok_or(Error::Incomplete("uid"))?;
        let client = ctx.base.client.clone();
        Ok(Self {
            status: ctx.current_status(&set, &uid),
            api: Api::namespaced(client.clone(), &ns),
            members_api: Api::namespaced(client, &ns),
            ctx,
            set,
            uid,
            problems: Vec::new(),
            events: Vec::new(),
        })
    }

    async fn run(self) -> Result<Action, Error> {
        let has_finalizer = self.set.finalizers().iter().any(|f| f == api::FINALIZER);
        let deleting = self.set.meta().deletion_timestamp.is_some();
        match (deleting, has_finalizer) {
            (true, false) => return Ok(Action::await_change()),
            (false, false) if !patch_finalizer(&self.api, &self.set, true).await? => {
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            _ => {}
        }
        let members = self.members();
        tracing::debug!(
            members = members.len(),
            deleting,
            batches = self.status.batches.len(),
            "set pass"
        );
        if deleting {
            lifecycle::delete_pass(self, members).await
        } else {
            self.apply_pass(members).await
        }
    }

    /// The set's members as the watch shows them.
    pub(super) fn members(&self) -> Vec<Arc<MemberObject>> {
        let ns = self.set.namespace();
        self.ctx
            .members
            .state()
            .into_iter()
            .filter(|m| m.namespace() == ns && m.owned_by(&self.uid))
            .collect()
    }

    /// The member indexes the watch shows (being deleted or not).
    pub(super) fn visible(&self, members: &[Arc<MemberObject>]) -> HashSet<i64> {
        let name = self.set.name_any();
        members
            .iter()
            .filter_map(|m| journal::index_of(&name, &m.name_any()))
            .collect()
    }

    /// Members as the rollout sees them, with our writes the watch does not
    /// show yet.
    fn views(&self, members: &[Arc<MemberObject>], hash: &str) -> Vec<Member> {
        let mut classifier = Classifier::default();
        self.ctx.with_expected(&self.uid, |e| {
            members
                .iter()
                .map(|m| {
                    let name = m.name_any();
                    if m.metadata.deletion_timestamp.is_some() || m.template_hash() == Some(hash) {
                        e.deleted.remove(&name);
                        e.updated.remove(&name);
                    }
                    let mut update = classifier.update(&self.set, hash, m);
                    let mut view = members::view(m, update, e.deleted.contains_key(&name));
                    if e.updated.contains_key(&name) {
                        // Updated, not seen yet: current, and not available.
                        update = Update::Current;
                        view = Member {
                            update,
                            available: false,
                            ..view
                        };
                    }
                    view
                })
                .collect()
        })
    }

    async fn apply_pass(mut self, members: Vec<Arc<MemberObject>>) -> Result<Action, Error> {
        let hash = template_hash(&self.set.spec.template);
        let visible = self.visible(&members);
        journal::settle(&mut self.status, &visible);
        let views = self.views(&members, &hash);
        let in_flight = journal::in_flight(&self.status, &visible);
        let targets = Targets::of(&self.set.spec, in_flight);
        let (replicas, max_surge) = (targets.replicas, targets.max_surge);
        let plan = rollout::plan(targets, &views);
        if plan.launch > 0 || !self.status.batches.is_empty() {
            let live = views.iter().filter(|m| !m.deleting).count();
            let droppable = (live + in_flight).saturating_sub(replicas + max_surge);
            self.launch_and_adopt(plan.launch, &hash, &visible, droppable)
                .await?;
        }
        self.delete_members(&plan.delete).await;
        self.update_members(&plan.update, &members, &hash).await;
        let facts = Facts {
            counts: report::counts(&views),
            plan: &plan,
            problems: &self.problems,
            events: std::mem::take(&mut self.events),
            deleting: false,
        };
        let report = report::report(&self.set, self.status.clone(), facts, &now());
        self.finish(report).await
    }

    /// The credentials the template's members use (the account rules of a
    /// `CvmInstance` in the set's namespace), and the account they act in.
    pub(super) async fn credentials(&mut self) -> Option<(Credentials, AccountRecord)> {
        let proto = prototype(&self.set);
        let choice = AccountChoice::of(&proto.spec);
        let access = match self.ctx.base.accounts.resolve(&proto, &choice).await {
            Ok(a) => a,
            Err(e) => {
                let (reason, message) = (e.reason(), e.to_string());
                self.problems.push(Problem::Credentials { reason, message });
                return None;
            }
        };
        match access.provider.credentials().await {
            Ok(c) => Some((c, access.record)),
            Err(e) => {
                let message = format!("{}: {e}", access.record);
                let reason = crate::controller::status::reason::CREDENTIALS_REJECTED;
                self.problems.push(Problem::Credentials { reason, message });
                None
            }
        }
    }

    async fn launch_and_adopt(
        &mut self,
        want: usize,
        hash: &str,
        visible: &HashSet<i64>,
        droppable: usize,
    ) -> Result<(), Error> {
        let Some((creds, account)) = self.credentials().await else {
            return Ok(());
        };
        let foreign = self.foreign(&account);
        self.launch(&creds, &account, want, hash, droppable, &foreign)
            .await?;
        self.adopt(visible, hash, &foreign).await;
        Ok(())
    }

    /// Launches recorded in another account than the template's now: they
    /// wait (never replayed, looked up or adopted elsewhere) until the
    /// template names that account again.
    pub(super) fn foreign(&mut self, account: &AccountRecord) -> HashSet<i64> {
        let foreign: Vec<(i64, String)> = self
            .status
            .batches
            .iter()
            .filter_map(|b| Some((b.seq, b.account.clone()?)))
            .filter(|(_, a)| a != account)
            .map(|(seq, a)| (seq, a.to_string()))
            .collect();
        if let Some((seq, recorded)) = foreign.first() {
            self.problems.push(Problem::Credentials {
                reason: crate::controller::status::reason::CREDENTIALS_ACCOUNT_CHANGED,
                message: format!(
                    "launch {seq} was made in {recorded}, but the template now uses {account}: it waits until the template names that account again"
                ),
            });
        }
        foreign.into_iter().map(|(seq, _)| seq).collect()
    }

    /// Records `want` more instances, then sends every pending launch:
    /// ones recorded before this pass are first looked up by their tags
    /// (their call may have gone out before a crash or a lost answer).
    async fn launch(
        &mut self,
        creds: &Credentials,
        account: &AccountRecord,
        want: usize,
        hash: &str,
        mut droppable: usize,
        foreign: &HashSet<i64>,
    ) -> Result<(), Error> {
        let earlier: HashSet<i64> = self.pending().map(|b| b.seq).collect();
        let now = rfc3339_now();
        if journal::record(&mut self.status, &self.uid, want, hash, account, &now) > 0 {
            self.write_status().await?;
        }
        let mut to_send = Vec::new();
        let earlier: HashSet<i64> = earlier.difference(foreign).copied().collect();
        let lookups = lifecycle::look_up(self, creds, &earlier).await;
        let pending: Vec<LaunchBatch> = self.pending().cloned().collect();
        for b in pending.into_iter().filter(|b| !foreign.contains(&b.seq)) {
            match lookups.get(&b.seq) {
                Some(Lookup::Found(ids)) => self.launched(b.seq, ids.clone(), None),
                Some(Lookup::Absent) if droppable >= b.count as usize => {
                    // Never sent, and no longer wanted.
                    droppable -= b.count as usize;
                    self.status.batches.retain(|x| x.seq != b.seq);
                }
                // Recorded now, never seen, or partly seen (the token's
                // replay returns every id).
                None | Some(Lookup::Absent | Lookup::Partial(_)) => to_send.push(b),
                Some(Lookup::Failed) => {}
            }
        }
        let sent = futures::future::join_all(to_send.iter().map(|b| self.send(creds, b))).await;
        for (b, outcome) in to_send.iter().zip(sent) {
            match outcome {
                Ok((ids, request_id)) => self.launched(b.seq, ids, Some(request_id)),
                Err(p) => self.problems.push(p),
            }
        }
        if self.status.batches != self.current_batches() {
            self.write_status().await?;
        }
        Ok(())
    }

    fn pending(&self) -> impl Iterator<Item = &LaunchBatch> {
        self.status
            .batches
            .iter()
            .filter(|b| b.state == BatchState::Pending)
    }

    fn current_batches(&self) -> Vec<LaunchBatch> {
        self.ctx.current_status(&self.set, &self.uid).batches
    }

    /// Records a launch's ids.
    fn launched(&mut self, seq: i64, ids: Vec<String>, request_id: Option<String>) {
        if let Some(b) = self.status.batches.iter_mut().find(|b| b.seq == seq) {
            b.state = BatchState::Launched;
            b.instance_ids = ids;
            let how = match request_id {
                Some(r) => format!("RunInstances, RequestId {r}"),
                None => "found by its tags after a lost answer or a restart".into(),
            };
            let note = format!(
                "launched {} instances as members {}-{} ({how})",
                b.count,
                b.first_index,
                b.first_index + i64::from(b.count) - 1
            );
            self.events.push(Event {
                type_: EventType::Normal,
                reason: set_reason::LAUNCHED,
                action: "RunInstances",
                note,
            });
        }
    }

    /// One RunInstances (the client retries it with its token), then the
    /// names, to put the ids in member order.
    async fn send(
        &self,
        creds: &Credentials,
        batch: &LaunchBatch,
    ) -> Result<(Vec<String>, String), Problem> {
        let proto = prototype(&self.set);
        let secrets = act::secret_values(&proto, &self.ctx.base.credentials)
            .await
            .map_err(|e| Problem::Credentials {
                reason: e.reason(),
                message: e.to_string(),
            })?;
        let request = launch::run_request(&self.set, batch, &secrets);
        let region = &self.set.spec.template.spec.region;
        let launched = self.ctx.base.actor.launch(creds, region, &request).await;
        let launched = launched.map_err(|error| Problem::Cloud {
            action: "RunInstances",
            error,
        })?;
        let client = self.ctx.base.observer.client();
        let ids = launched.instance_ids;
        let named = launch::names(client, creds, region, &ids)
            .await
            .unwrap_or_default();
        let ordered = journal::in_member_order(batch, &launch::prefix(&self.set), &ids, &named);
        Ok((ordered, launched.request_id))
    }

    /// Creates the members of launched instances that the watch does not
    /// show (an existing one, ours, is fine).
    async fn adopt(&mut self, visible: &HashSet<i64>, hash: &str, foreign: &HashSet<i64>) {
        let mut wanted = Vec::new();
        let launched =
            |b: &&LaunchBatch| b.state == BatchState::Launched && !foreign.contains(&b.seq);
        for b in self.status.batches.iter().filter(launched) {
            let label = if b.template_hash == hash {
                hash
            } else {
                UNKNOWN_TEMPLATE
            };
            for (index, id) in journal::indexes(b).zip(&b.instance_ids) {
                if !visible.contains(&index) {
                    wanted.push(members::manifest(&self.set, index, id, label));
                }
            }
        }
        let api = &self.members_api;
        let created = first_failure(wanted.into_iter().map(|m| async move {
            match api.create(&PostParams::default(), &m).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    lifecycle::check_existing(api, &m).await
                }
                Err(e) => Err(format!("cannot create member {}: {e}", m.name_any())),
            }
        }))
        .await;
        if let Some(message) = created {
            self.problems.push(Problem::Members { message });
        }
    }

    /// Deletes members (each one's own reconcile then terminates or keeps
    /// its instance, by the normal rules).
    pub(super) async fn delete_members(&mut self, names: &[String]) {
        let api = &self.members_api;
        let failed = first_failure(names.iter().cloned().map(|name| async move {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(format!("cannot delete member {name}: {e}")),
            }
        }))
        .await;
        self.ctx.with_expected(&self.uid, |e| {
            for n in names {
                e.deleted.insert(n.clone(), Instant::now());
            }
        });
        if let Some(message) = failed {
            self.problems.push(Problem::Members { message });
        }
    }

    /// Brings members' specs, labels and annotations to the template.
    async fn update_members(
        &mut self,
        names: &[String],
        members: &[Arc<MemberObject>],
        hash: &str,
    ) {
        let api = &self.members_api;
        let patches: Vec<(String, serde_json::Value)> = members
            .iter()
            .filter(|m| names.contains(&m.name_any()))
            .map(|m| (m.name_any(), members::update_patch(&self.set, m, hash)))
            .collect();
        let failed = first_failure(patches.into_iter().map(|(name, patch)| async move {
            let sent = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            sent.map(|_| ())
                .map_err(|e| format!("cannot update member {name}: {e}"))
        }))
        .await;
        self.ctx.with_expected(&self.uid, |e| {
            for n in names {
                e.updated.insert(n.clone(), Instant::now());
            }
        });
        if let Some(message) = failed {
            self.problems.push(Problem::Members { message });
        }
    }

    /// Writes the whole status by server-side apply.
    pub(super) async fn write_status(&mut self) -> Result<(), Error> {
        let params = PatchParams::apply(api::FIELD_MANAGER).force();
        let body = json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1",
            "kind": "CvmInstanceSet",
            "status": self.status,
        });
        match self
            .api
            .patch_status(&self.set.name_any(), &params, &Patch::Apply(body))
            .await
        {
            Ok(written) => {
                let status = written.status.unwrap_or_default();
                self.ctx
                    .written
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.uid.clone(), status);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Carries out a report: events, status (when it changed), the
    /// finalizer when the deletion is complete, and when to look again.
    pub(super) async fn finish(mut self, report: SetReport) -> Result<Action, Error> {
        let base = &self.ctx.base;
        match report.error {
            Some(class) => base.metrics.error(Some(class)),
            None => base.reset_backoff(&self.uid),
        }
        let regarding = self.set.object_ref(&());
        for event in &report.events {
            base.events.publish(regarding.clone(), event).await;
        }
        if self.ctx.current_status(&self.set, &self.uid) != report.status {
            self.status = report.status;
            self.write_status().await?;
        }
        if report.release && !patch_finalizer(&self.api, &self.set, false).await? {
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
        if report.release {
            self.ctx
                .written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.uid);
            self.ctx
                .expected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.uid);
            return Ok(Action::await_change());
        }
        let delay = base.delay(&self.uid, report.requeue);
        Ok(delay.map_or_else(Action::await_change, Action::requeue))
    }
}

/// Runs member writes, [`MEMBER_WRITES`] at a time; the first failure.
async fn first_failure<F>(writes: impl Iterator<Item = F>) -> Option<String>
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let done: Vec<Result<(), String>> = futures::stream::iter(writes)
        .buffer_unordered(MEMBER_WRITES)
        .collect()
        .await;
    done.into_iter().find_map(Result::err)
}

/// The counts a deletion reports: every member left, deleting or not (the
/// set goes when the last one is gone).
pub(super) fn counts(members: &[Arc<MemberObject>]) -> Counts {
    Counts {
        replicas: members.len() as i32,
        ..Counts::default()
    }
}
