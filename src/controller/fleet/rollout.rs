//! What a set does next with its members: pure, table-tested.
//!
//! The Deployment algorithm over members instead of ReplicaSets: launch
//! what is missing (up to `replicas + maxSurge` while members are replaced),
//! delete what is too many (not Ready first, then the newest), replace
//! members whose template change a `CvmInstance` cannot take in place, and
//! update the others' specs — all at once when the change disrupts nothing,
//! else no more at a time than `maxUnavailable` allows.

/// How a member's spec relates to the current template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Update {
    /// It has the current template.
    Current,
    /// Its spec takes the new template in place, disrupting nothing (name,
    /// bandwidth, security groups, termination protection, power state,
    /// policies): every such member at once.
    Quiet,
    /// Its spec takes the new template in place with a stop, a reboot or a
    /// reinstall: rolled within `maxUnavailable`.
    Disruptive,
    /// A `CvmInstance` cannot take the change (an immutable field): a new
    /// member replaces it.
    Replace,
}

/// A member as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub index: i64,
    /// Being deleted (or just asked to be).
    pub deleting: bool,
    /// Its `Ready` condition is true.
    pub ready: bool,
    /// Ready, in sync with its spec, and its spec observed: it serves, and
    /// is not in the middle of a change.
    pub available: bool,
    pub update: Update,
}

/// The numbers the rollout works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub replicas: usize,
    pub max_unavailable: usize,
    pub max_surge: usize,
    /// Instances launched (or being launched) whose members are not visible.
    pub in_flight: usize,
}

impl Targets {
    /// A set's numbers (its replicas, its update strategy resolved), with
    /// `in_flight` instances launched whose members are not visible yet.
    pub fn of(spec: &crate::api::set::CvmInstanceSetSpec, in_flight: usize) -> Self {
        let (max_unavailable, max_surge) = spec.update_strategy.resolve(spec.replicas);
        Targets {
            replicas: spec.replicas.max(0) as usize,
            max_unavailable,
            max_surge,
            in_flight,
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Instances to launch.
    pub launch: usize,
    /// Members to delete, by name.
    pub delete: Vec<String>,
    /// Members whose spec to update to the current template, by name.
    pub update: Vec<String>,
}

/// The next moves. Deletions never take more members out of service than
/// `maxUnavailable` allows, unless there are more members than wanted.
pub fn plan(t: Targets, members: &[Member]) -> Plan {
    let live: Vec<&Member> = members.iter().filter(|m| !m.deleting).collect();
    let replaced = live.iter().filter(|m| m.update == Update::Replace).count();
    let keepers = live.len() - replaced;
    let surge = t.max_surge.min(replaced);
    let ceiling = t.replicas + surge;
    let total = live.len() + t.in_flight;
    // Members still being deleted hold instances (billed until they are
    // gone): a launch waits for them rather than exceed the ceiling.
    let occupied = members.len() + t.in_flight;

    let missing = t.replicas.saturating_sub(keepers + t.in_flight);
    let launch = missing.min(ceiling.saturating_sub(occupied));

    // Too many: the surplus goes, replaced ones first, then not ready, then
    // the newest.
    let mut victims: Vec<&Member> = live.clone();
    victims.sort_by_key(|m| {
        (
            m.update != Update::Replace,
            m.ready,
            std::cmp::Reverse(m.index),
        )
    });
    let surplus = total.saturating_sub(ceiling).min(live.len());
    let mut delete: Vec<&Member> = victims[..surplus].to_vec();

    // Out of service budget: members available now beyond the minimum.
    let available = live.iter().filter(|m| m.available).count();
    let min_available = t.replicas.saturating_sub(t.max_unavailable);
    let mut budget = available.saturating_sub(min_available);
    budget = budget.saturating_sub(delete.iter().filter(|m| m.available).count());

    // Replacements: an old member goes when it is out of service anyway, or
    // when the budget allows (its replacement is launched once it is gone,
    // or before when maxSurge allows).
    let replacing: Vec<&Member> = victims
        .iter()
        .copied()
        .filter(|m| m.update == Update::Replace && !delete.iter().any(|d| d.name == m.name))
        .collect();
    for m in replacing {
        if !m.available {
            delete.push(m);
        } else if budget > 0 {
            budget -= 1;
            delete.push(m);
        }
    }

    // In-place updates: quiet ones all at once; disruptive ones that are out
    // of service anyway, then as many as the budget allows.
    let deleting = |m: &Member| delete.iter().any(|d| d.name == m.name);
    let mut update = Vec::new();
    let mut rolled: Vec<&Member> = live
        .iter()
        .copied()
        .filter(|m| m.update == Update::Disruptive && !deleting(m))
        .collect();
    rolled.sort_by_key(|m| (m.available, m.index));
    for m in live
        .iter()
        .filter(|m| m.update == Update::Quiet && !deleting(m))
    {
        update.push(m.name.clone());
    }
    for m in rolled {
        if !m.available {
            update.push(m.name.clone());
        } else if budget > 0 {
            budget -= 1;
            update.push(m.name.clone());
        }
    }
    Plan {
        launch,
        delete: delete.iter().map(|m| m.name.clone()).collect(),
        update,
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
