//! Who waits for what: resources parked until the API answers again, and
//! the members of a fleet whose keys the API refuses.

use super::{FleetKey, Observer, ResourceKey};
use crate::cloud::{CloudError, Identity};

impl Observer {
    /// Whether `key` waits for the API to answer again (woken when it
    /// does); its last reconcile decides.
    pub fn park(&self, key: ResourceKey, waits: bool) {
        let mut parked = self.inner.parked.lock().unwrap_or_else(|e| e.into_inner());
        if waits {
            parked.insert(key);
        } else if !parked.is_empty() {
            parked.remove(&key);
        }
    }

    /// Until the task is dropped: probes endpoints that do not answer (so
    /// an idle operator notices their return within a probe interval), and
    /// wakes every parked resource when one answers again. Apart from the
    /// sweeps, which a call hanging on a dead endpoint may hold up.
    pub(super) async fn run_outage_watch(self) {
        let reachability = self.inner.client.reachability().clone();
        let mut recoveries = reachability.recoveries();
        let mut probe = tokio::time::interval(reachability.probe_interval() / 2);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = recoveries.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let parked = std::mem::take(
                        &mut *self.inner.parked.lock().unwrap_or_else(|e| e.into_inner()),
                    );
                    tracing::info!(resources = parked.len(), "the CVM API answers again; waking what waited");
                    for key in parked {
                        let _ = self.inner.wake.send(key);
                    }
                }
                _ = probe.tick() => {
                    if reachability.down().is_empty() {
                        continue;
                    }
                    let client = self.inner.client.clone();
                    tokio::spawn(async move { client.probe_unreachable().await });
                }
            }
        }
    }

    /// Whether the API refused `identity`'s keys in a sweep, and no call
    /// with them has succeeded since.
    pub fn refused(&self, identity: &Identity) -> bool {
        self.with_fleets(|fleets| {
            fleets
                .iter()
                .any(|(k, f)| f.keys_refused && k.identity == *identity)
        })
    }

    /// A sweep's keys were refused (say they were rotated out, and the
    /// fleet's resources have not come by since): the members are woken,
    /// once per streak of refusals, so each resolves its credentials
    /// afresh — and moves to the new keys' fleet, or says the keys are
    /// rejected. Otherwise they would sit unobserved and still "Ready".
    pub(super) fn keys_refused(&self, key: &FleetKey, error: &CloudError) {
        let wake: Vec<ResourceKey> = self.with_fleets(|fleets| {
            let Some(fleet) = fleets.get_mut(key) else {
                return Vec::new();
            };
            if std::mem::replace(&mut fleet.keys_refused, true) {
                return Vec::new();
            }
            fleet
                .members
                .values()
                .flat_map(|m| m.owners())
                .map(|o| ResourceKey {
                    namespace: o.namespace.to_string(),
                    name: o.name.to_string(),
                })
                .collect()
        });
        if !wake.is_empty() {
            tracing::warn!(region = %key.region, error = %error, resources = wake.len(), "the API refused a sweep's keys; waking their resources to resolve theirs afresh");
        }
        for k in wake {
            let _ = self.inner.wake.send(k);
        }
    }
}
