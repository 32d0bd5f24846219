//! InquiryPriceRunInstances: the price of what RunInstances would create,
//! from the same validation and the catalogue's hourly prices.

use super::{ApiError, Ctx, Engine};
use crate::cloud::model;

impl Engine {
    pub fn inquiry_price_run_instances(
        &self,
        ctx: &Ctx<'_>,
        req: model::RunInstancesRequest,
    ) -> Result<model::InquiryPriceRunInstancesResponse, ApiError> {
        let v = self.validate_run(ctx, &req)?;
        let n = v.count as f64;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let bw = v.network.internet.internet_max_bandwidth_out.unwrap_or(0) as f64;
        let instance_price = match v.charge.prepaid_period {
            Some(months) => {
                // Monthly price ≈ 720 h at a 30 % discount for committing.
                let original = round(v.instance_type.hourly_price * 720.0 * months as f64 * n);
                model::ItemPrice {
                    original_price: Some(original),
                    discount_price: Some(round(original * 0.7)),
                    discount: Some(70.0),
                    ..Default::default()
                }
            }
            None => {
                let unit = round(v.instance_type.hourly_price * n);
                let unit = if v.charge.charge_type == "SPOTPAID" {
                    round(unit * 0.2)
                } else {
                    unit
                };
                model::ItemPrice {
                    unit_price: Some(unit),
                    charge_unit: Some("HOUR".into()),
                    unit_price_discount: Some(unit),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
        };
        let bandwidth_price = match v.network.internet.internet_charge_type.as_deref() {
            Some("TRAFFIC_POSTPAID_BY_HOUR") => model::ItemPrice {
                unit_price: Some(0.8),
                charge_unit: Some("GB".into()),
                unit_price_discount: Some(0.8),
                discount: Some(100.0),
                ..Default::default()
            },
            Some("BANDWIDTH_POSTPAID_BY_HOUR") => {
                let unit = round(0.063 * bw * n);
                model::ItemPrice {
                    unit_price: Some(unit),
                    charge_unit: Some("HOUR".into()),
                    unit_price_discount: Some(unit),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
            Some("BANDWIDTH_PREPAID") => {
                let original = round(23.0 * bw * v.charge.prepaid_period.unwrap_or(1) as f64 * n);
                model::ItemPrice {
                    original_price: Some(original),
                    discount_price: Some(original),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
            _ => model::ItemPrice::default(),
        };
        let _ = ctx;
        Ok(model::InquiryPriceRunInstancesResponse {
            price: Some(model::Price {
                instance_price: Some(instance_price),
                bandwidth_price: Some(bandwidth_price),
            }),
        })
    }
}
