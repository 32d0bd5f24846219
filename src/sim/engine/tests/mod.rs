//! The engine's documented state rules, tested directly (no HTTP): each
//! action's allowed source states and the error otherwise (cvm-api.md §5.3),
//! the transitions (§5.2), OPERATING blocking, the ClientToken replay, the
//! prepaid recycle bin and LAUNCH_FAILED. [`fidelity`] holds the parameter
//! rules found by comparing the simulator with the official schema, [`tags`]
//! the Tag service's.

use super::{ApiError, Ctx, Engine, EngineConfig};
use crate::cloud::model::{self, Instance, InstanceState, OperationState};
use crate::sim::catalogue::Catalogue;
use std::time::Duration;

mod changes;
mod fidelity;
mod in_place;
mod tags;

/// The caller's account: a uin, as the Tag service's resource names need.
const ACCOUNT: &str = "100000000042";
const REGION: &str = "ap-guangzhou";
const ZONE: &str = "ap-guangzhou-3";
const IMAGE: &str = "img-pi0ii46r";
const BROKEN_IMAGE: &str = "img-brokenz1";

/// An engine and its clock.
pub(super) struct Sim {
    pub engine: Engine,
    pub now: Duration,
}

impl Sim {
    pub fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        Self {
            engine: Engine::new(config, Catalogue::default()),
            now: Duration::ZERO,
        }
    }

    pub fn ctx(&self) -> Ctx<'static> {
        self.ctx_as(ACCOUNT, REGION)
    }

    pub fn ctx_as(&self, account: &'static str, region: &'static str) -> Ctx<'static> {
        Ctx {
            account,
            region,
            request_id: "req-engine-test",
            now: self.now,
            chinese: false,
        }
    }

    /// Moves the clock on and applies what is due, as every request does.
    pub fn wait(&mut self, d: Duration) {
        self.now += d;
        self.engine.advance(self.now);
    }

    /// Long enough for any operation and its OPERATING tail to finish.
    pub fn settle(&mut self) {
        self.wait(Duration::from_secs(60));
    }

    pub fn view(&self, id: &str) -> &Instance {
        &self.engine.instances[id].view
    }

    pub fn state(&self, id: &str) -> InstanceState {
        self.view(id).instance_state.clone().expect("a state")
    }

    pub fn exists(&self, id: &str) -> bool {
        self.engine.instances.contains_key(id)
    }

    /// RunInstances of one instance; returns its id (PENDING).
    pub fn run(&mut self, req: model::RunInstancesRequest) -> Result<String, ApiError> {
        let ctx = self.ctx();
        let ids = self.engine.run_instances(&ctx, req)?.instance_id_set;
        Ok(ids.expect("ids").remove(0))
    }

    pub fn ids(id: &str) -> Vec<String> {
        vec![id.to_string()]
    }
}

/// A minimal valid RunInstances request.
pub(super) fn run_request() -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some(ZONE.into()),
            ..Default::default()
        }),
        image_id: Some(IMAGE.into()),
        instance_type: Some("S5.MEDIUM4".into()),
        ..Default::default()
    }
}

pub(super) fn prepaid_request() -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        instance_charge_type: Some("PREPAID".into()),
        instance_charge_prepaid: Some(model::InstanceChargePrepaid {
            period: Some(1),
            ..Default::default()
        }),
        ..run_request()
    }
}

/// The mutating actions whose source states the API restricts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Act {
    Start,
    Stop,
    Reboot,
    Terminate,
    ResetType,
    Bandwidth,
    Rename,
}

