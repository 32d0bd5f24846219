//! `cvm-operator import`: CvmInstance manifests for instances that already
//! exist, so a team can adopt what it runs (with `spec.instanceId` set).
//!
//! Adopting needs a proof only whoever controls the cloud account can give:
//! the tag `cvm.tencentcloud.io/namespace=<namespace>` on the instance. The
//! import runs with that account's keys, so it sets the tag on every instance
//! it prints (and skips, with a comment, those already given to another
//! namespace). The manifests say `deletionPolicy: Retain` unless asked
//! otherwise.

use crate::api::{
    self, CvmInstance, CvmInstanceSpec, DeletionPolicy, InstanceChargeType, ManagementPolicy,
    RunState,
};
use crate::cloud::model::{Filter, Instance, InstanceState};
use crate::cloud::{CloudError, Credentials, CvmClient, sts, tag};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub region: String,
    pub namespace: String,
    pub filters: Vec<Filter>,
    pub deletion_policy: DeletionPolicy,
    pub management_policy: ManagementPolicy,
}

/// A DNS-1123 name from the instance name, falling back to the id.
pub fn resource_name(i: &Instance) -> String {
    let raw = i
        .instance_name
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        return i.id().to_string();
    }
    let mut name = name;
    name.truncate(50);
    format!(
        "{}-{}",
        name.trim_end_matches('-'),
        i.id().trim_start_matches("ins-")
    )
}

/// The manifest adopting one instance.
pub fn manifest(i: &Instance, opts: &ImportOptions) -> Option<CvmInstance> {
    let state = i.instance_state.clone()?;
    if matches!(
        state,
        InstanceState::Terminating | InstanceState::LaunchFailed
    ) {
        return None;
    }
    let charge = match i.instance_charge_type.as_deref() {
        Some("PREPAID") => InstanceChargeType::PREPAID,
        Some("SPOTPAID") => InstanceChargeType::SPOTPAID,
        _ => InstanceChargeType::POSTPAID_BY_HOUR,
    };
    let tags: BTreeMap<String, String> = i
        .tags
        .iter()
        .flatten()
        .filter(|t| !t.key.starts_with("cvm.tencentcloud.io/"))
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    let spec_json = serde_json::json!({
        "region": opts.region,
        "zone": i.zone().unwrap_or_default(),
        "imageId": i.image_id.clone().unwrap_or_default(),
        "instanceType": i.instance_type.clone().unwrap_or_default(),
        "instanceChargeType": charge,
        "prepaid": (charge == InstanceChargeType::PREPAID).then(|| serde_json::json!({
            "period": 1,
            "renewFlag": i.renew_flag.clone().unwrap_or_else(|| "NOTIFY_AND_MANUAL_RENEW".into()),
        })),
        "instanceName": i.instance_name,
        "instanceId": i.id(),
        "runState": if state == InstanceState::Stopped { RunState::Stopped } else { RunState::Running },
        "internetAccessible": i.internet_accessible.as_ref().map(|ia| serde_json::json!({
            "internetMaxBandwidthOut": ia.internet_max_bandwidth_out.unwrap_or(0),
        })),
        "securityGroupIds": i.security_group_ids.clone().filter(|s| !s.is_empty()),
        "tags": (!tags.is_empty()).then_some(tags),
        "deletionPolicy": opts.deletion_policy,
        "managementPolicy": opts.management_policy,
    });
    let mut spec_json = spec_json;
    if let serde_json::Value::Object(m) = &mut spec_json {
        m.retain(|_, v| !v.is_null());
    }
    let spec: CvmInstanceSpec = serde_json::from_value(spec_json).ok()?;
    let mut cr = CvmInstance::new(&resource_name(i), spec);
    cr.metadata.namespace = Some(opts.namespace.clone());
    Some(cr)
}

