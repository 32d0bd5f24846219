//! The Tag service (`tag.tencentcloudapi.com`, 2018-08-13) on the simulated
//! instances: ModifyResourceTags and DescribeResourceTagsByResourceIds. The
//! tags are the instance's own (`Instance.Tags` in DescribeInstances shows
//! every change at once); a tag change is not a CVM operation, so it leaves
//! `LatestOperation*` alone and works in any instance state.
//!
//! Error codes are those of each action's list in the official SDK
//! (tencentcloud-sdk-go `tag/v20180813/client.go`); where the list has no
//! code of its own for a case, the list's general one is used
//! (`InvalidParameter.Tag` for "more than 10 tags", duplicate keys or an
//! empty list), and a resource that does not exist is the common
//! `ResourceNotFound`.

use super::checks::{MAX_TAGS_PER_RESOURCE, TagProblem, tag_problem};
use super::{ApiError, Ctx, Engine, SimInstance, api_err, missing};
use crate::cloud::model;
use crate::cloud::tag::{self, MAX_RESOURCE_IDS, MAX_TAGS_PER_CALL};
use md5::{Digest, Md5};
use std::collections::HashSet;

fn resource_error(resource: &str, why: &str) -> ApiError {
    api_err(
        "InvalidParameterValue.ResourceDescriptionError",
        format!("The resource description `{resource}` is invalid: {why}."),
    )
}

fn tag_error(why: impl Into<String>) -> ApiError {
    api_err("InvalidParameter.Tag", why)
}

/// A tag the Tag service refuses, with its codes.
fn check_tag(t: &tag::Tag) -> Result<(), ApiError> {
    use TagProblem::*;
    let Some(problem) = tag_problem(&t.tag_key, &t.tag_value) else {
        return Ok(());
    };
    let (code, what) = match problem {
        ReservedKey => (
            "InvalidParameter.ReservedTagKey",
            "keys starting with qcloud, tencent or project are reserved",
        ),
        EmptyKey => ("InvalidParameterValue.TagKeyEmpty", "the key is empty"),
        KeyTooLong => (
            "InvalidParameterValue.TagKeyLengthExceeded",
            "keys have at most 127 characters",
        ),
        KeyIllegal => (
            "InvalidParameterValue.TagKeyCharacterIllegal",
            "keys have letters, digits, spaces and +-=._:/@ only",
        ),
        ValueTooLong => (
            "InvalidParameterValue.TagValueLengthExceeded",
            "values have at most 255 characters",
        ),
        ValueIllegal => (
            "InvalidParameterValue.TagValueCharacterIllegal",
            "values have letters, digits, spaces and +-=._:/@ only",
        ),
    };
    Err(api_err(
        code,
        format!("The tag `{}` is invalid: {what}.", t.tag_key),
    ))
}

/// The keys of one of the two lists: given means not empty, at most
/// [`MAX_TAGS_PER_CALL`], each key once.
fn keys_of<'a>(
    list: &'a Option<Vec<impl AsRef<str> + 'a>>,
    name: &str,
) -> Result<Vec<&'a str>, ApiError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        return Err(tag_error(format!(
            "`{name}` may be left out, but not empty."
        )));
    }
    if list.len() > MAX_TAGS_PER_CALL {
        return Err(tag_error(format!(
            "`{name}` has {} tags; at most {MAX_TAGS_PER_CALL} per request.",
            list.len()
        )));
    }
    let mut seen = HashSet::new();
    for k in list {
        if !seen.insert(k.as_ref()) {
            return Err(tag_error(format!(
                "The tag key `{}` is given twice in `{name}`.",
                k.as_ref()
            )));
        }
    }
    Ok(list.iter().map(AsRef::as_ref).collect())
}

impl AsRef<str> for tag::Tag {
    fn as_ref(&self) -> &str {
        &self.tag_key
    }
}

impl AsRef<str> for tag::TagKeyObject {
    fn as_ref(&self) -> &str {
        &self.tag_key
    }
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

impl Engine {
    /// The instance a resource name designates, in the caller's account.
    fn tagged_instance(&self, ctx: &Ctx<'_>, resource: &str) -> Result<String, ApiError> {
        let name = tag::parse_resource(resource).ok_or_else(|| {
            resource_error(
                resource,
                "expected qcs::<service>:<region>:uin/<uin>:<prefix>/<id>",
            )
        })?;
        if name.service != model::SERVICE || name.prefix != "instance" {
            return Err(resource_error(
                resource,
                "the simulator has only cvm instances (qcs::cvm:<region>:uin/<uin>:instance/<id>)",
            ));
        }
        if name.uin != ctx.account {
            return Err(resource_error(
                resource,
                &format!(
                    "uin {} is not the caller's account ({})",
                    name.uin, ctx.account
                ),
            ));
        }
        if !self.visible_in(ctx.account, name.region, name.id) {
            return Err(api_err(
                "ResourceNotFound",
                format!("The resource `{resource}` does not exist."),
            ));
        }
        Ok(name.id.to_string())
    }

