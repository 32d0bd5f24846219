//! Behaviour the official schema documents and the simulator once got wrong
//! (fidelity-review.md): spot options, the state after ResetInstancesType,
//! InstanceCount ranges, name patterns, host names, and the error codes of
//! the RunInstances and instance-id checks.

use super::{Act, Sim, instance_in, run_request, stopped_without_charging};
use crate::cloud::model::{self, InstanceState, OperationState};

fn run_err(sim: &mut Sim, req: model::RunInstancesRequest) -> String {
    sim.run(req).expect_err("refused").code
}

fn spot(options: Option<model::SpotMarketOptions>) -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        instance_charge_type: Some("SPOTPAID".into()),
        instance_market_options: Some(model::InstanceMarketOptions {
            market_type: Some("spot".into()),
            spot_options: options,
        }),
        ..run_request()
    }
}

#[test]
fn spot_options_need_their_max_price_and_spot_without_options_is_fine() {
    let mut sim = Sim::new();
    let no_price = spot(Some(model::SpotMarketOptions {
        spot_instance_type: Some("one-time".into()),
        ..Default::default()
    }));
    let ctx = sim.ctx();
    let err = sim.engine.run_instances(&ctx, no_price).unwrap_err();
    assert_eq!(err.code, "MissingParameter");
    assert!(
        err.message
            .contains("InstanceMarketOptions.SpotOptions.MaxPrice")
    );
    assert_eq!(run_err(&mut sim, spot(None)), "MissingParameter");
    let priced = spot(Some(model::SpotMarketOptions {
        max_price: Some("0.5".into()),
        ..Default::default()
    }));
    sim.run(priced).unwrap();
    // The documented form for "bid the current price": no market options.
    let bare = model::RunInstancesRequest {
        instance_charge_type: Some("SPOTPAID".into()),
        ..run_request()
    };
    let id = sim.run(bare).unwrap();
    assert_eq!(
        sim.view(&id).instance_charge_type.as_deref(),
        Some("SPOTPAID")
    );
}

fn reset_type(sim: &mut Sim, id: &str, force_stop: Option<bool>) {
    let ctx = sim.ctx();
    let req = model::ResetInstancesTypeRequest {
        instance_ids: Sim::ids(id),
        instance_type: "S5.LARGE8".into(),
        force_stop,
    };
    sim.engine.reset_instances_type(&ctx, req).unwrap();
}

#[test]
fn reset_instances_type_ends_running_from_stopped_and_from_running_with_force_stop() {
    let mut sim = Sim::new();
    let stopped = instance_in(&mut sim, &InstanceState::Stopped);
    reset_type(&mut sim, &stopped, None);
    let t = sim.engine.config.timings.clone();
    sim.wait(t.reset_type);
    let v = sim.view(&stopped);
    assert_eq!(v.instance_state, Some(InstanceState::Starting));
    assert_eq!(v.instance_type.as_deref(), Some("S5.LARGE8"));
    assert_eq!((v.cpu, v.memory), (Some(4), Some(8)));
    sim.settle();
    let v = sim.view(&stopped);
    assert_eq!(v.instance_state, Some(InstanceState::Running));
    assert_eq!(v.stop_charging_mode.as_deref(), Some("NOT_APPLICABLE"));
    assert_eq!(v.latest_operation.as_deref(), Some("ResetInstancesType"));
    assert_eq!(v.latest_operation_state, Some(OperationState::Success));

    let running = instance_in(&mut sim, &InstanceState::Running);
    reset_type(&mut sim, &running, Some(true));
    assert_eq!(sim.state(&running), InstanceState::Stopping);
    sim.wait(t.stop);
    assert_eq!(sim.state(&running), InstanceState::Stopped);
    sim.settle();
    assert_eq!(sim.state(&running), InstanceState::Running);
    assert_eq!(
        sim.view(&running).instance_type.as_deref(),
        Some("S5.LARGE8")
    );
}

