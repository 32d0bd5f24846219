//! The requests of every action, built from the plan's step and the
//! values it needs (pure, tested below). One builder per API action.

use super::SecretValues;
use crate::api::{self, CvmInstance, CvmInstanceSpec, InstanceChargeType, StopType};
use crate::cloud::model;
use crate::cloud::tag;
use crate::controller::plan::CloudAction;
use kube::ResourceExt;

/// The RunInstances request for a resource.
pub fn run_request(obj: &CvmInstance, secrets: &SecretValues) -> model::RunInstancesRequest {
    let spec = &obj.spec;
    let uid = obj.uid().unwrap_or_default();
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some(spec.zone.clone()),
            project_id: spec.project_id,
            ..Default::default()
        }),
        image_id: Some(spec.image_id.clone()),
        instance_charge_type: Some(spec.instance_charge_type.as_str().to_string()),
        instance_charge_prepaid: spec.prepaid.as_ref().map(|p| model::InstanceChargePrepaid {
            period: Some(p.period),
            renew_flag: Some(p.renew_flag.as_str().to_string()),
        }),
        instance_market_options: market_options(spec),
        instance_type: Some(spec.instance_type.clone()),
        system_disk: spec.system_disk.as_ref().map(|d| model::SystemDisk {
            disk_type: Some(d.disk_type.as_str().to_string()),
            disk_size: Some(d.disk_size),
            ..Default::default()
        }),
        data_disks: data_disks(spec),
        virtual_private_cloud: spec.vpc.as_ref().map(|v| model::VirtualPrivateCloud {
            vpc_id: Some(v.vpc_id.clone()),
            subnet_id: Some(v.subnet_id.clone()),
            private_ip_addresses: v.private_ip_address.clone().map(|ip| vec![ip]),
            ..Default::default()
        }),
        internet_accessible: internet_accessible(spec),
        instance_count: Some(1),
        instance_name: Some(obj.desired_instance_name()),
        login_settings: spec.login_settings.as_ref().map(|ls| model::LoginSettings {
            key_ids: ls.key_ids.clone(),
            password: secrets.password.clone(),
            keep_image_login: None,
        }),
        security_group_ids: spec.security_group_ids.clone(),
        client_token: Some(super::client_token(&uid)),
        host_name: spec.host_name.clone(),
        tag_specification: Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags: tags(obj),
        }]),
        user_data: secrets.user_data.clone(),
        disable_api_termination: spec.disable_api_termination,
        cam_role_name: spec.cam_role_name.clone().filter(|r| !r.is_empty()),
        ..Default::default()
    }
}

/// The spec's tags, plus ours: the UID (the create guard) and, for people
/// reading the console, the namespace and name.
fn tags(obj: &CvmInstance) -> Vec<model::Tag> {
    let tag = |key: &str, value: String| model::Tag {
        key: key.into(),
        value,
    };
    let own = [
        (api::UID_TAG, obj.uid().unwrap_or_default()),
        (api::NAMESPACE_TAG, obj.namespace().unwrap_or_default()),
        (api::NAME_TAG, obj.name_any()),
    ];
    let spec_tags = obj.spec.tags.iter().flatten();
    spec_tags
        .map(|(k, v)| tag(k, v.clone()))
        .chain(own.into_iter().map(|(k, v)| tag(k, v)))
        .collect()
}

/// Spot options only with a bid: the API requires `SpotOptions.MaxPrice`,
/// and SPOTPAID without any market options bids the current fixed discount
/// price (what an unset `spec.spot.maxPrice` asks for).
fn market_options(spec: &CvmInstanceSpec) -> Option<model::InstanceMarketOptions> {
    if spec.instance_charge_type != InstanceChargeType::SPOTPAID {
        return None;
    }
    let max_price = spec.spot.as_ref()?.max_price.clone()?;
    Some(model::InstanceMarketOptions {
        market_type: Some("spot".into()),
        spot_options: Some(model::SpotMarketOptions {
            max_price: Some(max_price),
            spot_instance_type: Some("one-time".into()),
        }),
    })
}

fn data_disks(spec: &CvmInstanceSpec) -> Option<Vec<model::DataDisk>> {
    let disks = spec.data_disks.as_ref()?;
    let disk = |d: &api::DataDiskSpec| model::DataDisk {
        disk_type: Some(d.disk_type.as_str().to_string()),
        disk_size: Some(d.disk_size),
        delete_with_instance: Some(d.delete_with_instance),
        snapshot_id: d.snapshot_id.clone(),
        ..Default::default()
    };
    Some(disks.iter().map(disk).collect())
}

fn internet_accessible(spec: &CvmInstanceSpec) -> Option<model::InternetAccessible> {
    let i = spec.internet_accessible.as_ref()?;
    Some(model::InternetAccessible {
        internet_charge_type: i.internet_charge_type.map(|c| c.as_str().to_string()),
        internet_max_bandwidth_out: Some(i.internet_max_bandwidth_out),
        public_ip_assigned: i.public_ip_assigned,
        ..Default::default()
    })
}