impl Act {
    pub(super) fn call(self, sim: &mut Sim, id: &str) -> Result<(), ApiError> {
        let ctx = sim.ctx();
        let instance_ids = Sim::ids(id);
        let e = &mut sim.engine;
        match self {
            Act::Start => e.start_instances(&ctx, model::StartInstancesRequest { instance_ids }),
            Act::Stop => e.stop_instances(
                &ctx,
                model::StopInstancesRequest {
                    instance_ids,
                    ..Default::default()
                },
            ),
            Act::Reboot => e.reboot_instances(
                &ctx,
                model::RebootInstancesRequest {
                    instance_ids,
                    ..Default::default()
                },
            ),
            Act::Terminate => e.terminate_instances(
                &ctx,
                model::TerminateInstancesRequest {
                    instance_ids,
                    ..Default::default()
                },
            ),
            Act::ResetType => e.reset_instances_type(
                &ctx,
                model::ResetInstancesTypeRequest {
                    instance_ids,
                    instance_type: "S5.LARGE8".into(),
                    ..Default::default()
                },
            ),
            Act::Bandwidth => e.reset_instances_internet_max_bandwidth(
                &ctx,
                model::ResetInstancesInternetMaxBandwidthRequest {
                    instance_ids,
                    internet_accessible: model::InternetAccessible {
                        internet_max_bandwidth_out: Some(5),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
            Act::Rename => e.modify_instances_attribute(
                &ctx,
                model::ModifyInstancesAttributeRequest {
                    instance_ids,
                    instance_name: Some("renamed".into()),
                    ..Default::default()
                },
            ),
        }
    }
}

/// Builds an instance that rests in (or is caught in) `state`.
pub(super) fn instance_in(sim: &mut Sim, state: &InstanceState) -> String {
    use InstanceState as S;
    let running = |sim: &mut Sim| {
        let id = sim.run(run_request()).unwrap();
        sim.settle();
        id
    };
    let id = match state {
        S::Pending => sim.run(run_request()).unwrap(),
        S::Running => running(sim),
        S::LaunchFailed => {
            let id = sim
                .run(model::RunInstancesRequest {
                    image_id: Some(BROKEN_IMAGE.into()),
                    ..run_request()
                })
                .unwrap();
            sim.settle();
            id
        }
        S::Stopped | S::Starting => {
            let id = running(sim);
            Act::Stop.call(sim, &id).unwrap();
            sim.settle();
            if *state == S::Starting {
                Act::Start.call(sim, &id).unwrap();
            }
            id
        }
        S::Stopping | S::Rebooting | S::Terminating => {
            let id = running(sim);
            let act = match state {
                S::Stopping => Act::Stop,
                S::Rebooting => Act::Reboot,
                _ => Act::Terminate,
            };
            act.call(sim, &id).unwrap();
            id
        }
        S::Shutdown => {
            let id = sim.run(prepaid_request()).unwrap();
            sim.settle();
            Act::Terminate.call(sim, &id).unwrap();
            sim.settle();
            id
        }
        other => panic!("no recipe for {other}"),
    };
    assert_eq!(&sim.state(&id), state, "fixture for {state}");
    id
}

/// A RUNNING instance stopped with `StoppedMode=STOP_CHARGING`.
pub(super) fn stopped_without_charging(sim: &mut Sim) -> String {
    let id = instance_in(sim, &InstanceState::Running);
    let ctx = sim.ctx();
    let stop = model::StopInstancesRequest {
        instance_ids: Sim::ids(&id),
        stopped_mode: Some("STOP_CHARGING".into()),
        ..Default::default()
    };
    sim.engine.stop_instances(&ctx, stop).unwrap();
    sim.settle();
    id
}

const SOURCE_STATES: &[InstanceState] = &[
    InstanceState::Pending,
    InstanceState::LaunchFailed,
    InstanceState::Running,
    InstanceState::Stopped,
    InstanceState::Starting,
    InstanceState::Stopping,
    InstanceState::Rebooting,
    InstanceState::Shutdown,
    InstanceState::Terminating,
];

#[test]
fn each_action_runs_only_from_its_documented_source_states() {
    use InstanceState as S;
    let rules: &[(Act, &[InstanceState])] = &[
        (Act::Start, &[S::Stopped]),
        (Act::Stop, &[S::Running]),
        (Act::Reboot, &[S::Running]),
        (Act::Terminate, &[S::Running, S::Stopped, S::Shutdown]),
        // Without ForceStop; see the ForceStop test below.
        (Act::ResetType, &[S::Stopped]),
        (Act::Bandwidth, &[S::Running, S::Stopped]),
        (Act::Rename, &[S::Running, S::Stopped]),
    ];
    for (act, allowed) in rules {
        for state in SOURCE_STATES {
            let mut sim = Sim::new();
            let id = instance_in(&mut sim, state);
            let got = act.call(&mut sim, &id);
            if allowed.contains(state) {
                assert_eq!(got, Ok(()), "{act:?} from {state}");
                assert_eq!(
                    sim.view(&id).latest_operation_state,
                    Some(OperationState::Operating),
                    "{act:?} from {state} starts an operation"
                );
            } else {
                let err = got.expect_err(&format!("{act:?} from {state} must be refused"));
                assert_eq!(
                    err.code,
                    format!("UnsupportedOperation.InstanceState{}", state.error_suffix()),
                    "{act:?} from {state}: {}",
                    err.message
                );
            }
        }
    }
}

#[test]
fn transitions_pass_through_the_documented_transient_states() {
    use InstanceState as S;
    let cases: &[(S, Act, S, Option<S>)] = &[
        (S::Stopped, Act::Start, S::Starting, Some(S::Running)),
        (S::Running, Act::Stop, S::Stopping, Some(S::Stopped)),
        (S::Running, Act::Reboot, S::Rebooting, Some(S::Running)),
        (S::Running, Act::Terminate, S::Terminating, None),
        (S::Stopped, Act::Terminate, S::Terminating, None),
        (S::Running, Act::Bandwidth, S::Running, Some(S::Running)),
        (S::Stopped, Act::Rename, S::Stopped, Some(S::Stopped)),
        // Documented: after the change the instance shows RUNNING by itself.
        (S::Stopped, Act::ResetType, S::Stopped, Some(S::Running)),
    ];
    for (from, act, transient, to) in cases {
        let mut sim = Sim::new();
        let id = instance_in(&mut sim, from);
        act.call(&mut sim, &id).unwrap();
        assert_eq!(&sim.state(&id), transient, "{act:?} from {from}");
        sim.settle();
        match to {
            Some(to) => {
                assert_eq!(&sim.state(&id), to, "{act:?} from {from}");
                assert_eq!(
                    sim.view(&id).latest_operation_state,
                    Some(OperationState::Success)
                );
            }
            None => assert!(!sim.exists(&id), "{act:?} from {from} removes it"),
        }
    }
}

#[test]
fn a_mutation_while_the_last_operation_is_operating_is_denied() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Stopped);
    Act::Start.call(&mut sim, &id).unwrap();
    // The state is final (RUNNING) but the operation's tail is not over.
    let t = sim.engine.config.timings.clone();
    sim.wait(t.start);
    assert_eq!(sim.state(&id), InstanceState::Running);
    assert!(sim.view(&id).operating());
    for act in [
        Act::Stop,
        Act::Reboot,
        Act::Terminate,
        Act::Bandwidth,
        Act::Rename,
    ] {
        let err = act.call(&mut sim, &id).unwrap_err();
        assert_eq!(
            err.code, "OperationDenied.InstanceOperationInProgress",
            "{act:?}"
        );
    }
    sim.wait(t.operation_tail);
    assert_eq!(
        sim.view(&id).latest_operation_state,
        Some(OperationState::Success)
    );
    assert_eq!(Act::Stop.call(&mut sim, &id), Ok(()));
}

#[test]
fn a_client_token_replays_the_first_create_per_account_and_region() {
    let mut sim = Sim::new();
    let with_token = || model::RunInstancesRequest {
        client_token: Some("token-1".into()),
        instance_count: Some(2),
        ..run_request()
    };
    let ctx = sim.ctx();
    let first = sim.engine.run_instances(&ctx, with_token()).unwrap();
    assert_eq!(sim.engine.instance_count(), 2);
    sim.settle();
    let ctx = sim.ctx();
    let again = sim.engine.run_instances(&ctx, with_token()).unwrap();
    assert_eq!(again.instance_id_set, first.instance_id_set);
    assert_eq!(sim.engine.instance_count(), 2, "a replay creates nothing");
    // The replay answers even when the instances have changed since.
    let ids = first.instance_id_set.clone().unwrap();
    Act::Stop.call(&mut sim, &ids[0]).unwrap();
    let ctx = sim.ctx();
    let later = sim.engine.run_instances(&ctx, with_token()).unwrap();
    assert_eq!(later.instance_id_set, first.instance_id_set);
    // The same token from another account or in another region is another create.
    let other = sim.ctx_as("AKIDSOMEONEELSE", REGION);
    let theirs = sim.engine.run_instances(&other, with_token()).unwrap();
    assert_ne!(theirs.instance_id_set, first.instance_id_set);
    let shanghai = sim.ctx_as(ACCOUNT, "ap-shanghai");
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-shanghai-2".into()),
            ..Default::default()
        }),
        ..with_token()
    };
    let there = sim.engine.run_instances(&shanghai, req).unwrap();
    assert_ne!(there.instance_id_set, first.instance_id_set);
    assert_eq!(sim.engine.instance_count(), 6);
}