#[test]
fn a_type_change_of_an_instance_stopped_without_charging_is_refused() {
    let mut sim = Sim::new();
    let id = stopped_without_charging(&mut sim);
    let ctx = sim.ctx();
    let req = model::ResetInstancesTypeRequest {
        instance_ids: Sim::ids(&id),
        instance_type: "S5.LARGE8".into(),
        force_stop: None,
    };
    let err = sim.engine.reset_instances_type(&ctx, req).unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation.StoppedModeStopCharging");
}

#[test]
fn instance_count_is_1_to_500_for_run_and_1_to_100_for_a_price() {
    let mut sim = Sim::new();
    let count = |n| model::RunInstancesRequest {
        instance_count: Some(n),
        ..run_request()
    };
    let ctx = sim.ctx();
    let ids = sim.engine.run_instances(&ctx, count(500)).unwrap();
    assert_eq!(ids.instance_id_set.map(|v| v.len()), Some(500));
    for n in [0, 501] {
        assert_eq!(run_err(&mut sim, count(n)), "InvalidParameterValue.Range");
    }
    let price = |n| model::InquiryPriceRunInstancesRequest {
        placement: run_request().placement.unwrap(),
        image_id: run_request().image_id.unwrap(),
        instance_count: Some(n),
        ..Default::default()
    };
    assert!(
        sim.engine
            .inquiry_price_run_instances(&ctx, price(100))
            .is_ok()
    );
    let err = sim
        .engine
        .inquiry_price_run_instances(&ctx, price(101))
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue.Range");
}

fn run_many(sim: &mut Sim, req: model::RunInstancesRequest) -> Vec<model::Instance> {
    let ctx = sim.ctx();
    let ids = sim.engine.run_instances(&ctx, req).unwrap().instance_id_set;
    ids.unwrap().iter().map(|id| sim.view(id).clone()).collect()
}

