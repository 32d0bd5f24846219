//! The requests of every action, built from the plan's step and the
//! values it needs (pure, tested below). One builder per API action.

use super::SecretValues;
use crate::api::{self, CvmInstance, CvmInstanceSpec, InstanceChargeType, StopType};
use crate::cloud::model;
use crate::cloud::tag;
use crate::controller::plan::{CloudAction, DiskRef, Network, TypeCheck};
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
        disaster_recover_group_ids: spec
            .disaster_recover_group_ids
            .clone()
            .filter(|g| !g.is_empty()),
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

pub fn bandwidth_request(
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

pub(super) fn project(ids: Vec<String>, project_id: i64) -> model::ModifyInstancesProjectRequest {
    model::ModifyInstancesProjectRequest {
        instance_ids: ids,
        project_id,
    }
}

pub(super) fn to_prepaid(
    ids: Vec<String>,
    period: i64,
    renew_flag: &str,
) -> model::ModifyInstancesChargeTypeRequest {
    model::ModifyInstancesChargeTypeRequest {
        instance_ids: ids,
        instance_charge_type: InstanceChargeType::PREPAID.as_str().into(),
        instance_charge_prepaid: Some(model::InstanceChargePrepaid {
            period: Some(period),
            renew_flag: Some(renew_flag.into()),
        }),
        modify_portable_data_disk: None,
    }
}

pub(super) fn renew_flag(ids: Vec<String>, flag: &str) -> model::ModifyInstancesRenewFlagRequest {
    model::ModifyInstancesRenewFlagRequest {
        instance_ids: ids,
        renew_flag: flag.into(),
    }
}

/// One disk of the (first) instance. Online (`ResizeOnline`) while it
/// runs; a stopped one is grown as it is (never `ForceStop`: the operator
/// stops instances itself, once, when the policy allows).
pub(super) fn grow_disk(
    ids: &[String],
    disk: &DiskRef,
    size: i64,
    online: bool,
) -> model::ResizeInstanceDisksRequest {
    let mut req = model::ResizeInstanceDisksRequest {
        instance_id: ids.first().cloned().unwrap_or_default(),
        resize_online: online.then_some(true),
        ..Default::default()
    };
    match disk {
        DiskRef::System => {
            req.system_disk = Some(model::SystemDisk {
                disk_size: Some(size),
                ..Default::default()
            })
        }
        DiskRef::Data { id, .. } => {
            req.data_disks = Some(vec![model::DataDisk {
                disk_id: Some(id.clone()),
                disk_size: Some(size),
                ..Default::default()
            }])
        }
    }
    req
}

/// `Force`: the instance may move to another host (a running one restarts,
/// which the planner counts as a reboot); without it the API may refuse.
pub(super) fn placement_group(
    ids: Vec<String>,
    groups: &[String],
) -> model::ModifyInstancesDisasterRecoverGroupRequest {
    model::ModifyInstancesDisasterRecoverGroupRequest {
        instance_ids: ids,
        disaster_recover_group_ids: Some(groups.to_vec()),
        force: Some(true),
        ..Default::default()
    }
}

/// Associate or Disassociate: the instance is stopped (no `ForceStop`).
pub(super) fn key_pairs(ids: Vec<String>, keys: &[String]) -> model::InstancesKeyPairsRequest {
    model::InstancesKeyPairsRequest {
        instance_ids: ids,
        key_ids: keys.to_vec(),
        force_stop: None,
    }
}

/// `Err`: no password to set.
pub(super) fn reset_password(
    ids: Vec<String>,
    values: &SecretValues,
) -> Result<model::ResetInstancesPasswordRequest, &'static str> {
    Ok(model::ResetInstancesPasswordRequest {
        instance_ids: ids,
        password: values.password.clone().ok_or("no password to set")?,
        user_name: None,
        force_stop: None,
    })
}

