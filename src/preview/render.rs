//! The text form of a plan, for people (a PR comment, a terminal): one block
//! per resource — a header with the sequence in short, the changes, the
//! actions in order with their disruption, the price — and a summary line.

use super::output::{Impact, PlanOutput, ResourcePlan, Verdict};
use crate::api::price::PriceStatus;
use std::fmt::Write as _;

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Create => "+",
        Verdict::Change => "~",
        Verdict::Unchanged => "=",
        Verdict::Held => "!",
        Verdict::Refused => "x",
        Verdict::Error => "?",
    }
}

/// How a disruption reads.
fn impact(i: Impact) -> &'static str {
    match i {
        Impact::None => "no disruption",
        Impact::Reboot => "reboot",
        Impact::Stop => "stop",
        Impact::Reinstall => "reinstall",
        Impact::ReplaceRefused => "replace refused",
        Impact::Replace => "the instance is terminated",
    }
}

fn price_text(p: Option<&PriceStatus>) -> String {
    match p {
        None => "unknown".into(),
        Some(p) => {
            let line = p.line();
            match (&p.unknown_reason, line.as_str()) {
                (Some(why), "unknown") => format!("unknown ({why})"),
                (Some(why), l) => format!("{l} (partly unknown: {why})"),
                (None, "") => "unknown".into(),
                (None, l) => l.to_string(),
            }
        }
    }
}

/// The one-line sequence: `stop, resize, start`.
pub fn sequence(r: &ResourcePlan) -> String {
    let verbs: Vec<&str> = r.actions.iter().map(|a| a.verb.as_str()).collect();
    verbs.join(", ")
}

fn header(r: &ResourcePlan) -> String {
    let mut h = format!("{} {} {}/{}", mark(r.verdict), r.kind, r.namespace, r.name);
    let at: Vec<&str> = [r.instance_id.as_deref(), r.instance_state.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !at.is_empty() {
        let _ = write!(h, " ({})", at.join(", "));
    }
    let what = match r.verdict {
        Verdict::Create | Verdict::Change => sequence(r),
        Verdict::Unchanged => "no changes".into(),
        Verdict::Held => "changes held back".into(),
        Verdict::Refused => "refused by admission".into(),
        Verdict::Error => "cannot be planned".into(),
    };
    let _ = write!(h, ": {what}");
    if r.disruptive && r.kind == "CvmInstanceSet" {
        h.push_str(" — disrupts running instances");
    } else if r.disruptive {
        h.push_str(" — disrupts the running instance");
    } else if matches!(r.verdict, Verdict::Create | Verdict::Change) {
        h.push_str(" — no disruption");
    }
    h
}

fn resource(out: &mut String, r: &ResourcePlan) {
    let _ = writeln!(out, "{}", header(r));
    for c in &r.changes {
        let _ = writeln!(
            out,
            "    {}: {} → {}  [{}]",
            c.field,
            c.from,
            c.to,
            impact(c.disruption)
        );
    }
    for f in &r.refused {
        let field = if f.field.is_empty() {
            "(object)"
        } else {
            &f.field
        };
        let _ = writeln!(out, "    refused: {field}: {}", f.message);
    }
    for (n, a) in r.actions.iter().enumerate() {
        let by = a
            .api_action
            .as_deref()
            .map(|api| format!(" ({api})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {}. {}{by}: {}  [{}]",
            n + 1,
            a.verb,
            a.description,
            impact(a.disruption)
        );
    }
    if let Some(h) = &r.held {
        let _ = writeln!(out, "    held: {}: {}", h.reason, h.message);
    }
    if let Some(p) = &r.price {
        let after = price_text(p.after.as_ref());
        match &p.before {
            None => {
                let _ = writeln!(out, "    price: {after}");
            }
            Some(before) => {
                let _ = writeln!(out, "    price: {} → {after}", price_text(Some(before)));
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "    note: {n}");
    }
}

/// The whole plan as text.
pub fn text(plan: &PlanOutput) -> String {
    let mut out = String::new();
    for n in &plan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if !plan.notes.is_empty() {
        out.push('\n');
    }
    for r in &plan.resources {
        resource(&mut out, r);
        out.push('\n');
    }
    for i in &plan.ignored {
        let _ = writeln!(out, "- {} {} ({}): {}", i.kind, i.name, i.origin, i.why);
    }
    if !plan.ignored.is_empty() {
        out.push('\n');
    }
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "Plan: {} to create, {} to change ({} disrupting a running instance), {} held back, {} refused, {} unchanged{}.",
        s.create,
        s.change,
        s.disruptive,
        s.held,
        s.refused,
        s.unchanged,
        if s.error > 0 {
            format!(", {} not planned (errors)", s.error)
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::output::{Action, Change, PriceChange};
    use super::*;
    use crate::api::price::PriceItem;

    fn hourly(p: &str) -> PriceStatus {
        PriceStatus {
            instance: Some(PriceItem {
                unit_price: Some(p.into()),
                charge_unit: Some("HOUR".into()),
                ..Default::default()
            }),
            currency: Some("CNY".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_resize_reads_stop_resize_start_with_its_price() {
        let mut r = ResourcePlan::new("CvmInstance", "shop", "web", "web.yaml");
        r.instance_id = Some("ins-abcd1234".into());
        r.instance_state = Some("RUNNING".into());
        r.changes.push(Change {
            field: "spec.instanceType".into(),
            from: "S5.SMALL1".into(),
            to: "S5.MEDIUM4".into(),
            disruption: Impact::Stop,
        });
        let act = |api: Option<&str>, verb: &str, d| Action {
            api_action: api.map(str::to_string),
            verb: verb.into(),
            description: format!("the {verb} step"),
            disruption: d,
        };
        r.actions = vec![
            act(Some("StopInstances"), "stop", Impact::Stop),
            act(Some("ResetInstancesType"), "resize", Impact::None),
            act(None, "start", Impact::None),
        ];
        r.price = Some(PriceChange {
            before: Some(hourly("0.12")),
            after: Some(hourly("0.24")),
        });
        r.settle();
        r.disruptive = true;
        let plan = PlanOutput::new(vec![r], vec![], vec![]);
        let t = text(&plan);
        assert!(
            t.contains("~ CvmInstance shop/web (ins-abcd1234, RUNNING): stop, resize, start — disrupts the running instance"),
            "{t}"
        );
        assert!(
            t.contains("spec.instanceType: S5.SMALL1 → S5.MEDIUM4  [stop]"),
            "{t}"
        );
        assert!(
            t.contains("1. stop (StopInstances): the stop step  [stop]"),
            "{t}"
        );
        assert!(
            t.contains("3. start: the start step  [no disruption]"),
            "{t}"
        );
        assert!(t.contains("price: 0.12 CNY/HOUR → 0.24 CNY/HOUR"), "{t}");
        assert!(
            t.contains("Plan: 0 to create, 1 to change (1 disrupting a running instance)"),
            "{t}"
        );
    }
}
