//! Real engine answers for the conformance test: instances in many states
//! and shapes, after in-place changes, prices, the catalogue, STS and Tag
//! answers, each as the simulator would send it.

use crate::cloud::credentials::Secret;
use crate::cloud::model;
use crate::sim::catalogue::Catalogue;
use crate::sim::engine::{Ctx, Engine, EngineConfig};
use serde_json::Value;
use std::time::Duration;

fn ctx(now: Duration, chinese: bool) -> Ctx<'static> {
    Ctx {
        account: "100000000009",
        region: "ap-guangzhou",
        request_id: "req-conformance",
        now,
        chinese,
    }
}

fn json<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).expect("serialises")
}

/// A request exercising most parameter groups.
fn full_request() -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            project_id: Some(0),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some("S5.MEDIUM4".into()),
        system_disk: Some(model::SystemDisk {
            disk_type: Some("CLOUD_SSD".into()),
            disk_size: Some(60),
            ..Default::default()
        }),
        data_disks: Some(vec![model::DataDisk {
            disk_size: Some(100),
            encrypt: Some(true),
            ..Default::default()
        }]),
        virtual_private_cloud: Some(model::VirtualPrivateCloud {
            vpc_id: Some("vpc-gz000001".into()),
            subnet_id: Some("subnet-gz000003".into()),
            ..Default::default()
        }),
        internet_accessible: Some(model::InternetAccessible {
            internet_charge_type: Some("BANDWIDTH_POSTPAID_BY_HOUR".into()),
            internet_max_bandwidth_out: Some(10),
            ..Default::default()
        }),
        instance_name: Some("web-{R:1,F:2}".into()),
        instance_count: Some(2),
        host_name: Some("web-{R:1}".into()),
        login_settings: Some(model::LoginSettings {
            password: Some(Secret::new("Passw0rd!x")),
            ..Default::default()
        }),
        tag_specification: Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags: vec![model::Tag {
                key: "team".into(),
                value: "payments".into(),
            }],
        }]),
        ..Default::default()
    }
}

fn prepaid_request() -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        instance_charge_type: Some("PREPAID".into()),
        instance_charge_prepaid: Some(model::InstanceChargePrepaid {
            period: Some(1),
            renew_flag: Some("NOTIFY_AND_AUTO_RENEW".into()),
        }),
        internet_accessible: Some(model::InternetAccessible {
            internet_max_bandwidth_out: Some(5),
            ..Default::default()
        }),
        login_settings: Some(model::LoginSettings {
            key_ids: Some(vec!["skey-gz000001".into()]),
            ..Default::default()
        }),
        instance_name: None,
        instance_count: None,
        host_name: None,
        ..full_request()
    }
}

fn price_request(run: model::RunInstancesRequest) -> model::InquiryPriceRunInstancesRequest {
    model::InquiryPriceRunInstancesRequest {
        placement: run.placement.unwrap_or_default(),
        image_id: run.image_id.unwrap_or_default(),
        instance_charge_type: run.instance_charge_type,
        instance_charge_prepaid: run.instance_charge_prepaid,
        instance_type: run.instance_type,
        internet_accessible: run.internet_accessible,
        instance_market_options: run.instance_market_options,
        ..Default::default()
    }
}

