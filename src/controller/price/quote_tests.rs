//! [`Pricer::create`] against the simulator over loopback: creates of one
//! configuration share a quote, anything that decides the price (type,
//! account) asks again, and a failed inquiry is not kept.

use super::*;
use crate::sim::{self, RunningSimulator, SimAccount, SimConfig};
use futures::future::join_all;

const REGION: &str = "ap-guangzhou";
const OTHER_ID: &str = "AKIDOTHERACCOUNT00000000000000000000";
const OTHER_KEY: &str = "other-account-secret-key-000000000";

fn creds(id: &str, key: &str) -> Credentials {
    Credentials::new(id, key, None).unwrap()
}

async fn setup() -> (RunningSimulator, Pricer) {
    let config = SimConfig {
        accounts: vec![
            SimAccount::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY),
            SimAccount::new(OTHER_ID, OTHER_KEY),
        ],
        ..SimConfig::default()
    };
    let (sim, client) = sim::loopback(config).await;
    (sim, Pricer::new(client, DEFAULT_CURRENCY))
}

fn run(name: &str, instance_type: &str) -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some(instance_type.into()),
        instance_name: Some(name.into()),
        host_name: Some(name.into()),
        ..Default::default()
    }
}

fn inquiries(sim: &RunningSimulator) -> u64 {
    sim.sim.stats().calls("InquiryPriceRunInstances")
}

#[tokio::test]
async fn creates_of_one_configuration_share_one_inquiry() {
    let (sim, pricer) = setup().await;
    let me = creds(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY);
    // Twenty at once, named apart: one inquiry, one answer for all.
    let asks = (0..20).map(|i| {
        let (pricer, me) = (&pricer, &me);
        async move {
            pricer
                .create(me, REGION, &run(&format!("web-{i}"), "S5.MEDIUM4"))
                .await
        }
    });
    let prices = join_all(asks).await;
    assert_eq!(inquiries(&sim), 1);
    assert!(prices[0].instance.is_some() && prices[0].request_id.is_some());
    assert!(prices.iter().all(|p| *p == prices[0]), "one quote for all");
    // Another type, or another account (its discounts are its own), asks.
    let bigger = pricer.create(&me, REGION, &run("web-x", "S5.LARGE8")).await;
    assert_eq!(inquiries(&sim), 2);
    assert_ne!(bigger.instance, prices[0].instance);
    let other = creds(OTHER_ID, OTHER_KEY);
    pricer
        .create(&other, REGION, &run("web-y", "S5.MEDIUM4"))
        .await;
    assert_eq!(inquiries(&sim), 3);
}

#[tokio::test]
async fn a_failed_inquiry_is_asked_again() {
    let (sim, pricer) = setup().await;
    sim.sim.set_faults(sim::faults::Faults {
        errors: vec![sim::faults::ErrorFault {
            action: Some("InquiryPriceRunInstances".into()),
            code: "InternalError".into(),
            rate: 1.0,
            remaining: Some(1),
        }],
        ..Default::default()
    });
    let me = creds(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY);
    let failed = pricer
        .create(&me, REGION, &run("web-0", "S5.MEDIUM4"))
        .await;
    assert!(failed.instance.is_none() && failed.unknown_reason.is_some());
    // The same configuration and account: asked again, and then kept.
    let first = pricer
        .create(&me, REGION, &run("web-1", "S5.MEDIUM4"))
        .await;
    assert!(first.instance.is_some(), "{first:?}");
    pricer
        .create(&me, REGION, &run("web-2", "S5.MEDIUM4"))
        .await;
    assert_eq!(inquiries(&sim), 2);
}
