//! What an instance costs, asked of the CVM API (read-only InquiryPrice*
//! calls) exactly when it may change: once before a create, once before a
//! type or bandwidth change. Never per poll. A failed inquiry never holds
//! the create or change back: the price is then recorded as unknown, with
//! why. Shared by the reconciler (`status.price`) and `cvm-operator plan`.
//! Creates of one configuration share a quote for [`QUOTE_TTL`]: a fleet of
//! 1,000 identical resources asks once.

use super::observation::Observation;
use super::plan::CloudAction;
use crate::api::limits::clipped;
use crate::api::price::{PriceItem, PriceStatus};
use crate::cloud::model::{self, Action as _};
use crate::cloud::{CloudError, Credentials, CvmClient, Identity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The currency the API documents its amounts in (yuan).
pub const DEFAULT_CURRENCY: &str = "CNY";

/// Asks prices. Cheap to clone.
#[derive(Clone)]
pub struct Pricer {
    client: CvmClient,
    currency: String,
    quotes: Quotes,
}

/// How long a create's answered quote serves other creates of the same
/// configuration. Prices change rarely (the API's figures are list prices
/// and account discounts); a change shows in new creates within this time.
pub const QUOTE_TTL: Duration = Duration::from_secs(300);

/// An answered InquiryPriceRunInstances: its RequestId, the price, when.
#[derive(Clone)]
struct Quote {
    request_id: String,
    price: model::Price,
    time: String,
    at: Instant,
}

/// What decides a create's price: the region, the account (discounts are
/// per account: keyed by credential identity, never shared across them),
/// and the inquiry without the members that only name the instance.
#[derive(Clone, PartialEq, Eq, Hash)]
struct QuoteKey {
    region: String,
    identity: Identity,
    inquiry: String,
}

impl QuoteKey {
    fn of(
        creds: &Credentials,
        region: &str,
        inquiry: &model::InquiryPriceRunInstancesRequest,
    ) -> Self {
        let priced = model::InquiryPriceRunInstancesRequest {
            instance_name: None,
            host_name: None,
            login_settings: None,
            ..inquiry.clone()
        };
        QuoteKey {
            region: region.to_string(),
            identity: Identity::of_static(creds),
            inquiry: serde_json::to_string(&priced).unwrap_or_default(),
        }
    }
}

type QuoteSlot = Arc<tokio::sync::Mutex<Option<Quote>>>;

/// Quotes by configuration, one inquiry in flight per configuration (the
/// others wait for its answer). Only answers are kept: a failed inquiry is
/// asked again by the next create.
#[derive(Clone, Default)]
struct Quotes(Arc<Mutex<HashMap<QuoteKey, QuoteSlot>>>);

impl Quotes {
    fn slot(&self, key: QuoteKey) -> QuoteSlot {
        let mut slots = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Expired and failed ones go; one being asked (locked) stays.
        slots.retain(|_, slot| {
            slot.try_lock()
                .map_or(true, |q| q.as_ref().is_some_and(Quote::fresh))
        });
        slots.entry(key).or_default().clone()
    }
}

impl Quote {
    fn fresh(&self) -> bool {
        self.at.elapsed() < QUOTE_TTL
    }
}

/// The configuration a price is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basis {
    pub instance_type: String,
    pub bandwidth_out: Option<i64>,
}

impl Basis {
    /// Whether `price` was asked for this configuration (a retried create
    /// asks no second time).
    pub fn priced_by(&self, price: Option<&PriceStatus>) -> bool {
        price.is_some_and(|p| {
            p.instance_type.as_deref() == Some(self.instance_type.as_str())
                && p.internet_max_bandwidth_out == self.bandwidth_out
        })
    }

    /// How an instance is configured now.
    pub fn of(o: &Observation) -> Self {
        Basis {
            instance_type: o.instance_type.to_string(),
            bandwidth_out: Some(o.bandwidth_out),
        }
    }

    /// What a create request configures.
    pub fn of_create(run: &model::RunInstancesRequest) -> Self {
        Basis {
            instance_type: run.instance_type.clone().unwrap_or_default(),
            bandwidth_out: run
                .internet_accessible
                .as_ref()
                .and_then(|i| i.internet_max_bandwidth_out),
        }
    }
}

