//! Read-only actions: DescribeInstances, DescribeInstancesStatus and the
//! catalogue queries (zones, instance types, images).

use super::checks::{check_instance_id, check_instance_type_format, is_short_id};
use super::{ApiError, Ctx, Engine, SimInstance, api_err};
use crate::cloud::model::{self, Instance};
use crate::sim::catalogue::InstanceType;
use std::collections::HashSet;

/// DescribeInstances' answer, borrowing the engine's instances (and their
/// cached JSON).
pub struct InstancesView<'a> {
    pub total_count: i64,
    instance_set: Vec<&'a SimInstance>,
}

impl<'a> InstancesView<'a> {
    pub fn len(&self) -> usize {
        self.instance_set.len()
    }
    pub fn is_empty(&self) -> bool {
        self.instance_set.is_empty()
    }
    pub fn instances(&self) -> impl Iterator<Item = &'a Instance> + '_ {
        self.instance_set.iter().map(|i| &i.view)
    }
}

impl serde::Serialize for InstancesView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let set: Vec<&serde_json::value::RawValue> =
            self.instance_set.iter().map(|i| i.json()).collect();
        let mut st = s.serialize_struct("DescribeInstancesResponse", 2)?;
        st.serialize_field("TotalCount", &self.total_count)?;
        st.serialize_field("InstanceSet", &set)?;
        st.end()
    }
}

