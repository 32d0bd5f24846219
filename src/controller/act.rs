//! Carrying out one planned step with the CVM client, the Stackable way:
//! *dereference* the Secrets a create needs (async) → *build* the request
//! (pure, tested below) → *execute* it through [`Actor`].
//!
//! [`Actor`] is the one door to mutating calls. A resource's action goes
//! through [`Actor::act_on`], which sends it together with the same action
//! of other resources when the API takes many ids ([`coalesce`]).

use super::credentials::{CredentialStore, CredentialsError};
use super::observe::batch::Batcher;
use super::plan::CloudAction;
use crate::api::{self, CvmInstance, CvmInstanceSpec, InstanceChargeType};
use crate::cloud::model::{self, Action as _, Secret};
use crate::cloud::{CloudError, Credentials, CvmClient, Identity, client::MAX_DESCRIBE_IDS};
use kube::ResourceExt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

#[cfg(test)]
mod batching_tests;
pub mod coalesce;

/// The ClientToken of a resource's create: derived from its UID, so every
/// retry, restart or replica sends the same one.
pub fn client_token(uid: &str) -> String {
    format!("cvm-operator-{uid}")
}

/// The Secret values a create sends, read from the Secrets the spec names.
/// They travel only inside the request (redacted in `Debug`).
#[derive(Debug, Default)]
pub struct LaunchSecrets {
    pub password: Option<Secret>,
    /// Base64, as RunInstances takes it.
    pub user_data: Option<Secret>,
}

/// Reads the Secrets the spec references (login password, user data).
pub async fn launch_secrets(
    obj: &CvmInstance,
    secrets: &CredentialStore,
) -> Result<LaunchSecrets, CredentialsError> {
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    let password_ref = spec
        .login_settings
        .as_ref()
        .and_then(|l| l.password_secret_ref.as_ref());
    let password = match password_ref {
        Some(r) => Some(secrets.secret_value(&ns, r).await?),
        None => None,
    };
    let user_data = match (&spec.user_data, &spec.user_data_secret_ref) {
        (Some(u), _) => Some(Secret::new(u.clone())),
        (None, Some(r)) => {
            use base64::Engine as _;
            let plain = secrets.secret_value(&ns, r).await?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(plain.expose());
            Some(Secret::new(encoded))
        }
        (None, None) => None,
    };
    Ok(LaunchSecrets {
        password,
        user_data,
    })
}

/// The RunInstances request for a resource.
pub fn run_request(obj: &CvmInstance, secrets: LaunchSecrets) -> model::RunInstancesRequest {
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
            password: secrets.password,
            keep_image_login: None,
        }),
        security_group_ids: spec.security_group_ids.clone(),
        client_token: Some(client_token(&uid)),
        host_name: spec.host_name.clone(),
        tag_specification: Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags: tags(obj),
        }]),
        user_data: secrets.user_data,
        disable_api_termination: spec.disable_api_termination,
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

/// What a create returned.
#[derive(Debug, Clone)]
pub struct Created {
    pub request_id: String,
    pub instance_id: String,
}

/// Mutations that may share a call: same region, same credentials (by
/// their identity, never the bare SecretId: a borrowed SecretId with a wrong
/// key must never ride on its owner's call, nor fail it), same action, same
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MutationKey {
    region: String,
    identity: Identity,
    action: &'static str,
    params: String,
}

/// The wire parameters of an action that can be sent for many instances in
/// one call, as a key; `None` for one that goes alone: ResetInstancesType
/// takes one instance per call, and bandwidth one per call for
/// bandwidth-billed instances (the actor does not know the billing).
fn batch_params(action: &CloudAction) -> Option<String> {
    Some(match action {
        CloudAction::Start | CloudAction::Terminate => String::new(),
        CloudAction::Stop {
            stop_type,
            stopped_mode,
            ..
        } => format!("{}/{}", stop_type.as_str(), stopped_mode.as_str()),
        // The restart's value is recorded per resource, not sent.
        CloudAction::Restart { stop_type, .. } => stop_type.as_str().to_string(),
        CloudAction::Rename { name } => name.clone(),
        CloudAction::SetSecurityGroups { ids } => ids.join(","),
        CloudAction::SetTerminationProtection { enabled } => enabled.to_string(),
        // Anything else goes alone until it is listed here.
        _ => return None,
    })
}

/// How long a mutation waits for the same one of other resources. The
/// RunInstances-like quota of mutating actions (10 calls/s) makes any wait
/// that saves calls cheap; a lone action pays this once.
pub const MUTATION_WINDOW: Duration = Duration::from_millis(50);

/// Sends mutating calls. Cheap to clone.
#[derive(Clone)]
pub struct Actor {
    client: CvmClient,
    batches: Arc<Batcher<MutationKey, String, coalesce::Answer, Infallible>>,
    window: Duration,
}

impl Actor {
    pub fn new(client: CvmClient) -> Self {
        Self {
            client,
            // The per-call limit of every batched action is 100 ids, the
            // same as DescribeInstances'.
            batches: Arc::new(Batcher::new(MAX_DESCRIBE_IDS)),
            window: MUTATION_WINDOW,
        }
    }

