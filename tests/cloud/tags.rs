//! The Tag service through the client: its own service name, version and
//! credential scope (the simulator routes it by action, like STS), the
//! resource name built from the caller's uin (STS GetCallerIdentity), the
//! change visible in DescribeInstances, and the documented refusals.

use super::*;
use cvm_operator::cloud::model::Action;
use cvm_operator::cloud::sts;
use cvm_operator::cloud::tag::{self, ModifyResourceTagsRequest, Tag, TagKeyObject};

/// ModifyResourceTags with any JSON body, in service `tag` at a version.
struct Untyped<const V: u8>;
const TAG_VERSION: u8 = 0;
const CVM_VERSION: u8 = 1;
impl<const V: u8> Action for Untyped<V> {
    const NAME: &'static str = "ModifyResourceTags";
    const SERVICE: &'static str = tag::SERVICE;
    const VERSION: &'static str = if V == TAG_VERSION {
        tag::API_VERSION
    } else {
        model::API_VERSION
    };
    type Request = serde_json::Value;
    type Response = model::EmptyResponse;
}

async fn my_uin(c: &CvmClient) -> String {
    c.call::<sts::GetCallerIdentity>(&creds(), REGION, &Default::default())
        .await
        .unwrap()
        .body
        .account_id
        .expect("an account id")
}

fn tags_of(i: &model::Instance) -> Vec<(String, String)> {
    i.tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

#[tokio::test]
async fn modify_resource_tags_changes_what_describe_instances_shows() {
    for method in [HttpMethod::Post, HttpMethod::Get] {
        let sim = start(fast_config()).await;
        let c = client_for(&sim, |cfg| cfg.method = method);
        let id = run_one(&c, "tagged").await;
        let resource = tag::instance_resource(REGION, &my_uin(&c).await, &id);
        let req = ModifyResourceTagsRequest {
            resource: resource.clone(),
            replace_tags: Some(vec![Tag::new("env", "prod"), Tag::new("team", "search")]),
            delete_tags: None,
        };
        let reply = c
            .call::<tag::ModifyResourceTags>(&creds(), REGION, &req)
            .await
            .unwrap();
        assert!(!reply.request_id.is_empty());
        let seen = describe(&c, &id).await.unwrap();
        assert_eq!(
            tags_of(&seen),
            [("team", "search"), ("env", "prod")].map(|(k, v)| (k.to_string(), v.to_string())),
            "{method:?}"
        );
        let remove = ModifyResourceTagsRequest {
            resource,
            replace_tags: None,
            delete_tags: Some(vec![TagKeyObject {
                tag_key: "team".into(),
            }]),
        };
        c.call::<tag::ModifyResourceTags>(&creds(), REGION, &remove)
            .await
            .unwrap();
        let listed = c
            .call::<tag::DescribeResourceTagsByResourceIds>(
                &creds(),
                REGION,
                &tag::DescribeResourceTagsByResourceIdsRequest {
                    service_type: "cvm".into(),
                    resource_prefix: "instance".into(),
                    resource_ids: vec![id.clone()],
                    resource_region: REGION.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .body;
        let keys: Vec<_> = listed
            .tags
            .unwrap()
            .into_iter()
            .filter_map(|t| t.tag_key)
            .collect();
        assert_eq!(keys, ["env"], "{method:?}");
        let stats = sim.sim.stats();
        assert_eq!(stats.calls("ModifyResourceTags"), 2);
        assert_eq!(stats.calls("DescribeResourceTagsByResourceIds"), 1);
    }
}

#[tokio::test]
async fn tag_refusals_come_back_as_api_errors_and_are_not_retried() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let id = run_one(&c, "tagged").await;
    let uin = my_uin(&c).await;
    let eleven = (0..11).map(|i| Tag::new(format!("k{i}"), "v")).collect();
    let cases = [
        (
            tag::instance_resource(REGION, &uin, &id),
            Some(eleven),
            "InvalidParameter.Tag",
        ),
        (
            tag::instance_resource(REGION, "100000000077", &id),
            Some(vec![Tag::new("a", "1")]),
            "InvalidParameterValue.ResourceDescriptionError",
        ),
        (
            tag::instance_resource(REGION, &uin, "ins-00000000"),
            Some(vec![Tag::new("a", "1")]),
            "ResourceNotFound",
        ),
        (
            tag::instance_resource(REGION, &uin, &id),
            Some(vec![Tag::new("tencent:x", "1")]),
            "InvalidParameter.ReservedTagKey",
        ),
    ];
    for (resource, replace_tags, code) in cases {
        let req = ModifyResourceTagsRequest {
            resource,
            replace_tags,
            delete_tags: None,
        };
        let err = c
            .call::<tag::ModifyResourceTags>(&creds(), REGION, &req)
            .await
            .unwrap_err();
        assert_eq!(api_code(&err), code);
    }
    // A member the Tag service does not have is refused by name, and a Tag
    // action under CVM's version is another service's.
    let bogus = serde_json::json!({"Resource": "x", "Tags": []});
    let err = c
        .call::<Untyped<TAG_VERSION>>(&creds(), REGION, &bogus)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnknownParameter");
    let err = c
        .call::<Untyped<CVM_VERSION>>(&creds(), REGION, &serde_json::json!({"Resource": "x"}))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "NoSuchVersion");
    assert_eq!(sim.sim.stats().calls("ModifyResourceTags"), 6);
    assert!(
        tags_of(&describe(&c, &id).await.unwrap())
            .iter()
            .all(|(k, _)| k == "team")
    );
}
