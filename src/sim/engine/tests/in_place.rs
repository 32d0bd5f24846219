//! The in-place changes that need a stopped instance: key pairs, password,
//! reinstall, disk growth. Each action's documented state rule (STOPPED,
//! or RUNNING with `ForceStop`: stopped, changed, started again), its
//! error codes, and the change showing in DescribeInstances only when the
//! operation is done.

use super::{Sim, instance_in, run_request, stopped_without_charging};
use crate::cloud::Secret;
use crate::cloud::model::{self, InstanceState, OperationState};
use crate::sim::engine::ApiError;
use InstanceState as S;

const KEY: &str = "skey-gz000002";

fn keys(
    sim: &mut Sim,
    id: &str,
    key: &str,
    force: Option<bool>,
    add: bool,
) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    let req = model::InstancesKeyPairsRequest {
        instance_ids: Sim::ids(id),
        key_ids: vec![key.into()],
        force_stop: force,
    };
    sim.engine.change_instances_key_pairs(&ctx, req, add)
}

fn key_ids(sim: &Sim, id: &str) -> Vec<String> {
    sim.view(id)
        .login_settings
        .as_ref()
        .and_then(|l| l.key_ids.clone())
        .unwrap_or_default()
}

/// The states the instance passes through, sampled every 100 ms of
/// simulation time until its operation is over.
fn states_until_settled(sim: &mut Sim, id: &str) -> Vec<InstanceState> {
    let mut seen = vec![sim.state(id)];
    for _ in 0..200 {
        sim.wait(std::time::Duration::from_millis(100));
        let s = sim.state(id);
        if seen.last() != Some(&s) {
            seen.push(s);
        }
        if !sim.view(id).operating() {
            return seen;
        }
    }
    panic!("{id} never settled: {seen:?}");
}

#[test]
fn key_pairs_need_a_stopped_instance_or_force_stop() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let err = keys(&mut sim, &id, KEY, None, true).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateRunning");
    assert!(!sim.view(&id).operating(), "a refused call starts nothing");
    // With ForceStop the call stops it, binds the key and starts it again.
    keys(&mut sim, &id, KEY, Some(true), true).unwrap();
    assert!(
        key_ids(&sim, &id).is_empty(),
        "not before the operation is done"
    );
    let seen = states_until_settled(&mut sim, &id);
    assert_eq!(seen, [S::Stopping, S::Stopped, S::Starting, S::Running]);
    assert_eq!(key_ids(&sim, &id), [KEY]);
    let v = sim.view(&id);
    assert_eq!(
        v.latest_operation.as_deref(),
        Some("AssociateInstancesKeyPairs")
    );
    assert_eq!(v.latest_operation_state, Some(OperationState::Success));
}

#[test]
fn key_pairs_of_a_stopped_instance_change_and_it_stays_stopped() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Stopped);
    keys(&mut sim, &id, KEY, None, true).unwrap();
    keys(&mut sim, &id, "skey-gz000003", None, true).unwrap_err();
    assert_eq!(states_until_settled(&mut sim, &id), [S::Stopped]);
    keys(&mut sim, &id, "skey-gz000003", None, true).unwrap();
    sim.settle();
    assert_eq!(
        key_ids(&sim, &id),
        [KEY, "skey-gz000003"],
        "added, in order"
    );
    keys(&mut sim, &id, KEY, None, false).unwrap();
    sim.settle();
    assert_eq!(key_ids(&sim, &id), ["skey-gz000003"]);
    keys(&mut sim, &id, "skey-gz000003", None, false).unwrap();
    sim.settle();
    assert_eq!(sim.view(&id).login_settings.as_ref().unwrap().key_ids, None);
    assert_eq!(sim.state(&id), S::Stopped);
}

#[test]
fn key_pair_refusals_name_the_documented_codes() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Stopped);
    for (key, code) in [
        ("skey-00000000", "InvalidKeyPairId.NotFound"),
        ("key-1", "InvalidKeyPairId.Malformed"),
        ("skey-sh000001", "InvalidKeyPairId.NotFound"),
    ] {
        let err = keys(&mut sim, &id, key, None, true).unwrap_err();
        assert_eq!(err.code, code, "{key}");
    }
    for state in [S::Pending, S::Stopping, S::Rebooting, S::Shutdown] {
        let mut sim = Sim::new();
        let id = instance_in(&mut sim, &state);
        let err = keys(&mut sim, &id, KEY, Some(true), true).unwrap_err();
        assert_eq!(
            err.code,
            format!("UnsupportedOperation.InstanceState{}", state.error_suffix())
        );
    }
    // An instance stopped without charging may have lost its host.
    let mut sim = Sim::new();
    let id = stopped_without_charging(&mut sim);
    let err = keys(&mut sim, &id, KEY, None, true).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.StoppedModeStopCharging");
}

