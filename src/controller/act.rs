//! Carrying out one planned step with the CVM client, the Stackable way:
//! *dereference* the Secrets a create needs (async) → *build* the request
//! (pure, tested below) → *execute* it through [`Actor`].
//!
//! [`Actor`] is the one door to mutating calls. A resource's action goes
//! through [`Actor::act_on`], which sends it together with the same action
//! of other resources when the API takes many ids ([`coalesce`]).

mod requests;

pub use requests::{bandwidth_request, run_request};

use super::credentials::{CredentialStore, CredentialsError};
use super::observe::batch::{Batcher, Window};
use super::plan::{CloudAction, TypeCheck};
use crate::api::{self, CvmInstance, CvmInstanceSpec};
use crate::cloud::model::{self, Action as _, Secret};
use crate::cloud::{
    CloudError, Credentials, CvmClient, Identity, client::MAX_DESCRIBE_IDS, sts, tag,
};
use kube::ResourceExt;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(test)]
mod batching_tests;
pub mod coalesce;

/// The ClientToken of a resource's create: derived from its UID, so every
/// retry, restart or replica sends the same one.
pub fn client_token(uid: &str) -> String {
    format!("cvm-operator-{uid}")
}

/// The values the API never shows back that the spec asks for — the login
/// password and the user data — read from the spec and the Secrets it
/// names. They travel only inside requests (redacted in `Debug`).
#[derive(Debug, Default, Clone)]
pub struct SecretValues {
    pub password: Option<Secret>,
    /// Base64, as RunInstances takes it.
    pub user_data: Option<Secret>,
}

/// Whether the spec asks for values the API never shows back.
pub fn wants_secret_values(spec: &CvmInstanceSpec) -> bool {
    spec.user_data.is_some() || reads_secrets(spec)
}

/// Whether those values come from Secrets (which change without the spec).
pub fn reads_secrets(spec: &CvmInstanceSpec) -> bool {
    let password = spec
        .login_settings
        .as_ref()
        .is_some_and(|l| l.password_secret_ref.is_some());
    password || spec.user_data_secret_ref.is_some()
}

/// Reads the values the spec asks for (login password, user data).
pub async fn secret_values(
    obj: &CvmInstance,
    secrets: &CredentialStore,
) -> Result<SecretValues, CredentialsError> {
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
    Ok(SecretValues {
        password,
        user_data,
    })
}

/// What a create returned.
#[derive(Debug, Clone)]
pub struct Created {
    pub request_id: String,
    pub instance_id: String,
}

/// What a RunInstances of several instances returned.
#[derive(Debug, Clone)]
pub struct Launched {
    pub request_id: String,
    pub instance_ids: Vec<String>,
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
/// one call, as a key naming the member it sets (ModifyInstancesAttribute
/// carries one of several: a name and a host name alike must never share a
/// call); `None` for one that goes alone: ResetInstancesType takes one
/// instance per call, bandwidth one per call for bandwidth-billed instances
/// (the actor does not know the billing), user data is a write-only value
/// of each resource's, and tags are set per resource (Tag service).
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
        CloudAction::Rename { name } => format!("InstanceName={name}"),
        CloudAction::SetHostName { name } => format!("HostName={name}"),
        CloudAction::SetCamRole { name } => format!("CamRoleName={name}"),
        CloudAction::SetSecurityGroups { ids } => format!("SecurityGroups={}", ids.join(",")),
        CloudAction::SetTerminationProtection { enabled } => {
            format!("DisableApiTermination={enabled}")
        }
        // Anything else goes alone until it is listed here.
        _ => return None,
    })
}

/// While the same mutation comes in a burst (a mass deletion or stop
/// reaches the actor over seconds: the apiserver delivers 1,000 deletions at
/// 50 to 150 a second, unevenly), a call waits for company as long as more
/// keep coming ([`BURST_IDLE`] apart at most) — until it holds 100 ids, or
/// for [`BURST_MAX`] — and goes once they stop. The idle time outlasts the
/// pauses of a busy apiserver (300 ms cut 60 deletions into 12 calls on a
/// loaded 2-core machine); the mutation itself takes seconds in the cloud.
/// Outside a burst a mutation goes at once: a person's edit pays no window.
pub const BURST_WINDOW: Window = Window {
    max: BURST_MAX,
    idle: Some(BURST_IDLE),
};
pub const BURST_IDLE: Duration = Duration::from_secs(1);
pub const BURST_MAX: Duration = Duration::from_secs(3);
/// A burst: at least this many submissions of the same mutation within
/// [`BURST_MEMORY`] before this one.
const BURST_SIZE: usize = 2;
const BURST_MEMORY: Duration = Duration::from_secs(1);

