//! Wire types of the Tag service (`tag`, version `2018-08-13`, host
//! `tag.tencentcloudapi.com`): the tags of an existing instance are changed
//! here, not through CVM (RunInstances only sets them at creation). Shared by
//! the client and the simulator; the same conventions as [`super::model`]
//! (required request members are plain fields, unknown ones are refused,
//! every response member is optional). `sim::conformance` checks every
//! member against the official `tag/v20180813/api.json`.

use super::model::{Action, EmptyResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "tag";
pub const API_VERSION: &str = "2018-08-13";

/// Tags one ModifyResourceTags call may replace, and may delete (api.json:
/// 标签数量不超过10个, for each of the two lists).
pub const MAX_TAGS_PER_CALL: usize = 10;
/// Resource ids one DescribeResourceTagsByResourceIds call may name.
pub const MAX_RESOURCE_IDS: usize = 50;

/// A tag key and value (`Tag` in the Tag service's schema; CVM's own `Tag`
/// spells the members `Key`/`Value`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
    /// `Custom` or `System`; requests leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            tag_key: key.into(),
            tag_value: value.into(),
            category: None,
        }
    }
}

/// A tag key to detach (`TagKeyObject`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TagKeyObject {
    pub tag_key: String,
}

/// Sets and removes tags of one resource. `ReplaceTags` adds a key or
/// overwrites its value; `DeleteTags` detaches keys. At least one of the
/// two, neither empty, at most [`MAX_TAGS_PER_CALL`] each, no key in both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyResourceTagsRequest {
    /// The six-part resource name, [`instance_resource`] for an instance.
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_tags: Option<Vec<TagKeyObject>>,
}

