//! `status.price`: what the instance costs, as the CVM API quoted it
//! (InquiryPriceRunInstances before a create, InquiryPriceResetInstancesType
//! and InquiryPriceResetInstancesInternetMaxBandwidth before a change that
//! alters it). Amounts are kept as the API's decimal text: no float in a CRD.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Characters in an amount (`"1234.56"`).
const AMOUNT_MAX: usize = 32;

/// One priced item (the instance, or its public bandwidth).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceItem {
    /// Postpaid: the price per `chargeUnit`, after discount (`UnitPriceDiscount`,
    /// else `UnitPrice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = AMOUNT_MAX))]
    pub unit_price: Option<String>,
    /// Postpaid: `HOUR`, `GB`, … as the API names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub charge_unit: Option<String>,
    /// Prepaid: the amount paid up front, after discount (`DiscountPrice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = AMOUNT_MAX))]
    pub total: Option<String>,
    /// Prepaid: the amount before discount (`OriginalPrice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = AMOUNT_MAX))]
    pub original_total: Option<String>,
}

/// The price of the instance as configured when it was last created or
/// changed (`instanceType` and `internetMaxBandwidthOut` say which
/// configuration). Asked once per create or price-changing change, never
/// per poll.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<PriceItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<PriceItem>,
    /// The currency of the amounts. The API does not name it in its answer;
    /// its documentation gives every amount in yuan (`CNY`), the operator's
    /// `--price-currency` says otherwise for accounts billed in another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub currency: Option<String>,
    /// One line for `kubectl get -o wide` (`0.35 CNY/HOUR + 0.06 CNY/HOUR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub summary: Option<String>,
    /// The configuration priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<i64>,
    /// The InquiryPrice* action that answered, and its RequestId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub request_id: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time: Option<String>,
    /// Why (part of) the price is unknown: the inquiry failed. It never
    /// holds a create or a change back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub unknown_reason: Option<String>,
}

impl PriceItem {
    /// `0.35 CNY/HOUR`, `1234.5 CNY`, or `None` when nothing is known.
    pub fn text(&self, currency: &str) -> Option<String> {
        match (&self.unit_price, &self.charge_unit, &self.total) {
            (Some(p), Some(u), _) => Some(format!("{p} {currency}/{u}")),
            (Some(p), None, _) => Some(format!("{p} {currency}")),
            (None, _, Some(t)) => Some(format!("{t} {currency} up front")),
            (None, _, None) => None,
        }
    }
}

impl PriceStatus {
    /// The printer column's line: the instance, then the bandwidth.
    pub fn line(&self) -> String {
        let currency = self.currency.as_deref().unwrap_or("");
        let parts: Vec<String> = [
            self.instance.as_ref().and_then(|i| i.text(currency)),
            self.bandwidth
                .as_ref()
                .and_then(|b| b.text(currency))
                .map(|b| format!("{b} bandwidth")),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (parts.is_empty(), &self.unknown_reason) {
            (true, Some(_)) => "unknown".into(),
            (true, None) => String::new(),
            (false, _) => parts.join(" + "),
        }
    }
}