/// Whether `action` changes what the instance costs (and so is priced
/// before it is sent).
pub fn changes_price(action: &CloudAction) -> bool {
    matches!(
        action,
        CloudAction::ResetType { .. } | CloudAction::SetBandwidth { .. }
    )
}

/// The price after an action that changes it without an inquiry the client
/// has (ModifyInstancesChargeType to PREPAID: its InquiryPrice action is not
/// modelled): the instance's price is unknown from then on, and says why.
pub fn invalidated(action: &CloudAction, before: Option<&PriceStatus>) -> Option<PriceStatus> {
    let CloudAction::ConvertToPrepaid { .. } = action else {
        return None;
    };
    let mut s = before.cloned().unwrap_or_default();
    s.instance = None;
    s.unknown_reason = Some(format!(
        "the instance became PREPAID ({}): its new price was not asked",
        action.api_action()
    ));
    s.summary = Some(clipped(s.line(), 128)).filter(|l| !l.is_empty());
    Some(s)
}

impl Pricer {
    pub fn new(client: CvmClient, currency: impl Into<String>) -> Self {
        Self {
            client,
            currency: currency.into(),
            quotes: Quotes::default(),
        }
    }

    /// The price of what `run` would create: one InquiryPriceRunInstances,
    /// or the fresh quote of an earlier create of the same configuration.
    pub async fn create(
        &self,
        creds: &Credentials,
        region: &str,
        run: &model::RunInstancesRequest,
    ) -> PriceStatus {
        let req = model::InquiryPriceRunInstancesRequest::of_create(run);
        let slot = self.quotes.slot(QuoteKey::of(creds, region, &req));
        let mut held = slot.lock().await;
        let quote = match held.as_ref().filter(|q| q.fresh()) {
            Some(q) => Ok(q.clone()),
            None => self
                .client
                .call::<model::InquiryPriceRunInstances>(creds, region, &req)
                .await
                .map(|r| Quote {
                    request_id: r.request_id,
                    price: r.body.price.unwrap_or_default(),
                    time: now(),
                    at: Instant::now(),
                }),
        };
        if let Ok(q) = &quote {
            *held = Some(q.clone());
        }
        drop(held);
        let basis = Basis::of_create(run);
        let time = quote.as_ref().map_or_else(|_| now(), |q| q.time.clone());
        let reply = quote.map(|q| (q.request_id, q.price));
        let action = model::InquiryPriceRunInstances::NAME;
        recorded(action, reply, None, &basis, &self.currency, time)
    }

    /// The price after `action` on instance `id` (configured as `current`
    /// says), when it changes the price (one InquiryPriceResetInstancesType
    /// or InquiryPriceResetInstancesInternetMaxBandwidth); the item it does
    /// not concern is kept from `before`.
    pub async fn change(
        &self,
        creds: &Credentials,
        region: &str,
        (id, current): (&str, &Basis),
        action: &CloudAction,
        before: Option<&PriceStatus>,
    ) -> Option<PriceStatus> {
        let ids = vec![id.to_string()];
        let (name, reply, basis) = match action {
            CloudAction::ResetType { instance_type } => {
                let req = model::InquiryPriceResetInstancesTypeRequest {
                    instance_ids: ids,
                    instance_type: instance_type.clone(),
                };
                let reply = self
                    .client
                    .call::<model::InquiryPriceResetInstancesType>(creds, region, &req)
                    .await;
                let basis = Basis {
                    instance_type: instance_type.clone(),
                    ..current.clone()
                };
                (model::InquiryPriceResetInstancesType::NAME, reply, basis)
            }
            CloudAction::SetBandwidth { mbps } => {
                let req = super::act::bandwidth_request(ids, *mbps);
                let reply = self
                    .client
                    .call::<model::InquiryPriceResetInstancesInternetMaxBandwidth>(
                        creds, region, &req,
                    )
                    .await;
                let basis = Basis {
                    bandwidth_out: Some(*mbps),
                    ..current.clone()
                };
                let name = model::InquiryPriceResetInstancesInternetMaxBandwidth::NAME;
                (name, reply, basis)
            }
            _ => return None,
        };
        let reply = reply.map(|r| (r.request_id, r.body.price.unwrap_or_default()));
        Some(self.record(name, reply, before, &basis))
    }