    /// One resource's action on its instance `id`; returns the RequestId of
    /// the call that carried it. Sent together with the same action of
    /// other resources that arrive within the window, and answered with
    /// this instance's own outcome ([`coalesce::send_each`]).
    pub async fn act_on(
        &self,
        creds: &Credentials,
        region: &str,
        id: &str,
        action: &CloudAction,
    ) -> Result<String, CloudError> {
        let Some(params) = batch_params(action) else {
            return self
                .execute(creds, region, vec![id.to_string()], action)
                .await;
        };
        let key = MutationKey {
            region: region.to_string(),
            identity: Identity::of_static(creds),
            action: action.api_action(),
            params,
        };
        let (actor, creds, region, action) = (
            self.clone(),
            creds.clone(),
            region.to_string(),
            action.clone(),
        );
        let flush = move |ids: Vec<String>| async move {
            // Two resources may name one instance (an adoption race): the
            // API refuses duplicates, so each id goes once.
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            let send = move |part: Vec<String>| {
                let (actor, creds, region, action) =
                    (actor.clone(), creds.clone(), region.clone(), action.clone());
                async move { actor.execute(&creds, &region, part, &action).await }
            };
            let answers = coalesce::send_each(unique.clone(), send).await;
            let by_id: HashMap<String, coalesce::Answer> =
                unique.into_iter().zip(answers).collect();
            Ok(ids.iter().map(|id| by_id[id].clone()).collect())
        };
        let answer = self
            .batches
            .submit(&key, id.to_string(), self.window, flush)
            .await;
        match answer {
            Some(Ok(a)) => a,
            Some(Err(never)) => match never {},
            None => Err(CloudError::Network {
                action: key.action.into(),
                connect: false,
                message: "the batched call was dropped unanswered".into(),
            }),
        }
    }

    /// RunInstances with a resolved request.
    pub async fn create(
        &self,
        creds: &Credentials,
        region: &str,
        req: &model::RunInstancesRequest,
    ) -> Result<Created, CloudError> {
        let reply = self
            .client
            .call::<model::RunInstances>(creds, region, req)
            .await?;
        let id = reply
            .body
            .instance_id_set
            .unwrap_or_default()
            .into_iter()
            .next();
        match id {
            Some(instance_id) => Ok(Created {
                request_id: reply.request_id,
                instance_id,
            }),
            // A replay while the first create is still processing can
            // return no ids (seen on other Tencent products): retry later.
            None => Err(CloudError::Api {
                action: model::RunInstances::NAME.into(),
                code: "InternalError.EmptyInstanceIdSet".into(),
                message: "RunInstances returned no instance id".into(),
                request_id: reply.request_id,
            }),
        }
    }

    /// One action on the instances `ids`; returns the RequestId.
    pub async fn execute(
        &self,
        creds: &Credentials,
        region: &str,
        ids: Vec<String>,
        action: &CloudAction,
    ) -> Result<String, CloudError> {
        use model::*;
        match action {
            CloudAction::Start => {
                let req = StartInstancesRequest { instance_ids: ids };
                self.call::<StartInstances>(creds, region, &req).await
            }
            CloudAction::Stop {
                stop_type,
                stopped_mode,
                ..
            } => {
                let req = StopInstancesRequest {
                    instance_ids: ids,
                    stop_type: Some(stop_type.as_str().into()),
                    stopped_mode: Some(stopped_mode.as_str().into()),
                    force_stop: None,
                };
                self.call::<StopInstances>(creds, region, &req).await
            }
            CloudAction::ResetType { instance_type } => {
                let req = ResetInstancesTypeRequest {
                    instance_ids: ids,
                    instance_type: instance_type.clone(),
                    force_stop: None,
                };
                self.call::<ResetInstancesType>(creds, region, &req).await
            }
            CloudAction::SetBandwidth { mbps } => {
                let req = bandwidth_request(ids, *mbps);
                self.call::<ResetInstancesInternetMaxBandwidth>(creds, region, &req)
                    .await
            }
            CloudAction::Rename { .. }
            | CloudAction::SetSecurityGroups { .. }
            | CloudAction::SetTerminationProtection { .. } => {
                let req = modify_request(ids, action);
                self.call::<ModifyInstancesAttribute>(creds, region, &req)
                    .await
            }
            CloudAction::Restart { stop_type, .. } => {
                let req = RebootInstancesRequest {
                    instance_ids: ids,
                    force_reboot: None,
                    stop_type: Some(stop_type.as_str().into()),
                };
                self.call::<RebootInstances>(creds, region, &req).await
            }
            CloudAction::Terminate => {
                let req = TerminateInstancesRequest {
                    instance_ids: ids,
                    ..Default::default()
                };
                self.call::<TerminateInstances>(creds, region, &req).await
            }
        }
    }

    async fn call<A: model::Action>(
        &self,
        creds: &Credentials,
        region: &str,
        req: &A::Request,
    ) -> Result<String, CloudError> {
        Ok(self.client.call::<A>(creds, region, req).await?.request_id)
    }
}

fn bandwidth_request(
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
fn modify_request(
    ids: Vec<String>,
    action: &CloudAction,
) -> model::ModifyInstancesAttributeRequest {
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
        _ => {}
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
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
        serde_json::to_value(run_request(obj, LaunchSecrets::default())).unwrap()
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
        let secrets = LaunchSecrets {
            password: Some(Secret::new("Passw0rd!x")),
            user_data: None,
        };
        let req = run_request(&obj, secrets);
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
        let rename = modify_request(ids(), &CloudAction::Rename { name: "n".into() });
        let wire = serde_json::to_value(&rename).unwrap();
        assert_eq!(
            wire,
            json!({"InstanceIds": ["ins-abcdefgh"], "InstanceName": "n"})
        );
        let protect = modify_request(
            ids(),
            &CloudAction::SetTerminationProtection { enabled: true },
        );
        let wire = serde_json::to_value(&protect).unwrap();
        assert_eq!(
            wire,
            json!({"InstanceIds": ["ins-abcdefgh"], "DisableApiTermination": true})
        );
    }
}
