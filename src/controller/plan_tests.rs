//! The planner as a table: every InstanceState × operation state × kind of
//! difference × policy, plus deletion.

use super::*;
use crate::api::*;
use crate::controller::observation::{Compared, WriteOnly};
use std::sync::Arc;

fn spec() -> CvmInstanceSpec {
    serde_json::from_value(serde_json::json!({
        "region": "ap-guangzhou",
        "zone": "ap-guangzhou-3",
        "imageId": "img-pi0ii46r",
        "instanceType": "S5.MEDIUM4",
        "internetAccessible": {"internetMaxBandwidthOut": 5},
        "securityGroupIds": ["sg-gz000001"],
    }))
    .unwrap()
}

/// An observation that matches `spec()` exactly, running.
fn obs() -> Observation {
    Observation::fixture()
}

/// The name the reconciler derives: spec.instanceName, else the resource name "web".
fn name(spec: &CvmInstanceSpec) -> &str {
    spec.instance_name.as_deref().unwrap_or("web")
}

/// An observation as the observer hands it out.
fn present(o: &Observation) -> Observed {
    Observed::Present(Arc::new(o.clone()))
}

fn run(spec: &CvmInstanceSpec, o: &Observation) -> Plan {
    plan(&PlanInput {
        spec,
        instance_name: name(spec),
        observed: &present(o),
        mode: Mode::Apply,
        paused: false,
        blocked: None,
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    })
}

fn step(spec: &CvmInstanceSpec, o: &Observation) -> Step {
    run(spec, o).step
}

/// A spec and how its write-only values compare with what was applied.
struct Case {
    s: CvmInstanceSpec,
    w: WriteOnly,
}

impl Case {
    fn of(s: CvmInstanceSpec) -> Self {
        Case {
            s,
            w: WriteOnly::default(),
        }
    }

    fn input<'a>(&'a self, observed: &'a Observed) -> PlanInput<'a> {
        PlanInput {
            spec: &self.s,
            instance_name: name(&self.s),
            observed,
            mode: Mode::Apply,
            paused: false,
            blocked: None,
            restart: RestartInput::default(),
            write_only: self.w,
        }
    }

    fn run(&self, o: &Observation) -> Plan {
        plan(&self.input(&present(o)))
    }

    fn step(&self, o: &Observation) -> Step {
        self.run(o).step
    }
}

const ALL_STATES: &[InstanceState] = &[
    InstanceState::Pending,
    InstanceState::LaunchFailed,
    InstanceState::Running,
    InstanceState::Stopped,
    InstanceState::Starting,
    InstanceState::Stopping,
    InstanceState::Rebooting,
    InstanceState::Shutdown,
    InstanceState::Terminating,
    InstanceState::EnterRescueMode,
    InstanceState::RescueMode,
    InstanceState::ExitRescueMode,
    InstanceState::EnterServiceLiveMigrate,
    InstanceState::ServiceLiveMigrate,
    InstanceState::ExitServiceLiveMigrate,
];

