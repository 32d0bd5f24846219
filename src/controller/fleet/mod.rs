//! The `CvmInstanceSet` room, on the orchestration floor beside the
//! instance's: it reuses the lower floors (credentials, the actor, the
//! observer's client, events, metrics) and never touches a member's
//! instance itself — members are ordinary `CvmInstance`s.
//!
//! - [`journal`] (pure): the launch journal, tokens, names;
//! - [`rollout`] (pure): launches, deletions and updates for the members;
//! - [`members`] (pure, and the watch's member form): readiness, how a
//!   member relates to the template, a new member's manifest;
//! - [`report`] (pure): the status, conditions and requeue of a pass;
//! - [`launch`]: the RunInstances of a launch, the lookup by tags;
//! - [`reconcile`], [`lifecycle`]: the pass (apply, delete);
//! - [`run`] here: the controller.

pub mod journal;
pub mod launch;
pub mod lifecycle;
pub mod members;
pub mod reconcile;
pub mod report;
pub mod rollout;

use super::reconcile::Context;
use crate::api::set::{CvmInstanceSet, SET_LABEL};
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use members::MemberObject;
use std::sync::Arc;

/// Sets reconciled at once (each one's pass already writes its members
/// concurrently).
const SET_CONCURRENCY: u16 = 8;

/// Runs the set controller until `shutdown` resolves. Without the
/// `CvmInstanceSet` CRD it says so and leaves the instances' controller alone.
pub async fn run(
    base: Arc<Context>,
    config: super::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = base.client.clone();
    let sets: Api<CvmInstanceSet> = super::scoped(&client, &config);
    if let Err(e) = sets.list(&ListParams::default().limit(1)).await {
        tracing::warn!(error = %e, "CvmInstanceSets are not served (is crds/cvminstancesets.yaml installed?); fleets are disabled");
        return;
    }
    let (members, writer) = reflector::store::<MemberObject>();
    // Members only (they carry the set label), in the compact form; deletions
    // wake the set too.
    let member_watch = watcher::Config::default().labels(SET_LABEL).any_semantic();
    let member_stream = watcher(
        super::scoped::<MemberObject>(&client, &config),
        member_watch,
    )
    .default_backoff()
    .modify(MemberObject::slim)
    .reflect(writer)
    .touched_objects();
    let mut wc = watcher::Config::default().any_semantic();
    if let Some(sel) = &config.label_selector {
        wc = wc.labels(sel);
    }
    let ctx = Arc::new(reconcile::SetContext::new(base, members));
    tracing::info!("set controller starting");
    Controller::new(sets, wc)
        .owns_stream(member_stream)
        .with_config(controller::Config::default().concurrency(SET_CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "set controller event");
            }
        })
        .await;
    tracing::info!("set controller stopped");
}