/// Sends mutating calls. Cheap to clone.
#[derive(Clone)]
pub struct Actor {
    client: CvmClient,
    batches: Arc<Batcher<MutationKey, String, coalesce::Answer, Infallible>>,
    /// When each key was last submitted within [`BURST_MEMORY`].
    recent: Arc<Mutex<HashMap<MutationKey, VecDeque<Instant>>>>,
    /// Account uins by credential identity.
    uins: Arc<Mutex<HashMap<Identity, String>>>,
}

impl Actor {
    pub fn new(client: CvmClient) -> Self {
        Self {
            client,
            // The per-call limit of every batched action is 100 ids, the
            // same as DescribeInstances'.
            batches: Arc::new(Batcher::new(MAX_DESCRIBE_IDS)),
            recent: Arc::default(),
            uins: Arc::default(),
        }
    }

    /// One resource's action on its instance `id`; returns the RequestId of
    /// the call that carried it. While the same action (same parameters,
    /// region, credentials) comes in a burst, it waits up to
    /// [`BURST_MAX`] to share a call with the others, and gets this
    /// instance's own outcome ([`coalesce::send_each`]); otherwise it goes
    /// at once.
    pub async fn act_on(
        &self,
        creds: &Credentials,
        region: &str,
        id: &str,
        action: &CloudAction,
        values: &SecretValues,
    ) -> Result<String, CloudError> {
        let key = batch_params(action).map(|params| MutationKey {
            region: region.to_string(),
            identity: Identity::of_static(creds),
            action: action.api_action(),
            params,
        });
        let Some(key) = key.filter(|k| self.in_burst(k)) else {
            tracing::debug!(action = action.api_action(), "sent alone");
            return self
                .execute(creds, region, vec![id.to_string()], action, values)
                .await;
        };
        let (actor, creds, region, action) = (
            self.clone(),
            creds.clone(),
            region.to_string(),
            action.clone(),
        );
        let api_action = action.api_action();
        let flush = move |ids: Vec<String>| async move {
            // Two resources may name one instance (an adoption race): the
            // API refuses duplicates, so each id goes once.
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            let send = move |part: Vec<String>| {
                let (actor, creds, region, action) =
                    (actor.clone(), creds.clone(), region.clone(), action.clone());
                // Batched actions carry no write-only value (those go alone).
                let none = SecretValues::default();
                async move { actor.execute(&creds, &region, part, &action, &none).await }
            };
            tracing::info!(
                action = api_action,
                instances = unique.len(),
                "one call for several resources"
            );
            let answers = coalesce::send_each(unique.clone(), send).await;
            let by_id: HashMap<String, coalesce::Answer> =
                unique.into_iter().zip(answers).collect();
            Ok(ids.iter().map(|id| by_id[id].clone()).collect())
        };
        let answer = self
            .batches
            .submit(&key, id.to_string(), BURST_WINDOW, flush)
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

    /// Whether the same mutation is coming in a burst (then it waits in
    /// [`BURST_WINDOW`]; else it goes at once).
    fn in_burst(&self, key: &MutationKey) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        recent.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < BURST_MEMORY);
            !times.is_empty()
        });
        let times = recent.entry(key.clone()).or_default();
        let burst = times.len() >= BURST_SIZE;
        times.push_back(now);
        if times.len() > BURST_SIZE {
            times.pop_front();
        }
        burst
    }

    /// RunInstances with a resolved request, for one instance.
    pub async fn create(
        &self,
        creds: &Credentials,
        region: &str,
        req: &model::RunInstancesRequest,
    ) -> Result<Created, CloudError> {
        let launched = self.launch(creds, region, req).await?;
        Ok(Created {
            request_id: launched.request_id,
            instance_id: launched.instance_ids.into_iter().next().unwrap_or_default(),
        })
    }

    /// RunInstances with a resolved request: the ids, never none.
    pub async fn launch(
        &self,
        creds: &Credentials,
        region: &str,
        req: &model::RunInstancesRequest,
    ) -> Result<Launched, CloudError> {
        let reply = self
            .client
            .call::<model::RunInstances>(creds, region, req)
            .await?;
        let ids = reply.body.instance_id_set.unwrap_or_default();
        if ids.is_empty() {
            // A replay while the first create is still processing can
            // return no ids (seen on other Tencent products): retry later.
            return Err(CloudError::Api {
                action: model::RunInstances::NAME.into(),
                code: "InternalError.EmptyInstanceIdSet".into(),
                message: "RunInstances returned no instance id".into(),
                request_id: reply.request_id,
            });
        }
        Ok(Launched {
            request_id: reply.request_id,
            instance_ids: ids,
        })
    }

    /// One action on the instances `ids`; returns the RequestId. `values`:
    /// what the spec asks for of the values the API never shows back (sent
    /// by the actions that set them).
    pub async fn execute(
        &self,
        creds: &Credentials,
        region: &str,
        ids: Vec<String>,
        action: &CloudAction,
        values: &SecretValues,
    ) -> Result<String, CloudError> {
        use model::*;
        use requests as r;
        let c = (creds, region);
        match action {
            CloudAction::Start => self.call::<StartInstances>(c, &r::start(ids)).await,
            CloudAction::Stop { .. } => self.call::<StopInstances>(c, &r::stop(ids, action)).await,
            CloudAction::ResetType { instance_type } => {
                let req = r::reset_type(ids, instance_type);
                self.call::<ResetInstancesType>(c, &req).await
            }
            CloudAction::SetBandwidth { mbps } => {
                let req = r::bandwidth_request(ids, *mbps);
                self.call::<ResetInstancesInternetMaxBandwidth>(c, &req)
                    .await
            }
            CloudAction::Rename { .. }
            | CloudAction::SetSecurityGroups { .. }
            | CloudAction::SetTerminationProtection { .. }
            | CloudAction::SetCamRole { .. }
            | CloudAction::SetHostName { .. }
            | CloudAction::SetUserData => {
                let req = r::modify_request(ids, action, values).map_err(invalid(action))?;
                self.call::<ModifyInstancesAttribute>(c, &req).await
            }
            CloudAction::SetTags { replace, delete } => {
                let uin = self.uin(creds, region).await?;
                let req = r::modify_tags(region, &uin, &ids, replace, delete);
                self.call::<tag::ModifyResourceTags>(c, &req).await
            }
            CloudAction::SetProject { project_id } => {
                let req = r::project(ids, *project_id);
                self.call::<ModifyInstancesProject>(c, &req).await
            }
            CloudAction::ConvertToPrepaid { period, renew_flag } => {
                let req = r::to_prepaid(ids, *period, renew_flag);
                self.call::<ModifyInstancesChargeType>(c, &req).await
            }
            CloudAction::SetRenewFlag { flag } => {
                let req = r::renew_flag(ids, flag);
                self.call::<ModifyInstancesRenewFlag>(c, &req).await
            }
            CloudAction::GrowDisk { disk, size, online } => {
                let req = r::grow_disk(&ids, disk, *size, *online);
                self.call::<ResizeInstanceDisks>(c, &req).await
            }
            CloudAction::SetPlacementGroup { ids: groups } => {
                let req = r::placement_group(ids, groups);
                self.call::<ModifyInstancesDisasterRecoverGroup>(c, &req)
                    .await
            }
            CloudAction::DetachKeyPairs { ids: keys } => {
                let req = r::key_pairs(ids, keys);
                self.call::<DisassociateInstancesKeyPairs>(c, &req).await
            }
            CloudAction::AttachKeyPairs { ids: keys } => {
                let req = r::key_pairs(ids, keys);
                self.call::<AssociateInstancesKeyPairs>(c, &req).await
            }
            CloudAction::ResetPassword => {
                let req = r::reset_password(ids, values).map_err(invalid(action))?;
                self.call::<ResetInstancesPassword>(c, &req).await
            }
            CloudAction::MoveNetwork { to } => {
                let req = r::move_network(ids, to);
                self.call::<ModifyInstancesVpcAttribute>(c, &req).await
            }
            CloudAction::Reinstall { .. } => {
                let req = r::reinstall(&ids, action, values);
                self.call::<ResetInstance>(c, &req).await
            }
            CloudAction::Restart { stop_type, .. } => {
                self.call::<RebootInstances>(c, &r::reboot(ids, *stop_type))
                    .await
            }
            CloudAction::Terminate => self.call::<TerminateInstances>(c, &r::terminate(ids)).await,
        }
    }

    /// Whether instance `id` may change to `want`: see [`check_type`].
    pub async fn check_type(
        &self,
        creds: &Credentials,
        region: &str,
        id: &str,
        want: &str,
    ) -> Result<TypeCheck, CloudError> {
        check_type(&self.client, creds, (region, id), want).await
    }

    /// The account's uin (for Tag service resource names), asked of STS
    /// once per credentials (keyed by their identity, never the bare
    /// SecretId).
    async fn uin(&self, creds: &Credentials, region: &str) -> Result<String, CloudError> {
        let key = Identity::of_static(creds);
        if let Some(uin) = self
            .uins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(uin.clone());
        }
        let reply = self
            .client
            .call::<sts::GetCallerIdentity>(creds, region, &Default::default())
            .await?;
        let uin = reply.body.account_id.unwrap_or_default();
        if uin.is_empty() {
            return Err(CloudError::Decode {
                action: sts::GetCallerIdentity::NAME.into(),
                detail: "no AccountId in the answer".into(),
                request_id: Some(reply.request_id),
            });
        }
        self.uins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, uin.clone());
        Ok(uin)
    }

    /// Makes instance `id` (in account `uin`) `owner`'s — an adoption: see
    /// [`claim_tags`]. Returns the RequestId.
    pub async fn claim(
        &self,
        creds: &Credentials,
        region: &str,
        uin: &str,
        id: &str,
        owner: &CvmInstance,
    ) -> Result<String, CloudError> {
        let req = requests::modify_tags(region, uin, &[id.to_string()], &claim_tags(owner), &[]);
        self.call::<tag::ModifyResourceTags>((creds, region), &req)
            .await
    }

    async fn call<A: model::Action>(
        &self,
        (creds, region): (&Credentials, &str),
        req: &A::Request,
    ) -> Result<String, CloudError> {
        Ok(self.client.call::<A>(creds, region, req).await?.request_id)
    }
}