/// The kinds of difference, each applied to a matching spec/observation:
/// one per row of the planner.
type Difference = (&'static str, Box<dyn Fn(&mut Case)>);

fn differences() -> Vec<Difference> {
    vec![
        ("none", Box::new(|_| {})),
        ("type", Box::new(|c| c.s.instance_type = "S5.LARGE8".into())),
        ("power", Box::new(|c| c.s.run_state = RunState::Stopped)),
        (
            "bandwidth",
            Box::new(|c| {
                c.s.internet_accessible
                    .as_mut()
                    .unwrap()
                    .internet_max_bandwidth_out = 20
            }),
        ),
        (
            "name",
            Box::new(|c| c.s.instance_name = Some("other".into())),
        ),
        (
            "security-groups",
            Box::new(|c| c.s.security_group_ids = Some(vec!["sg-gz000002".into()])),
        ),
        (
            "security-group-order",
            Box::new(|c| {
                c.s.security_group_ids = Some(vec!["sg-gz000002".into(), "sg-gz000001".into()])
            }),
        ),
        (
            "protection",
            Box::new(|c| c.s.disable_api_termination = Some(true)),
        ),
        (
            "cam-role",
            Box::new(|c| c.s.cam_role_name = Some("CVM_QcsRole".into())),
        ),
        (
            "tags",
            Box::new(|c| c.s.tags = Some([("team".to_string(), "b".to_string())].into())),
        ),
        ("user-data", Box::new(|c| c.w.user_data = Compared::Changed)),
        (
            "host-name",
            Box::new(|c| c.s.host_name = Some("web-2".into())),
        ),
    ]
}

#[test]
fn transitional_and_foreign_states_always_wait() {
    for state in ALL_STATES {
        for (what, diff) in differences() {
            let mut c = Case::of(spec());
            diff(&mut c);
            let o = Observation {
                state: state.clone(),
                ..obs()
            };
            let got = c.step(&o);
            match state {
                InstanceState::Running | InstanceState::Stopped => {}
                InstanceState::LaunchFailed => {
                    assert!(
                        matches!(got, Step::Wait(Wait::LaunchFailed { .. })),
                        "{state} {what}: {got:?}"
                    )
                }
                InstanceState::Shutdown => {
                    assert_eq!(got, Step::Wait(Wait::RecycleBin), "{state} {what}")
                }
                _ => assert_eq!(
                    got,
                    Step::Wait(Wait::Transitioning {
                        state: state.as_str().into()
                    }),
                    "{state} {what}"
                ),
            }
        }
    }
}

#[test]
fn operation_in_progress_never_acts() {
    for state in [InstanceState::Running, InstanceState::Stopped] {
        for (what, diff) in differences() {
            let mut c = Case::of(spec());
            diff(&mut c);
            let o = Observation {
                state: state.clone(),
                operating: true,
                latest_operation: "ModifyInstancesAttribute".into(),
                ..obs()
            };
            assert_eq!(
                c.step(&o),
                Step::Wait(Wait::OperationInProgress {
                    operation: "ModifyInstancesAttribute".into()
                }),
                "{state} {what}"
            );
        }
    }
}

/// Someone else's hand caught mid-way (stopping in the console, renaming
/// while an operation runs): the wait reports the drift now, because once
/// the instance settles the resource is no longer "in sync" and the
/// reconciler would have nothing to compare with.
#[test]
fn waits_on_a_moving_instance_still_report_its_drift() {
    let stopping = Observation {
        state: InstanceState::Stopping,
        ..obs()
    };
    let p = run(&spec(), &stopping);
    assert_eq!(
        p.step,
        Step::Wait(Wait::Transitioning {
            state: "STOPPING".into()
        })
    );
    assert!(
        matches!(&p.drift[..], [Drift::PowerState { want, have }] if want == "RUNNING" && have == "STOPPING"),
        "{:?}",
        p.drift
    );
    let renaming = Observation {
        operating: true,
        latest_operation: "ModifyInstancesAttribute".into(),
        name: "console-name".into(),
        ..obs()
    };
    let p = run(&spec(), &renaming);
    assert!(matches!(
        p.step,
        Step::Wait(Wait::OperationInProgress { .. })
    ));
    assert!(
        matches!(&p.drift[..], [Drift::Name { have, .. }] if have == "console-name"),
        "{:?}",
        p.drift
    );
    // Nothing differs: a moving instance reports no drift (our own actions
    // are told apart by the reconciler, which reports only from in sync).
    let starting_as_wanted = Observation {
        state: InstanceState::Running,
        operating: true,
        ..obs()
    };
    assert!(run(&spec(), &starting_as_wanted).drift.is_empty());
}

#[test]
fn every_difference_on_a_running_instance() {
    let o = obs();
    let table: Vec<(&str, Step)> = vec![
        ("none", Step::Wait(Wait::InSync)),
        (
            "type",
            Step::Act(CloudAction::Stop {
                stop_type: StopType::SOFT_FIRST,
                stopped_mode: StoppedMode::KEEP_CHARGING,
                to_apply: vec!["spec.instanceType"],
            }),
        ),
        (
            "power",
            Step::Act(CloudAction::Stop {
                stop_type: StopType::SOFT_FIRST,
                stopped_mode: StoppedMode::KEEP_CHARGING,
                to_apply: vec![],
            }),
        ),
        (
            "bandwidth",
            Step::Act(CloudAction::SetBandwidth { mbps: 20 }),
        ),
        (
            "name",
            Step::Act(CloudAction::Rename {
                name: "other".into(),
            }),
        ),
        (
            "security-groups",
            Step::Act(CloudAction::SetSecurityGroups {
                ids: vec!["sg-gz000002".into()],
            }),
        ),
        (
            "security-group-order",
            Step::Act(CloudAction::SetSecurityGroups {
                ids: vec!["sg-gz000002".into(), "sg-gz000001".into()],
            }),
        ),
        (
            "protection",
            Step::Act(CloudAction::SetTerminationProtection { enabled: true }),
        ),
        (
            "cam-role",
            Step::Act(CloudAction::SetCamRole {
                name: "CVM_QcsRole".into(),
            }),
        ),
        (
            "tags",
            Step::Act(CloudAction::SetTags {
                replace: vec![("team".into(), "b".into())],
                delete: vec![],
            }),
        ),
        ("user-data", Step::Act(CloudAction::SetUserData)),
        // Rebooting is allowed by default; the call reboots it.
        (
            "host-name",
            Step::Act(CloudAction::SetHostName {
                name: "web-2".into(),
            }),
        ),
    ];
    for ((what, diff), (what2, want)) in differences().into_iter().zip(table) {
        assert_eq!(what, what2);
        let mut c = Case::of(spec());
        diff(&mut c);
        let p = c.run(&o);
        assert_eq!(p.step, want, "{what}");
        assert_eq!(
            p.drift.len(),
            usize::from(what != "none"),
            "{what}: {:?}",
            p.drift
        );
        // The same with instanceName coming from spec.instanceName.
        if what == "name" {
            assert!(
                matches!(&p.drift[0], Drift::Name { want, have } if want == "other" && have == "web")
            );
        }
    }
}

#[test]
fn every_difference_on_a_stopped_instance() {
    let o = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    let mut stopped_spec = spec();
    stopped_spec.run_state = RunState::Stopped;
    let table: Vec<(&str, Step)> = vec![
        ("none", Step::Wait(Wait::InSync)),
        (
            "type",
            Step::Act(CloudAction::ResetType {
                instance_type: "S5.LARGE8".into(),
            }),
        ),
        // "power" sets runState Stopped, which already holds here.
        ("power", Step::Wait(Wait::InSync)),
        (
            "bandwidth",
            Step::Act(CloudAction::SetBandwidth { mbps: 20 }),
        ),
        (
            "name",
            Step::Act(CloudAction::Rename {
                name: "other".into(),
            }),
        ),
        (
            "security-groups",
            Step::Act(CloudAction::SetSecurityGroups {
                ids: vec!["sg-gz000002".into()],
            }),
        ),
        (
            "security-group-order",
            Step::Act(CloudAction::SetSecurityGroups {
                ids: vec!["sg-gz000002".into(), "sg-gz000001".into()],
            }),
        ),
        (
            "protection",
            Step::Act(CloudAction::SetTerminationProtection { enabled: true }),
        ),
        (
            "cam-role",
            Step::Act(CloudAction::SetCamRole {
                name: "CVM_QcsRole".into(),
            }),
        ),
        (
            "tags",
            Step::Act(CloudAction::SetTags {
                replace: vec![("team".into(), "b".into())],
                delete: vec![],
            }),
        ),
        ("user-data", Step::Act(CloudAction::SetUserData)),
        // Stopped: the name is set, used at the next boot; no reboot.
        (
            "host-name",
            Step::Act(CloudAction::SetHostName {
                name: "web-2".into(),
            }),
        ),
    ];
    for ((what, diff), (what2, want)) in differences().into_iter().zip(table) {
        assert_eq!(what, what2);
        let mut c = Case::of(stopped_spec.clone());
        diff(&mut c);
        assert_eq!(c.step(&o), want, "{what}");
    }
    // Wanted running: the resize comes first (cheaper while stopped), then the start.
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    assert_eq!(
        step(&s, &o),
        Step::Act(CloudAction::ResetType {
            instance_type: "S5.LARGE8".into()
        })
    );
    assert_eq!(step(&spec(), &o), Step::Act(CloudAction::Start));
}

#[test]
fn resize_choreography_stop_resize_and_the_api_boots_it() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    // 1. running → stop (keep charging), 2. stopped → resize, 3. the API
    // brings it back RUNNING (documented): nothing left to start.
    let running = obs();
    assert_eq!(
        step(&s, &running),
        Step::Act(CloudAction::Stop {
            stop_type: StopType::SOFT_FIRST,
            stopped_mode: StoppedMode::KEEP_CHARGING,
            to_apply: vec!["spec.instanceType"],
        })
    );
    let stopped = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    let resize = CloudAction::ResetType {
        instance_type: "S5.LARGE8".into(),
    };
    assert!(resize.boots());
    assert_eq!(step(&s, &stopped), Step::Act(resize));
    let resized = Observation {
        instance_type: "S5.LARGE8".into(),
        ..stopped
    };
    let booted = Observation {
        state: InstanceState::Running,
        ..resized.clone()
    };
    assert_eq!(step(&s, &booted), Step::Wait(Wait::InSync));
    // Were it still stopped (an API that did not boot it), it is started.
    assert_eq!(step(&s, &resized), Step::Act(CloudAction::Start));
    // A user's Stopped instance: the boot is undone by a plain stop.
    s.run_state = RunState::Stopped;
    assert!(matches!(
        step(&s, &booted),
        Step::Act(CloudAction::Stop { to_apply, .. }) if to_apply.is_empty()
    ));
}