impl Engine {
    fn page_bounds(offset: Option<i64>, limit: Option<i64>) -> Result<(usize, usize), ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(20);
        if offset < 0 {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "Offset must not be negative.",
            ));
        }
        if !(0..=100).contains(&limit) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "Limit must be between 0 and 100.",
            ));
        }
        Ok((offset as usize, limit as usize))
    }

    pub(super) fn check_filters(
        filters: &[model::Filter],
        known: impl Fn(&str) -> bool,
        max_values: usize,
    ) -> Result<(), ApiError> {
        if filters.len() > 10 {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                "At most 10 filters are allowed.",
            ));
        }
        for f in filters {
            if !known(&f.name) {
                return Err(api_err(
                    "InvalidFilter",
                    format!("The filter `{}` is not supported.", f.name),
                ));
            }
            if f.values.len() > max_values {
                return Err(api_err(
                    "InvalidFilterValue.LimitExceeded",
                    format!("The filter `{}` takes at most {max_values} values.", f.name),
                ));
            }
        }
        Ok(())
    }

    fn matches(i: &Instance, f: &model::Filter) -> bool {
        let any = |v: Option<&str>| v.is_some_and(|v| f.values.iter().any(|x| x == v));
        let any_of =
            |vs: Option<&Vec<String>>| vs.is_some_and(|vs| vs.iter().any(|v| f.values.contains(v)));
        let created = || {
            i.created_time
                .as_deref()
                .map(|c| c.replace('T', " ").trim_end_matches('Z').to_string())
                .unwrap_or_default()
        };
        match f.name.as_str() {
            "zone" => any(i.zone()),
            "project-id" => any(i
                .placement
                .as_ref()
                .and_then(|p| p.project_id)
                .map(|p| p.to_string())
                .as_deref()),
            "vpc-id" => any(i
                .virtual_private_cloud
                .as_ref()
                .and_then(|v| v.vpc_id.as_deref())),
            "subnet-id" => any(i
                .virtual_private_cloud
                .as_ref()
                .and_then(|v| v.subnet_id.as_deref())),
            "instance-id" => any(i.instance_id.as_deref()),
            "uuid" => any(i.uuid.as_deref()),
            "security-group-id" => any_of(i.security_group_ids.as_ref()),
            "instance-name" => any(i.instance_name.as_deref()),
            "instance-charge-type" => any(i.instance_charge_type.as_deref()),
            "instance-state" => any(i.instance_state.as_ref().map(|s| s.as_str())),
            "private-ip-address" => any_of(i.private_ip_addresses.as_ref()),
            "public-ip-address" => any_of(i.public_ip_addresses.as_ref()),
            "image-id" => any(i.image_id.as_deref()),
            "tag-key" => i.tags.iter().flatten().any(|t| f.values.contains(&t.key)),
            "tag-value" => i.tags.iter().flatten().any(|t| f.values.contains(&t.value)),
            "creation-start-time" => f.values.iter().all(|v| created().as_str() >= v.as_str()),
            "creation-end-time" => f.values.iter().all(|v| created().as_str() <= v.as_str()),
            name => match name.strip_prefix("tag:") {
                Some(key) => i.tag(key).is_some_and(|v| f.values.iter().any(|x| x == v)),
                None => false,
            },
        }
    }

    /// DescribeInstances. The answer borrows the stored instances: nothing is
    /// copied, it is serialised straight from the engine (under its lock).
    pub fn describe_instances<'a>(
        &'a self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstancesRequest,
    ) -> Result<InstancesView<'a>, ApiError> {
        let (offset, limit) = Self::page_bounds(req.offset, req.limit)?;
        let has_ids = req.instance_ids.as_ref().is_some_and(|v| !v.is_empty());
        let has_filters = req.filters.as_ref().is_some_and(|v| !v.is_empty());
        if has_ids && has_filters {
            return Err(api_err(
                "InvalidParameter",
                "The parameters `InstanceIds` and `Filters` cannot be specified at the same time.",
            ));
        }
        let mut matched: Vec<&SimInstance> = Vec::new();
        if let Some(ids) = req.instance_ids.as_ref().filter(|v| !v.is_empty()) {
            if ids.len() > 100 {
                return Err(api_err(
                    "InvalidParameterValue.LimitExceeded",
                    "The number of `InstanceIds` exceeds the limit of 100.",
                ));
            }
            let mut seen = HashSet::new();
            for id in ids {
                check_instance_id(id)?;
                if seen.insert(id) && self.visible(ctx, id) {
                    matched.push(&self.instances[id]);
                }
            }
        } else {
            let filters = req.filters.clone().unwrap_or_default();
            const KNOWN: &[&str] = &[
                "zone",
                "project-id",
                "host-id",
                "dedicated-cluster-id",
                "vpc-id",
                "subnet-id",
                "instance-id",
                "uuid",
                "security-group-id",
                "instance-name",
                "instance-charge-type",
                "instance-state",
                "private-ip-address",
                "public-ip-address",
                "ipv6-address",
                "tag-key",
                "tag-value",
                "creation-start-time",
                "creation-end-time",
                "image-id",
            ];
            Self::check_filters(&filters, |n| KNOWN.contains(&n) || n.starts_with("tag:"), 5)?;
            for id in self.order.values() {
                let inst = &self.instances[id];
                if inst.account == ctx.account
                    && inst.region == ctx.region
                    && filters.iter().all(|f| Self::matches(&inst.view, f))
                {
                    matched.push(inst);
                }
            }
        }
        let total = matched.len();
        Ok(InstancesView {
            total_count: total as i64,
            instance_set: matched.into_iter().skip(offset).take(limit).collect(),
        })
    }

    pub fn describe_instances_status(
        &self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstancesStatusRequest,
    ) -> Result<model::DescribeInstancesStatusResponse, ApiError> {
        let d = self.describe_instances(
            ctx,
            model::DescribeInstancesRequest {
                instance_ids: req.instance_ids,
                filters: None,
                offset: req.offset,
                limit: req.limit,
            },
        )?;
        Ok(model::DescribeInstancesStatusResponse {
            total_count: Some(d.total_count),
            instance_status_set: Some(
                d.instances()
                    .map(|i| model::InstanceStatus {
                        instance_id: i.instance_id.clone(),
                        instance_state: i.instance_state.clone(),
                    })
                    .collect(),
            ),
        })
    }

    pub fn describe_zones(&self, ctx: &Ctx<'_>) -> Result<model::DescribeZonesResponse, ApiError> {
        let region = self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })?;
        let zones: Vec<model::ZoneInfo> = region
            .zones
            .iter()
            .map(|z| model::ZoneInfo {
                zone: Some(z.zone.into()),
                zone_name: Some(if ctx.chinese { z.name_zh } else { z.name_en }.into()),
                zone_id: Some(z.zone_id.into()),
                zone_state: Some(
                    if z.available {
                        "AVAILABLE"
                    } else {
                        "UNAVAILABLE"
                    }
                    .into(),
                ),
            })
            .collect();
        Ok(model::DescribeZonesResponse {
            total_count: Some(zones.len() as i64),
            zone_set: Some(zones),
        })
    }

    pub fn describe_instance_type_configs(
        &self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstanceTypeConfigsRequest,
    ) -> Result<model::DescribeInstanceTypeConfigsResponse, ApiError> {
        let filters = req.filters.unwrap_or_default();
        Self::check_filters(
            &filters,
            |n| ["zone", "instance-family", "instance-type"].contains(&n),
            1,
        )?;
        let region = self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })?;
        let get = |name: &str| {
            filters
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.values.first())
        };
        let mut out = Vec::new();
        for z in &region.zones {
            if get("zone").is_some_and(|v| v != z.zone) {
                continue;
            }
            for t in &self.catalogue.types {
                if t.stock_in(z.zone).is_none()
                    || get("instance-family").is_some_and(|v| v != t.family)
                    || get("instance-type").is_some_and(|v| v != t.name)
                {
                    continue;
                }
                out.push(type_config(t, z.zone));
            }
        }
        Ok(model::DescribeInstanceTypeConfigsResponse {
            instance_type_config_set: Some(out),
        })
    }

    pub fn describe_images(
        &self,
        _ctx: &Ctx<'_>,
        req: model::DescribeImagesRequest,
    ) -> Result<model::DescribeImagesResponse, ApiError> {
        let (offset, limit) = Self::page_bounds(req.offset, req.limit)?;
        let ids = req.image_ids.unwrap_or_default();
        let filters = req.filters.unwrap_or_default();
        if !ids.is_empty() && !filters.is_empty() {
            return Err(api_err(
                "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
                "ImageIds and Filters cannot be specified at the same time.",
            ));
        }
        Self::check_filters(
            &filters,
            |n| {
                [
                    "image-id",
                    "image-type",
                    "image-name",
                    "platform",
                    "tag-key",
                    "tag-value",
                ]
                .contains(&n)
                    || n.starts_with("tag:")
            },
            5,
        )?;
        for id in &ids {
            if !is_short_id(id, "img-") {
                return Err(api_err(
                    "InvalidImageId.Malformed",
                    format!("The specified ImageId `{id}` is malformed."),
                ));
            }
        }
        if let Some(t) = &req.instance_type {
            check_instance_type_format(t)?;
        }
        let matched: Vec<model::Image> = self
            .catalogue
            .images
            .iter()
            .filter(|img| ids.is_empty() || ids.iter().any(|i| i == img.id))
            .filter(|img| {
                filters.iter().all(|f| match f.name.as_str() {
                    "image-id" => f.values.iter().any(|v| v == img.id),
                    "image-type" => f.values.iter().any(|v| v == img.image_type),
                    "image-name" => f.values.iter().any(|v| img.name.contains(v.as_str())),
                    "platform" => f.values.iter().any(|v| img.platform.contains(v.as_str())),
                    _ => false,
                })
            })
            .map(|img| model::Image {
                image_id: Some(img.id.into()),
                os_name: Some(img.os_name.into()),
                image_type: Some(img.image_type.into()),
                created_time: Some("2024-01-01T00:00:00Z".into()),
                image_name: Some(img.name.into()),
                image_description: Some(img.name.into()),
                image_size: Some(img.size_gb),
                architecture: Some("x86_64".into()),
                image_state: Some("NORMAL".into()),
                platform: Some(img.platform.into()),
                image_creator: Some(
                    if img.image_type == "PUBLIC_IMAGE" {
                        "TencentCloud"
                    } else {
                        "user"
                    }
                    .into(),
                ),
                image_source: Some(
                    if img.image_type == "PUBLIC_IMAGE" {
                        "OFFICIAL"
                    } else {
                        "CREATE_IMAGE"
                    }
                    .into(),
                ),
                is_support_cloudinit: Some(true),
                license_type: Some("TencentCloud".into()),
                sync_percent: Some(100),
                snapshot_set: Some(Vec::new()),
                tags: Some(Vec::new()),
            })
            .collect();
        Ok(model::DescribeImagesResponse {
            total_count: Some(matched.len() as i64),
            image_set: Some(matched.into_iter().skip(offset).take(limit).collect()),
        })
    }
}

/// An instance type in a zone, as DescribeInstanceTypeConfigs and
/// DescribeInstancesModification answer it.
pub(super) fn type_config(t: &InstanceType, zone: &str) -> model::InstanceTypeConfig {
    let gpu = t.is_gpu();
    model::InstanceTypeConfig {
        zone: Some(zone.into()),
        instance_type: Some(t.name.into()),
        instance_family: Some(t.family.into()),
        gpu: Some(i64::from(gpu)),
        cpu: Some(t.cpu),
        memory: Some(t.memory),
        fpga: Some(0),
        gpu_count: Some(if gpu { 1.0 } else { 0.0 }),
    }
}