/// (action, answer) pairs: instances pending, running, stopped without
/// charging, launch-failed, prepaid; prices of every charge shape; the
/// catalogue in English and Chinese.
pub(super) fn cvm() -> Vec<(&'static str, Value)> {
    let mut e = Engine::new(EngineConfig::default(), Catalogue::default());
    let mut out = Vec::new();
    let t0 = ctx(Duration::ZERO, false);
    let run = e.run_instances(&t0, full_request()).expect("run");
    let ids = run.instance_id_set.clone().unwrap_or_default();
    out.push(("RunInstances", json(&run)));
    let prepaid = e.run_instances(&t0, prepaid_request()).expect("prepaid");
    let broken = model::RunInstancesRequest {
        image_id: Some("img-brokenz1".into()),
        ..prepaid_request()
    };
    e.run_instances(&t0, broken).expect("broken image");
    let pending = e
        .describe_instances(&t0, Default::default())
        .expect("describe");
    out.push(("DescribeInstances", json(&pending)));
    let t1 = ctx(Duration::from_secs(60), true);
    e.advance(t1.now);
    let stop = model::StopInstancesRequest {
        instance_ids: vec![ids[0].clone()],
        stopped_mode: Some("STOP_CHARGING".into()),
        ..Default::default()
    };
    e.stop_instances(&t1, stop).expect("stop");
    let t2 = ctx(Duration::from_secs(120), true);
    e.advance(t2.now);
    out.push((
        "DescribeInstances",
        json(
            e.describe_instances(&t2, Default::default())
                .expect("describe"),
        ),
    ));
    let status = model::DescribeInstancesStatusRequest::default();
    out.push((
        "DescribeInstancesStatus",
        json(e.describe_instances_status(&t2, status).expect("status")),
    ));
    let spot = model::RunInstancesRequest {
        instance_charge_type: Some("SPOTPAID".into()),
        instance_market_options: Some(model::InstanceMarketOptions {
            market_type: Some("spot".into()),
            spot_options: Some(model::SpotMarketOptions {
                max_price: Some("0.5".into()),
                ..Default::default()
            }),
        }),
        ..full_request()
    };
    let traffic = model::RunInstancesRequest {
        internet_accessible: Some(model::InternetAccessible {
            internet_max_bandwidth_out: Some(1),
            ..Default::default()
        }),
        ..full_request()
    };
    for req in [full_request(), prepaid_request(), spot, traffic] {
        let price = e
            .inquiry_price_run_instances(&t2, price_request(req))
            .expect("price");
        out.push(("InquiryPriceRunInstances", json(price)));
    }
    for chinese in [false, true] {
        let c = ctx(t2.now, chinese);
        out.push(("DescribeZones", json(e.describe_zones(&c).expect("zones"))));
    }
    let types = e
        .describe_instance_type_configs(&t2, Default::default())
        .expect("types");
    out.push(("DescribeInstanceTypeConfigs", json(types)));
    let images = model::DescribeImagesRequest {
        limit: Some(100),
        ..Default::default()
    };
    out.push((
        "DescribeImages",
        json(e.describe_images(&t2, images).expect("images")),
    ));
    assert_eq!(prepaid.instance_id_set.map(|v| v.len()), Some(1));
    out
}

/// STS answers: AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity
/// for a key and for a role session.
pub(super) fn sts() -> Vec<(&'static str, Value)> {
    use crate::cloud::sts::{AssumeRoleRequest, AssumeRoleWithWebIdentityRequest};
    use crate::sim::sts::{
        Principal, SimRole, SimWebIdentityTrust, StsConfig, StsState, caller_identity,
    };
    const ROLE: &str = "qcs::cam::uin/200000000002:roleName/cvm";
    let mut state = StsState::default();
    state.configure(StsConfig {
        roles: vec![SimRole {
            arn: ROLE.into(),
            trusted_accounts: vec!["100000000001".into()],
            external_id: None,
            web_identity: Some(SimWebIdentityTrust {
                provider_id: "OIDC".into(),
                tokens: vec![Secret::new("token")],
            }),
        }],
        instance_role: None,
    });
    let caller = Principal {
        account: "100000000001".into(),
        session: None,
    };
    let assumed = state
        .assume_role(
            &caller,
            AssumeRoleRequest {
                role_arn: ROLE.into(),
                role_session_name: "s1".into(),
                ..Default::default()
            },
            1_000,
        )
        .expect("assume role");
    let id = assumed
        .credentials
        .as_ref()
        .and_then(|c| c.tmp_secret_id.clone())
        .expect("an id");
    let session = state.issued(&id).expect("issued").principal.clone();
    let web = state
        .assume_role_with_web_identity(
            AssumeRoleWithWebIdentityRequest {
                provider_id: "OIDC".into(),
                web_identity_token: Secret::new("token"),
                role_arn: ROLE.into(),
                role_session_name: "s2".into(),
                duration_seconds: None,
            },
            1_000,
        )
        .expect("web identity");
    vec![
        ("AssumeRole", json(assumed)),
        ("AssumeRoleWithWebIdentity", json(web)),
        ("GetCallerIdentity", json(caller_identity(&caller))),
        ("GetCallerIdentity", json(caller_identity(&session))),
    ]
}