#[test]
fn one_instance_in_a_wrong_state_fails_the_whole_batch() {
    let mut sim = Sim::new();
    let stopped = instance_in(&mut sim, &S::Stopped);
    let running = instance_in(&mut sim, &S::Running);
    let ctx = sim.ctx();
    let req = model::InstancesKeyPairsRequest {
        instance_ids: vec![stopped.clone(), running],
        key_ids: vec![KEY.into()],
        force_stop: None,
    };
    let err = sim
        .engine
        .change_instances_key_pairs(&ctx, req, true)
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateRunning");
    assert!(
        !sim.view(&stopped).operating(),
        "nothing was done to the other"
    );
}

fn reset_password(
    sim: &mut Sim,
    id: &str,
    password: &str,
    force: Option<bool>,
) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    let req = model::ResetInstancesPasswordRequest {
        instance_ids: Sim::ids(id),
        password: Secret::new(password),
        user_name: None,
        force_stop: force,
    };
    sim.engine.reset_instances_password(&ctx, req)
}

#[test]
fn a_password_reset_needs_stopped_or_force_stop_and_is_never_shown() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let pw = "Rotated-Passw0rd";
    let err = reset_password(&mut sim, &id, pw, None).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateRunning");
    for weak in ["short1A", "alllowercase1", "/Starts1withslash"] {
        let err = reset_password(&mut sim, &id, weak, Some(true)).unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue.InvalidPassword", "{weak}");
    }
    reset_password(&mut sim, &id, pw, Some(true)).unwrap();
    let seen = states_until_settled(&mut sim, &id);
    assert_eq!(seen, [S::Stopping, S::Stopped, S::Starting, S::Running]);
    let v = sim.view(&id);
    assert_eq!(
        v.latest_operation.as_deref(),
        Some("ResetInstancesPassword")
    );
    let shown = serde_json::to_string(v).unwrap();
    assert!(!shown.contains(pw), "{shown}");
}

fn reinstall(sim: &mut Sim, req: model::ResetInstanceRequest) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    sim.engine.reset_instance(&ctx, req)
}

fn reinstall_of(id: &str) -> model::ResetInstanceRequest {
    model::ResetInstanceRequest {
        instance_id: id.into(),
        ..Default::default()
    }
}

#[test]
fn a_reinstall_stops_installs_and_boots_from_running_and_from_stopped() {
    for from in [S::Running, S::Stopped] {
        let mut sim = Sim::new();
        let id = instance_in(&mut sim, &from);
        let req = model::ResetInstanceRequest {
            image_id: Some("img-eb30mz89".into()),
            system_disk: Some(model::SystemDisk {
                disk_size: Some(80),
                ..Default::default()
            }),
            login_settings: Some(model::LoginSettings {
                key_ids: Some(vec![KEY.into()]),
                ..Default::default()
            }),
            host_name: Some("rebuilt".into()),
            ..reinstall_of(&id)
        };
        reinstall(&mut sim, req).unwrap();
        assert_eq!(sim.view(&id).image_id.as_deref(), Some("img-pi0ii46r"));
        let seen = states_until_settled(&mut sim, &id);
        let expected: &[S] = match from {
            S::Running => &[S::Stopping, S::Stopped, S::Starting, S::Running],
            _ => &[S::Stopped, S::Starting, S::Running],
        };
        assert_eq!(seen, expected, "from {from}");
        let v = sim.view(&id);
        assert_eq!(v.image_id.as_deref(), Some("img-eb30mz89"));
        assert_eq!(v.os_name.as_deref(), Some("Debian 12.0 64bit"));
        assert_eq!(v.system_disk.as_ref().unwrap().disk_size, Some(80));
        assert_eq!(key_ids(&sim, &id), [KEY]);
        assert_eq!(v.host_name.as_deref(), Some("rebuilt"));
        assert_eq!(v.latest_operation.as_deref(), Some("ResetInstance"));
        assert_eq!(v.latest_operation_state, Some(OperationState::Success));
    }
}