fn refused(field: &'static str, disruption: Disruption) -> Step {
    Step::Wait(Wait::NotAllowed(vec![Refused { field, disruption }]))
}

#[test]
fn stop_start_never_reports_and_still_applies_other_changes() {
    for never in [
        |s: &mut CvmInstanceSpec| s.resize_policy = Some(ResizePolicy::Never),
        |s: &mut CvmInstanceSpec| {
            s.disruption_policy = Some(DisruptionPolicy {
                stop_start: Some(Permission::Never),
                ..Default::default()
            })
        },
    ] {
        let mut s = spec();
        s.instance_type = "S5.LARGE8".into();
        never(&mut s);
        let stop = refused("spec.instanceType", Disruption::Stop);
        assert_eq!(step(&s, &obs()), stop);
        // Other differences are still applied meanwhile.
        s.instance_name = Some("renamed".into());
        assert_eq!(
            step(&s, &obs()),
            Step::Act(CloudAction::Rename {
                name: "renamed".into()
            })
        );
        // Once the user stops it, the resize may proceed.
        s.instance_name = None;
        s.run_state = RunState::Stopped;
        assert!(matches!(
            step(&s, &obs()),
            Step::Act(CloudAction::Stop { to_apply, .. }) if to_apply.is_empty()
        ));
        let stopped = Observation {
            state: InstanceState::Stopped,
            stopped_mode: Some(StoppedMode::KEEP_CHARGING),
            ..obs()
        };
        assert!(matches!(
            step(&s, &stopped),
            Step::Act(CloudAction::ResetType { .. })
        ));
    }
}

