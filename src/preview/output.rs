//! What `plan` reports: per resource, the changes, the actions in order with
//! their disruption, the price change, what admission refuses; and the exit
//! code a pipeline acts on. `-o json` prints this as it is; the text form is
//! in [`render`](super::render).

use super::cluster::FieldRefusal;
use crate::api::price::PriceStatus;
use serde::Serialize;

/// Nothing to do.
pub const EXIT_NO_CHANGES: i32 = 0;
/// The plan could not be made, or admission refuses a manifest (applying it
/// would fail).
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_CHANGES: i32 = 2;
/// Changes that disrupt a running instance (a reboot, a stop, a reinstall):
/// a pipeline may ask for an approval.
pub const EXIT_DISRUPTIVE: i32 = 3;

/// What a change or an action costs the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Impact {
    None,
    Reboot,
    Stop,
    Reinstall,
    /// The change needs a new instance, and admission refuses it (the
    /// operator never replaces an instance).
    ReplaceRefused,
    /// A set's member goes, its instance terminated (scaled down, or
    /// replaced by a new one).
    Replace,
}

impl Impact {
    pub fn as_str(&self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Reboot => "reboot",
            Impact::Stop => "stop",
            Impact::Reinstall => "reinstall",
            Impact::ReplaceRefused => "replace-refused",
            Impact::Replace => "replace",
        }
    }

    pub fn disrupts(&self) -> bool {
        matches!(
            self,
            Impact::Reboot | Impact::Stop | Impact::Reinstall | Impact::Replace
        )
    }
}

/// How a resource's plan ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Create,
    Change,
    Unchanged,
    /// Changes the operator will not make now (paused, ObserveOnly, a
    /// disruption the policy does not allow, a permanent error, …).
    Held,
    /// Admission refuses the manifest.
    Refused,
    Error,
}

/// Where the instance's state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservedFrom {
    /// DescribeInstances, now.
    Cloud,
    /// The live object's status (no cloud credentials, or the cloud could
    /// not be read): as of the operator's last observation.
    Status,
    /// Nothing to observe: a new resource.
    Nothing,
}

/// A spec field that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    pub from: String,
    pub to: String,
    pub disruption: Impact,
}

/// One step the operator would take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The API action that carries it out; `None` for what another action
    /// does by itself (ResetInstancesType starts the instance).
    pub api_action: Option<String>,
    /// A short name (`stop`, `resize`, `start`, …).
    pub verb: String,
    pub description: String,
    pub disruption: Impact,
}

/// Why the operator would stop short: the reason and message its `Synced`
/// condition would carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub reason: String,
    pub message: String,
}

/// The price before and after (as the API quotes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceChange {
    /// `status.price` of the live object.
    pub before: Option<PriceStatus>,
    pub after: Option<PriceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The file it was read from.
    pub origin: String,
    pub verdict: Verdict,
    pub instance_id: Option<String>,
    pub instance_state: Option<String>,
    pub observed_from: ObservedFrom,
    pub changes: Vec<Change>,
    pub actions: Vec<Action>,
    pub held: Option<Held>,
    pub price: Option<PriceChange>,
    pub refused: Vec<FieldRefusal>,
    /// An action disrupts the running instance.
    pub disruptive: bool,
    pub notes: Vec<String>,
}

impl ResourcePlan {
    /// An empty plan for a manifest, to be filled in.
    pub fn new(kind: &str, namespace: &str, name: &str, origin: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            origin: origin.into(),
            verdict: Verdict::Unchanged,
            instance_id: None,
            instance_state: None,
            observed_from: ObservedFrom::Nothing,
            changes: Vec::new(),
            actions: Vec::new(),
            held: None,
            price: None,
            refused: Vec::new(),
            disruptive: false,
            notes: Vec::new(),
        }
    }

    /// The verdict from what was found (`disruptive` is the sequence's to
    /// say: stopping again an instance the API booted disrupts nothing).
    pub fn settle(&mut self) {
        self.verdict = if !self.refused.is_empty() {
            Verdict::Refused
        } else if self.actions.first().is_some_and(|a| a.verb == "create") {
            Verdict::Create
        } else if !self.actions.is_empty() {
            Verdict::Change
        } else if self.held.is_some() {
            Verdict::Held
        } else {
            Verdict::Unchanged
        };
    }

    pub fn error(mut self, message: String) -> Self {
        self.verdict = Verdict::Error;
        self.notes.push(message);
        self
    }
}

