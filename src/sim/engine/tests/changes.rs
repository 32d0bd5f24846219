//! The in-place changes that keep the instance's power state (or restart it
//! by themselves): VPC and private IP, placement groups, project, charge
//! type, renew flag, the type an instance may change to, the prices of a
//! change, and the batch rules of the multi-id actions.

use super::{Act, Sim, instance_in, prepaid_request, run_request};
use crate::cloud::model::{self, InstanceState, OperationState};
use crate::sim::engine::ApiError;
use InstanceState as S;

fn move_to(
    ids: &[String],
    subnet: &str,
    ips: Option<Vec<&str>>,
) -> model::ModifyInstancesVpcAttributeRequest {
    model::ModifyInstancesVpcAttributeRequest {
        instance_ids: ids.to_vec(),
        virtual_private_cloud: model::VirtualPrivateCloud {
            vpc_id: Some(
                if subnet.starts_with("subnet-gz2") {
                    "vpc-gz000002"
                } else {
                    "vpc-gz000001"
                }
                .into(),
            ),
            subnet_id: Some(subnet.into()),
            private_ip_addresses: ips.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn vpc(sim: &mut Sim, req: model::ModifyInstancesVpcAttributeRequest) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    sim.engine.modify_instances_vpc_attribute(&ctx, req)
}

fn settle_states(sim: &mut Sim, id: &str) -> Vec<InstanceState> {
    let mut seen = vec![sim.state(id)];
    while sim.view(id).operating() {
        sim.wait(std::time::Duration::from_millis(100));
        let s = sim.state(id);
        if seen.last() != Some(&s) {
            seen.push(s);
        }
    }
    seen
}

#[test]
fn a_vpc_change_stops_a_running_instance_moves_it_and_starts_it_again() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let ids = Sim::ids(&id);
    let refused = model::ModifyInstancesVpcAttributeRequest {
        force_stop: Some(false),
        ..move_to(&ids, "subnet-gz200003", None)
    };
    let err = vpc(&mut sim, refused).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateRunning");
    // ForceStop defaults to true.
    vpc(
        &mut sim,
        move_to(&ids, "subnet-gz200003", Some(vec!["10.2.3.77"])),
    )
    .unwrap();
    assert_eq!(
        settle_states(&mut sim, &id),
        [S::Stopping, S::Stopped, S::Starting, S::Running]
    );
    let v = sim.view(&id);
    assert_eq!(
        v.private_ip_addresses.as_deref(),
        Some(&["10.2.3.77".to_string()][..])
    );
    let net = v.virtual_private_cloud.as_ref().unwrap();
    assert_eq!(net.vpc_id.as_deref(), Some("vpc-gz000002"));
    assert_eq!(net.subnet_id.as_deref(), Some("subnet-gz200003"));
    assert_eq!(net.private_ip_addresses, v.private_ip_addresses);
    assert_eq!(
        v.latest_operation.as_deref(),
        Some("ModifyInstancesVpcAttribute")
    );
}

#[test]
fn a_stopped_instance_stays_stopped_and_may_lose_its_host_name() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Stopped);
    let before = sim.view(&id).host_name.clone();
    let req = model::ModifyInstancesVpcAttributeRequest {
        reserve_host_name: Some(false),
        ..move_to(&Sim::ids(&id), "subnet-gz000003", None)
    };
    vpc(&mut sim, req).unwrap();
    assert_eq!(settle_states(&mut sim, &id), [S::Stopped]);
    let v = sim.view(&id);
    let ip = v.private_ip_addresses.as_ref().unwrap()[0].clone();
    assert!(ip.starts_with("172.16.3."), "{ip}");
    let mut octets = ip.rsplit('.');
    let (d, c) = (octets.next().unwrap(), octets.next().unwrap());
    assert_eq!(v.host_name, Some(format!("VM-{c}-{d}-ubuntu")));
    assert_ne!(v.host_name, before);
}