#[test]
fn no_charge_stop_must_be_started_to_resize() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    s.run_state = RunState::Stopped;
    let o = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::STOP_CHARGING),
        ..obs()
    };
    assert_eq!(step(&s, &o), Step::Act(CloudAction::Start));
    assert_eq!(
        run(&s, &o).pending[0].disruption,
        Disruption::Stop,
        "a start and a stop"
    );
    s.resize_policy = Some(ResizePolicy::Never);
    assert_eq!(step(&s, &o), refused("spec.instanceType", Disruption::Stop));
}

#[test]
fn stop_uses_the_spec_modes() {
    let mut s = spec();
    s.run_state = RunState::Stopped;
    s.stop_type = StopType::HARD;
    s.stopped_mode = StoppedMode::STOP_CHARGING;
    assert_eq!(
        step(&s, &obs()),
        Step::Act(CloudAction::Stop {
            stop_type: StopType::HARD,
            stopped_mode: StoppedMode::STOP_CHARGING,
            to_apply: vec![]
        })
    );
}

#[test]
fn observe_only_and_paused_never_act() {
    for (what, diff) in differences() {
        let mut c = Case::of(spec());
        diff(&mut c);
        c.s.management_policy = ManagementPolicy::ObserveOnly;
        let p = c.run(&obs());
        let want = if what == "none" {
            Wait::InSync
        } else {
            Wait::ObserveOnly
        };
        assert_eq!(p.step, Step::Wait(want), "{what}");

        let mut c = Case::of(spec());
        diff(&mut c);
        let observed = present(&obs());
        let p = plan(&PlanInput {
            paused: true,
            ..c.input(&observed)
        });
        assert!(!matches!(p.step, Step::Act(_)), "{what}: {:?}", p.step);
        if what != "none" {
            assert!(matches!(p.step, Step::Wait(Wait::Paused { .. })), "{what}");
        }
    }
}

#[test]
fn absent_instances() {
    let s = spec();
    let step = |observed: Observed, paused, blocked: Option<Blocked>| {
        plan(&PlanInput {
            spec: &s,
            instance_name: "web",
            observed: &observed,
            mode: Mode::Apply,
            paused,
            blocked: blocked.as_ref(),
            restart: RestartInput::default(),
            write_only: WriteOnly::default(),
        })
        .step
    };
    assert_eq!(step(Observed::NotCreated, false, None), Step::Create);
    assert_eq!(
        step(Observed::NotCreated, true, None),
        Step::Wait(Wait::Paused {
            pending: Box::new(Step::Create)
        })
    );
    assert_eq!(
        step(Observed::NotCreated, false, Some(Blocked::Create)),
        Step::Wait(Wait::Blocked(Blocked::Create))
    );
    // Vanished behind our back: reported, never recreated.
    let missing = Observed::Missing {
        instance_id: "ins-abcdefgh".into(),
    };
    assert_eq!(
        step(missing, false, None),
        Step::Wait(Wait::NotFound {
            instance_id: Some("ins-abcdefgh".into())
        })
    );
    // Adopting an id that does not exist never creates.
    let mut adopt = spec();
    adopt.instance_id = Some("ins-abcdefgh".into());
    let p = plan(&PlanInput {
        spec: &adopt,
        instance_name: "web",
        observed: &Observed::NotCreated,
        mode: Mode::Apply,
        paused: false,
        blocked: None,
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    });
    assert!(matches!(p.step, Step::Wait(Wait::NotFound { .. })));
    // ObserveOnly never creates either.
    let mut oo = spec();
    oo.management_policy = ManagementPolicy::ObserveOnly;
    let p = plan(&PlanInput {
        spec: &oo,
        instance_name: "web",
        observed: &Observed::NotCreated,
        mode: Mode::Apply,
        paused: false,
        blocked: None,
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    });
    assert!(matches!(p.step, Step::Wait(Wait::NotFound { .. })));
}