#[test]
fn a_reinstall_without_login_settings_drops_the_keys_and_keeps_the_image() {
    let mut sim = Sim::new();
    let id = sim
        .run(model::RunInstancesRequest {
            login_settings: Some(model::LoginSettings {
                key_ids: Some(vec![KEY.into()]),
                ..Default::default()
            }),
            ..run_request()
        })
        .unwrap();
    sim.settle();
    reinstall(&mut sim, reinstall_of(&id)).unwrap();
    sim.settle();
    assert!(
        key_ids(&sim, &id).is_empty(),
        "a random password is mailed instead"
    );
    assert_eq!(sim.view(&id).image_id.as_deref(), Some("img-pi0ii46r"));
}

#[test]
fn reinstall_refusals_name_the_documented_codes() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Stopped);
    let disk = |size| {
        Some(model::SystemDisk {
            disk_size: Some(size),
            ..Default::default()
        })
    };
    let login = |password: Option<&str>, keys: &[&str]| {
        Some(model::LoginSettings {
            password: password.map(Secret::new),
            key_ids: Some(keys.iter().map(|k| k.to_string()).collect()),
            ..Default::default()
        })
    };
    let cases = [
        (
            model::ResetInstanceRequest {
                image_id: Some("img-00000000".into()),
                ..reinstall_of(&id)
            },
            "InvalidImageId.NotFound",
        ),
        (
            model::ResetInstanceRequest {
                image_id: Some("ubuntu".into()),
                ..reinstall_of(&id)
            },
            "InvalidImageId.Malformed",
        ),
        (
            model::ResetInstanceRequest {
                system_disk: disk(40),
                ..reinstall_of(&id)
            },
            "InvalidParameterValue",
        ),
        (
            model::ResetInstanceRequest {
                login_settings: login(Some("Passw0rd!x"), &[KEY]),
                ..reinstall_of(&id)
            },
            "InvalidParameter.ParameterConflict",
        ),
        (
            model::ResetInstanceRequest {
                login_settings: login(Some("weak"), &[]),
                ..reinstall_of(&id)
            },
            "InvalidParameterValue.InvalidPassword",
        ),
        (
            model::ResetInstanceRequest {
                login_settings: login(None, &["skey-00000000"]),
                ..reinstall_of(&id)
            },
            "InvalidParameterValue.KeyPairNotFound",
        ),
        (
            model::ResetInstanceRequest {
                host_name: Some("-bad-".into()),
                ..reinstall_of(&id)
            },
            "InvalidParameterValue.IllegalHostName",
        ),
        (
            model::ResetInstanceRequest {
                instance_id: "ins-00000000".into(),
                ..Default::default()
            },
            "InvalidInstanceId.NotFound",
        ),
    ];
    for (req, code) in cases {
        let shown = format!("{req:?}");
        let err = reinstall(&mut sim, req).expect_err(&shown);
        assert_eq!(err.code, code, "{shown}: {}", err.message);
    }
    assert!(!sim.view(&id).operating());
    let mut sim = Sim::new();
    let pending = instance_in(&mut sim, &S::Pending);
    let err = reinstall(&mut sim, reinstall_of(&pending)).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStatePending");
    // Only cloud system disks of four types can be reinstalled.
    let local = sim
        .run(model::RunInstancesRequest {
            system_disk: Some(model::SystemDisk {
                disk_type: Some("LOCAL_BASIC".into()),
                ..Default::default()
            }),
            ..run_request()
        })
        .unwrap();
    sim.settle();
    let err = reinstall(&mut sim, reinstall_of(&local)).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation");
}

#[test]
fn a_reinstall_from_an_image_that_cannot_boot_fails_and_leaves_the_instance_stopped() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let req = model::ResetInstanceRequest {
        image_id: Some("img-brokenz1".into()),
        ..reinstall_of(&id)
    };
    reinstall(&mut sim, req).unwrap();
    sim.settle();
    let v = sim.view(&id);
    assert_eq!(v.instance_state, Some(S::Stopped));
    assert_eq!(v.latest_operation_state, Some(OperationState::Failed));
    assert_eq!(
        v.image_id.as_deref(),
        Some("img-pi0ii46r"),
        "the old system stays"
    );
    assert!(
        v.latest_operation_error_msg
            .as_deref()
            .unwrap()
            .contains("img-brokenz1")
    );
}

fn data_disk_instance(sim: &mut Sim) -> (String, String) {
    let id = sim
        .run(model::RunInstancesRequest {
            data_disks: Some(vec![model::DataDisk {
                disk_size: Some(100),
                ..Default::default()
            }]),
            ..run_request()
        })
        .unwrap();
    sim.settle();
    let disk = sim.view(&id).data_disks.as_ref().unwrap()[0]
        .disk_id
        .clone()
        .unwrap();
    (id, disk)
}