#[test]
fn vpc_refusals_name_the_documented_codes() {
    let mut sim = Sim::new();
    let a = instance_in(&mut sim, &S::Stopped);
    let b = instance_in(&mut sim, &S::Stopped);
    let taken = sim.view(&b).private_ip_addresses.as_ref().unwrap()[0].clone();
    let one = Sim::ids(&a);
    let cases = [
        (
            move_to(&one, "subnet-gz000004", None),
            "InvalidParameterValue",
        ),
        (
            move_to(&one, "subnet-gz000003", Some(vec![&taken])),
            "VpcIpIsUsed",
        ),
        (
            move_to(&one, "subnet-gz000003", Some(vec!["10.9.9.9"])),
            "VpcAddrNotInSubNet",
        ),
        (
            move_to(&one, "subnet-gz000003", Some(vec!["172.16.3.300"])),
            "InvalidParameterValue.IPAddressMalformed",
        ),
        (
            move_to(
                &one,
                "subnet-gz000003",
                Some(vec!["172.16.3.8", "172.16.3.9"]),
            ),
            "InvalidParameterValue",
        ),
        (
            move_to(&one, "subnet-x", None),
            "InvalidParameterValue.SubnetIdMalformed",
        ),
        (
            model::ModifyInstancesVpcAttributeRequest {
                virtual_private_cloud: model::VirtualPrivateCloud {
                    vpc_id: Some("vpc-gz000002".into()),
                    subnet_id: Some("subnet-gz000003".into()),
                    ..Default::default()
                },
                ..move_to(&one, "subnet-gz000003", None)
            },
            "InvalidParameterValue",
        ),
    ];
    for (req, code) in cases {
        let shown = format!("{req:?}");
        let err = vpc(&mut sim, req).expect_err(&shown);
        assert_eq!(err.code, code, "{shown}: {}", err.message);
    }
    // Its own address is no conflict.
    let own = sim.view(&a).private_ip_addresses.as_ref().unwrap()[0].clone();
    vpc(&mut sim, move_to(&one, "subnet-gz000003", Some(vec![&own]))).unwrap();
}

fn group(sim: &mut Sim, ids: &[String], group: &str, force: Option<bool>) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    let req = model::ModifyInstancesDisasterRecoverGroupRequest {
        instance_ids: ids.to_vec(),
        disaster_recover_group_ids: Some(vec![group.into()]),
        force,
        ..Default::default()
    };
    sim.engine
        .modify_instances_disaster_recover_group(&ctx, req)
}

fn groups_of(sim: &Sim, id: &str) -> Vec<String> {
    sim.view(id)
        .disaster_recover_group_ids
        .clone()
        .unwrap_or_default()
}

#[test]
fn placement_groups_have_members_a_capacity_and_force_reboots() {
    let mut sim = Sim::new();
    let a = instance_in(&mut sim, &S::Running);
    let b = instance_in(&mut sim, &S::Stopped);
    let c = instance_in(&mut sim, &S::Running);
    group(&mut sim, &[a.clone(), b.clone()], "ps-gz000002", None).unwrap();
    assert_eq!(sim.state(&a), S::Running, "without Force nothing restarts");
    sim.settle();
    assert_eq!(groups_of(&sim, &a), ["ps-gz000002"]);
    assert_eq!(groups_of(&sim, &b), ["ps-gz000002"]);
    let err = group(&mut sim, &Sim::ids(&c), "ps-gz000002", None).unwrap_err();
    assert_eq!(
        err.code,
        "ResourceInsufficient.DisasterRecoverGroupCvmQuota"
    );
    let err = group(&mut sim, &Sim::ids(&a), "ps-gz000002", None).unwrap_err();
    assert_eq!(err.code, "FailedOperation.AlreadyInDisasterRecoverGroup");
    group(&mut sim, &Sim::ids(&c), "ps-gz000001", Some(true)).unwrap();
    assert_eq!(settle_states(&mut sim, &c), [S::Rebooting, S::Running]);
    assert_eq!(groups_of(&sim, &c), ["ps-gz000001"]);
    for (id, code) in [
        (
            "ps-00000000",
            "FailedOperation.DisasterRecoverGroupNotFound",
        ),
        (
            "dg-1",
            "InvalidParameterValue.DisasterRecoverGroupIdMalformed",
        ),
    ] {
        let err = group(&mut sim, &Sim::ids(&a), id, None).unwrap_err();
        assert_eq!(err.code, code, "{id}");
    }
    // The deprecated single id (api.json's own example) still works.
    let ctx = sim.ctx();
    let old = model::ModifyInstancesDisasterRecoverGroupRequest {
        instance_ids: Sim::ids(&b),
        disaster_recover_group_id: Some("ps-gz000001".into()),
        ..Default::default()
    };
    sim.engine
        .modify_instances_disaster_recover_group(&ctx, old)
        .unwrap();
    sim.settle();
    assert_eq!(groups_of(&sim, &b), ["ps-gz000001"]);
}

