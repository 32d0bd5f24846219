//! The Tag service on simulated instances: ModifyResourceTags' list rules and
//! error codes, the tag rules, the caller's account and region, and the
//! change showing in DescribeInstances at once.

use super::{ACCOUNT, REGION, Sim, instance_in, run_request};
use crate::cloud::model::{self, InstanceState};
use crate::cloud::tag::{self, ModifyResourceTagsRequest, Tag, TagKeyObject, instance_resource};
use crate::sim::engine::ApiError;

fn resource(id: &str) -> String {
    instance_resource(REGION, ACCOUNT, id)
}

fn replace(id: &str, tags: &[(&str, &str)]) -> ModifyResourceTagsRequest {
    ModifyResourceTagsRequest {
        resource: resource(id),
        replace_tags: Some(tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect()),
        ..Default::default()
    }
}

fn delete(keys: &[&str]) -> Option<Vec<TagKeyObject>> {
    Some(
        keys.iter()
            .map(|k| TagKeyObject {
                tag_key: k.to_string(),
            })
            .collect(),
    )
}

fn modify(sim: &mut Sim, req: ModifyResourceTagsRequest) -> Result<(), ApiError> {
    let ctx = sim.ctx();
    sim.engine.modify_resource_tags(&ctx, req)
}

/// The instance's tags as DescribeInstances answers them.
fn described_tags(sim: &Sim, id: &str) -> Vec<(String, String)> {
    let ctx = sim.ctx();
    let req = model::DescribeInstancesRequest {
        instance_ids: Some(Sim::ids(id)),
        ..Default::default()
    };
    let view = sim.engine.describe_instances(&ctx, req).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&serde_json::to_vec(&view).unwrap()).unwrap();
    json["InstanceSet"][0]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_string(),
                t["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn replace_adds_or_overwrites_and_delete_detaches_visible_in_describe_instances() {
    let mut sim = Sim::new();
    let id = sim
        .run(model::RunInstancesRequest {
            tag_specification: Some(vec![model::TagSpecification {
                resource_type: "instance".into(),
                tags: vec![model::Tag {
                    key: "team".into(),
                    value: "payments".into(),
                }],
            }]),
            ..run_request()
        })
        .unwrap();
    sim.settle();
    let before = sim.view(&id).latest_operation.clone();
    modify(
        &mut sim,
        replace(&id, &[("env", "prod"), ("team", "search")]),
    )
    .unwrap();
    assert_eq!(
        described_tags(&sim, &id),
        pairs(&[("team", "search"), ("env", "prod")]),
        "an existing key keeps its place, a new one is appended"
    );
    let both = ModifyResourceTagsRequest {
        delete_tags: delete(&["team", "absent"]),
        ..replace(&id, &[("cost-center", "42")])
    };
    modify(&mut sim, both).unwrap();
    assert_eq!(
        described_tags(&sim, &id),
        pairs(&[("env", "prod"), ("cost-center", "42")]),
        "deleting a key the resource does not have is no error"
    );
    assert_eq!(
        sim.view(&id).latest_operation,
        before,
        "a tag change is not a CVM operation"
    );
}