/// The instance is stopped (`ForceStop: false`: the API's default would
/// stop a running one itself); the host name is kept.
pub(super) fn move_network(
    ids: Vec<String>,
    to: &Network,
) -> model::ModifyInstancesVpcAttributeRequest {
    let ips = (!to.private_ip.is_empty()).then(|| vec![to.private_ip.clone()]);
    model::ModifyInstancesVpcAttributeRequest {
        instance_ids: ids,
        virtual_private_cloud: model::VirtualPrivateCloud {
            vpc_id: Some(to.vpc_id.clone()),
            subnet_id: Some(to.subnet_id.clone()),
            private_ip_addresses: ips,
            ..Default::default()
        },
        force_stop: Some(false),
        reserve_host_name: Some(true),
    }
}

/// ResetInstance with what the spec says of the login (keys, or the
/// password from its Secret; neither: the API's default, a random password
/// sent to the account owner), the host name and the user data.
pub(super) fn reinstall(
    ids: &[String],
    action: &CloudAction,
    values: &SecretValues,
) -> model::ResetInstanceRequest {
    let CloudAction::Reinstall {
        image_id,
        key_ids,
        host_name,
    } = action
    else {
        return Default::default();
    };
    let login = match (key_ids.clone(), &values.password) {
        (Some(keys), _) => Some(model::LoginSettings {
            key_ids: Some(keys),
            ..Default::default()
        }),
        (None, Some(pw)) => Some(model::LoginSettings {
            password: Some(pw.clone()),
            ..Default::default()
        }),
        (None, None) => None,
    };
    model::ResetInstanceRequest {
        instance_id: ids.first().cloned().unwrap_or_default(),
        image_id: Some(image_id.clone()),
        login_settings: login,
        host_name: host_name.clone(),
        user_data: values.user_data.clone(),
        ..Default::default()
    }
}