#[test]
fn a_refused_create_does_not_burn_its_client_token() {
    let mut sim = Sim::new();
    let bad = model::RunInstancesRequest {
        client_token: Some("token-2".into()),
        image_id: Some("img-00000000".into()),
        ..run_request()
    };
    let ctx = sim.ctx();
    let err = sim.engine.run_instances(&ctx, bad).unwrap_err();
    assert_eq!(err.code, "InvalidImageId.NotFound");
    let good = model::RunInstancesRequest {
        client_token: Some("token-2".into()),
        ..run_request()
    };
    let ids = sim
        .engine
        .run_instances(&ctx, good)
        .unwrap()
        .instance_id_set;
    assert_eq!(ids.map(|v| v.len()), Some(1));
}

#[test]
fn prepaid_terminate_goes_to_the_recycle_bin_then_away() {
    let mut sim = Sim::new();
    let id = sim.run(prepaid_request()).unwrap();
    sim.settle();
    assert!(sim.view(&id).expired_time.is_some());
    Act::Terminate.call(&mut sim, &id).unwrap();
    sim.settle();
    let v = sim.view(&id);
    assert_eq!(v.instance_state, Some(InstanceState::Shutdown));
    assert_eq!(v.isolated_source.as_deref(), Some("MANMADE"));
    assert_eq!(v.latest_operation.as_deref(), Some("TerminateInstances"));
    assert_eq!(v.latest_operation_state, Some(OperationState::Success));
    // A second terminate destroys it.
    Act::Terminate.call(&mut sim, &id).unwrap();
    assert_eq!(sim.state(&id), InstanceState::Terminating);
    sim.settle();
    assert!(!sim.exists(&id));
}

