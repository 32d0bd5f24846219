//! The planner as a table: every InstanceState × operation state × kind of
//! difference × policy, plus deletion.

use super::*;
use crate::api::*;
use crate::controller::observation::{Compared, WriteOnly};
use std::sync::Arc;

pub(super) fn spec() -> CvmInstanceSpec {
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
pub(super) fn obs() -> Observation {
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
        type_check: TypeCheck::Available,
    })
}

fn step(spec: &CvmInstanceSpec, o: &Observation) -> Step {
    run(spec, o).step
}

/// A spec, how its write-only values compare with what was applied, and
/// what the instance shows besides the fixture (rows that need it).
pub(super) struct Case {
    pub(super) s: CvmInstanceSpec,
    pub(super) w: WriteOnly,
    pub(super) o: fn(&mut Observation),
}

impl Case {
    pub(super) fn of(s: CvmInstanceSpec) -> Self {
        Case {
            s,
            w: WriteOnly::default(),
            o: |_| {},
        }
    }

    pub(super) fn input<'a>(&'a self, observed: &'a Observed) -> PlanInput<'a> {
        PlanInput {
            spec: &self.s,
            instance_name: name(&self.s),
            observed,
            mode: Mode::Apply,
            paused: false,
            blocked: None,
            restart: RestartInput::default(),
            write_only: self.w,
            type_check: TypeCheck::Available,
        }
    }