pub(super) fn bandwidth_request(
    ids: Vec<String>,
    mbps: i64,
) -> model::ResetInstancesInternetMaxBandwidthRequest {
    model::ResetInstancesInternetMaxBandwidthRequest {
        instance_ids: ids,
        internet_accessible: model::InternetAccessible {
            internet_max_bandwidth_out: Some(mbps),
            ..Default::default()
        },
        start_time: None,
        end_time: None,
    }
}

/// ModifyInstancesAttribute for one attribute (the API takes one per call).
/// `Err`: the user data to set is missing.
pub(super) fn modify_request(
    ids: Vec<String>,
    action: &CloudAction,
    values: &SecretValues,
) -> Result<model::ModifyInstancesAttributeRequest, &'static str> {
    let mut req = model::ModifyInstancesAttributeRequest {
        instance_ids: ids,
        ..Default::default()
    };
    match action {
        CloudAction::Rename { name } => req.instance_name = Some(name.clone()),
        CloudAction::SetSecurityGroups { ids } => req.security_groups = Some(ids.clone()),
        CloudAction::SetTerminationProtection { enabled } => {
            req.disable_api_termination = Some(*enabled)
        }
        CloudAction::SetCamRole { name } => req.cam_role_name = Some(name.clone()),
        // The new name takes effect by rebooting a running instance (the
        // API's default, AutoReboot unset): the planner counts it as one.
        CloudAction::SetHostName { name } => req.host_name = Some(name.clone()),
        CloudAction::SetUserData => {
            req.user_data = Some(values.user_data.clone().ok_or("no user data to set")?)
        }
        _ => {}
    }
    Ok(req)
}

pub(super) fn start(ids: Vec<String>) -> model::StartInstancesRequest {
    model::StartInstancesRequest { instance_ids: ids }
}

pub(super) fn stop(ids: Vec<String>, action: &CloudAction) -> model::StopInstancesRequest {
    let (stop_type, stopped_mode) = match action {
        CloudAction::Stop {
            stop_type,
            stopped_mode,
            ..
        } => (Some(stop_type.as_str()), Some(stopped_mode.as_str())),
        _ => (None, None),
    };
    model::StopInstancesRequest {
        instance_ids: ids,
        stop_type: stop_type.map(Into::into),
        stopped_mode: stopped_mode.map(Into::into),
        force_stop: None,
    }
}

pub(super) fn reset_type(
    ids: Vec<String>,
    instance_type: &str,
) -> model::ResetInstancesTypeRequest {
    model::ResetInstancesTypeRequest {
        instance_ids: ids,
        instance_type: instance_type.into(),
        force_stop: None,
    }
}

pub(super) fn reboot(ids: Vec<String>, stop_type: StopType) -> model::RebootInstancesRequest {
    model::RebootInstancesRequest {
        instance_ids: ids,
        force_reboot: None,
        stop_type: Some(stop_type.as_str().into()),
    }
}

pub(super) fn terminate(ids: Vec<String>) -> model::TerminateInstancesRequest {
    model::TerminateInstancesRequest {
        instance_ids: ids,
        ..Default::default()
    }
}