#[test]
fn run_instances_places_a_batch_in_a_group_within_its_capacity() {
    let mut sim = Sim::new();
    let in_group = |count| model::RunInstancesRequest {
        instance_count: Some(count),
        disaster_recover_group_ids: Some(vec!["ps-gz000002".into()]),
        ..run_request()
    };
    let ctx = sim.ctx();
    let err = sim.engine.run_instances(&ctx, in_group(3)).unwrap_err();
    assert_eq!(
        err.code,
        "ResourceInsufficient.DisasterRecoverGroupCvmQuota"
    );
    let ids = sim
        .engine
        .run_instances(&ctx, in_group(2))
        .unwrap()
        .instance_id_set
        .unwrap();
    for id in &ids {
        assert_eq!(groups_of(&sim, id), ["ps-gz000002"]);
    }
    let err = sim.engine.run_instances(&ctx, in_group(1)).unwrap_err();
    assert_eq!(
        err.code,
        "ResourceInsufficient.DisasterRecoverGroupCvmQuota"
    );
}

#[test]
fn project_changes_and_unknown_projects() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let ctx = sim.ctx();
    let to = |project_id| model::ModifyInstancesProjectRequest {
        instance_ids: Sim::ids(&id),
        project_id,
    };
    let err = sim
        .engine
        .modify_instances_project(&ctx, to(4242))
        .unwrap_err();
    assert_eq!(err.code, "InvalidProjectId.NotFound");
    sim.engine
        .modify_instances_project(&ctx, to(1000001))
        .unwrap();
    assert_eq!(settle_states(&mut sim, &id), [S::Running]);
    let v = sim.view(&id);
    assert_eq!(v.placement.as_ref().unwrap().project_id, Some(1000001));
    assert_eq!(
        v.latest_operation.as_deref(),
        Some("ModifyInstancesProject")
    );
    let unknown = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            project_id: Some(4242),
            ..Default::default()
        }),
        ..run_request()
    };
    assert_eq!(
        sim.run(unknown).unwrap_err().code,
        "InvalidProjectId.NotFound"
    );
}

fn charge(sim: &mut Sim, ids: Vec<String>, to: &str, period: Option<i64>) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    let req = model::ModifyInstancesChargeTypeRequest {
        instance_ids: ids,
        instance_charge_type: to.into(),
        instance_charge_prepaid: period.map(|p| model::InstanceChargePrepaid {
            period: Some(p),
            renew_flag: Some("NOTIFY_AND_AUTO_RENEW".into()),
        }),
        modify_portable_data_disk: None,
    };
    sim.engine.modify_instances_charge_type(&ctx, req)
}