fn resize(sim: &mut Sim, req: model::ResizeInstanceDisksRequest) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    sim.engine.resize_instance_disks(&ctx, req)
}

fn grow_data(id: &str, disk: &str, size: i64) -> model::ResizeInstanceDisksRequest {
    model::ResizeInstanceDisksRequest {
        instance_id: id.into(),
        data_disks: Some(vec![model::DataDisk {
            disk_id: Some(disk.into()),
            disk_size: Some(size),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn disks_grow_online_while_running_or_stopped_with_force_stop() {
    let mut sim = Sim::new();
    let (id, disk) = data_disk_instance(&mut sim);
    let err = resize(&mut sim, grow_data(&id, &disk, 200)).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateRunning");
    let online = model::ResizeInstanceDisksRequest {
        resize_online: Some(true),
        ..grow_data(&id, &disk, 200)
    };
    resize(&mut sim, online).unwrap();
    assert_eq!(states_until_settled(&mut sim, &id), [S::Running]);
    assert_eq!(
        sim.view(&id).data_disks.as_ref().unwrap()[0].disk_size,
        Some(200)
    );
    let system = model::ResizeInstanceDisksRequest {
        instance_id: id.clone(),
        system_disk: Some(model::SystemDisk {
            disk_size: Some(100),
            ..Default::default()
        }),
        force_stop: Some(true),
        ..Default::default()
    };
    resize(&mut sim, system).unwrap();
    let seen = states_until_settled(&mut sim, &id);
    assert_eq!(seen, [S::Stopping, S::Stopped, S::Starting, S::Running]);
    assert_eq!(
        sim.view(&id).system_disk.as_ref().unwrap().disk_size,
        Some(100)
    );
}

#[test]
fn a_stopped_instance_grows_its_disks_offline_only() {
    let mut sim = Sim::new();
    let (id, disk) = data_disk_instance(&mut sim);
    super::Act::Stop.call(&mut sim, &id).unwrap();
    sim.settle();
    let online = model::ResizeInstanceDisksRequest {
        resize_online: Some(true),
        ..grow_data(&id, &disk, 200)
    };
    let err = resize(&mut sim, online).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateStopped");
    resize(&mut sim, grow_data(&id, &disk, 200)).unwrap();
    assert_eq!(states_until_settled(&mut sim, &id), [S::Stopped]);
    assert_eq!(
        sim.view(&id).data_disks.as_ref().unwrap()[0].disk_size,
        Some(200)
    );
}

#[test]
fn disk_refusals_name_the_documented_codes() {
    let mut sim = Sim::new();
    let (id, disk) = data_disk_instance(&mut sim);
    let online = |req: model::ResizeInstanceDisksRequest| model::ResizeInstanceDisksRequest {
        resize_online: Some(true),
        ..req
    };
    let both = model::ResizeInstanceDisksRequest {
        system_disk: Some(model::SystemDisk {
            disk_size: Some(100),
            ..Default::default()
        }),
        ..grow_data(&id, &disk, 200)
    };
    let two = model::ResizeInstanceDisksRequest {
        data_disks: Some(vec![
            grow_data(&id, &disk, 200).data_disks.unwrap()[0].clone(),
            grow_data(&id, &disk, 300).data_disks.unwrap()[0].clone(),
        ]),
        ..grow_data(&id, &disk, 200)
    };
    let cases = [
        (grow_data(&id, &disk, 50), "InvalidParameterValue"),
        (grow_data(&id, &disk, 100), "InvalidParameterValue"),
        (grow_data(&id, &disk, 205), "InvalidParameterValue"),
        (grow_data(&id, &disk, 40000), "InvalidParameterValue"),
        (
            grow_data(&id, "disk-00000000", 200),
            "UnsupportedOperation.InvalidDataDisk",
        ),
        (both, "InvalidParameterValue"),
        (two, "InvalidParameterValue"),
        (
            model::ResizeInstanceDisksRequest {
                instance_id: id.clone(),
                ..Default::default()
            },
            "MissingParameter.AtLeastOne",
        ),
    ];
    for (req, code) in cases {
        let shown = format!("{req:?}");
        let err = resize(&mut sim, online(req)).expect_err(&shown);
        assert_eq!(err.code, code, "{shown}: {}", err.message);
    }
    assert_eq!(
        sim.view(&id).data_disks.as_ref().unwrap()[0].disk_size,
        Some(100)
    );
}