#[test]
fn postpaid_and_prepaid_cannot_be_terminated_together() {
    let mut sim = Sim::new();
    let postpaid = instance_in(&mut sim, &InstanceState::Running);
    let prepaid = sim.run(prepaid_request()).unwrap();
    sim.settle();
    let ctx = sim.ctx();
    let err = sim
        .engine
        .terminate_instances(
            &ctx,
            model::TerminateInstancesRequest {
                instance_ids: vec![postpaid.clone(), prepaid],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceMixedPricingModel");
    assert_eq!(sim.state(&postpaid), InstanceState::Running, "nothing done");
}

#[test]
fn a_broken_image_ends_in_launch_failed_with_a_message() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::LaunchFailed);
    let v = sim.view(&id);
    assert_eq!(v.latest_operation.as_deref(), Some("RunInstances"));
    assert_eq!(v.latest_operation_state, Some(OperationState::Failed));
    let msg = v.latest_operation_error_msg.clone().unwrap_or_default();
    assert!(msg.contains(BROKEN_IMAGE), "{msg}");
    // LAUNCH_FAILED is final: more time changes nothing.
    sim.settle();
    assert_eq!(sim.state(&id), InstanceState::LaunchFailed);
}

#[test]
fn the_launch_failure_rate_fails_good_images_too() {
    let mut sim = Sim::with_config(EngineConfig {
        launch_failure_rate: 1.0,
        ..EngineConfig::default()
    });
    let id = sim.run(run_request()).unwrap();
    assert_eq!(sim.state(&id), InstanceState::Pending);
    sim.settle();
    assert_eq!(sim.state(&id), InstanceState::LaunchFailed);
}

#[test]
fn a_new_instance_is_pending_at_once_and_running_after_the_launch_time() {
    let mut sim = Sim::new();
    let id = sim.run(run_request()).unwrap();
    let v = sim.view(&id);
    assert_eq!(v.instance_state, Some(InstanceState::Pending));
    assert_eq!(v.latest_operation.as_deref(), Some("RunInstances"));
    assert!(v.operating());
    let launch = sim.engine.config.timings.launch;
    sim.wait(launch - Duration::from_millis(1));
    assert_eq!(sim.state(&id), InstanceState::Pending);
    sim.wait(Duration::from_millis(1));
    assert_eq!(sim.state(&id), InstanceState::Running);
}

#[test]
fn instances_are_visible_only_to_their_account_and_region() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Running);
    for ctx in [
        sim.ctx_as("AKIDSOMEONEELSE", REGION),
        sim.ctx_as(ACCOUNT, "ap-shanghai"),
    ] {
        let err = sim
            .engine
            .stop_instances(
                &ctx,
                model::StopInstancesRequest {
                    instance_ids: Sim::ids(&id),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.code, "InvalidInstanceId.NotFound");
        let seen = sim
            .engine
            .describe_instances(
                &ctx,
                model::DescribeInstancesRequest {
                    instance_ids: Some(Sim::ids(&id)),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(seen.is_empty());
    }
}