    pub fn modify_resource_tags(
        &mut self,
        ctx: &Ctx<'_>,
        req: tag::ModifyResourceTagsRequest,
    ) -> Result<(), ApiError> {
        if req.replace_tags.is_none() && req.delete_tags.is_none() {
            return Err(missing("ReplaceTags` or `DeleteTags"));
        }
        let replace = keys_of(&req.replace_tags, "ReplaceTags")?;
        let delete = keys_of(&req.delete_tags, "DeleteTags")?;
        if let Some(k) = replace.iter().find(|k| delete.contains(k)) {
            return Err(api_err(
                "InvalidParameterValue.DeleteTagsParamError",
                format!("The tag key `{k}` is both replaced and deleted."),
            ));
        }
        for t in req.replace_tags.iter().flatten() {
            check_tag(t)?;
        }
        let id = self.tagged_instance(ctx, &req.resource)?;
        let inst = self.instances.get_mut(&id).map(SimInstance::touch);
        let tags = inst
            .expect("found above")
            .view
            .tags
            .get_or_insert_with(Vec::new);
        let mut next = tags.clone();
        next.retain(|t| !delete.contains(&t.key.as_str()));
        for t in req.replace_tags.into_iter().flatten() {
            match next.iter_mut().find(|x| x.key == t.tag_key) {
                Some(x) => x.value = t.tag_value,
                None => next.push(model::Tag {
                    key: t.tag_key,
                    value: t.tag_value,
                }),
            }
        }
        if next.len() > MAX_TAGS_PER_RESOURCE {
            return Err(api_err(
                "LimitExceeded.ResourceAttachedTags",
                format!(
                    "The resource would have {} tags; at most {MAX_TAGS_PER_RESOURCE}.",
                    next.len()
                ),
            ));
        }
        *tags = next;
        Ok(())
    }

    pub fn describe_resource_tags_by_resource_ids(
        &self,
        ctx: &Ctx<'_>,
        req: tag::DescribeResourceTagsByResourceIdsRequest,
    ) -> Result<tag::DescribeResourceTagsByResourceIdsResponse, ApiError> {
        if req.service_type != model::SERVICE {
            return Err(api_err(
                "InvalidParameterValue.ServiceTypeInvalid",
                format!(
                    "The service type `{}` is not supported here (cvm).",
                    req.service_type
                ),
            ));
        }
        if req.resource_prefix != "instance" {
            return Err(api_err(
                "InvalidParameterValue.ResourcePrefixInvalid",
                format!(
                    "The resource prefix `{}` is not supported here (instance).",
                    req.resource_prefix
                ),
            ));
        }
        if self.catalogue.region(&req.resource_region).is_none() {
            return Err(api_err(
                "InvalidParameterValue.RegionInvalid",
                format!("The region `{}` is invalid.", req.resource_region),
            ));
        }
        if req.resource_ids.is_empty() || req.resource_ids.len() > MAX_RESOURCE_IDS {
            return Err(api_err(
                "InvalidParameterValue.ResourceIdInvalid",
                format!("`ResourceIds` must name 1 to {MAX_RESOURCE_IDS} resources."),
            ));
        }
        let limit = req.limit.unwrap_or(15);
        let offset = req.offset.unwrap_or(0);
        if limit == 0 || !offset.is_multiple_of(limit) {
            return Err(api_err(
                "InvalidParameterValue",
                "`Limit` must be positive and `Offset` a multiple of it.",
            ));
        }
        // Every simulated tag is a user's (`Custom`).
        let custom = !matches!(req.category.as_deref(), Some("System"));
        let all: Vec<tag::TagResource> = req
            .resource_ids
            .iter()
            .filter(|id| custom && self.visible_in(ctx.account, &req.resource_region, id))
            .flat_map(|id| {
                let tags = self.instances[id.as_str()].view.tags.iter().flatten();
                tags.map(move |t| tag::TagResource {
                    tag_key: Some(t.key.clone()),
                    tag_value: Some(t.value.clone()),
                    resource_id: Some(id.clone()),
                    tag_key_md5: Some(md5_hex(&t.key)),
                    tag_value_md5: Some(md5_hex(&t.value)),
                    service_type: Some(model::SERVICE.into()),
                    category: Some("Custom".into()),
                })
            })
            .collect();
        Ok(tag::DescribeResourceTagsByResourceIdsResponse {
            total_count: Some(all.len() as u64),
            offset: Some(offset),
            limit: Some(limit),
            tags: Some(
                all.into_iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .collect(),
            ),
        })
    }
}