/// ModifyResourceTags on the instance (the first of `ids`: the Tag service
/// names one resource per call).
pub(super) fn modify_tags(
    region: &str,
    uin: &str,
    ids: &[String],
    replace: &[(String, String)],
    delete: &[String],
) -> tag::ModifyResourceTagsRequest {
    let id = ids.first().map(String::as_str).unwrap_or_default();
    tag::ModifyResourceTagsRequest {
        resource: tag::instance_resource(region, uin, id),
        replace_tags: (!replace.is_empty())
            .then(|| replace.iter().map(|(k, v)| tag::Tag::new(k, v)).collect()),
        delete_tags: (!delete.is_empty()).then(|| {
            delete
                .iter()
                .map(|k| tag::TagKeyObject { tag_key: k.clone() })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::Secret;
    use serde_json::{Value, json};

    fn resource(spec: Value) -> CvmInstance {
        let mut base = json!({
            "region": "ap-guangzhou", "zone": "ap-guangzhou-3",
            "imageId": "img-pi0ii46r", "instanceType": "S5.MEDIUM4",
        });
        base.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "u-1"},
            "spec": base,
        }))
        .unwrap()
    }

    fn wire(obj: &CvmInstance) -> Value {
        serde_json::to_value(run_request(obj, &SecretValues::default())).unwrap()
    }

    #[test]
    fn spot_without_a_max_price_sends_no_market_options() {
        let req = wire(&resource(json!({"instanceChargeType": "SPOTPAID"})));
        assert_eq!(req["InstanceChargeType"], "SPOTPAID");
        assert!(req.get("InstanceMarketOptions").is_none(), "{req}");
        let req = wire(&resource(
            json!({"instanceChargeType": "SPOTPAID", "spot": {}}),
        ));
        assert!(req.get("InstanceMarketOptions").is_none(), "{req}");
    }

    #[test]
    fn spot_with_a_max_price_sends_the_whole_object() {
        let obj = resource(json!({"instanceChargeType": "SPOTPAID", "spot": {"maxPrice": "0.05"}}));
        assert_eq!(
            wire(&obj)["InstanceMarketOptions"],
            json!({"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05", "SpotInstanceType": "one-time"}})
        );
        let postpaid = wire(&resource(json!({})));
        assert!(postpaid.get("InstanceMarketOptions").is_none());
    }

    #[test]
    fn a_create_carries_its_token_tags_and_secrets_only_inside() {
        let obj = resource(json!({"tags": {"team": "web"}, "loginSettings": {}}));
        let secrets = SecretValues {
            password: Some(Secret::new("Passw0rd!x")),
            user_data: None,
        };
        let req = run_request(&obj, &secrets);
        assert_eq!(req.client_token.as_deref(), Some("cvm-operator-u-1"));
        let tags: Vec<(String, String)> = req.tag_specification.as_ref().unwrap()[0]
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        for want in [
            ("team", "web"),
            (api::UID_TAG, "u-1"),
            (api::NAMESPACE_TAG, "team-a"),
            (api::NAME_TAG, "web"),
        ] {
            assert!(tags.contains(&(want.0.into(), want.1.into())), "{tags:?}");
        }
        assert!(!format!("{req:?}").contains("Passw0rd!x"));
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["LoginSettings"]["Password"], "Passw0rd!x");
    }

    #[test]
    fn modify_sets_exactly_one_attribute() {
        let ids = || vec!["ins-abcdefgh".to_string()];
        let rename = modify_request(
            ids(),
            &CloudAction::Rename { name: "n".into() },
            &SecretValues::default(),
        )
        .unwrap();
        let wire = serde_json::to_value(&rename).unwrap();
        assert_eq!(
            wire,
            json!({"InstanceIds": ["ins-abcdefgh"], "InstanceName": "n"})
        );
        let protect = modify_request(
            ids(),
            &CloudAction::SetTerminationProtection { enabled: true },
            &SecretValues::default(),
        )
        .unwrap();
        let wire = serde_json::to_value(&protect).unwrap();
        assert_eq!(
            wire,
            json!({"InstanceIds": ["ins-abcdefgh"], "DisableApiTermination": true})
        );
    }

    #[test]
    fn in_place_attributes_are_one_per_call_and_user_data_stays_inside() {
        let ids = || vec!["ins-abcdefgh".to_string()];
        let none = SecretValues::default();
        let wire = |action: CloudAction, values: &SecretValues| {
            serde_json::to_value(modify_request(ids(), &action, values).unwrap()).unwrap()
        };
        assert_eq!(
            wire(
                CloudAction::SetHostName {
                    name: "web-2".into()
                },
                &none
            ),
            json!({"InstanceIds": ["ins-abcdefgh"], "HostName": "web-2"}),
            "AutoReboot left to its default: a running instance reboots"
        );
        assert_eq!(
            wire(
                CloudAction::SetCamRole {
                    name: String::new()
                },
                &none
            ),
            json!({"InstanceIds": ["ins-abcdefgh"], "CamRoleName": ""}),
            "an empty name unbinds"
        );
        let values = SecretValues {
            user_data: Some(Secret::new("c2VjcmV0LWNsb3VkLWluaXQ=")),
            password: None,
        };
        let req = modify_request(ids(), &CloudAction::SetUserData, &values).unwrap();
        assert!(
            !format!("{req:?}").contains("c2VjcmV0"),
            "redacted in Debug"
        );
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"InstanceIds": ["ins-abcdefgh"], "UserData": "c2VjcmV0LWNsb3VkLWluaXQ="})
        );
        // Without the value there is no request to send.
        assert!(modify_request(ids(), &CloudAction::SetUserData, &none).is_err());
    }

    #[test]
    fn tags_name_the_instance_resource_and_send_only_non_empty_lists() {
        let ids = vec!["ins-abcdefgh".to_string()];
        let set = [("team".to_string(), "b".to_string())];
        let req = modify_tags("ap-guangzhou", "100000000001", &ids, &set, &[]);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"Resource": "qcs::cvm:ap-guangzhou:uin/100000000001:instance/ins-abcdefgh",
                   "ReplaceTags": [{"TagKey": "team", "TagValue": "b"}]})
        );
        let req = modify_tags("ap-guangzhou", "1", &ids, &[], &["old".to_string()]);
        assert_eq!(
            serde_json::to_value(&req).unwrap()["DeleteTags"],
            json!([{"TagKey": "old"}])
        );
        assert!(
            serde_json::to_value(&req)
                .unwrap()
                .get("ReplaceTags")
                .is_none()
        );
    }

    #[test]
    fn a_create_binds_the_cam_role_unless_empty() {
        let req = wire(&resource(json!({"camRoleName": "CVM_QcsRole"})));
        assert_eq!(req["CamRoleName"], "CVM_QcsRole");
        let req = wire(&resource(json!({"camRoleName": ""})));
        assert!(req.get("CamRoleName").is_none());
    }
}
