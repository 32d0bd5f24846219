//! The predicted sequences: every row of the planner's differences table
//! converges to in sync, costing what its pending change says; the model of
//! a spec has no drift from the spec; the sequences the `plan` command is
//! known for (stop, resize, start; one stop window; create then stop).

use super::super::tests::{Case, differences, obs, spec};
use super::*;
use crate::api::{DisruptionPolicy, LoginSettingsSpec, Permission, StopType, StoppedMode, VpcSpec};
use crate::controller::plan::{Disruption, Drift, drift};
use std::sync::Arc;

fn present(o: Observation) -> Observed {
    Observed::Present(Arc::new(o))
}

fn allow_everything(c: &mut Case) {
    c.s.disruption_policy = Some(DisruptionPolicy {
        stop_start: Some(Permission::Allowed),
        reboot: Some(Permission::Allowed),
        reinstall: Some(Permission::Allowed),
    });
}

fn verbs(s: &Sequence) -> Vec<&'static str> {
    s.steps.iter().map(Planned::verb).collect()
}

fn last(s: &Sequence) -> &Observation {
    match &s.last {
        Observed::Present(o) => o,
        other => panic!("no instance at the end: {other:?}"),
    }
}

fn worst(d: impl Iterator<Item = Disruption>) -> Disruption {
    d.max().unwrap_or(Disruption::None)
}

#[test]
fn every_row_converges_and_costs_what_its_pending_change_says() {
    for start in [InstanceState::Running, InstanceState::Stopped] {
        for (what, diff) in differences() {
            let mut c = Case::of(spec());
            if start == InstanceState::Stopped {
                c.s.run_state = RunState::Stopped;
            }
            diff(&mut c);
            allow_everything(&mut c);
            let mut o = obs();
            (c.o)(&mut o);
            if start == InstanceState::Stopped {
                o.state = InstanceState::Stopped;
                o.stopped_mode = Some(StoppedMode::KEEP_CHARGING);
            }
            let observed = present(o);
            let s = sequence(&c.input(&observed));
            let at = format!("{what} from {start}: {:?}", verbs(&s));
            assert_eq!(s.end, End::InSync, "{at}");
            let left = drift(&c.s, name_of(&c), last(&s), &s.write_only);
            assert_eq!(left, Vec::<Drift>::new(), "{at}");
            let steps = worst(s.steps.iter().map(|p| p.disruption));
            let pending = worst(s.pending.iter().map(|p| p.disruption));
            match start {
                InstanceState::Running => {
                    assert_eq!(steps, pending, "{at}");
                    assert_eq!(s.disrupts(), pending != Disruption::None, "{at}");
                }
                // A stopped instance: only a reinstall disrupts it (a stop
                // after the API booted it only restores what the spec asks).
                _ => assert_eq!(s.disrupts(), pending == Disruption::Reinstall, "{at}"),
            }
            assert_eq!(s.steps.is_empty(), s.pending.is_empty(), "{at}");
        }
    }
}

fn name_of(c: &Case) -> &str {
    c.s.instance_name.as_deref().unwrap_or("web")
}

#[test]
fn a_spec_and_its_own_model_have_no_drift() {
    let everything: CvmInstanceSpec = serde_json::from_value(serde_json::json!({
        "region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r",
        "instanceType": "S5.MEDIUM4", "projectId": 1000001, "instanceName": "w",
        "hostName": "web-1", "instanceChargeType": "PREPAID",
        "prepaid": {"period": 1, "renewFlag": "NOTIFY_AND_AUTO_RENEW"},
        "systemDisk": {"diskType": "CLOUD_SSD", "diskSize": 80},
        "dataDisks": [{"diskType": "CLOUD_PREMIUM", "diskSize": 100}],
        "vpc": {"vpcId": "vpc-gz000001", "subnetId": "subnet-gz000003", "privateIpAddress": "172.16.3.9"},
        "internetAccessible": {"internetMaxBandwidthOut": 5},
        "securityGroupIds": ["sg-gz000001", "sg-gz000002"],
        "loginSettings": {"keyIds": ["skey-gz000001"]},
        "tags": {"team": "a"}, "camRoleName": "CVM_QcsRole",
        "disasterRecoverGroupIds": ["ps-gz000001"], "disableApiTermination": true,
        "runState": "Stopped", "stoppedMode": "STOP_CHARGING",
    }))
    .unwrap();
    for s in [spec(), everything] {
        let o = as_specified(&s, "w");
        let name = s.instance_name.clone().unwrap_or("w".into());
        let got = drift(&s, &name, &o, &WriteOnly::default());
        assert_eq!(got, Vec::<Drift>::new(), "{s:?}");
    }
}