#[test]
fn permanent_failure_blocks_until_the_spec_changes() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    let p = plan(&PlanInput {
        spec: &s,
        instance_name: "web",
        observed: &present(&obs()),
        mode: Mode::Apply,
        paused: false,
        blocked: Some(&Blocked::Action("ResetInstancesType".into())),
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    });
    assert_eq!(
        p.step,
        Step::Wait(Wait::Blocked(Blocked::Action("ResetInstancesType".into())))
    );
    assert_eq!(p.drift.len(), 1);
}

fn delete(s: &CvmInstanceSpec, observed: Observed) -> Step {
    plan(&PlanInput {
        spec: s,
        instance_name: "web",
        observed: &observed,
        mode: Mode::Delete,
        paused: false,
        blocked: None,
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    })
    .step
}

#[test]
fn deletion_in_every_state() {
    let s = spec();
    for state in ALL_STATES {
        for operating in [false, true] {
            let o = Observation {
                state: state.clone(),
                operating,
                ..obs()
            };
            let got = delete(&s, present(&o));
            let want = match (state, operating) {
                (InstanceState::LaunchFailed, _) => Step::Release(Release::NeverLaunched),
                (
                    InstanceState::Running | InstanceState::Stopped | InstanceState::Shutdown,
                    false,
                ) => Step::Act(CloudAction::Terminate),
                (
                    InstanceState::Running | InstanceState::Stopped | InstanceState::Shutdown,
                    true,
                ) => Step::Wait(Wait::OperationInProgress {
                    operation: "RunInstances".into(),
                }),
                (other, _) => Step::Wait(Wait::Transitioning {
                    state: other.as_str().into(),
                }),
            };
            assert_eq!(got, want, "{state} operating={operating}");
        }
    }
    assert_eq!(
        delete(&s, Observed::NotCreated),
        Step::Release(Release::NeverCreated)
    );
    let missing = Observed::Missing {
        instance_id: "ins-abcdefgh".into(),
    };
    assert_eq!(delete(&s, missing), Step::Release(Release::Gone));
}

#[test]
fn deletion_policies_and_protection() {
    let mut retain = spec();
    retain.deletion_policy = Some(DeletionPolicy::Retain);
    let retained = Step::Release(Release::Retained);
    assert_eq!(delete(&retain, present(&obs())), retained);
    let mut oo = spec();
    oo.management_policy = ManagementPolicy::ObserveOnly;
    assert_eq!(delete(&oo, present(&obs())), retained);
    // The same rule the reconciler applies before resolving credentials.
    assert_eq!(
        release_without_cloud(&oo, Mode::Delete),
        Some(Release::Retained)
    );
    assert_eq!(release_without_cloud(&oo, Mode::Apply), None);
    assert_eq!(release_without_cloud(&spec(), Mode::Delete), None);

    let protected = Observation {
        disable_api_termination: true,
        ..obs()
    };
    assert_eq!(
        delete(&spec(), present(&protected)),
        Step::Wait(Wait::TerminationProtected)
    );
    let mut unprotect = spec();
    unprotect.disable_api_termination = Some(false);
    assert_eq!(
        delete(&unprotect, present(&protected)),
        Step::Act(CloudAction::SetTerminationProtection { enabled: false })
    );
    // Paused does not stop an explicit delete.
    let p = plan(&PlanInput {
        spec: &spec(),
        instance_name: "web",
        observed: &present(&obs()),
        mode: Mode::Delete,
        paused: true,
        blocked: Some(&Blocked::Create),
        restart: RestartInput::default(),
        write_only: WriteOnly::default(),
    });
    assert_eq!(p.step, Step::Act(CloudAction::Terminate));
}

#[test]
fn several_differences_are_fixed_in_order_one_per_step() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    s.instance_name = Some("other".into());
    s.internet_accessible
        .as_mut()
        .unwrap()
        .internet_max_bandwidth_out = 1;
    // What needs nothing goes first, while the instance runs; the stop
    // for the type comes after.
    let p = run(&s, &obs());
    assert_eq!(p.drift.len(), 3);
    assert_eq!(p.step, Step::Act(CloudAction::SetBandwidth { mbps: 1 }));
    let bandwidth_done = Observation {
        bandwidth_out: 1,
        ..obs()
    };
    assert!(matches!(
        step(&s, &bandwidth_done),
        Step::Act(CloudAction::Rename { .. })
    ));
    let renamed = Observation {
        name: "other".into(),
        ..bandwidth_done
    };
    assert!(matches!(
        step(&s, &renamed),
        Step::Act(CloudAction::Stop { to_apply, .. }) if to_apply == ["spec.instanceType"]
    ));
    // Unmanaged fields (spec says nothing) are not differences.
    let mut loose = spec();
    loose.security_group_ids = None;
    loose.internet_accessible = None;
    let o = Observation {
        security_group_ids: vec!["sg-other001".into()],
        bandwidth_out: 100,
        ..obs()
    };
    assert_eq!(step(&loose, &o), Step::Wait(Wait::InSync));
}