    fn run(&self, o: &Observation) -> Plan {
        let mut o = o.clone();
        (self.o)(&mut o);
        plan(&self.input(&present(&o)))
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
pub(super) type Difference = (&'static str, Box<dyn Fn(&mut Case)>);

pub(super) fn differences() -> Vec<Difference> {
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
        ("project", Box::new(|c| c.s.project_id = Some(1000001))),
        (
            "prepaid",
            Box::new(|c| {
                c.s.instance_charge_type = InstanceChargeType::PREPAID;
                c.s.prepaid = Some(PrepaidSpec {
                    period: 1,
                    renew_flag: RenewFlag::NOTIFY_AND_MANUAL_RENEW,
                });
            }),
        ),
        (
            "renew-flag",
            Box::new(|c| {
                c.s.instance_charge_type = InstanceChargeType::PREPAID;
                c.s.prepaid = Some(PrepaidSpec {
                    period: 1,
                    renew_flag: RenewFlag::NOTIFY_AND_AUTO_RENEW,
                });
                c.o = |o| {
                    o.charge_type = "PREPAID".into();
                    o.settings.renew_flag = "NOTIFY_AND_MANUAL_RENEW".into();
                };
            }),
        ),
        (
            "system-disk",
            Box::new(|c| {
                c.s.system_disk = Some(SystemDiskSpec {
                    disk_type: DiskType::CLOUD_PREMIUM,
                    disk_size: 60,
                })
            }),
        ),
        (
            "data-disk",
            Box::new(|c| {
                let disk = |size| DataDiskSpec {
                    disk_type: DiskType::CLOUD_PREMIUM,
                    disk_size: size,
                    delete_with_instance: true,
                    snapshot_id: None,
                };
                c.s.data_disks = Some(vec![disk(100), disk(200)]);
                c.o = |o| {
                    o.settings.data_disks = vec![data_disk("disk-1", 100), data_disk("disk-2", 100)]
                };
            }),
        ),
        (
            "placement-group",
            Box::new(|c| c.s.disaster_recover_group_ids = Some(vec!["ps-gz000001".into()])),
        ),
        (
            "keys",
            Box::new(|c| {
                c.s.login_settings = Some(LoginSettingsSpec {
                    key_ids: Some(vec!["skey-gz000002".into()]),
                    password_secret_ref: None,
                });
                c.o = |o| o.settings.key_ids = vec!["skey-gz000001".into()];
            }),
        ),
        ("password", Box::new(|c| c.w.password = Compared::Changed)),
        (
            "vpc",
            Box::new(|c| {
                c.s.vpc = Some(VpcSpec {
                    vpc_id: "vpc-gz000001".into(),
                    subnet_id: "subnet-gz000004".into(),
                    private_ip_address: None,
                })
            }),
        ),
        ("image", Box::new(|c| c.s.image_id = "img-487zeit5".into())),
        (
            "stopped-mode",
            Box::new(|c| {
                c.s.run_state = RunState::Stopped;
                c.s.stopped_mode = StoppedMode::STOP_CHARGING;
            }),
        ),
    ]
}

fn data_disk(id: &str, size: i64) -> crate::controller::observation::Disk {
    crate::controller::observation::Disk {
        id: id.into(),
        disk_type: "CLOUD_PREMIUM".into(),
        size,
    }
}

fn window(fields: &[&'static str]) -> Step {
    Step::Act(CloudAction::Stop {
        stop_type: StopType::SOFT_FIRST,
        stopped_mode: StoppedMode::KEEP_CHARGING,
        to_apply: fields.to_vec(),
    })
}

fn reinstall_refused() -> Step {
    Step::Wait(Wait::NotAllowed(vec![Refused {
        field: "spec.imageId",
        disruption: Disruption::Reinstall,
    }]))
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

/// What the planner does about each row of [`differences`] on a settled
/// instance, running or stopped (as the spec asks).
fn expected(what: &str, running: bool) -> Step {
    let act = Step::Act;
    let stop = |stopped_mode, to_apply: &[&'static str]| CloudAction::Stop {
        stop_type: StopType::SOFT_FIRST,
        stopped_mode,
        to_apply: to_apply.to_vec(),
    };
    let data_disk = DiskRef::Data {
        index: 1,
        id: "disk-2".into(),
    };
    match (what, running) {
        ("none", _) => Step::Wait(Wait::InSync),
        ("type", true) => act(stop(StoppedMode::KEEP_CHARGING, &["spec.instanceType"])),
        ("type", false) => act(CloudAction::ResetType {
            instance_type: "S5.LARGE8".into(),
        }),
        // "power" asks for Stopped: a stop, or nothing when it is.
        ("power", true) => act(stop(StoppedMode::KEEP_CHARGING, &[])),
        ("power", false) => Step::Wait(Wait::InSync),
        ("bandwidth", _) => act(CloudAction::SetBandwidth { mbps: 20 }),
        ("name", _) => act(CloudAction::Rename {
            name: "other".into(),
        }),
        ("security-groups", _) => act(CloudAction::SetSecurityGroups {
            ids: vec!["sg-gz000002".into()],
        }),
        ("security-group-order", _) => act(CloudAction::SetSecurityGroups {
            ids: vec!["sg-gz000002".into(), "sg-gz000001".into()],
        }),
        ("protection", _) => act(CloudAction::SetTerminationProtection { enabled: true }),
        ("cam-role", _) => act(CloudAction::SetCamRole {
            name: "CVM_QcsRole".into(),
        }),
        ("tags", _) => act(CloudAction::SetTags {
            replace: vec![("team".into(), "b".into())],
            delete: vec![],
        }),
        ("user-data", _) => act(CloudAction::SetUserData),
        // Running: the call reboots it (allowed by default); stopped: used
        // at the next boot.
        ("host-name", _) => act(CloudAction::SetHostName {
            name: "web-2".into(),
        }),
        ("project", _) => act(CloudAction::SetProject {
            project_id: 1000001,
        }),
        ("prepaid", _) => act(CloudAction::ConvertToPrepaid {
            period: 1,
            renew_flag: "NOTIFY_AND_MANUAL_RENEW".into(),
        }),
        ("renew-flag", _) => act(CloudAction::SetRenewFlag {
            flag: "NOTIFY_AND_AUTO_RENEW".into(),
        }),
        // Disks grow online while it runs, as they are while stopped.
        ("system-disk", online) => act(CloudAction::GrowDisk {
            disk: DiskRef::System,
            size: 60,
            online,
        }),
        ("data-disk", online) => act(CloudAction::GrowDisk {
            disk: data_disk,
            size: 200,
            online,
        }),
        ("placement-group", _) => act(CloudAction::SetPlacementGroup {
            ids: vec!["ps-gz000001".into()],
        }),
        // What needs a stopped instance: the one stop first, or at once.
        ("keys", true) => window(&["spec.loginSettings.keyIds"]),
        ("keys", false) => act(CloudAction::DetachKeyPairs {
            ids: vec!["skey-gz000001".into()],
        }),
        ("password", true) => window(&["spec.loginSettings.passwordSecretRef"]),
        ("password", false) => act(CloudAction::ResetPassword),
        ("vpc", true) => window(&["spec.vpc"]),
        ("vpc", false) => act(CloudAction::MoveNetwork {
            to: Network {
                vpc_id: "vpc-gz000001".into(),
                subnet_id: "subnet-gz000004".into(),
                private_ip: String::new(),
            },
        }),
        // Reinstalling is never done unless allowed.
        ("image", _) => reinstall_refused(),
        // Running, asked to stop without charging: a plain stop; stopped
        // while charging: started, to stop again.
        ("stopped-mode", true) => act(stop(StoppedMode::STOP_CHARGING, &[])),
        ("stopped-mode", false) => act(CloudAction::Start),
        (other, _) => panic!("no expectation for {other}"),
    }
}

#[test]
fn every_difference_on_a_running_instance() {
    let o = obs();
    for (what, diff) in differences() {
        let mut c = Case::of(spec());
        diff(&mut c);
        let p = c.run(&o);
        assert_eq!(p.step, expected(what, true), "{what}");
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
    for (what, diff) in differences() {
        let mut c = Case::of(stopped_spec.clone());
        diff(&mut c);
        assert_eq!(c.step(&o), expected(what, false), "{what}");
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
        let mut o = obs();
        (c.o)(&mut o);
        let observed = present(&o);
        let p = plan(&PlanInput {
            paused: true,
            ..c.input(&observed)
        });
        assert!(!matches!(p.step, Step::Act(_)), "{what}: {:?}", p.step);
        match what {
            "none" => {}
            // Nothing it would do: the reinstall is not allowed anyway.
            "image" => assert_eq!(p.step, reinstall_refused()),
            _ => assert!(matches!(p.step, Step::Wait(Wait::Paused { .. })), "{what}"),
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
            type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
        type_check: TypeCheck::Available,
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
            type_check: TypeCheck::Available,
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
fn a_window_stop_keeps_charging_even_for_an_instance_to_stay_stopped() {
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
            to_apply: vec!["spec.hostName", "spec.instanceType"],
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

/// Keys, password, VPC and a data disk in one edit (the brief's one stop
/// window), with the instance as each step leaves it.
fn window_case() -> (Case, Observation) {
    let mut c = Case::of(spec());
    c.s.login_settings = Some(LoginSettingsSpec {
        key_ids: Some(vec!["skey-gz000002".into()]),
        password_secret_ref: None,
    });
    c.w.password = Compared::Changed;
    c.s.vpc = Some(VpcSpec {
        vpc_id: "vpc-gz000001".into(),
        subnet_id: "subnet-gz000004".into(),
        private_ip_address: None,
    });
    let disk = DataDiskSpec {
        disk_type: DiskType::CLOUD_PREMIUM,
        disk_size: 200,
        delete_with_instance: true,
        snapshot_id: None,
    };
    c.s.data_disks = Some(vec![disk]);
    let mut o = obs();
    o.settings.key_ids = vec!["skey-gz000001".into()];
    o.settings.data_disks = vec![data_disk("disk-1", 100)];
    (c, o)
}

#[test]
fn changes_that_need_a_stop_share_one_stop_in_a_fixed_order() {
    let (mut c, mut o) = window_case();
    // Running: one stop for all of them (the disk waits for it too).
    assert_eq!(
        c.step(&o),
        window(&[
            "spec.dataDisks[].diskSize",
            "spec.loginSettings.keyIds",
            "spec.loginSettings.passwordSecretRef",
            "spec.vpc",
        ])
    );
    assert!(
        c.run(&o)
            .pending
            .iter()
            .all(|p| p.disruption == Disruption::Stop || p.field == "spec.dataDisks[].diskSize"),
        "{:?}",
        c.run(&o).pending
    );
    o.state = InstanceState::Stopped;
    o.stopped_mode = Some(StoppedMode::KEEP_CHARGING);
    // Stopped: each change in turn, nothing started in between.
    let mut seen = Vec::new();
    for _ in 0..10 {
        let step = c.step(&o);
        seen.push(step.clone());
        match step {
            Step::Act(CloudAction::GrowDisk { online, size, .. }) => {
                assert!(!online, "offline, in the window");
                o.settings.data_disks[0].size = size;
            }
            Step::Act(CloudAction::DetachKeyPairs { .. }) => o.settings.key_ids.clear(),
            Step::Act(CloudAction::AttachKeyPairs { ids }) => o.settings.key_ids = ids,
            Step::Act(CloudAction::ResetPassword) => c.w.password = Compared::Same,
            Step::Act(CloudAction::MoveNetwork { to }) => {
                o.settings.subnet_id = to.subnet_id.into()
            }
            Step::Act(CloudAction::Start) => o.state = InstanceState::Running,
            Step::Wait(Wait::InSync) => break,
            other => panic!("unexpected {other:?} after {seen:?}"),
        }
    }
    let actions: Vec<&str> = seen
        .iter()
        .filter_map(|s| match s {
            Step::Act(a) => Some(a.api_action()),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions,
        [
            "ResizeInstanceDisks",
            "DisassociateInstancesKeyPairs",
            "AssociateInstancesKeyPairs",
            "ResetInstancesPassword",
            "ModifyInstancesVpcAttribute",
            "StartInstances",
        ]
    );
}

#[test]
fn a_type_change_goes_last_in_the_window_and_the_api_starts_the_instance() {
    let (mut c, mut o) = window_case();
    c.s.instance_type = "S5.LARGE8".into();
    o.state = InstanceState::Stopped;
    o.stopped_mode = Some(StoppedMode::KEEP_CHARGING);
    o.settings.data_disks[0].size = 200;
    o.settings.key_ids = vec!["skey-gz000002".into()];
    c.w.password = Compared::Same;
    // Only the VPC and the type are left: the VPC first, the type (which
    // boots it) last.
    assert!(matches!(
        c.step(&o),
        Step::Act(CloudAction::MoveNetwork { .. })
    ));
    o.settings.subnet_id = "subnet-gz000004".into();
    assert!(matches!(
        c.step(&o),
        Step::Act(CloudAction::ResetType { .. })
    ));
}

#[test]
fn a_type_is_checked_before_any_stop_and_an_impossible_one_stops_nothing() {
    let mut c = Case::of(spec());
    c.s.instance_type = "S5.LARGE8".into();
    let check = |c: &Case, o: &Observation, type_check: TypeCheck| {
        let observed = present(o);
        plan(&PlanInput {
            type_check,
            ..c.input(&observed)
        })
        .step
    };
    let stopped = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    // Not asked yet: ask before the stop, and before the resize itself.
    for o in [obs(), stopped.clone()] {
        assert_eq!(
            check(&c, &o, TypeCheck::Unchecked),
            Step::CheckType("S5.LARGE8".into())
        );
    }
    let why = "S5.LARGE8 is not a type this instance can change to";
    let unavailable = Step::Wait(Wait::TypeUnavailable {
        instance_type: "S5.LARGE8".into(),
        why: why.into(),
    });
    assert_eq!(
        check(&c, &obs(), TypeCheck::Unavailable(why.into())),
        unavailable
    );
    // Other changes still go through; the window no longer holds the type.
    c.w.password = Compared::Changed;
    assert_eq!(
        check(&c, &obs(), TypeCheck::Unavailable(why.into())),
        window(&["spec.loginSettings.passwordSecretRef"])
    );
    // A change that does not concern the type is not held back by the check.
    let mut d = Case::of(spec());
    d.s.instance_type = "S5.LARGE8".into();
    d.s.instance_name = Some("renamed".into());
    assert!(matches!(
        check(&d, &obs(), TypeCheck::Unchecked),
        Step::Act(CloudAction::Rename { .. })
    ));
}

#[test]
fn a_reinstall_is_opt_in_and_carries_the_login_host_name_and_user_data() {
    let mut c = Case::of(spec());
    c.s.image_id = "img-487zeit5".into();
    c.s.host_name = Some("web-2".into());
    c.s.login_settings = Some(LoginSettingsSpec {
        key_ids: Some(vec!["skey-gz000002".into()]),
        password_secret_ref: None,
    });
    c.w.user_data = Compared::Changed;
    assert_eq!(c.step(&obs()), reinstall_refused());
    let p = c.run(&obs());
    assert_eq!(p.drift.len(), 1, "the rest rides along: {:?}", p.drift);
    assert_eq!(p.pending[0].disruption, Disruption::Reinstall);
    c.s.disruption_policy = Some(DisruptionPolicy {
        reinstall: Some(Permission::Allowed),
        ..Default::default()
    });
    let reinstall = CloudAction::Reinstall {
        image_id: "img-487zeit5".into(),
        key_ids: Some(vec!["skey-gz000002".into()]),
        host_name: Some("web-2".into()),
    };
    assert!(reinstall.boots());
    assert_eq!(c.step(&obs()), Step::Act(reinstall));
}

#[test]
fn stopped_without_charging_is_started_to_be_changed_and_stopped_again() {
    let mut c = Case::of(spec());
    c.s.run_state = RunState::Stopped;
    c.s.stopped_mode = StoppedMode::STOP_CHARGING;
    c.w.password = Compared::Changed;
    let o = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::STOP_CHARGING),
        ..obs()
    };
    assert_eq!(c.step(&o), Step::Act(CloudAction::Start));
    assert_eq!(c.run(&o).pending[0].disruption, Disruption::Stop);
    // Running: the window stops it keeping charging.
    assert_eq!(
        c.step(&obs()),
        window(&["spec.loginSettings.passwordSecretRef"])
    );
    // Changed while stopped keeping charging: started, then stopped as asked.
    let charging = Observation {
        state: InstanceState::Stopped,
        stopped_mode: Some(StoppedMode::KEEP_CHARGING),
        ..obs()
    };
    assert_eq!(c.step(&charging), Step::Act(CloudAction::ResetPassword));
    c.w.password = Compared::Same;
    assert_eq!(c.step(&charging), Step::Act(CloudAction::Start));
    // The policy may forbid that cycle.
    c.s.disruption_policy = Some(DisruptionPolicy {
        stop_start: Some(Permission::Never),
        ..Default::default()
    });
    assert_eq!(
        c.step(&charging),
        refused("spec.stoppedMode", Disruption::Stop)
    );
}

#[test]
fn what_the_api_cannot_do_is_not_a_difference() {
    let mut c = Case::of(spec());
    // A disk grown outside Kubernetes (disks never shrink).
    c.s.system_disk = Some(SystemDiskSpec {
        disk_type: DiskType::CLOUD_PREMIUM,
        disk_size: 40,
    });
    // A spot instance adopted by a spec that says PREPAID.
    c.s.instance_charge_type = InstanceChargeType::PREPAID;
    c.s.prepaid = Some(PrepaidSpec {
        period: 1,
        renew_flag: RenewFlag::NOTIFY_AND_MANUAL_RENEW,
    });
    let o = Observation {
        charge_type: "SPOTPAID".into(),
        ..obs()
    };
    assert_eq!(c.step(&o), Step::Wait(Wait::InSync));
    // Keys compare as sets; an IP is compared only when the spec names one.
    c.s.login_settings = Some(LoginSettingsSpec {
        key_ids: Some(vec!["skey-b".into(), "skey-a".into()]),
        password_secret_ref: None,
    });
    c.s.vpc = Some(VpcSpec {
        vpc_id: "vpc-gz000001".into(),
        subnet_id: "subnet-gz000003".into(),
        private_ip_address: None,
    });
    let mut o = o;
    o.settings.key_ids = vec!["skey-a".into(), "skey-b".into()];
    assert_eq!(c.step(&o), Step::Wait(Wait::InSync));
    c.s.vpc.as_mut().unwrap().private_ip_address = Some("172.16.3.9".into());
    assert_eq!(c.step(&o), window(&["spec.vpc"]));
}
