//! Carrying out one planned action with the CVM client.

use super::credentials::{CredentialStore, CredentialsError};
use super::plan::CloudAction;
use crate::api::{self, CvmInstance, InstanceChargeType};
use crate::cloud::model::{self, Secret};
use crate::cloud::{CloudError, Credentials, CvmClient};
use kube::ResourceExt;

/// The ClientToken of a resource's create: derived from its UID, so every
/// retry, restart or replica sends the same one.
pub fn client_token(uid: &str) -> String {
    format!("cvm-operator-{uid}")
}

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    SecretRef(#[from] CredentialsError),
}

/// The RunInstances request for a resource. Secrets referenced by the spec
/// are resolved here and travel only inside the request (redacted in Debug).
pub async fn run_request(
    obj: &CvmInstance,
    secrets: &CredentialStore,
) -> Result<model::RunInstancesRequest, CredentialsError> {
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    let uid = obj.uid().unwrap_or_default();
    let mut tags: Vec<model::Tag> = spec
        .tags
        .iter()
        .flatten()
        .map(|(k, v)| model::Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    for (k, v) in [
        (api::UID_TAG, uid.clone()),
        (api::NAMESPACE_TAG, ns.clone()),
        (api::NAME_TAG, obj.name_any()),
    ] {
        tags.push(model::Tag {
            key: k.into(),
            value: v,
        });
    }
    let login_settings = match &spec.login_settings {
        None => None,
        Some(ls) => Some(model::LoginSettings {
            key_ids: ls.key_ids.clone(),
            password: match &ls.password_secret_ref {
                Some(r) => Some(secrets.secret_value(&ns, r).await?),
                None => None,
            },
            keep_image_login: None,
        }),
    };
    let user_data = match (&spec.user_data, &spec.user_data_secret_ref) {
        (Some(u), _) => Some(Secret::new(u.clone())),
        (None, Some(r)) => {
            use base64::Engine as _;
            let plain = secrets.secret_value(&ns, r).await?;
            Some(Secret::new(
                base64::engine::general_purpose::STANDARD.encode(plain.expose().as_bytes()),
            ))
        }
        (None, None) => None,
    };
    Ok(model::RunInstancesRequest {
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
        instance_market_options: (spec.instance_charge_type == InstanceChargeType::SPOTPAID).then(
            || model::InstanceMarketOptions {
                market_type: Some("spot".into()),
                spot_options: Some(model::SpotMarketOptions {
                    max_price: spec.spot.as_ref().and_then(|s| s.max_price.clone()),
                    spot_instance_type: Some("one-time".into()),
                }),
            },
        ),
        instance_type: Some(spec.instance_type.clone()),
        system_disk: spec.system_disk.as_ref().map(|d| model::SystemDisk {
            disk_type: Some(d.disk_type.as_str().to_string()),
            disk_size: Some(d.disk_size),
            ..Default::default()
        }),
        data_disks: spec.data_disks.as_ref().map(|ds| {
            ds.iter()
                .map(|d| model::DataDisk {
                    disk_type: Some(d.disk_type.as_str().to_string()),
                    disk_size: Some(d.disk_size),
                    delete_with_instance: Some(d.delete_with_instance),
                    snapshot_id: d.snapshot_id.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        virtual_private_cloud: spec.vpc.as_ref().map(|v| model::VirtualPrivateCloud {
            vpc_id: Some(v.vpc_id.clone()),
            subnet_id: Some(v.subnet_id.clone()),
            private_ip_addresses: v.private_ip_address.clone().map(|ip| vec![ip]),
            ..Default::default()
        }),
        internet_accessible: spec
            .internet_accessible
            .as_ref()
            .map(|i| model::InternetAccessible {
                internet_charge_type: i.internet_charge_type.map(|c| c.as_str().to_string()),
                internet_max_bandwidth_out: Some(i.internet_max_bandwidth_out),
                public_ip_assigned: i.public_ip_assigned,
                ..Default::default()
            }),
        instance_count: Some(1),
        instance_name: Some(obj.desired_instance_name()),
        login_settings,
        security_group_ids: spec.security_group_ids.clone(),
        client_token: Some(client_token(&uid)),
        host_name: spec.host_name.clone(),
        tag_specification: Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags,
        }]),
        user_data,
        disable_api_termination: spec.disable_api_termination,
        ..Default::default()
    })
}

/// What an action returned.
#[derive(Debug, Clone)]
pub struct Acted {
    pub request_id: String,
    /// For a create: the new instance id.
    pub instance_id: Option<String>,
}

/// Runs one action on `instance_id` (for `Create`, `create` is the request).
pub async fn execute(
    client: &CvmClient,
    creds: &Credentials,
    region: &str,
    instance_id: &str,
    action: &CloudAction,
    create: Option<&model::RunInstancesRequest>,
) -> Result<Acted, CloudError> {
    let ids = vec![instance_id.to_string()];
    let done = |request_id: String| Acted {
        request_id,
        instance_id: None,
    };
    Ok(match action {
        CloudAction::Create => {
            let req = create.expect("a create carries its request");
            let reply = client
                .call::<model::RunInstances>(creds, region, req)
                .await?;
            let id = reply
                .body
                .instance_id_set
                .unwrap_or_default()
                .into_iter()
                .next();
            if id.is_none() {
                // A replay while the first create is still processing can
                // return no ids (seen on other Tencent products): retry later.
                return Err(CloudError::Api {
                    action: "RunInstances".into(),
                    code: "InternalError.EmptyInstanceIdSet".into(),
                    message: "RunInstances returned no instance id".into(),
                    request_id: reply.request_id,
                });
            }
            Acted {
                request_id: reply.request_id,
                instance_id: id,
            }
        }
        CloudAction::Start => done(
            client
                .call::<model::StartInstances>(
                    creds,
                    region,
                    &model::StartInstancesRequest { instance_ids: ids },
                )
                .await?
                .request_id,
        ),
        CloudAction::Stop {
            stop_type,
            stopped_mode,
            ..
        } => done(
            client
                .call::<model::StopInstances>(
                    creds,
                    region,
                    &model::StopInstancesRequest {
                        instance_ids: ids,
                        stop_type: Some(stop_type.as_str().into()),
                        stopped_mode: Some(stopped_mode.as_str().into()),
                        force_stop: None,
                    },
                )
                .await?
                .request_id,
        ),
        CloudAction::ResetType { instance_type } => done(
            client
                .call::<model::ResetInstancesType>(
                    creds,
                    region,
                    &model::ResetInstancesTypeRequest {
                        instance_ids: ids,
                        instance_type: instance_type.clone(),
                        force_stop: None,
                    },
                )
                .await?
                .request_id,
        ),
        CloudAction::SetBandwidth { mbps } => done(
            client
                .call::<model::ResetInstancesInternetMaxBandwidth>(
                    creds,
                    region,
                    &model::ResetInstancesInternetMaxBandwidthRequest {
                        instance_ids: ids,
                        internet_accessible: model::InternetAccessible {
                            internet_max_bandwidth_out: Some(*mbps),
                            ..Default::default()
                        },
                        start_time: None,
                        end_time: None,
                    },
                )
                .await?
                .request_id,
        ),
        CloudAction::Rename { name } => done(
            modify(
                client,
                creds,
                region,
                model::ModifyInstancesAttributeRequest {
                    instance_ids: ids,
                    instance_name: Some(name.clone()),
                    ..Default::default()
                },
            )
            .await?,
        ),
        CloudAction::SetSecurityGroups { ids: sgs } => done(
            modify(
                client,
                creds,
                region,
                model::ModifyInstancesAttributeRequest {
                    instance_ids: ids,
                    security_groups: Some(sgs.clone()),
                    ..Default::default()
                },
            )
            .await?,
        ),
        CloudAction::SetTerminationProtection { enabled } => done(
            modify(
                client,
                creds,
                region,
                model::ModifyInstancesAttributeRequest {
                    instance_ids: ids,
                    disable_api_termination: Some(*enabled),
                    ..Default::default()
                },
            )
            .await?,
        ),
        CloudAction::Terminate => done(
            client
                .call::<model::TerminateInstances>(
                    creds,
                    region,
                    &model::TerminateInstancesRequest {
                        instance_ids: ids,
                        ..Default::default()
                    },
                )
                .await?
                .request_id,
        ),
    })
}

async fn modify(
    client: &CvmClient,
    creds: &Credentials,
    region: &str,
    req: model::ModifyInstancesAttributeRequest,
) -> Result<String, CloudError> {
    Ok(client
        .call::<model::ModifyInstancesAttribute>(creds, region, &req)
        .await?
        .request_id)
}