#[test]
fn only_a_permanent_failure_of_this_generation_blocks() {
    let failure = Failure {
        code: "InvalidParameterValue.InstanceTypeNotFound".into(),
        ..Default::default()
    };
    let failed = |action: &str, generation| {
        LastOperation::failed(action, failure.clone(), Some(generation), "t".into())
    };
    assert_eq!(
        Blocked::from_last(&failed("RunInstances", 2), Some(2)),
        Some(Blocked::Create)
    );
    assert_eq!(
        Blocked::from_last(&failed("ResetInstancesType", 2), Some(2)),
        Some(Blocked::Action("ResetInstancesType".into()))
    );
    // The spec changed since: try again.
    assert_eq!(
        Blocked::from_last(&failed("RunInstances", 2), Some(3)),
        None
    );
    let pending = LastOperation::pending("RunInstances", Some(2), "t".into());
    assert_eq!(Blocked::from_last(&pending, Some(2)), None);
}

fn with_restart(
    s: &CvmInstanceSpec,
    o: &Observation,
    requested: Option<&str>,
    recorded: Option<&RestartStatus>,
    paused: bool,
) -> Plan {
    plan(&PlanInput {
        spec: s,
        instance_name: name(s),
        observed: &present(o),
        mode: Mode::Apply,
        paused,
        blocked: None,
        restart: RestartInput {
            requested,
            recorded,
        },
        write_only: WriteOnly::default(),
    })
}

#[test]
fn restart_reboots_once_per_value_and_recovers_a_hidden_answer() {
    let s = spec();
    let o = Observation {
        latest_operation_request_id: "req-before".into(),
        ..obs()
    };
    let at = "2026-12-01T10:00:00Z";
    let reboot = Step::Act(CloudAction::Restart {
        requested_at: at.into(),
        stop_type: StopType::SOFT_FIRST,
    });
    // Nothing asked: nothing done.
    assert_eq!(
        with_restart(&s, &o, None, None, false).step,
        Step::Wait(Wait::InSync)
    );
    // A new value: one reboot, with the spec's stop type.
    let p = with_restart(&s, &o, Some(at), None, false);
    assert_eq!((p.step, p.restart), (reboot.clone(), None));
    // The intent the reconciler records before the call.
    let intent = restart::intent(at, &o);
    assert_eq!(intent.state, RestartState::Pending);
    assert_eq!(intent.previous_operation.as_deref(), Some("req-before"));
    // Intent recorded, the call never left (same latest operation): send it.
    let p = with_restart(&s, &o, Some(at), Some(&intent), false);
    assert_eq!((p.step, p.restart), (reboot.clone(), None));
    // Intent recorded, the instance shows another latest operation: the call
    // got through before a crash; record it, never reboot twice.
    let after = Observation {
        latest_operation: "RebootInstances".into(),
        latest_operation_request_id: "req-reboot".into(),
        ..o.clone()
    };
    let p = with_restart(&s, &after, Some(at), Some(&intent), false);
    assert_eq!(p.step, Step::Wait(Wait::InSync));
    let rec = p.restart.expect("recorded");
    assert_eq!(
        (rec.state, rec.request_id.as_deref()),
        (RestartState::Rebooted, Some("req-reboot"))
    );
    // Still rebooting: recorded the same way, the wait goes on.
    let rebooting = Observation {
        state: InstanceState::Rebooting,
        operating: true,
        ..after.clone()
    };
    let p = with_restart(&s, &rebooting, Some(at), Some(&intent), false);
    assert!(matches!(p.step, Step::Wait(Wait::Transitioning { .. })));
    assert_eq!(p.restart.map(|r| r.state), Some(RestartState::Rebooted));
    // Handled (or failed): the same value never reboots again; a new one does.
    for state in [
        RestartState::Rebooted,
        RestartState::Failed,
        RestartState::Skipped,
    ] {
        let done = RestartStatus {
            state,
            ..intent.clone()
        };
        let p = with_restart(&s, &after, Some(at), Some(&done), false);
        assert_eq!((p.step, p.restart), (Step::Wait(Wait::InSync), None));
        let p = with_restart(&s, &after, Some("later"), Some(&done), false);
        assert!(matches!(p.step, Step::Act(CloudAction::Restart { .. })));
    }
    // Paused: what it would do, not done.
    let p = with_restart(&s, &o, Some(at), None, true);
    assert_eq!(
        p.step,
        Step::Wait(Wait::Paused {
            pending: Box::new(reboot)
        })
    );
    // ObserveOnly changes nothing.
    let mut oo = spec();
    oo.management_policy = ManagementPolicy::ObserveOnly;
    assert_eq!(
        with_restart(&oo, &o, Some(at), None, false).step,
        Step::Wait(Wait::InSync)
    );
}