/// Whether instance `id` may change to `want` (DescribeInstancesModification,
/// a read): asked before any stop for a type change, and by `plan`.
pub async fn check_type(
    client: &CvmClient,
    creds: &Credentials,
    (region, id): (&str, &str),
    want: &str,
) -> Result<TypeCheck, CloudError> {
    let req = model::DescribeInstancesModificationRequest {
        instance_ids: vec![id.to_string()],
        filters: None,
    };
    let reply = client
        .call::<model::DescribeInstancesModification>(creds, region, &req)
        .await?;
    let offered = reply
        .body
        .instance_type_config_status_set
        .unwrap_or_default();
    Ok(requests::type_check(&offered, want))
}

/// A request that could not be built (a value the step needs is missing).
fn invalid(action: &CloudAction) -> impl Fn(&'static str) -> CloudError + '_ {
    move |detail| CloudError::InvalidRequest {
        action: action.api_action().into(),
        detail: detail.into(),
    }
}

/// The tags an adoption writes: the owner's UID and name. The instance's
/// namespace tag — the adoption proof, set by whoever controls the account —
/// is left as it is.
pub fn claim_tags(owner: &CvmInstance) -> Vec<(String, String)> {
    vec![
        (api::UID_TAG.into(), owner.uid().unwrap_or_default()),
        (api::NAME_TAG.into(), owner.name_any()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adoption_tags_the_uid_and_name_and_leaves_the_proof() {
        let owner: CvmInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "u-1"},
            "spec": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3",
                     "imageId": "img-pi0ii46r", "instanceType": "S5.MEDIUM4"},
        }))
        .unwrap();
        let tags = claim_tags(&owner);
        let req = requests::modify_tags(
            "ap-guangzhou",
            "100000000001",
            &["ins-abcdefgh".into()],
            &tags,
            &[],
        );
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"Resource": "qcs::cvm:ap-guangzhou:uin/100000000001:instance/ins-abcdefgh",
                   "ReplaceTags": [{"TagKey": "cvm.tencentcloud.io/uid", "TagValue": "u-1"},
                                   {"TagKey": "cvm.tencentcloud.io/name", "TagValue": "web"}]})
        );
    }
}