/// What DescribeInstancesModification's answer says of `want`.
pub(super) fn type_check(offered: &[model::InstanceTypeConfigStatus], want: &str) -> TypeCheck {
    let found = offered.iter().find(|s| {
        s.instance_type_config
            .as_ref()
            .and_then(|c| c.instance_type.as_deref())
            == Some(want)
    });
    match found {
        Some(s) if s.status.as_deref() == Some("SELL") => TypeCheck::Available,
        Some(s) => TypeCheck::Unavailable(format!(
            "{want} is not available now ({}{})",
            s.status.as_deref().unwrap_or("?"),
            s.message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        None => TypeCheck::Unavailable(format!(
            "{want} is not a type this instance can change to (DescribeInstancesModification does not offer it)"
        )),
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
        let req = wire(&resource(
            json!({"camRoleName": "CVM_QcsRole", "disasterRecoverGroupIds": ["ps-gz000001"]}),
        ));
        assert_eq!(req["CamRoleName"], "CVM_QcsRole");
        assert_eq!(req["DisasterRecoverGroupIds"], json!(["ps-gz000001"]));
        let req = wire(&resource(json!({"camRoleName": ""})));
        assert!(req.get("CamRoleName").is_none());
    }

    #[test]
    fn in_place_requests_have_the_wire_shape_of_the_api() {
        let ids = || vec!["ins-abcdefgh".to_string()];
        assert_eq!(
            v(project(ids(), 1000001)),
            json!({"InstanceIds": ["ins-abcdefgh"], "ProjectId": 1000001})
        );
        assert_eq!(
            v(to_prepaid(ids(), 3, "NOTIFY_AND_AUTO_RENEW")),
            json!({"InstanceIds": ["ins-abcdefgh"], "InstanceChargeType": "PREPAID",
                   "InstanceChargePrepaid": {"Period": 3, "RenewFlag": "NOTIFY_AND_AUTO_RENEW"}})
        );
        assert_eq!(
            v(renew_flag(ids(), "DISABLE_NOTIFY_AND_MANUAL_RENEW")),
            json!({"InstanceIds": ["ins-abcdefgh"], "RenewFlag": "DISABLE_NOTIFY_AND_MANUAL_RENEW"})
        );
        assert_eq!(
            v(grow_disk(&ids(), &DiskRef::System, 60, true)),
            json!({"InstanceId": "ins-abcdefgh", "SystemDisk": {"DiskSize": 60}, "ResizeOnline": true})
        );
        let data = DiskRef::Data {
            index: 0,
            id: "disk-1".into(),
        };
        assert_eq!(
            v(grow_disk(&ids(), &data, 200, false)),
            json!({"InstanceId": "ins-abcdefgh", "DataDisks": [{"DiskId": "disk-1", "DiskSize": 200}]}),
            "stopped: neither ResizeOnline nor ForceStop"
        );
        assert_eq!(
            v(placement_group(ids(), &[])),
            json!({"InstanceIds": ["ins-abcdefgh"], "DisasterRecoverGroupIds": [], "Force": true})
        );
        assert_eq!(
            v(key_pairs(ids(), &["skey-gz000001".to_string()])),
            json!({"InstanceIds": ["ins-abcdefgh"], "KeyIds": ["skey-gz000001"]})
        );
        let to = Network {
            vpc_id: "vpc-gz000001".into(),
            subnet_id: "subnet-gz000004".into(),
            private_ip: "172.16.4.9".into(),
        };
        assert_eq!(
            v(move_network(ids(), &to)),
            json!({"InstanceIds": ["ins-abcdefgh"], "ForceStop": false, "ReserveHostName": true,
                   "VirtualPrivateCloud": {"VpcId": "vpc-gz000001", "SubnetId": "subnet-gz000004",
                                           "PrivateIpAddresses": ["172.16.4.9"]}})
        );
    }

    #[test]
    fn a_password_or_a_reinstall_carries_secrets_only_inside() {
        let ids = vec!["ins-abcdefgh".to_string()];
        let values = SecretValues {
            password: Some(Secret::new("N3w-Passw0rd!x")),
            user_data: Some(Secret::new("ZWNobyBoaQ==")),
        };
        let req = reset_password(ids.clone(), &values).unwrap();
        assert!(!format!("{req:?}").contains("N3w-Passw0rd"));
        assert_eq!(
            serde_json::to_value(&req).unwrap()["Password"],
            "N3w-Passw0rd!x"
        );
        assert!(reset_password(ids.clone(), &SecretValues::default()).is_err());
        let with_keys = CloudAction::Reinstall {
            image_id: "img-487zeit5".into(),
            key_ids: Some(vec!["skey-gz000001".into()]),
            host_name: Some("web-2".into()),
        };
        assert_eq!(
            serde_json::to_value(reinstall(&ids, &with_keys, &values)).unwrap(),
            json!({"InstanceId": "ins-abcdefgh", "ImageId": "img-487zeit5",
                   "LoginSettings": {"KeyIds": ["skey-gz000001"]}, "HostName": "web-2",
                   "UserData": "ZWNobyBoaQ=="}),
            "keys win: no password beside them"
        );
        let with_password = CloudAction::Reinstall {
            image_id: "img-487zeit5".into(),
            key_ids: None,
            host_name: None,
        };
        let req = reinstall(&ids, &with_password, &values);
        assert!(!format!("{req:?}").contains("N3w-Passw0rd"));
        assert_eq!(
            serde_json::to_value(&req).unwrap()["LoginSettings"],
            json!({"Password": "N3w-Passw0rd!x"})
        );
    }

    #[test]
    fn a_type_check_reads_the_offer() {
        let offer = |t: &str, status: &str| model::InstanceTypeConfigStatus {
            status: Some(status.into()),
            message: Some(format!("{t} message")),
            instance_type_config: Some(model::InstanceTypeConfig {
                instance_type: Some(t.into()),
                ..Default::default()
            }),
        };
        let offered = [
            offer("S5.LARGE8", "SELL"),
            offer("S6.LARGE16", "UNAVAILABLE"),
        ];
        assert_eq!(type_check(&offered, "S5.LARGE8"), TypeCheck::Available);
        let TypeCheck::Unavailable(why) = type_check(&offered, "S6.LARGE16") else {
            panic!("sold out")
        };
        assert!(why.contains("UNAVAILABLE: S6.LARGE16 message"), "{why}");
        let TypeCheck::Unavailable(why) = type_check(&offered, "GN7.2XLARGE32") else {
            panic!("not offered")
        };
        assert!(
            why.contains("not a type this instance can change to"),
            "{why}"
        );
    }

    fn v<T: serde::Serialize>(request: T) -> Value {
        serde_json::to_value(request).unwrap()
    }
}