#[test]
fn the_lists_rules_and_their_codes() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Running);
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cases: Vec<(ModifyResourceTagsRequest, &str)> = vec![
        (
            ModifyResourceTagsRequest {
                resource: resource(&id),
                ..Default::default()
            },
            "MissingParameter",
        ),
        (replace(&id, &[]), "InvalidParameter.Tag"),
        (
            ModifyResourceTagsRequest {
                delete_tags: Some(vec![]),
                resource: resource(&id),
                ..Default::default()
            },
            "InvalidParameter.Tag",
        ),
        (replace(&id, &eleven), "InvalidParameter.Tag"),
        (
            replace(&id, &[("a", "1"), ("a", "2")]),
            "InvalidParameter.Tag",
        ),
        (
            ModifyResourceTagsRequest {
                delete_tags: delete(&["a"]),
                ..replace(&id, &[("a", "1")])
            },
            "InvalidParameterValue.DeleteTagsParamError",
        ),
        (
            replace(&id, &[("qcloud:x", "1")]),
            "InvalidParameter.ReservedTagKey",
        ),
        (
            replace(&id, &[("", "1")]),
            "InvalidParameterValue.TagKeyEmpty",
        ),
        (
            replace(&id, &[(&"k".repeat(128), "1")]),
            "InvalidParameterValue.TagKeyLengthExceeded",
        ),
        (
            replace(&id, &[("a#b", "1")]),
            "InvalidParameterValue.TagKeyCharacterIllegal",
        ),
        (
            replace(&id, &[("a", &"v".repeat(256))]),
            "InvalidParameterValue.TagValueLengthExceeded",
        ),
        (
            replace(&id, &[("a", "x;y")]),
            "InvalidParameterValue.TagValueCharacterIllegal",
        ),
    ];
    for (req, code) in cases {
        let shown = format!("{req:?}");
        let err = modify(&mut sim, req).expect_err(&shown);
        assert_eq!(err.code, code, "{shown}: {}", err.message);
    }
    assert!(described_tags(&sim, &id).is_empty(), "nothing was applied");
    // Ten is the limit per list, and an empty value is a value.
    modify(&mut sim, replace(&id, &eleven[..10])).unwrap();
    modify(&mut sim, replace(&id, &[("empty", "")])).unwrap();
    assert_eq!(described_tags(&sim, &id).len(), 11);
}

#[test]
fn a_resource_carries_at_most_fifty_tags() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Stopped);
    for batch in 0..5 {
        let tags: Vec<(String, String)> = (0..10)
            .map(|i| (format!("k{batch}-{i}"), "v".into()))
            .collect();
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        modify(&mut sim, replace(&id, &tags)).unwrap();
    }
    let err = modify(&mut sim, replace(&id, &[("one-more", "v")])).unwrap_err();
    assert_eq!(err.code, "LimitExceeded.ResourceAttachedTags");
    // Overwriting and deleting in the same call stays within the limit.
    let swap = ModifyResourceTagsRequest {
        delete_tags: delete(&["k0-0"]),
        ..replace(&id, &[("one-more", "v"), ("k1-1", "w")])
    };
    modify(&mut sim, swap).unwrap();
    assert_eq!(described_tags(&sim, &id).len(), 50);
}

#[test]
fn only_the_callers_own_instances_in_the_named_region_can_be_tagged() {
    let mut sim = Sim::new();
    let id = instance_in(&mut sim, &InstanceState::Running);
    let cases = [
        (
            "ins-abcd1234".to_string(),
            "InvalidParameterValue.ResourceDescriptionError",
        ),
        (
            instance_resource(REGION, "100000000077", &id),
            "InvalidParameterValue.ResourceDescriptionError",
        ),
        (
            format!("qcs::cbs:{REGION}:uin/{ACCOUNT}:disk/disk-abcd1234"),
            "InvalidParameterValue.ResourceDescriptionError",
        ),
        (
            instance_resource("ap-shanghai", ACCOUNT, &id),
            "ResourceNotFound",
        ),
        (
            instance_resource(REGION, ACCOUNT, "ins-00000000"),
            "ResourceNotFound",
        ),
    ];
    for (resource, code) in cases {
        let req = ModifyResourceTagsRequest {
            resource: resource.clone(),
            ..replace(&id, &[("a", "1")])
        };
        let err = modify(&mut sim, req).expect_err(&resource);
        assert_eq!(err.code, code, "{resource}: {}", err.message);
    }
    // Another account's key cannot tag this instance even with the right uin.
    let other = sim.ctx_as("100000000077", REGION);
    let err = sim
        .engine
        .modify_resource_tags(&other, replace(&id, &[("a", "1")]))
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue.ResourceDescriptionError");
    assert!(described_tags(&sim, &id).is_empty());
}