    /// The status of an answer: the items it priced, the others kept from
    /// `before` (a change prices only what it changes).
    fn record(
        &self,
        action: &'static str,
        reply: Result<(String, model::Price), CloudError>,
        before: Option<&PriceStatus>,
        basis: &Basis,
    ) -> PriceStatus {
        recorded(action, reply, before, basis, &self.currency, now())
    }
}

/// Now, as status records times.
fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// [`Pricer::record`], pure.
fn recorded(
    action: &'static str,
    reply: Result<(String, model::Price), CloudError>,
    before: Option<&PriceStatus>,
    basis: &Basis,
    currency: &str,
    time: String,
) -> PriceStatus {
    let kept = |pick: fn(&PriceStatus) -> &Option<PriceItem>| before.and_then(|b| pick(b).clone());
    let mut s = PriceStatus {
        currency: Some(currency.to_string()),
        instance_type: Some(basis.instance_type.clone()).filter(|t| !t.is_empty()),
        internet_max_bandwidth_out: basis.bandwidth_out,
        action: Some(action.to_string()),
        time: Some(time),
        ..Default::default()
    };
    let is_create = action == model::InquiryPriceRunInstances::NAME;
    match reply {
        Ok((request_id, price)) => {
            s.request_id = Some(request_id);
            s.instance = price
                .instance_price
                .map(item)
                .or_else(|| (!is_create).then(|| kept(|b| &b.instance)).flatten());
            s.bandwidth = price
                .bandwidth_price
                .map(item)
                .or_else(|| (!is_create).then(|| kept(|b| &b.bandwidth)).flatten());
        }
        Err(e) => {
            // What the failed inquiry was about is unknown; the rest stays.
            let about_type = action == model::InquiryPriceResetInstancesType::NAME;
            let about_bandwidth =
                action == model::InquiryPriceResetInstancesInternetMaxBandwidth::NAME;
            s.instance = about_bandwidth.then(|| kept(|b| &b.instance)).flatten();
            s.bandwidth = about_type.then(|| kept(|b| &b.bandwidth)).flatten();
            let why = format!("{action} failed: {}: {}", e.code(), e.message());
            s.unknown_reason = Some(clipped(why, 512));
            s.request_id = e.request_id().map(str::to_string);
        }
    }
    s.summary = Some(clipped(s.line(), 128)).filter(|l| !l.is_empty());
    s
}

/// The API's figures as status keeps them: the discounted unit price per
/// charge unit (postpaid), the discounted total (prepaid).
fn item(p: model::ItemPrice) -> PriceItem {
    let amount = |v: Option<f64>| v.map(|v| v.to_string());
    let postpaid = p.charge_unit.is_some() || p.unit_price.is_some();
    PriceItem {
        unit_price: amount(p.unit_price_discount.or(p.unit_price)).filter(|_| postpaid),
        charge_unit: p.charge_unit.filter(|u| !u.is_empty()),
        total: amount(p.discount_price.or(p.original_price)).filter(|_| !postpaid),
        original_total: amount(p.original_price).filter(|_| !postpaid),
    }
}