#[test]
fn postpaid_becomes_prepaid_and_never_the_reverse() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Stopped);
    let ids = Sim::ids(&id);
    assert_eq!(
        charge(&mut sim, ids.clone(), "PREPAID", None)
            .unwrap_err()
            .code,
        "MissingParameter"
    );
    assert_eq!(
        charge(&mut sim, ids.clone(), "PREPAID", Some(7 * 12))
            .unwrap_err()
            .code,
        "InvalidPeriod"
    );
    assert_eq!(
        charge(&mut sim, ids.clone(), "SPOTPAID", None)
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    charge(&mut sim, ids.clone(), "PREPAID", Some(3)).unwrap();
    assert_eq!(settle_states(&mut sim, &id), [S::Stopped]);
    let v = sim.view(&id);
    assert_eq!(v.instance_charge_type.as_deref(), Some("PREPAID"));
    assert_eq!(v.renew_flag.as_deref(), Some("NOTIFY_AND_AUTO_RENEW"));
    assert!(v.expired_time.is_some());
    for (to, period) in [("POSTPAID_BY_HOUR", None), ("PREPAID", Some(1))] {
        let err = charge(&mut sim, ids.clone(), to, period).unwrap_err();
        assert_eq!(err.code, "UnsupportedOperation.InstanceChargeType", "{to}");
    }
    let many: Vec<String> = (0..21)
        .map(|_| instance_in(&mut sim, &S::Running))
        .collect();
    let err = charge(&mut sim, many, "PREPAID", Some(1)).unwrap_err();
    assert_eq!(
        err.code, "InvalidParameterValue.LimitExceeded",
        "at most 20 per call"
    );
}

#[test]
fn the_renew_flag_is_a_prepaid_instances() {
    let mut sim = Sim::new();
    let postpaid = instance_in(&mut sim, &S::Running);
    let prepaid = sim.run(prepaid_request()).unwrap();
    sim.settle();
    let ctx = sim.ctx();
    let flag = |id: &str, flag: &str| model::ModifyInstancesRenewFlagRequest {
        instance_ids: Sim::ids(id),
        renew_flag: flag.into(),
    };
    let e = &mut sim.engine;
    let err = e
        .modify_instances_renew_flag(&ctx, flag(&postpaid, "NOTIFY_AND_AUTO_RENEW"))
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceChargeType");
    let err = e
        .modify_instances_renew_flag(&ctx, flag(&prepaid, "ALWAYS"))
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
    e.modify_instances_renew_flag(&ctx, flag(&prepaid, "DISABLE_NOTIFY_AND_MANUAL_RENEW"))
        .unwrap();
    sim.settle();
    let v = sim.view(&prepaid);
    assert_eq!(
        v.renew_flag.as_deref(),
        Some("DISABLE_NOTIFY_AND_MANUAL_RENEW")
    );
    assert_eq!(v.latest_operation_state, Some(OperationState::Success));
}

fn modification(
    sim: &Sim,
    ids: Vec<String>,
    status: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    let req = model::DescribeInstancesModificationRequest {
        instance_ids: ids,
        filters: status.map(|s| vec![model::Filter::new("status", [s])]),
    };
    let set = sim
        .engine
        .describe_instances_modification(&sim.ctx(), req)?
        .instance_type_config_status_set
        .unwrap();
    Ok(set
        .into_iter()
        .map(|s| {
            let t = s.instance_type_config.unwrap().instance_type.unwrap();
            (t, s.status.unwrap())
        })
        .collect())
}

#[test]
fn the_types_an_instance_may_change_to() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let all = modification(&sim, Sim::ids(&id), None).unwrap();
    let names: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        names.contains(&"S5.LARGE8") && names.contains(&"SA2.MEDIUM4"),
        "{names:?}"
    );
    assert!(!names.contains(&"S5.MEDIUM4"), "not its own type");
    assert!(!names.contains(&"GN7.2XLARGE32"), "not sold in the zone");
    assert!(
        all.contains(&("S6.LARGE16".into(), "UNAVAILABLE".into())),
        "sold out"
    );
    let sell = modification(&sim, Sim::ids(&id), Some("SELL")).unwrap();
    assert_eq!(sell.len(), all.len() - 1);
    let ctx = sim.ctx();
    let other_zone = sim
        .run(model::RunInstancesRequest {
            placement: Some(model::Placement {
                zone: Some("ap-guangzhou-4".into()),
                ..Default::default()
            }),
            ..run_request()
        })
        .unwrap();
    let err = modification(&sim, vec![id.clone(), other_zone], None).unwrap_err();
    assert_eq!(err.code, "FailedOperation.ZoneInconsistent");
    let err = sim
        .engine
        .describe_instances_modification(
            &ctx,
            model::DescribeInstancesModificationRequest {
                instance_ids: Sim::ids(&id),
                filters: Some(vec![model::Filter::new("zone", ["x"])]),
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "InvalidFilter");
}

