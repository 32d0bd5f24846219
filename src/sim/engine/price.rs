//! InquiryPriceRunInstances: the price of what RunInstances would create,
//! from the same validation and the catalogue's hourly prices.

use super::{ApiError, Ctx, Engine};
use crate::cloud::model;

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
            Some(months) => {
                let original = round(v.instance_type.hourly_price * 720.0 * months as f64 * n);
                upfront(original, round(original * 0.7), 70.0)
            }
            None if v.charge.charge_type == "SPOTPAID" => {
                hourly(round(round(v.instance_type.hourly_price * n) * 0.2), "HOUR")
            }
            None => hourly(round(v.instance_type.hourly_price * n), "HOUR"),
        };
        let bandwidth_price = match v.network.internet.internet_charge_type.as_deref() {
            Some("TRAFFIC_POSTPAID_BY_HOUR") => hourly(0.8, "GB"),
            Some("BANDWIDTH_POSTPAID_BY_HOUR") => hourly(round(0.063 * bw * n), "HOUR"),
            Some("BANDWIDTH_PREPAID") => {
                let original = round(23.0 * bw * v.charge.prepaid_period.unwrap_or(1) as f64 * n);
                upfront(original, original, 100.0)
            }
            // A bandwidth package is paid for by the package.
            _ => upfront(0.0, 0.0, 100.0),
        };
        Ok(model::InquiryPriceRunInstancesResponse {
            price: Some(model::Price {
                instance_price: Some(instance_price),
                bandwidth_price: Some(bandwidth_price),
            }),
        })
    }
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