/// Every instance of the region (matching the filters), as YAML documents.
pub async fn import(
    client: &CvmClient,
    creds: &Credentials,
    opts: &ImportOptions,
) -> Result<String, CloudError> {
    let instances = client
        .describe_instances_filtered(creds, &opts.region, opts.filters.clone())
        .await?;
    let mut out = String::new();
    let mut uin = None;
    for i in &instances {
        let Some(cr) = manifest(i, opts) else {
            continue;
        };
        match i.tag(api::NAMESPACE_TAG) {
            Some(ns) if ns == opts.namespace => {}
            Some(ns) => {
                out.push_str(&format!(
                    "# {} skipped: given to namespace {ns} (tag {})\n",
                    i.id(),
                    api::NAMESPACE_TAG
                ));
                continue;
            }
            None => {
                if uin.is_none() {
                    uin = Some(account_of(client, creds).await?);
                }
                let uin = uin.as_deref().unwrap_or_default();
                give(client, creds, &opts.region, uin, i.id(), &opts.namespace).await?;
            }
        }
        let mut value = serde_json::to_value(&cr).expect("serialisable");
        if let serde_json::Value::Object(m) = &mut value {
            m.remove("status");
        }
        out.push_str("---\n");
        out.push_str(&format!(
            "# {} ({}, {})\n",
            i.id(),
            i.instance_state.as_ref().map(|s| s.as_str()).unwrap_or(""),
            i.zone().unwrap_or("")
        ));
        out.push_str(&serde_saphyr::to_string(&value).expect("serialisable"));
    }
    Ok(out)
}

/// The account (UIN) the credentials act in.
async fn account_of(client: &CvmClient, creds: &Credentials) -> Result<String, CloudError> {
    let request = sts::GetCallerIdentityRequest::default();
    let reply = client
        .call::<sts::GetCallerIdentity>(creds, sts::DEFAULT_REGION, &request)
        .await?;
    Ok(reply.body.account_id.unwrap_or_default())
}

/// Gives instance `id` to `namespace`: the adoption proof tag.
async fn give(
    client: &CvmClient,
    creds: &Credentials,
    region: &str,
    uin: &str,
    id: &str,
    namespace: &str,
) -> Result<(), CloudError> {
    let request = tag::ModifyResourceTagsRequest {
        resource: tag::instance_resource(region, uin, id),
        replace_tags: Some(vec![tag::Tag::new(api::NAMESPACE_TAG, namespace)]),
        delete_tags: None,
    };
    client
        .call::<tag::ModifyResourceTags>(creds, region, &request)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model;

    #[test]
    fn manifests_adopt_by_id_and_pass_admission_rules() {
        let i: Instance = serde_json::from_value(serde_json::json!({
            "InstanceId": "ins-abcd1234", "InstanceState": "STOPPED", "InstanceType": "S5.MEDIUM4",
            "InstanceName": "Web Server #1", "InstanceChargeType": "POSTPAID_BY_HOUR",
            "Placement": {"Zone": "ap-guangzhou-3"}, "ImageId": "img-pi0ii46r",
            "InternetAccessible": {"InternetMaxBandwidthOut": 5}, "SecurityGroupIds": ["sg-gz000001"],
            "Tags": [{"Key": "team", "Value": "web"}, {"Key": "cvm.tencentcloud.io/uid", "Value": "x"}]
        }))
        .unwrap();
        let opts = ImportOptions {
            region: "ap-guangzhou".into(),
            namespace: "prod".into(),
            filters: vec![],
            deletion_policy: DeletionPolicy::Retain,
            management_policy: ManagementPolicy::Full,
        };
        let cr = manifest(&i, &opts).unwrap();
        assert_eq!(cr.metadata.name.as_deref(), Some("web-server-1-abcd1234"));
        assert_eq!(cr.spec.instance_id.as_deref(), Some("ins-abcd1234"));
        assert_eq!(cr.spec.run_state, RunState::Stopped);
        assert_eq!(cr.spec.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(
            cr.spec.tags.as_ref().unwrap().len(),
            1,
            "reserved tags are dropped"
        );
        assert_eq!(
            cr.spec
                .internet_accessible
                .as_ref()
                .unwrap()
                .internet_max_bandwidth_out,
            5
        );
        assert!(cr.validate_cel().is_ok(), "{:?}", cr.validate_cel());
        let terminating = Instance {
            instance_state: Some(model::InstanceState::Terminating),
            ..i
        };
        assert!(manifest(&terminating, &opts).is_none());
    }
}