/// Tag service answers: the tags of a tagged instance after a change.
pub(super) fn tag() -> Vec<(&'static str, Value)> {
    use crate::cloud::tag::{self as t, DescribeResourceTagsByResourceIdsRequest as Describe};
    let mut e = Engine::new(EngineConfig::default(), Catalogue::default());
    let c = ctx(Duration::ZERO, false);
    let run = e.run_instances(&c, full_request()).expect("run");
    let ids = run.instance_id_set.unwrap_or_default();
    let modify = t::ModifyResourceTagsRequest {
        resource: t::instance_resource("ap-guangzhou", c.account, &ids[0]),
        replace_tags: Some(vec![t::Tag::new("env", "prod")]),
        ..Default::default()
    };
    e.modify_resource_tags(&c, modify).expect("modify");
    let describe = Describe {
        service_type: "cvm".into(),
        resource_prefix: "instance".into(),
        resource_ids: ids,
        resource_region: "ap-guangzhou".into(),
        ..Default::default()
    };
    let tags = e
        .describe_resource_tags_by_resource_ids(&c, describe)
        .expect("describe");
    assert_eq!(tags.total_count, Some(3));
    vec![
        ("ModifyResourceTags", json(model::EmptyResponse {})),
        ("DescribeResourceTagsByResourceIds", json(tags)),
    ]
}

/// Answers after in-place changes: the instances' new keys, disks,
/// addresses, group, project and charge type as DescribeInstances shows
/// them; the types one may change to; the prices of a change.
pub(super) fn in_place() -> Vec<(&'static str, Value)> {
    let mut e = Engine::new(EngineConfig::default(), Catalogue::default());
    let t0 = ctx(Duration::ZERO, false);
    let ids = e
        .run_instances(&t0, full_request())
        .expect("run")
        .instance_id_set
        .unwrap_or_default();
    let t1 = ctx(Duration::from_secs(60), false);
    e.advance(t1.now);
    let one = vec![ids[0].clone()];
    let keys = model::InstancesKeyPairsRequest {
        instance_ids: one.clone(),
        key_ids: vec!["skey-gz000002".into()],
        force_stop: Some(true),
    };
    e.change_instances_key_pairs(&t1, keys, true).expect("keys");
    let group = model::ModifyInstancesDisasterRecoverGroupRequest {
        instance_ids: vec![ids[1].clone()],
        disaster_recover_group_ids: Some(vec!["ps-gz000001".into()]),
        ..Default::default()
    };
    e.modify_instances_disaster_recover_group(&t1, group)
        .expect("group");
    let prepaid = model::ModifyInstancesChargeTypeRequest {
        instance_ids: vec![ids[1].clone()],
        instance_charge_type: "PREPAID".into(),
        instance_charge_prepaid: Some(model::InstanceChargePrepaid {
            period: Some(1),
            renew_flag: None,
        }),
        modify_portable_data_disk: None,
    };
    let t2 = ctx(Duration::from_secs(120), false);
    e.advance(t2.now);
    e.modify_instances_charge_type(&t2, prepaid)
        .expect("charge");
    let t3 = ctx(Duration::from_secs(180), false);
    e.advance(t3.now);
    let described = e
        .describe_instances(&t3, Default::default())
        .expect("describe");
    let modification = model::DescribeInstancesModificationRequest {
        instance_ids: one.clone(),
        filters: None,
    };
    let type_price = model::InquiryPriceResetInstancesTypeRequest {
        instance_ids: one.clone(),
        instance_type: "S5.LARGE8".into(),
    };
    let bandwidth = model::ResetInstancesInternetMaxBandwidthRequest {
        instance_ids: one,
        internet_accessible: model::InternetAccessible {
            internet_max_bandwidth_out: Some(20),
            ..Default::default()
        },
        ..Default::default()
    };
    vec![
        ("DescribeInstances", json(described)),
        (
            "DescribeInstancesModification",
            json(
                e.describe_instances_modification(&t3, modification)
                    .expect("types"),
            ),
        ),
        (
            "InquiryPriceResetInstancesType",
            json(
                e.inquiry_price_reset_instances_type(&t3, type_price)
                    .expect("price"),
            ),
        ),
        (
            "InquiryPriceResetInstancesInternetMaxBandwidth",
            json(
                e.inquiry_price_reset_instances_internet_max_bandwidth(&t3, bandwidth)
                    .expect("price"),
            ),
        ),
    ]
}
