use super::*;

fn m(index: i64, ready: bool, update: Update) -> Member {
    Member {
        name: format!("web-{index}"),
        index,
        deleting: false,
        ready,
        available: ready,
        update,
    }
}

fn fleet(n: i64, update: Update) -> Vec<Member> {
    (0..n).map(|i| m(i, true, update)).collect()
}

fn targets(replicas: usize, max_unavailable: usize, max_surge: usize) -> Targets {
    Targets {
        replicas,
        max_unavailable,
        max_surge,
        in_flight: 0,
    }
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn scale_up_launches_what_is_missing_counting_launches_in_flight() {
    let members = fleet(40, Update::Current);
    assert_eq!(plan(targets(250, 1, 0), &members).launch, 210);
    let t = Targets {
        in_flight: 200,
        ..targets(250, 1, 0)
    };
    assert_eq!(plan(t, &members).launch, 10);
    let t = Targets {
        in_flight: 210,
        ..targets(250, 1, 0)
    };
    assert_eq!(plan(t, &members), Plan::default(), "nothing twice");
    assert_eq!(plan(targets(3, 1, 0), &[]).launch, 3);
}

#[test]
fn scale_down_takes_members_not_ready_first_then_the_newest() {
    let mut members = fleet(6, Update::Current);
    members[1].ready = false;
    members[1].available = false;
    members[3].deleting = true;
    let p = plan(targets(3, 1, 0), &members);
    // Five live, three wanted: web-1 (not ready), then the newest, web-5.
    assert_eq!(names(&p.delete), ["web-1", "web-5"]);
    assert_eq!(p.launch, 0);
    // Down to zero: everything live.
    let p = plan(targets(0, 1, 0), &members);
    assert_eq!(p.delete.len(), 5);
}

#[test]
fn quiet_changes_go_to_every_member_at_once() {
    let p = plan(targets(10, 1, 0), &fleet(10, Update::Quiet));
    assert_eq!(p.update.len(), 10);
    assert!(p.delete.is_empty() && p.launch == 0);
}

#[test]
fn disruptive_changes_roll_within_max_unavailable() {
    let mut members = fleet(5, Update::Disruptive);
    // maxUnavailable 1: one at a time.
    assert_eq!(names(&plan(targets(5, 1, 0), &members).update), ["web-0"]);
    // One is being changed (current template, not available yet): none more.
    members[0].update = Update::Current;
    members[0].available = false;
    assert!(plan(targets(5, 1, 0), &members).update.is_empty());
    // maxUnavailable 2: one more.
    assert_eq!(names(&plan(targets(5, 2, 0), &members).update), ["web-1"]);
    // A member out of service anyway is changed without using the budget.
    members[4].ready = false;
    members[4].available = false;
    assert_eq!(names(&plan(targets(5, 1, 0), &members).update), ["web-4"]);
}

#[test]
fn replacements_without_surge_delete_first_then_launch() {
    let members = fleet(3, Update::Replace);
    let p = plan(targets(3, 1, 0), &members);
    assert_eq!((p.launch, names(&p.delete)), (0, vec!["web-2"]));
    // The old one is going: its instance still counts until it is gone.
    let mut next = members.clone();
    next[2].deleting = true;
    let p = plan(targets(3, 1, 0), &next);
    assert_eq!((p.launch, p.delete.len()), (0, 0), "never four instances");
    // Gone: its replacement is launched.
    next.remove(2);
    let p = plan(targets(3, 1, 0), &next);
    assert_eq!(
        (p.launch, p.delete.len()),
        (1, 0),
        "one out of service at a time"
    );
}

#[test]
fn replacements_with_surge_launch_first_and_keep_everyone_serving() {
    let members = fleet(3, Update::Replace);
    let p = plan(targets(3, 0, 1), &members);
    assert_eq!((p.launch, p.delete.len()), (1, 0));
    // The new one is up: an old one may go.
    let mut next = members.clone();
    next.push(m(3, true, Update::Current));
    let p = plan(targets(3, 0, 1), &next);
    assert_eq!((p.launch, names(&p.delete)), (0, vec!["web-2"]));
    // The new one is not ready yet: nothing goes.
    next[3].available = false;
    next[3].ready = false;
    let p = plan(targets(3, 0, 1), &next);
    assert_eq!(p, Plan::default());
}

#[test]
fn a_replaced_member_that_is_down_goes_at_once() {
    let mut members = fleet(3, Update::Replace);
    members[0].ready = false;
    members[0].available = false;
    // web-0 is down anyway: it goes; it also uses up maxUnavailable 1.
    let p = plan(targets(3, 1, 0), &members);
    assert_eq!(names(&p.delete), ["web-0"]);
    // With 2, one more.
    let p = plan(targets(3, 2, 0), &members);
    assert_eq!(names(&p.delete), ["web-0", "web-2"]);
}

#[test]
fn scaling_down_during_a_rollout_deletes_replaced_members_first() {
    let mut members = fleet(4, Update::Current);
    members.extend((4..6).map(|i| m(i, true, Update::Replace)));
    let p = plan(targets(4, 1, 0), &members);
    assert_eq!(names(&p.delete), ["web-5", "web-4"]);
}
