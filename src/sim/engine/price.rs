//! Prices from the catalogue's hourly prices: InquiryPriceRunInstances (what
//! RunInstances would create, from the same validation),
//! InquiryPriceResetInstancesType and
//! InquiryPriceResetInstancesInternetMaxBandwidth (a change, from the same
//! checks as the change itself). Prepaid is charged for 720 h a month at a
//! 30 % discount; public bandwidth by the table in [`bandwidth_price`].

use super::{ApiError, Ctx, Engine};
use crate::cloud::model;

/// Hours billed for a prepaid month, and the share of it paid (percent).
const HOURS_PER_MONTH: f64 = 720.0;
const PREPAID_DISCOUNT: f64 = 70.0;

/// InquiryPriceRunInstances' `InstanceCount` range is [1, 100] (api.json).
const MAX_PRICED_COUNT: i64 = 100;

/// The RunInstances request whose price is asked for (the members both
/// actions share), so both are validated alike.
fn as_run(req: model::InquiryPriceRunInstancesRequest) -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(req.placement),
        image_id: Some(req.image_id),
        instance_charge_type: req.instance_charge_type,
        instance_charge_prepaid: req.instance_charge_prepaid,
        instance_type: req.instance_type,
        system_disk: req.system_disk,
        data_disks: req.data_disks,
        virtual_private_cloud: req.virtual_private_cloud,
        internet_accessible: req.internet_accessible,
        instance_count: req.instance_count,
        instance_name: req.instance_name,
        login_settings: req.login_settings,
        security_group_ids: req.security_group_ids,
        enhanced_service: req.enhanced_service,
        client_token: req.client_token,
        host_name: req.host_name,
        tag_specification: req.tag_specification,
        instance_market_options: req.instance_market_options,
        metadata: req.metadata,
        hpc_cluster_id: req.hpc_cluster_id,
        cpu_topology: req.cpu_topology,
        launch_template: req.launch_template,
        network_interfaces: req.network_interfaces,
        ..Default::default()
    }
}

impl Engine {
    pub fn inquiry_price_run_instances(
        &self,
        ctx: &Ctx<'_>,
        req: model::InquiryPriceRunInstancesRequest,
    ) -> Result<model::InquiryPriceRunInstancesResponse, ApiError> {
        let v = self.validate_run(ctx, &as_run(req), MAX_PRICED_COUNT)?;
        let n = v.count as f64;
        let bw = v.network.internet.internet_max_bandwidth_out.unwrap_or(0) as f64;
        let instance_price = match v.charge.prepaid_period {
            // Monthly price ≈ 720 h at a 30 % discount for committing.
            Some(months) => prepaid(v.instance_type.hourly_price * n, months),
            None if v.charge.charge_type == "SPOTPAID" => {
                hourly(round(round(v.instance_type.hourly_price * n) * 0.2), "HOUR")
            }
            None => hourly(round(v.instance_type.hourly_price * n), "HOUR"),
        };
        let bandwidth_price = bandwidth_price(
            v.network.internet.internet_charge_type.as_deref(),
            bw * n,
            v.charge.prepaid_period.unwrap_or(1),
        );
        Ok(model::InquiryPriceRunInstancesResponse {
            price: Some(model::Price {
                instance_price: Some(instance_price),
                bandwidth_price: Some(bandwidth_price),
            }),
        })
    }
}

impl Engine {
    pub fn inquiry_price_reset_instances_type(
        &self,
        ctx: &Ctx<'_>,
        req: model::InquiryPriceResetInstancesTypeRequest,
    ) -> Result<model::InquiryPriceResponse, ApiError> {
        self.check_ids(ctx, &req.instance_ids, 1)?;
        let id = &req.instance_ids[0];
        let new_type = self.check_type_change(id, &req.instance_type)?;
        let v = &self.instances[id].view;
        let instance_price = if v.instance_charge_type.as_deref() == Some("PREPAID") {
            // The difference for the rest of the prepaid period (a smaller
            // type is not refunded here).
            let old = v.instance_type.as_deref().unwrap_or_default();
            let old = self
                .catalogue
                .instance_type(old)
                .map_or(0.0, |t| t.hourly_price);
            let months = months_left(v.expired_time.as_deref());
            prepaid((new_type.hourly_price - old).max(0.0), months)
        } else {
            hourly(new_type.hourly_price, "HOUR")
        };
        Ok(model::InquiryPriceResponse {
            price: Some(model::Price {
                instance_price: Some(instance_price),
                bandwidth_price: None,
            }),
        })
    }

    pub fn inquiry_price_reset_instances_internet_max_bandwidth(
        &self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesInternetMaxBandwidthRequest,
    ) -> Result<model::InquiryPriceResponse, ApiError> {
        let (bw, charge_type) = self.check_bandwidth_change(ctx, &req)?;
        let months = req.instance_ids.first().map_or(1, |id| {
            months_left(self.instances[id].view.expired_time.as_deref())
        });
        let n = req.instance_ids.len() as f64;
        Ok(model::InquiryPriceResponse {
            price: Some(model::Price {
                instance_price: None,
                bandwidth_price: Some(bandwidth_price(Some(&charge_type), bw as f64 * n, months)),
            }),
        })
    }
}

/// What `mbps` of public bandwidth costs under a charge type: traffic by
/// the GB, hourly bandwidth by the Mbps-hour, prepaid by the Mbps-month
/// (for `months`); a bandwidth package is paid for by the package.
fn bandwidth_price(charge_type: Option<&str>, mbps: f64, months: i64) -> model::ItemPrice {
    match charge_type {
        Some("TRAFFIC_POSTPAID_BY_HOUR") => hourly(0.8, "GB"),
        Some("BANDWIDTH_POSTPAID_BY_HOUR") => hourly(round(0.063 * mbps), "HOUR"),
        Some("BANDWIDTH_PREPAID") => {
            let original = round(23.0 * mbps * months as f64);
            upfront(original, original, 100.0)
        }
        _ => upfront(0.0, 0.0, 100.0),
    }
}

/// `hourly_price` paid up front for `months`.
fn prepaid(hourly_price: f64, months: i64) -> model::ItemPrice {
    let original = round(hourly_price * HOURS_PER_MONTH * months as f64);
    upfront(
        original,
        round(original * PREPAID_DISCOUNT / 100.0),
        PREPAID_DISCOUNT,
    )
}

/// Whole months (at least one) until a prepaid instance expires.
fn months_left(expired: Option<&str>) -> i64 {
    let Some(at) = expired.and_then(|e| e.parse::<jiff::Timestamp>().ok()) else {
        return 1;
    };
    let days = (at - jiff::Timestamp::now()).get_seconds() / 86_400;
    ((days + 29) / 30).max(1)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A price by the hour (or GB). Every member is answered, 0 where it does not
/// apply, as the service does (examples.json; none is nullable).
fn hourly(unit: f64, charge_unit: &str) -> model::ItemPrice {
    model::ItemPrice {
        unit_price: Some(unit),
        charge_unit: Some(charge_unit.into()),
        original_price: Some(0.0),
        discount_price: Some(0.0),
        discount: Some(100.0),
        unit_price_discount: Some(unit),
    }
}

/// A price paid up front for the whole period.
fn upfront(original: f64, discounted: f64, discount: f64) -> model::ItemPrice {
    model::ItemPrice {
        unit_price: Some(0.0),
        charge_unit: Some("HOUR".into()),
        original_price: Some(original),
        discount_price: Some(discounted),
        discount: Some(discount),
        unit_price_discount: Some(0.0),
    }
}