#[test]
fn name_and_host_name_patterns_are_expanded_per_instance() {
    let mut sim = Sim::new();
    let made = run_many(
        &mut sim,
        model::RunInstancesRequest {
            instance_count: Some(2),
            instance_name: Some("web-{R:9,F:2}".into()),
            host_name: Some("node-{IP}".into()),
            ..run_request()
        },
    );
    let names: Vec<_> = made
        .iter()
        .map(|i| i.instance_name.clone().unwrap())
        .collect();
    assert_eq!(names, ["web-09", "web-10"]);
    for i in &made {
        let ip = &i.private_ip_addresses.as_ref().unwrap()[0];
        assert_eq!(i.host_name.as_deref(), Some(format!("node-{ip}").as_str()));
    }
    // No pattern: the documented suffixes, on both.
    let made = run_many(
        &mut sim,
        model::RunInstancesRequest {
            instance_count: Some(2),
            instance_name: Some("db-".into()),
            host_name: Some("db-".into()),
            ..run_request()
        },
    );
    let got: Vec<_> = made
        .iter()
        .map(|i| {
            (
                i.instance_name.clone().unwrap(),
                i.host_name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db-1".into(), "db-1".into()),
            ("db-2".into(), "db-2".into())
        ]
    );
}

#[test]
fn the_host_name_is_answered_defaulted_and_changed() {
    let mut sim = Sim::new();
    let id = sim.run(run_request()).unwrap();
    let v = sim.view(&id);
    let ip = v.private_ip_addresses.as_ref().unwrap()[0].clone();
    let octets: Vec<&str> = ip.split('.').collect();
    assert_eq!(
        v.host_name,
        Some(format!("VM-{}-{}-ubuntu", octets[2], octets[3]))
    );
    sim.settle();
    let ctx = sim.ctx();
    let req = model::ModifyInstancesAttributeRequest {
        instance_ids: Sim::ids(&id),
        host_name: Some("db-primary".into()),
        ..Default::default()
    };
    sim.engine.modify_instances_attribute(&ctx, req).unwrap();
    assert_eq!(sim.view(&id).host_name.as_deref(), Some("db-primary"));
    // A host name still illegal once its patterns are expanded is refused.
    let bad = model::RunInstancesRequest {
        host_name: Some("-{R:1}".into()),
        ..run_request()
    };
    assert_eq!(
        run_err(&mut sim, bad),
        "InvalidParameterValue.IllegalHostName"
    );
}

#[test]
fn run_instances_answers_the_documented_codes() {
    let mut sim = Sim::new();
    let with = |f: &dyn Fn(&mut model::RunInstancesRequest)| {
        let mut r = run_request();
        f(&mut r);
        r
    };
    let vpc = |vpc: &str, subnet: &str| {
        let (vpc, subnet) = (vpc.to_string(), subnet.to_string());
        with(&move |r| {
            r.virtual_private_cloud = Some(model::VirtualPrivateCloud {
                vpc_id: Some(vpc.clone()),
                subnet_id: Some(subnet.clone()),
                ..Default::default()
            })
        })
    };
    let tag = |key: &str, value: &str| {
        let t = model::Tag {
            key: key.into(),
            value: value.into(),
        };
        with(&move |r| {
            r.tag_specification = Some(vec![model::TagSpecification {
                resource_type: "instance".into(),
                tags: vec![t.clone()],
            }])
        })
    };
    let many_tags = with(&|r| {
        r.tag_specification = Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags: (0..51)
                .map(|i| model::Tag {
                    key: format!("k{i}"),
                    value: "v".into(),
                })
                .collect(),
        }])
    });
    let cases = [
        (
            with(&|r| {
                r.login_settings = Some(model::LoginSettings {
                    key_ids: Some(vec!["skey-00000000".into()]),
                    ..Default::default()
                })
            }),
            "InvalidParameterValue.KeyPairNotFound",
        ),
        (
            with(&|r| {
                r.data_disks = Some(vec![model::DataDisk {
                    disk_size: Some(50),
                    snapshot_id: Some("snapshot-1".into()),
                    ..Default::default()
                }])
            }),
            "InvalidParameterValue.SnapshotIdMalformed",
        ),
        (
            vpc("vpc-gz000001", "subnet-none"),
            "InvalidParameterValue.SubnetNotExist",
        ),
        (
            vpc("vpc-gz000001", "subnet-gz000004"),
            "InvalidParameterValue.SubnetIdZoneIdNotMatch",
        ),
        (
            vpc("vpc-gz000001", "subnet-gz200003"),
            "InvalidParameterValue.VpcIdSubnetIdNotMatch",
        ),
        (tag("qcloud:owner", "x"), "FailedOperation.TagKeyReserved"),
        (tag(&"k".repeat(128), "x"), "FailedOperation.IllegalTagKey"),
        (tag("team", "a,b"), "FailedOperation.IllegalTagValue"),
        (many_tags, "InvalidParameterValue.TagQuotaLimitExceeded"),
    ];
    for (req, code) in cases {
        assert_eq!(run_err(&mut sim, req), code);
    }
    // Allowed tag characters pass, including the operator's own tags.
    sim.run(tag("cvm.tencentcloud.io/uid", "2f1c-9a7e"))
        .unwrap();
    sim.run(tag("团队 a+b=c_d:e@f", "")).unwrap();
}

#[test]
fn an_empty_instance_id_gets_the_observed_code() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Running);
    let code = |sim: &mut Sim, id: &str| Act::Stop.call(sim, id).unwrap_err().code;
    assert_eq!(
        code(&mut sim, ""),
        "InvalidParameterValue.InstanceIdMalformed"
    );
    assert_eq!(code(&mut sim, "ins-1122"), "InvalidInstanceId.Malformed");
    assert_eq!(code(&mut sim, "ins-00000000"), "InvalidInstanceId.NotFound");
    assert_eq!(Act::Stop.call(&mut sim, &id), Ok(()));
}