#[cfg(test)]
mod quote_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn postpaid(unit: f64, discounted: f64, per: &str) -> model::ItemPrice {
        model::ItemPrice {
            unit_price: Some(unit),
            unit_price_discount: Some(discounted),
            charge_unit: Some(per.into()),
            ..Default::default()
        }
    }

    fn basis(t: &str, bw: i64) -> Basis {
        Basis {
            instance_type: t.into(),
            bandwidth_out: Some(bw),
        }
    }

    #[test]
    fn a_create_records_unit_prices_and_the_configuration() {
        let price = model::Price {
            instance_price: Some(postpaid(0.5, 0.35, "HOUR")),
            bandwidth_price: Some(postpaid(0.063, 0.063, "HOUR")),
        };
        let reply = Ok(("req-1".to_string(), price));
        let b = basis("S5.MEDIUM4", 1);
        let s = recorded(
            "InquiryPriceRunInstances",
            reply,
            None,
            &b,
            "CNY",
            "t".into(),
        );
        let instance = s.instance.clone().unwrap();
        assert_eq!(instance.unit_price.as_deref(), Some("0.35"), "discounted");
        assert_eq!(instance.charge_unit.as_deref(), Some("HOUR"));
        assert_eq!(instance.total, None);
        assert_eq!(
            s.summary.as_deref(),
            Some("0.35 CNY/HOUR + 0.063 CNY/HOUR bandwidth")
        );
        assert_eq!(s.request_id.as_deref(), Some("req-1"));
        assert!(b.priced_by(Some(&s)));
        assert!(!basis("S5.LARGE8", 1).priced_by(Some(&s)));
        assert!(!basis("S5.MEDIUM4", 2).priced_by(Some(&s)));
    }

    #[test]
    fn prepaid_records_the_total() {
        let price = model::Price {
            instance_price: Some(model::ItemPrice {
                original_price: Some(360.0),
                discount_price: Some(252.0),
                discount: Some(70.0),
                ..Default::default()
            }),
            bandwidth_price: None,
        };
        let reply = Ok(("r".to_string(), price));
        let s = recorded(
            "InquiryPriceRunInstances",
            reply,
            None,
            &basis("S5.SMALL1", 0),
            "CNY",
            "t".into(),
        );
        let i = s.instance.unwrap();
        assert_eq!(
            (i.total.as_deref(), i.original_total.as_deref()),
            (Some("252"), Some("360"))
        );
        assert_eq!(i.unit_price, None);
        assert_eq!(s.summary.as_deref(), Some("252 CNY up front"));
    }

    /// A status that priced the instance (hourly) and its bandwidth (per GB).
    fn priced_before() -> PriceStatus {
        PriceStatus {
            instance: Some(PriceItem {
                unit_price: Some("0.2".into()),
                charge_unit: Some("HOUR".into()),
                ..Default::default()
            }),
            bandwidth: Some(PriceItem {
                unit_price: Some("0.8".into()),
                charge_unit: Some("GB".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_change_keeps_the_item_it_does_not_price_and_a_failure_says_why() {
        let before = priced_before();
        let resized = model::Price {
            instance_price: Some(postpaid(0.4, 0.4, "HOUR")),
            bandwidth_price: None,
        };
        let action = "InquiryPriceResetInstancesType";
        let b = basis("S5.MEDIUM4", 5);
        let s = recorded(
            action,
            Ok(("r".into(), resized)),
            Some(&before),
            &b,
            "CNY",
            "t".into(),
        );
        assert_eq!(s.instance.unwrap().unit_price.as_deref(), Some("0.4"));
        assert_eq!(s.bandwidth, before.bandwidth, "kept");
        let failed = Err(CloudError::Api {
            action: action.into(),
            code: "InternalError".into(),
            message: "try later".into(),
            request_id: "r2".into(),
        });
        let s = recorded(action, failed, Some(&before), &b, "CNY", "t".into());
        assert_eq!(s.instance, None, "the new type's price is unknown");
        assert_eq!(s.bandwidth, before.bandwidth);
        assert_eq!(
            s.unknown_reason.as_deref(),
            Some("InquiryPriceResetInstancesType failed: InternalError: try later")
        );
        assert_eq!(s.summary.as_deref(), Some("0.8 CNY/GB bandwidth"));
    }

    #[test]
    fn a_conversion_to_prepaid_makes_the_instance_price_unknown() {
        let before = PriceStatus {
            currency: Some("CNY".into()),
            ..priced_before()
        };
        let convert = CloudAction::ConvertToPrepaid {
            period: 1,
            renew_flag: "NOTIFY_AND_MANUAL_RENEW".into(),
        };
        let s = invalidated(&convert, Some(&before)).unwrap();
        assert_eq!(s.instance, None);
        assert_eq!(s.bandwidth, before.bandwidth);
        assert!(
            s.unknown_reason
                .unwrap()
                .contains("ModifyInstancesChargeType")
        );
        assert_eq!(s.summary.as_deref(), Some("0.8 CNY/GB bandwidth"));
        assert_eq!(invalidated(&CloudAction::Start, Some(&before)), None);
    }

    #[test]
    fn only_type_and_bandwidth_changes_are_priced() {
        assert!(changes_price(&CloudAction::ResetType {
            instance_type: "S5.LARGE8".into()
        }));
        assert!(changes_price(&CloudAction::SetBandwidth { mbps: 10 }));
        assert!(!changes_price(&CloudAction::Start));
        assert!(!changes_price(&CloudAction::Rename { name: "x".into() }));
    }
}