pub struct ModifyResourceTags;
impl Action for ModifyResourceTags {
    const NAME: &'static str = "ModifyResourceTags";
    const SERVICE: &'static str = SERVICE;
    const VERSION: &'static str = API_VERSION;
    type Request = ModifyResourceTagsRequest;
    type Response = EmptyResponse;
    /// Setting values and removing keys twice is the same as once.
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeResourceTagsByResourceIdsRequest {
    /// The product, third part of the resource name: `cvm`.
    pub service_type: String,
    /// The resource kind: `instance`.
    pub resource_prefix: String,
    /// At most [`MAX_RESOURCE_IDS`].
    pub resource_ids: Vec<String>,
    pub resource_region: String,
    /// A multiple of `Limit`; 0 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// 15 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `Custom`, `System` or `All` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// One tag of one resource (`TagResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResource {
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub resource_id: Option<String>,
    pub tag_key_md5: Option<String>,
    pub tag_value_md5: Option<String>,
    pub service_type: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeResourceTagsByResourceIdsResponse {
    pub total_count: Option<u64>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub tags: Option<Vec<TagResource>>,
}

pub struct DescribeResourceTagsByResourceIds;
impl Action for DescribeResourceTagsByResourceIds {
    const NAME: &'static str = "DescribeResourceTagsByResourceIds";
    const SERVICE: &'static str = SERVICE;
    const VERSION: &'static str = API_VERSION;
    type Request = DescribeResourceTagsByResourceIdsRequest;
    type Response = DescribeResourceTagsByResourceIdsResponse;
    fn idempotent(_: &Self::Request) -> bool {
        true
    }
}

/// Every Tag service action the client and the simulator know.
pub const ACTIONS: &[&str] = &[
    ModifyResourceTags::NAME,
    DescribeResourceTagsByResourceIds::NAME,
];

/// The six-part name of a CVM instance, as ModifyResourceTags takes it:
/// `qcs::cvm:<region>:uin/<uin>:instance/<id>` (the account's uin, from
/// STS GetCallerIdentity's `AccountId`).
pub fn instance_resource(region: &str, uin: &str, instance_id: &str) -> String {
    format!("qcs::cvm:{region}:uin/{uin}:instance/{instance_id}")
}

/// The parts of a six-part resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub uin: &'a str,
    pub prefix: &'a str,
    pub id: &'a str,
}

/// Parses `qcs::<service>:<region>:uin/<uin>:<prefix>/<id>`; `None` when it
/// is not of that form (the region may be empty for global resources).
pub fn parse_resource(name: &str) -> Option<ResourceName<'_>> {
    let rest = name.strip_prefix("qcs::")?;
    let mut parts = rest.splitn(4, ':');
    let (service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let uin = account.strip_prefix("uin/")?;
    let (prefix, id) = resource.split_once('/')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ok = word(service)
        && (region.is_empty() || word(region))
        && !uin.is_empty()
        && uin.bytes().all(|b| b.is_ascii_digit())
        && word(prefix)
        && word(id);
    ok.then_some(ResourceName {
        service,
        region,
        uin,
        prefix,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_requests_round_trip() {
        // api.json's example of ModifyResourceTags, member for member.
        let body = r#"{"Resource":"qcs::cvm:ap-beijing:uin/1234567:instance/ins-123","ReplaceTags":[{"TagKey":"testTagKey2","TagValue":"testTagValue2"},{"TagKey":"testTagKey1","TagValue":"testTagValue1"}]}"#;
        let req: ModifyResourceTagsRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.replace_tags.as_ref().unwrap()[1].tag_key, "testTagKey1");
        assert_eq!(serde_json::to_string(&req).unwrap(), body);
        let delete = ModifyResourceTagsRequest {
            resource: instance_resource("ap-beijing", "1234567", "ins-123"),
            delete_tags: Some(vec![TagKeyObject {
                tag_key: "testTagKey2".into(),
            }]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&delete).unwrap(),
            r#"{"Resource":"qcs::cvm:ap-beijing:uin/1234567:instance/ins-123","DeleteTags":[{"TagKey":"testTagKey2"}]}"#
        );
        let err =
            serde_json::from_str::<ModifyResourceTagsRequest>(r#"{"Resource":"x","Tags":[]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `Tags`"));
    }

    #[test]
    fn the_documented_answer_decodes() {
        let body = r#"{"TotalCount": 1, "Offset": 0, "Limit": 15, "Tags": [{"ServiceType": "cvm",
            "TagKey": "testKey", "TagValue": "字符串", "TagKeyMd5": "cc4d", "TagValueMd5": "cc4d",
            "ResourceId": "ins-1234"}], "RequestId": "34bdd6cc"}"#;
        let r: DescribeResourceTagsByResourceIdsResponse = serde_json::from_str(body).unwrap();
        let t = &r.tags.unwrap()[0];
        assert_eq!(t.tag_value.as_deref(), Some("字符串"));
        assert_eq!(t.resource_id.as_deref(), Some("ins-1234"));
        assert_eq!(r.limit, Some(15));
    }

    #[test]
    fn resource_names_are_built_and_parsed() {
        let name = instance_resource("ap-guangzhou", "100000000001", "ins-abcd1234");
        assert_eq!(
            name,
            "qcs::cvm:ap-guangzhou:uin/100000000001:instance/ins-abcd1234"
        );
        assert_eq!(
            parse_resource(&name),
            Some(ResourceName {
                service: "cvm",
                region: "ap-guangzhou",
                uin: "100000000001",
                prefix: "instance",
                id: "ins-abcd1234",
            })
        );
        for bad in [
            "",
            "ins-abcd1234",
            "qcs::cvm:ap-guangzhou:uin/abc:instance/ins-1",
            "qcs::cvm:ap-guangzhou:100000000001:instance/ins-1",
            "qcs::cvm:ap-guangzhou:uin/1:instance",
            "qcs::cvm:ap-guangzhou:uin/1:instance/",
            "qcs:cvm:ap-guangzhou:uin/1:instance/ins-1",
            "qcs::cvm:ap guangzhou:uin/1:instance/ins-1",
        ] {
            assert_eq!(parse_resource(bad), None, "{bad}");
        }
    }
}