#[test]
fn restart_never_starts_a_stopped_instance_and_waits_behind_changes() {
    let at = "2026-12-01T10:00:00Z";
    let stopped = Observation {
        state: InstanceState::Stopped,
        ..obs()
    };
    // The spec wants it stopped: skipped, recorded, no call.
    let mut s = spec();
    s.run_state = RunState::Stopped;
    let p = with_restart(&s, &stopped, Some(at), None, false);
    assert_eq!(p.step, Step::Wait(Wait::InSync));
    assert_eq!(p.restart.map(|r| r.state), Some(RestartState::Skipped));
    // The spec wants it running: it is started; the restart waits for it.
    let p = with_restart(&spec(), &stopped, Some(at), None, false);
    assert_eq!((p.step, p.restart), (Step::Act(CloudAction::Start), None));
    // Other changes go first; a change the policy refuses does not hold
    // back a restart asked for explicitly.
    let mut s = spec();
    s.instance_name = Some("other".into());
    let p = with_restart(&s, &obs(), Some(at), None, false);
    assert!(matches!(p.step, Step::Act(CloudAction::Rename { .. })));
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    s.resize_policy = Some(ResizePolicy::Never);
    let p = with_restart(&s, &obs(), Some(at), None, false);
    assert!(matches!(p.step, Step::Act(CloudAction::Restart { .. })));
}

#[test]
fn a_permanent_failure_still_lets_the_power_state_be_restored() {
    // A stop window failed half-way: the change is blocked, the instance
    // is not left stopped.
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    let stopped = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    let blocked_on = |action: &str, o: &Observation| {
        plan(&PlanInput {
            spec: &s,
            instance_name: "web",
            observed: &present(o),
            mode: Mode::Apply,
            paused: false,
            blocked: Some(&Blocked::Action(action.into())),
            restart: RestartInput::default(),
            write_only: WriteOnly::default(),
        })
        .step
    };
    assert_eq!(
        blocked_on("ResetInstancesType", &stopped),
        Step::Act(CloudAction::Start)
    );
    // Running again: the blocked change waits for a spec change.
    assert_eq!(
        blocked_on("ResetInstancesType", &obs()),
        Step::Wait(Wait::Blocked(Blocked::Action("ResetInstancesType".into())))
    );
    // The power change itself failed: not retried either.
    assert_eq!(
        blocked_on("StartInstances", &stopped),
        Step::Wait(Wait::Blocked(Blocked::Action("StartInstances".into())))
    );
}

#[test]
fn pending_changes_name_field_values_and_disruption() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    s.instance_name = Some("other".into());
    let p = run(&s, &obs());
    let got: Vec<(&str, &str, &str, Disruption)> = p
        .pending
        .iter()
        .map(|c| (c.field, c.from.as_str(), c.to.as_str(), c.disruption))
        .collect();
    assert_eq!(
        got,
        [
            ("spec.instanceName", "web", "other", Disruption::None),
            (
                "spec.instanceType",
                "S5.MEDIUM4",
                "S5.LARGE8",
                Disruption::Stop
            ),
        ]
    );
    // Already stopped: applying the type costs nothing more.
    let stopped = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    let mut s2 = spec();
    s2.instance_type = "S5.LARGE8".into();
    s2.run_state = RunState::Stopped;
    assert_eq!(run(&s2, &stopped).pending[0].disruption, Disruption::None);
    // The power state: stopping is the change itself.
    s2.instance_type = "S5.MEDIUM4".into();
    let p = run(&s2, &obs());
    assert_eq!(
        (p.pending[0].field, p.pending[0].disruption),
        ("spec.runState", Disruption::Stop)
    );
}

#[test]
fn a_window_stop_keeps_charging_unless_the_instance_stays_stopped() {
    let mut s = spec();
    s.instance_type = "S5.LARGE8".into();
    s.stopped_mode = StoppedMode::STOP_CHARGING;
    s.run_state = RunState::Stopped;
    // Resizing: the API needs it stopped while charging.
    assert!(matches!(
        step(&s, &obs()),
        Step::Act(CloudAction::Stop {
            stopped_mode: StoppedMode::KEEP_CHARGING,
            ..
        })
    ));
}

