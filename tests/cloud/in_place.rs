//! The in-place actions through the client, over POST and GET (booleans
//! such as ForceStop and ResizeOnline travel as text in a query): each
//! change observed the way the operator will observe it, in DescribeInstances
//! once LatestOperationState is SUCCESS, and a documented refusal arriving
//! as the API error the planner will classify.

use super::*;
use cvm_operator::cloud::Secret;

async fn call<A: model::Action>(
    c: &CvmClient,
    req: &A::Request,
) -> Result<A::Response, CloudError> {
    c.call::<A>(&creds(), REGION, req).await.map(|r| r.body)
}

fn ids(id: &str) -> Vec<String> {
    vec![id.to_string()]
}

#[tokio::test]
async fn key_pairs_password_and_reinstall_follow_the_stop_rules() {
    for method in [HttpMethod::Post, HttpMethod::Get] {
        let sim = start(fast_config()).await;
        let c = client_for(&sim, |cfg| cfg.method = method);
        let id = run_one(&c, "login").await;
        settle(&c, &id, InstanceState::Running).await;
        let keys = |force| model::InstancesKeyPairsRequest {
            instance_ids: ids(&id),
            key_ids: vec!["skey-gz000002".into()],
            force_stop: force,
        };
        let err = call::<model::AssociateInstancesKeyPairs>(&c, &keys(None))
            .await
            .unwrap_err();
        assert_eq!(
            api_code(&err),
            "UnsupportedOperation.InstanceStateRunning",
            "{method:?}"
        );
        call::<model::AssociateInstancesKeyPairs>(&c, &keys(Some(true)))
            .await
            .unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(
            i.login_settings.unwrap().key_ids.unwrap(),
            ["skey-gz000002"],
            "{method:?}"
        );
        let password = model::ResetInstancesPasswordRequest {
            instance_ids: ids(&id),
            password: Secret::new("Rotated-Passw0rd"),
            user_name: None,
            force_stop: Some(true),
        };
        call::<model::ResetInstancesPassword>(&c, &password)
            .await
            .unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(
            i.latest_operation.as_deref(),
            Some("ResetInstancesPassword")
        );
        let reinstall = model::ResetInstanceRequest {
            instance_id: id.clone(),
            image_id: Some("img-eb30mz89".into()),
            host_name: Some("rebuilt".into()),
            ..Default::default()
        };
        call::<model::ResetInstance>(&c, &reinstall).await.unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(i.image_id.as_deref(), Some("img-eb30mz89"));
        assert_eq!(i.host_name.as_deref(), Some("rebuilt"));
        assert_eq!(i.latest_operation.as_deref(), Some("ResetInstance"));
        assert_eq!(sim.sim.stats().calls("AssociateInstancesKeyPairs"), 2);
    }
}

#[tokio::test]
async fn disks_network_and_placement_change_in_place() {
    for method in [HttpMethod::Post, HttpMethod::Get] {
        let sim = start(fast_config()).await;
        let c = client_for(&sim, |cfg| cfg.method = method);
        let id = run_one(&c, "moves").await;
        settle(&c, &id, InstanceState::Running).await;
        let grow = model::ResizeInstanceDisksRequest {
            instance_id: id.clone(),
            system_disk: Some(model::SystemDisk {
                disk_size: Some(100),
                ..Default::default()
            }),
            resize_online: Some(true),
            ..Default::default()
        };
        call::<model::ResizeInstanceDisks>(&c, &grow).await.unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(i.system_disk.unwrap().disk_size, Some(100), "{method:?}");
        let moved = model::ModifyInstancesVpcAttributeRequest {
            instance_ids: ids(&id),
            virtual_private_cloud: model::VirtualPrivateCloud {
                vpc_id: Some("vpc-gz000001".into()),
                subnet_id: Some("subnet-gz000003".into()),
                private_ip_addresses: Some(vec!["172.16.3.200".into()]),
                ..Default::default()
            },
            force_stop: Some(true),
            reserve_host_name: Some(true),
        };
        call::<model::ModifyInstancesVpcAttribute>(&c, &moved)
            .await
            .unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(
            i.private_ip_addresses.unwrap(),
            ["172.16.3.200"],
            "{method:?}"
        );
        let group = model::ModifyInstancesDisasterRecoverGroupRequest {
            instance_ids: ids(&id),
            disaster_recover_group_ids: Some(vec!["ps-gz000001".into()]),
            force: Some(false),
            ..Default::default()
        };
        call::<model::ModifyInstancesDisasterRecoverGroup>(&c, &group)
            .await
            .unwrap();
        let project = model::ModifyInstancesProjectRequest {
            instance_ids: ids(&id),
            project_id: 1000002,
        };
        settle(&c, &id, InstanceState::Running).await;
        call::<model::ModifyInstancesProject>(&c, &project)
            .await
            .unwrap();
        let i = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(i.disaster_recover_group_ids.unwrap(), ["ps-gz000001"]);
        assert_eq!(i.placement.unwrap().project_id, Some(1000002), "{method:?}");
    }
}

#[tokio::test]
async fn billing_changes_and_what_they_would_cost() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let id = run_one(&c, "billing").await;
    settle(&c, &id, InstanceState::Running).await;
    let types = call::<model::DescribeInstancesModification>(
        &c,
        &model::DescribeInstancesModificationRequest {
            instance_ids: ids(&id),
            filters: Some(vec![model::Filter::new("status", ["SELL"])]),
        },
    )
    .await
    .unwrap();
    let set = types.instance_type_config_status_set.unwrap();
    assert_eq!(types.total_count, Some(set.len() as i64));
    assert!(set.iter().all(|s| s.status.as_deref() == Some("SELL")));
    let price = call::<model::InquiryPriceResetInstancesType>(
        &c,
        &model::InquiryPriceResetInstancesTypeRequest {
            instance_ids: ids(&id),
            instance_type: "S5.MEDIUM4".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        price.price.unwrap().instance_price.unwrap().unit_price,
        Some(0.25)
    );
    let prepaid = model::ModifyInstancesChargeTypeRequest {
        instance_ids: ids(&id),
        instance_charge_type: "PREPAID".into(),
        instance_charge_prepaid: Some(model::InstanceChargePrepaid {
            period: Some(1),
            renew_flag: None,
        }),
        modify_portable_data_disk: None,
    };
    call::<model::ModifyInstancesChargeType>(&c, &prepaid)
        .await
        .unwrap();
    let i = settle(&c, &id, InstanceState::Running).await;
    assert_eq!(i.instance_charge_type.as_deref(), Some("PREPAID"));
    assert_eq!(i.renew_flag.as_deref(), Some("NOTIFY_AND_MANUAL_RENEW"));
    let renew = model::ModifyInstancesRenewFlagRequest {
        instance_ids: ids(&id),
        renew_flag: "NOTIFY_AND_AUTO_RENEW".into(),
    };
    call::<model::ModifyInstancesRenewFlag>(&c, &renew)
        .await
        .unwrap();
    let i = settle(&c, &id, InstanceState::Running).await;
    assert_eq!(i.renew_flag.as_deref(), Some("NOTIFY_AND_AUTO_RENEW"));
    let back = model::ModifyInstancesChargeTypeRequest {
        instance_charge_type: "POSTPAID_BY_HOUR".into(),
        instance_charge_prepaid: None,
        ..prepaid
    };
    let err = call::<model::ModifyInstancesChargeType>(&c, &back)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnsupportedOperation.InstanceChargeType");
    assert_eq!(
        sim.sim.stats().calls("ModifyInstancesChargeType"),
        2,
        "a refusal is not retried"
    );
}