#[test]
fn tags_can_change_in_any_state_and_during_an_operation() {
    for state in [
        InstanceState::Pending,
        InstanceState::Stopping,
        InstanceState::LaunchFailed,
        InstanceState::Shutdown,
    ] {
        let mut sim = Sim::new();
        let id = instance_in(&mut sim, &state);
        modify(&mut sim, replace(&id, &[("a", "1")])).unwrap();
        assert_eq!(described_tags(&sim, &id), pairs(&[("a", "1")]), "{state}");
    }
}

#[test]
fn describe_resource_tags_lists_each_tag_with_its_md5_page_by_page() {
    let mut sim = Sim::new();
    let a = instance_in(&mut sim, &InstanceState::Running);
    let b = instance_in(&mut sim, &InstanceState::Running);
    modify(
        &mut sim,
        replace(&a, &[("testKey", "字符串"), ("env", "prod")]),
    )
    .unwrap();
    modify(&mut sim, replace(&b, &[("env", "dev")])).unwrap();
    let ctx = sim.ctx();
    let req = |ids: Vec<String>, offset, limit| tag::DescribeResourceTagsByResourceIdsRequest {
        service_type: "cvm".into(),
        resource_prefix: "instance".into(),
        resource_ids: ids,
        resource_region: REGION.into(),
        offset,
        limit,
        category: None,
    };
    let all = sim
        .engine
        .describe_resource_tags_by_resource_ids(
            &ctx,
            req(
                vec![a.clone(), b.clone(), "ins-00000000".into()],
                None,
                None,
            ),
        )
        .unwrap();
    assert_eq!(
        (all.total_count, all.offset, all.limit),
        (Some(3), Some(0), Some(15))
    );
    let tags = all.tags.unwrap();
    let first = &tags[0];
    assert_eq!(first.resource_id.as_deref(), Some(a.as_str()));
    assert_eq!(first.tag_key.as_deref(), Some("testKey"));
    assert_eq!(first.tag_value.as_deref(), Some("字符串"));
    // md5("testKey"), as any md5 tool prints it.
    assert_eq!(
        first.tag_key_md5.as_deref(),
        Some("24afda34e3f74e54b61a8e4cbe921650")
    );
    assert_eq!(first.service_type.as_deref(), Some("cvm"));
    assert_eq!(tags[2].resource_id.as_deref(), Some(b.as_str()));
    let page = sim
        .engine
        .describe_resource_tags_by_resource_ids(
            &ctx,
            req(vec![a.clone(), b.clone()], Some(2), Some(2)),
        )
        .unwrap();
    assert_eq!(page.total_count, Some(3));
    assert_eq!(page.tags.unwrap().len(), 1);
    let bad = [
        (
            req(vec![a.clone()], Some(1), Some(2)),
            "InvalidParameterValue",
        ),
        (
            req(vec![], None, None),
            "InvalidParameterValue.ResourceIdInvalid",
        ),
        (
            req(vec![a.clone(); 51], None, None),
            "InvalidParameterValue.ResourceIdInvalid",
        ),
        (
            tag::DescribeResourceTagsByResourceIdsRequest {
                service_type: "cbs".into(),
                ..req(vec![a.clone()], None, None)
            },
            "InvalidParameterValue.ServiceTypeInvalid",
        ),
        (
            tag::DescribeResourceTagsByResourceIdsRequest {
                resource_prefix: "disk".into(),
                ..req(vec![a.clone()], None, None)
            },
            "InvalidParameterValue.ResourcePrefixInvalid",
        ),
        (
            tag::DescribeResourceTagsByResourceIdsRequest {
                resource_region: "mars-1".into(),
                ..req(vec![a.clone()], None, None)
            },
            "InvalidParameterValue.RegionInvalid",
        ),
    ];
    for (r, code) in bad {
        let shown = format!("{r:?}");
        let err = sim
            .engine
            .describe_resource_tags_by_resource_ids(&ctx, r)
            .expect_err(&shown);
        assert_eq!(err.code, code, "{shown}");
    }
}
