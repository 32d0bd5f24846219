//! A set's launches in the cloud: the RunInstances request of one journal
//! entry (pure), and the lookup that finds a launch by its tags when its
//! answer was lost.

use super::journal::name_pattern;
use crate::api::set::{BATCH_TAG, CvmInstanceSet, LaunchBatch, SET_TAG};
use crate::api::{self, CvmInstance};
use crate::cloud::model::{self, Filter};
use crate::cloud::{CloudError, Credentials, CvmClient};
use crate::controller::act::{self, SecretValues};
use kube::ResourceExt;

/// The instance name prefix of a set's members: the template's
/// `instanceName`, else the set's name (so instances are named like members).
pub fn prefix(set: &CvmInstanceSet) -> String {
    set.spec
        .template
        .spec
        .instance_name
        .clone()
        .unwrap_or_else(|| set.name_any())
}

/// The set as a stand-in member: what credentials, Secrets and the request
/// builder read (namespace, UID, template spec).
pub fn prototype(set: &CvmInstanceSet) -> CvmInstance {
    let mut proto = CvmInstance::new(&set.name_any(), set.spec.template.spec.clone());
    proto.metadata.namespace = set.namespace();
    proto.metadata.uid = set.uid();
    proto
}

/// RunInstances for one launch: the member request of the template, for
/// `count` instances named by the pattern, with the launch's token, and
/// tagged with the set, the launch and the namespace (the proof that makes
/// each instance its member's without a tag write per instance).
pub fn run_request(
    set: &CvmInstanceSet,
    batch: &LaunchBatch,
    secrets: &SecretValues,
) -> model::RunInstancesRequest {
    let mut req = act::run_request(&prototype(set), secrets);
    req.instance_count = Some(i64::from(batch.count));
    req.instance_name = Some(name_pattern(&prefix(set), batch.first_index));
    req.client_token = Some(batch.client_token.clone());
    let tag = |key: &str, value: String| model::Tag {
        key: key.into(),
        value,
    };
    for spec in req.tag_specification.iter_mut().flatten() {
        // The stand-in's own tags name the set, not a member.
        spec.tags
            .retain(|t| t.key != api::UID_TAG && t.key != api::NAME_TAG);
        spec.tags.push(tag(SET_TAG, set.uid().unwrap_or_default()));
        spec.tags.push(tag(BATCH_TAG, batch.seq.to_string()));
    }
    req
}

/// The instances of launch `seq` of set `set_uid` that the cloud lists,
/// as (id, name). Terminating ones do not count: they are not the launch's
/// to adopt.
pub async fn find(
    client: &CvmClient,
    creds: &Credentials,
    region: &str,
    set_uid: &str,
    seq: i64,
) -> Result<Vec<(String, String)>, CloudError> {
    let filters = vec![
        Filter::new(format!("tag:{SET_TAG}"), &[set_uid.to_string()]),
        Filter::new(format!("tag:{BATCH_TAG}"), &[seq.to_string()]),
    ];
    let found = client
        .describe_instances_filtered(creds, region, filters)
        .await?;
    Ok(found
        .iter()
        .filter(|i| i.instance_state != Some(model::InstanceState::Terminating))
        .map(|i| {
            let name = i.instance_name.clone().unwrap_or_default();
            (i.id().to_string(), name)
        })
        .collect())
}

/// The names of `ids` as the cloud lists them, as (id, name).
pub async fn names(
    client: &CvmClient,
    creds: &Credentials,
    region: &str,
    ids: &[String],
) -> Result<Vec<(String, String)>, CloudError> {
    let found = client.describe_instances_by_ids(creds, region, ids).await?;
    Ok(found
        .iter()
        .map(|i| {
            (
                i.id().to_string(),
                i.instance_name.clone().unwrap_or_default(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::set::BatchState;
    use serde_json::json;

    #[test]
    fn a_launch_is_one_call_for_its_members_tagged_with_the_set() {
        let set: CvmInstanceSet = serde_json::from_value(json!({
            "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstanceSet",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "set-uid"},
            "spec": {"replicas": 250, "template": {"spec": {
                "region": "ap-guangzhou", "zone": "ap-guangzhou-3",
                "imageId": "img-pi0ii46r", "instanceType": "S5.MEDIUM4",
                "tags": {"team": "web"}}}},
        }))
        .unwrap();
        let batch = LaunchBatch {
            seq: 3,
            count: 50,
            first_index: 200,
            client_token: "cvmset-set-uid-3".into(),
            state: BatchState::Pending,
            instance_ids: vec![],
            template_hash: "h".into(),
            account: None,
            time: None,
        };
        let req = run_request(&set, &batch, &SecretValues::default());
        assert_eq!(req.instance_count, Some(50));
        assert_eq!(req.instance_name.as_deref(), Some("web-{R:200}"));
        assert_eq!(req.client_token.as_deref(), Some("cvmset-set-uid-3"));
        let mut tags: Vec<(String, String)> = req.tag_specification.unwrap()[0]
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        tags.sort();
        let want: Vec<(String, String)> = [
            (BATCH_TAG, "3"),
            (api::NAMESPACE_TAG, "team-a"),
            (SET_TAG, "set-uid"),
            ("team", "web"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, want);
    }
}