/// A document that is not planned, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub kind: String,
    pub name: String,
    pub origin: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub disruptive: usize,
    pub held: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub error: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    pub resources: Vec<ResourcePlan>,
    pub ignored: Vec<Ignored>,
    /// What the plan could and could not see (the cluster, the cloud).
    pub notes: Vec<String>,
    pub summary: Summary,
    pub exit_code: i32,
}

impl PlanOutput {
    pub fn new(resources: Vec<ResourcePlan>, ignored: Vec<Ignored>, notes: Vec<String>) -> Self {
        let mut s = Summary::default();
        for r in &resources {
            match r.verdict {
                Verdict::Create => s.create += 1,
                Verdict::Change => s.change += 1,
                Verdict::Held => s.held += 1,
                Verdict::Unchanged => s.unchanged += 1,
                Verdict::Refused => s.refused += 1,
                Verdict::Error => s.error += 1,
            }
            s.disruptive += usize::from(r.disruptive);
        }
        let exit_code = exit_code(&s);
        Self {
            resources,
            ignored,
            notes,
            summary: s,
            exit_code,
        }
    }
}

/// 1 beats 3 beats 2 beats 0: a manifest that cannot be applied fails the
/// pipeline whatever else it holds.
fn exit_code(s: &Summary) -> i32 {
    if s.error + s.refused > 0 {
        EXIT_ERROR
    } else if s.disruptive > 0 {
        EXIT_DISRUPTIVE
    } else if s.create + s.change + s.held > 0 {
        EXIT_CHANGES
    } else {
        EXIT_NO_CHANGES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(verdict: Verdict, disruptive: bool) -> ResourcePlan {
        let mut r = ResourcePlan::new("CvmInstance", "ns", "n", "f.yaml");
        r.verdict = verdict;
        r.disruptive = disruptive;
        r
    }

    #[test]
    fn the_exit_code_orders_error_disruption_change_nothing() {
        let code = |rs: Vec<ResourcePlan>| PlanOutput::new(rs, vec![], vec![]).exit_code;
        assert_eq!(code(vec![]), EXIT_NO_CHANGES);
        assert_eq!(code(vec![with(Verdict::Unchanged, false)]), EXIT_NO_CHANGES);
        assert_eq!(code(vec![with(Verdict::Change, false)]), EXIT_CHANGES);
        assert_eq!(code(vec![with(Verdict::Create, false)]), EXIT_CHANGES);
        assert_eq!(code(vec![with(Verdict::Held, false)]), EXIT_CHANGES);
        let disruptive = vec![with(Verdict::Change, false), with(Verdict::Change, true)];
        assert_eq!(code(disruptive), EXIT_DISRUPTIVE);
        let refused = vec![with(Verdict::Change, true), with(Verdict::Refused, false)];
        assert_eq!(code(refused), EXIT_ERROR);
        assert_eq!(code(vec![with(Verdict::Error, false)]), EXIT_ERROR);
    }

    #[test]
    fn the_verdict_follows_the_findings() {
        let action = |verb: &str, disruption| Action {
            api_action: None,
            verb: verb.into(),
            description: String::new(),
            disruption,
        };
        let mut r = ResourcePlan::new("CvmInstance", "ns", "n", "f");
        r.settle();
        assert_eq!(r.verdict, Verdict::Unchanged);
        r.actions = vec![action("stop", Impact::Stop), action("resize", Impact::None)];
        r.settle();
        assert_eq!(r.verdict, Verdict::Change);
        r.actions = vec![action("create", Impact::None)];
        r.settle();
        assert_eq!(r.verdict, Verdict::Create);
        r.actions.clear();
        r.held = Some(Held {
            reason: "StopRequired".into(),
            message: String::new(),
        });
        r.settle();
        assert_eq!(r.verdict, Verdict::Held);
        r.refused.push(FieldRefusal {
            field: "spec.zone".into(),
            message: "immutable".into(),
        });
        r.settle();
        assert_eq!(r.verdict, Verdict::Refused);
    }
}