#[test]
fn gpu_and_other_families_do_not_mix() {
    let mut sim = Sim::new();
    let ctx = sim.ctx_as(super::ACCOUNT, "ap-beijing");
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-beijing-7".into()),
            ..Default::default()
        }),
        ..run_request()
    };
    let id = sim
        .engine
        .run_instances(&ctx, req)
        .unwrap()
        .instance_id_set
        .unwrap()
        .remove(0);
    sim.settle();
    let change = model::ResetInstancesTypeRequest {
        instance_ids: Sim::ids(&id),
        instance_type: "GN7.2XLARGE32".into(),
        force_stop: Some(true),
    };
    let err = sim.engine.reset_instances_type(&ctx, change).unwrap_err();
    assert_eq!(
        err.code,
        "UnsupportedOperation.HeterogeneousChangeInstanceFamily"
    );
    let listed = sim
        .engine
        .describe_instances_modification(
            &ctx,
            model::DescribeInstancesModificationRequest {
                instance_ids: Sim::ids(&id),
                filters: None,
            },
        )
        .unwrap();
    let names: Vec<String> = listed
        .instance_type_config_status_set
        .unwrap()
        .into_iter()
        .filter_map(|s| s.instance_type_config?.instance_type)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("GN")), "{names:?}");
}

/// The instance price InquiryPriceResetInstancesType answers.
fn type_price(sim: &Sim, id: &str, to: &str) -> model::ItemPrice {
    let req = model::InquiryPriceResetInstancesTypeRequest {
        instance_ids: Sim::ids(id),
        instance_type: to.into(),
    };
    let answer = sim
        .engine
        .inquiry_price_reset_instances_type(&sim.ctx(), req);
    answer.unwrap().price.unwrap().instance_price.unwrap()
}

#[test]
fn prices_of_a_type_and_a_bandwidth_change() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    let before = sim.view(&id).clone();
    let ctx = sim.ctx();
    let p = type_price(&sim, &id, "S5.LARGE8");
    assert_eq!(
        (p.unit_price, p.charge_unit.as_deref()),
        (Some(0.50), Some("HOUR"))
    );
    let prepaid = sim.run(prepaid_request()).unwrap();
    sim.settle();
    // (0.50 − 0.25) yuan/h × 720 h × 1 month, 30 % off.
    let p = type_price(&sim, &prepaid, "S5.LARGE8");
    assert_eq!(
        (p.original_price, p.discount_price),
        (Some(180.0), Some(126.0))
    );
    let bandwidth = model::ResetInstancesInternetMaxBandwidthRequest {
        instance_ids: Sim::ids(&id),
        internet_accessible: model::InternetAccessible {
            internet_max_bandwidth_out: Some(20),
            ..Default::default()
        },
        ..Default::default()
    };
    let price = sim
        .engine
        .inquiry_price_reset_instances_internet_max_bandwidth(&ctx, bandwidth)
        .unwrap()
        .price
        .unwrap();
    // run_request's instance pays its traffic by the GB.
    let p = price.bandwidth_price.unwrap();
    assert_eq!(
        (p.unit_price, p.charge_unit.as_deref()),
        (Some(0.8), Some("GB"))
    );
    assert_eq!(sim.view(&id), &before, "an inquiry changes nothing");
}