#[test]
fn a_host_name_reboots_only_a_running_instance_and_only_if_allowed() {
    let mut s = spec();
    s.host_name = Some("web-2".into());
    let set = Step::Act(CloudAction::SetHostName {
        name: "web-2".into(),
    });
    assert_eq!(step(&s, &obs()), set);
    assert_eq!(run(&s, &obs()).pending[0].disruption, Disruption::Reboot);
    s.disruption_policy = Some(DisruptionPolicy {
        reboot: Some(Permission::Never),
        ..Default::default()
    });
    assert_eq!(
        step(&s, &obs()),
        refused("spec.hostName", Disruption::Reboot)
    );
    // Stopped by its user: set now, used at the next boot.
    s.run_state = RunState::Stopped;
    let stopped = Observation {
        state: InstanceState::Stopped,
        ..obs()
    };
    assert_eq!(step(&s, &stopped), set);
    assert_eq!(run(&s, &stopped).pending[0].disruption, Disruption::None);
}

#[test]
fn a_reboot_waits_for_a_stop_window_that_is_coming_anyway() {
    let mut s = spec();
    s.host_name = Some("web-2".into());
    s.instance_type = "S5.LARGE8".into();
    // Running: no reboot of its own, the stop comes first.
    assert_eq!(
        step(&s, &obs()),
        Step::Act(CloudAction::Stop {
            stop_type: StopType::SOFT_FIRST,
            stopped_mode: StoppedMode::KEEP_CHARGING,
            to_apply: vec!["spec.instanceType"],
        })
    );
    // Stopped in the window: the host name, then the type (which boots it).
    let stopped = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    assert!(matches!(
        step(&s, &stopped),
        Step::Act(CloudAction::SetHostName { .. })
    ));
    let named = Observation {
        settings: Box::new(crate::controller::observation::Settings {
            host_name: "web-2".into(),
            ..(*stopped.settings).clone()
        }),
        ..stopped
    };
    assert!(matches!(
        step(&s, &named),
        Step::Act(CloudAction::ResetType { .. })
    ));
}

fn with_tags(o: &Observation, tags: &[(&str, &str)]) -> Observation {
    let mut settings = (*o.settings).clone();
    settings.tags = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Observation {
        settings: Box::new(settings),
        ..o.clone()
    }
}

#[test]
fn tags_are_added_changed_and_removed_ten_at_a_time_leaving_reserved_ones() {
    let mut s = spec();
    s.tags = Some(
        [
            ("team".to_string(), "b".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]
        .into(),
    );
    let o = with_tags(
        &obs(),
        &[
            ("team", "a"),
            ("old", "x"),
            ("qcs:sys", "1"),
            ("project:p", "2"),
        ],
    );
    assert_eq!(
        step(&s, &o),
        Step::Act(CloudAction::SetTags {
            replace: vec![("env".into(), "prod".into()), ("team".into(), "b".into())],
            delete: vec!["old".into()],
        })
    );
    let p = run(&s, &o);
    assert_eq!(
        (
            p.pending[0].field,
            p.pending[0].from.as_str(),
            p.pending[0].to.as_str()
        ),
        ("spec.tags", "[old=x,team=a]", "[env=prod,team=b]")
    );
    // Equal apart from what the API reserves: in sync.
    let done = with_tags(&obs(), &[("env", "prod"), ("team", "b"), ("qcs:sys", "1")]);
    assert_eq!(step(&s, &done), Step::Wait(Wait::InSync));
    // `{}` removes the rest; unset leaves them.
    s.tags = Some(Default::default());
    assert_eq!(
        step(&s, &done),
        Step::Act(CloudAction::SetTags {
            replace: vec![],
            delete: vec!["env".into(), "team".into()],
        })
    );
    s.tags = None;
    assert_eq!(step(&s, &done), Step::Wait(Wait::InSync));
    // Twelve new tags: ten now, the rest next time.
    s.tags = Some(
        (0..12)
            .map(|i| (format!("k{i:02}"), "v".to_string()))
            .collect(),
    );
    let Step::Act(CloudAction::SetTags { replace, delete }) = step(&s, &obs()) else {
        panic!("tags")
    };
    assert_eq!((replace.len(), delete.len()), (10, 0));
}

#[test]
fn user_data_is_applied_when_it_changed_and_never_shown() {
    let mut c = Case::of(spec());
    for (compared, want) in [
        (Compared::Unset, Step::Wait(Wait::InSync)),
        (Compared::Same, Step::Wait(Wait::InSync)),
        // Nothing recorded: taken as applied (the reconciler records it).
        (Compared::Unrecorded, Step::Wait(Wait::InSync)),
        (Compared::Changed, Step::Act(CloudAction::SetUserData)),
    ] {
        c.w.user_data = compared;
        assert_eq!(c.step(&obs()), want, "{compared:?}");
    }
    let p = c.run(&obs());
    let d = &p.drift[0];
    assert!(
        !d.seen_on_instance(),
        "a new value, not drift of the instance"
    );
    assert_eq!(
        (p.pending[0].from.as_str(), p.pending[0].to.as_str()),
        ("(as last applied)", "(changed)")
    );
    assert!(CloudAction::SetUserData.describe().contains("next boot"));
}
