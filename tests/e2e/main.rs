//! The operator end to end: a real kube-apiserver + etcd (tests/support),
//! the CVM simulator, and the `cvm-operator` binary. One test binary (one
//! control plane); one module per area, so areas grow without touching
//! each other.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod admission;
mod chart_rbac;
mod deploy;
mod fleet;
mod fleet_crash;
mod gitops;
mod gitops_fleet;
mod image;
mod inplace;
mod lifecycle;
mod pending;
mod plan;
mod refused;
mod safety;
mod secret_hygiene;
mod tenancy;

use cvm_operator::cloud::model;
use cvm_operator::sim;
use std::time::{Duration, Instant};
use support::*;

pub const MUTATIONS: &[&str] = &[
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "RebootInstances",
    "TerminateInstances",
    "ResetInstancesType",
    "ResetInstancesInternetMaxBandwidth",
    "ModifyInstancesAttribute",
];

pub fn mutations(s: &sim::Stats) -> u64 {
    MUTATIONS.iter().map(|a| s.calls(a)).sum()
}

pub async fn instance(env: &TestEnv, id: &str) -> Option<model::Instance> {
    env.cloud()
        .describe_instances_by_ids(&env.creds(), REGION, &[id.to_string()])
        .await
        .unwrap()
        .into_iter()
        .next()
}

pub fn instance_id(o: &cvm_operator::api::CvmInstance) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.instance_id.clone())
        .expect("status.instanceId")
}

/// Gives instance `id` to `namespace`, as whoever controls the cloud account
/// does (`cvm-operator import --namespace` does the same): the adoption proof.
pub async fn give_to(env: &TestEnv, id: &str, namespace: &str) {
    let uin = sim::SimAccount::new(sim::DEFAULT_SECRET_ID, "").uin;
    let req = cvm_operator::cloud::tag::ModifyResourceTagsRequest {
        resource: cvm_operator::cloud::tag::instance_resource(REGION, &uin, id),
        replace_tags: Some(vec![cvm_operator::cloud::tag::Tag::new(
            cvm_operator::api::NAMESPACE_TAG,
            namespace,
        )]),
        delete_tags: None,
    };
    env.cloud()
        .call::<cvm_operator::cloud::tag::ModifyResourceTags>(&env.creds(), REGION, &req)
        .await
        .expect("tag the instance");
}

/// Creates an instance directly in the cloud (as a person would).
pub async fn create_outside(env: &TestEnv, name: &str, instance_type: &str) -> String {
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some(ZONE.into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some(instance_type.into()),
        instance_name: Some(name.into()),
        ..Default::default()
    };
    let id = env
        .cloud()
        .call::<model::RunInstances>(&env.creds(), REGION, &req)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap()
        .remove(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = instance(env, &id).await.unwrap();
        if i.instance_state == Some(model::InstanceState::Running) && !i.operating() {
            return id;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