fn sequence_of(c: &Case, o: Observation) -> Sequence {
    sequence(&c.input(&present(o)))
}

#[test]
fn a_type_change_on_a_running_instance_is_stop_resize_start() {
    let mut c = Case::of(spec());
    c.s.instance_type = "S5.LARGE8".into();
    let s = sequence_of(&c, obs());
    assert_eq!(verbs(&s), ["stop", "resize", "start"]);
    let d: Vec<Disruption> = s.steps.iter().map(|p| p.disruption).collect();
    assert_eq!(d, [Disruption::Stop, Disruption::None, Disruption::None]);
    assert_eq!(
        s.steps[2].api_action(),
        None,
        "ResetInstancesType starts it"
    );
    assert_eq!(last(&s).instance_type, "S5.LARGE8");
    assert_eq!(last(&s).state, InstanceState::Running);
}

#[test]
fn changes_needing_a_stop_share_one_window() {
    let mut c = Case::of(spec());
    c.s.instance_type = "S5.LARGE8".into();
    c.s.login_settings = Some(LoginSettingsSpec {
        key_ids: Some(vec!["skey-gz000002".into()]),
        password_secret_ref: None,
    });
    c.s.vpc = Some(VpcSpec {
        vpc_id: "vpc-gz000001".into(),
        subnet_id: "subnet-gz000004".into(),
        private_ip_address: None,
    });
    let s = sequence_of(&c, obs());
    let v = verbs(&s);
    assert_eq!(v.iter().filter(|v| **v == "stop").count(), 1, "{v:?}");
    assert_eq!(v.first(), Some(&"stop"), "{v:?}");
    assert_eq!(v.last(), Some(&"start"), "{v:?}");
    assert_eq!(s.end, End::InSync);
}

#[test]
fn a_new_resource_is_created_then_stopped_when_it_asks_to_be() {
    let mut c = Case::of(spec());
    c.s.run_state = RunState::Stopped;
    c.s.stop_type = StopType::HARD;
    let s = sequence(&c.input(&Observed::NotCreated));
    assert_eq!(verbs(&s), ["create", "stop"]);
    assert_eq!(s.steps[0].api_action(), Some("RunInstances"));
    assert_eq!(s.end, End::InSync);
}

#[test]
fn a_change_the_policy_refuses_ends_the_sequence_where_the_operator_waits() {
    let mut c = Case::of(spec());
    c.s.instance_type = "S5.LARGE8".into();
    c.s.internet_accessible
        .as_mut()
        .unwrap()
        .internet_max_bandwidth_out = 10;
    c.s.disruption_policy = Some(DisruptionPolicy {
        stop_start: Some(Permission::Never),
        ..Default::default()
    });
    let s = sequence_of(&c, obs());
    assert_eq!(verbs(&s), ["set-bandwidth"], "what needs no stop is done");
    let End::Waits(Wait::NotAllowed(refused)) = &s.end else {
        panic!("{:?}", s.end);
    };
    assert_eq!(refused[0].field, "spec.instanceType");
    assert_eq!(s.pending.len(), 2);
}

#[test]
fn a_restart_request_reboots_once_and_an_unchecked_type_is_said_to_be_assumed() {
    let c = Case::of(spec());
    let observed = present(obs());
    let mut input = c.input(&observed);
    input.restart.requested = Some("2026-12-01T10:00:00Z");
    let s = sequence(&input);
    assert_eq!(verbs(&s), ["reboot"]);
    assert_eq!(s.steps[0].disruption, Disruption::Reboot);
    assert!(!s.type_assumed);

    let mut c = Case::of(spec());
    c.s.instance_type = "S5.LARGE8".into();
    let observed = present(obs());
    let mut input = c.input(&observed);
    input.type_check = TypeCheck::Unchecked;
    let s = sequence(&input);
    assert!(s.type_assumed);
    assert_eq!(verbs(&s), ["stop", "resize", "start"]);
    input.type_check = TypeCheck::Unavailable("sold out".into());
    let s = sequence(&input);
    assert!(s.steps.is_empty(), "{:?}", verbs(&s));
    assert!(matches!(s.end, End::Waits(Wait::TypeUnavailable { .. })));
}