#[test]
fn multi_id_actions_take_100_ids_and_refuse_a_whole_batch_for_one_bad_instance() {
    let mut sim = Sim::new();
    let ctx = sim.ctx();
    let req = model::RunInstancesRequest {
        instance_count: Some(101),
        instance_name: Some("fleet-{R:1,F:3}".into()),
        ..run_request()
    };
    let ids = sim
        .engine
        .run_instances(&ctx, req)
        .unwrap()
        .instance_id_set
        .unwrap();
    sim.settle();
    assert_eq!(
        sim.view(&ids[100]).instance_name.as_deref(),
        Some("fleet-101")
    );
    let stop = |ids: &[String]| model::StopInstancesRequest {
        instance_ids: ids.to_vec(),
        ..Default::default()
    };
    let err = sim.engine.stop_instances(&ctx, stop(&ids)).unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue.LimitExceeded");
    Act::Stop.call(&mut sim, &ids[7]).unwrap();
    Act::Stop.call(&mut sim, &ids[42]).unwrap();
    sim.settle();
    let err = sim
        .engine
        .stop_instances(&ctx, stop(&ids[..100]))
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.InstanceStateStopped");
    assert!(
        err.message
            .contains(&format!("['{}', '{}']", ids[7], ids[42])),
        "every instance failing alike is named: {}",
        err.message
    );
    assert_eq!(
        sim.engine.state_counts()["RUNNING"],
        99,
        "nothing was stopped"
    );
    let without: Vec<String> = ids[..100]
        .iter()
        .filter(|i| **i != ids[7] && **i != ids[42])
        .cloned()
        .collect();
    sim.engine.stop_instances(&ctx, stop(&without)).unwrap();
    sim.settle();
    assert_eq!(sim.engine.state_counts()["STOPPED"], 100);
    let reboot = model::RebootInstancesRequest {
        instance_ids: ids[100..].to_vec(),
        stop_type: Some("GENTLE".into()),
        ..Default::default()
    };
    let err = sim.engine.reboot_instances(&ctx, reboot).unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
}

fn attribute(
    sim: &mut Sim,
    id: &str,
    f: impl FnOnce(&mut model::ModifyInstancesAttributeRequest),
) -> Result<(), ApiError> {
    let mut req = model::ModifyInstancesAttributeRequest {
        instance_ids: Sim::ids(id),
        ..Default::default()
    };
    f(&mut req);
    let ctx = sim.ctx();
    sim.engine.modify_instances_attribute(&ctx, req)
}

#[test]
fn attribute_members_host_name_reboots_roles_unbind_security_groups_keep_their_order() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &S::Running);
    // "修改主机名后实例会立即重启": a running instance reboots at once…
    attribute(&mut sim, &id, |r| r.host_name = Some("web-1".into())).unwrap();
    assert_eq!(settle_states(&mut sim, &id), [S::Rebooting, S::Running]);
    assert_eq!(sim.view(&id).host_name.as_deref(), Some("web-1"));
    // …unless AutoReboot=false (the name takes effect at the next reboot).
    attribute(&mut sim, &id, |r| {
        r.host_name = Some("web-2".into());
        r.auto_reboot = Some(false);
    })
    .unwrap();
    assert_eq!(settle_states(&mut sim, &id), [S::Running]);
    assert_eq!(sim.view(&id).host_name.as_deref(), Some("web-2"));
    attribute(&mut sim, &id, |r| r.cam_role_name = Some("reader".into())).unwrap();
    sim.settle();
    assert_eq!(sim.view(&id).cam_role_name.as_deref(), Some("reader"));
    attribute(&mut sim, &id, |r| r.cam_role_name = Some(String::new())).unwrap();
    sim.settle();
    assert_eq!(sim.view(&id).cam_role_name, None, "empty unbinds");
    let order = ["sg-gz000003", "sg-gz000001"];
    attribute(&mut sim, &id, |r| {
        r.security_groups = Some(order.map(String::from).to_vec())
    })
    .unwrap();
    sim.settle();
    assert_eq!(
        sim.view(&id).security_group_ids.as_deref(),
        Some(&order.map(String::from)[..]),
        "the order given is the priority"
    );
    let err = attribute(&mut sim, &id, |r| {
        r.instance_name = Some("x".into());
        r.host_name = Some("y1".into());
    })
    .unwrap_err();
    assert_eq!(
        err.code, "InvalidParameterCombination",
        "one attribute per call"
    );
    // A stopped instance takes its new name without starting.
    let stopped = instance_in(&mut sim, &S::Stopped);
    attribute(&mut sim, &stopped, |r| r.host_name = Some("db-1".into())).unwrap();
    assert_eq!(settle_states(&mut sim, &stopped), [S::Stopped]);
}
