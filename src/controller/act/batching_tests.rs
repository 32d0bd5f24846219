//! [`Actor::act_on`] against the simulator over loopback: resources' actions
//! share calls, each resource gets its own outcome, and credentials that
//! merely share a SecretId never share a call.

use super::*;
use crate::api;
use crate::cloud::model::InstanceState;
use crate::sim::{self, RunningSimulator, SimConfig};
use futures::future::join_all;
use std::time::Instant;

const REGION: &str = "ap-guangzhou";

fn creds() -> Credentials {
    Credentials::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY, None).unwrap()
}

async fn setup() -> (RunningSimulator, CvmClient) {
    let config = SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    };
    sim::loopback(config).await
}

/// `n` RUNNING instances, launched in one call.
async fn launch(client: &CvmClient, n: i64) -> Vec<String> {
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some("S5.MEDIUM4".into()),
        instance_count: Some(n),
        ..Default::default()
    };
    let reply = client
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap();
    let ids = reply.body.instance_id_set.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = client
            .describe_instances_by_ids(&creds(), REGION, &ids)
            .await
            .unwrap();
        let settled = found
            .iter()
            .all(|i| i.instance_state == Some(InstanceState::Running) && !i.operating());
        if settled {
            return ids;
        }
        assert!(Instant::now() < deadline, "instances never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stop() -> CloudAction {
    CloudAction::Stop {
        stop_type: api::StopType::SOFT,
        stopped_mode: api::StoppedMode::KEEP_CHARGING,
        to_apply: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_of_many_resources_share_a_call_and_each_gets_its_own_outcome() {
    let none = SecretValues::default();
    let (sim, client) = setup().await;
    let ids = launch(&client, 150).await;
    // One instance is already stopping by someone else's hand.
    let busy = ids[42].clone();
    let req = model::StopInstancesRequest {
        instance_ids: vec![busy.clone()],
        ..Default::default()
    };
    client
        .call::<model::StopInstances>(&creds(), REGION, &req)
        .await
        .unwrap();
    sim.sim.reset_stats();
    let actor = Actor::new(client.clone());
    let (c, action) = (creds(), stop());
    let answers = join_all(
        ids.iter()
            .map(|id| actor.act_on(&c, REGION, id, &action, &none)),
    )
    .await;
    for (id, answer) in ids.iter().zip(&answers) {
        match answer {
            Err(e) => {
                assert_eq!(id, &busy, "only the busy instance fails: {e}");
                assert!(e.message().contains(busy.as_str()), "its own error: {e}");
            }
            Ok(_) => assert_ne!(id, &busy),
        }
    }
    assert!(answers[42].is_err());
    let calls = sim.sim.stats().calls("StopInstances");
    // The first two at once, then the burst in calls of 100 and 48, and
    // for the batch holding the busy one: it alone and the other 99 — far
    // from 150 calls.
    assert!(calls <= 6, "{calls} StopInstances for 150 resources");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_borrowed_secret_id_never_shares_its_owners_call() {
    let none = SecretValues::default();
    let (sim, client) = setup().await;
    let ids = launch(&client, 8).await;
    sim.sim.reset_stats();
    let actor = Actor::new(client.clone());
    let wrong = Credentials::new(sim::DEFAULT_SECRET_ID, "not-the-key", None).unwrap();
    let (action, right) = (CloudAction::Terminate, creds());
    // Both in a burst at once: the owner's four and the thief's four.
    let owner = ids[..4]
        .iter()
        .map(|id| actor.act_on(&right, REGION, id, &action, &none));
    let thief = ids[4..]
        .iter()
        .map(|id| actor.act_on(&wrong, REGION, id, &action, &none));
    let (owner, thief) = tokio::join!(join_all(owner), join_all(thief));
    assert!(owner.iter().all(Result::is_ok), "{owner:?}");
    for t in &thief {
        let e = t.as_ref().expect_err("the wrong key is refused");
        assert_eq!(e.class(), crate::cloud::ErrorClass::Auth, "{e}");
    }
    let left = client
        .describe_instances_by_ids(&creds(), REGION, &ids[4..])
        .await
        .unwrap();
    assert!(
        left.iter()
            .all(|i| i.instance_state == Some(InstanceState::Running))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_action_goes_at_once_and_a_per_instance_value_alone() {
    let none = SecretValues::default();
    let (sim, client) = setup().await;
    let mut ids = launch(&client, 11).await;
    let solo = ids.pop().unwrap();
    sim.sim.reset_stats();
    let actor = Actor::new(client.clone());
    let c = creds();
    // A person's edit: no window.
    let started = Instant::now();
    let one = CloudAction::Rename {
        name: "solo".into(),
    };
    actor.act_on(&c, REGION, &solo, &one, &none).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // Ten names: ten calls, whatever the timing.
    let renames: Vec<CloudAction> = (0..10)
        .map(|i| CloudAction::Rename {
            name: format!("web-{i}"),
        })
        .collect();
    let sent = ids
        .iter()
        .zip(&renames)
        .map(|(id, a)| actor.act_on(&c, REGION, id, a, &none));
    assert!(join_all(sent).await.iter().all(Result::is_ok));
    assert_eq!(sim.sim.stats().calls("ModifyInstancesAttribute"), 11);
    // (Each rename keeps its instance busy a moment.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One name for all ten: the first two at once, the burst in one call.
    let same = CloudAction::Rename { name: "web".into() };
    let sent = ids
        .iter()
        .map(|id| actor.act_on(&c, REGION, id, &same, &none));
    assert!(join_all(sent).await.iter().all(Result::is_ok));
    assert_eq!(sim.sim.stats().calls("ModifyInstancesAttribute"), 14);
}

#[tokio::test]
async fn a_burst_is_the_third_of_one_mutation_within_a_second() {
    let (_sim, client) = setup().await;
    let actor = Actor::new(client);
    let key = |params: &str| MutationKey {
        region: REGION.into(),
        identity: Identity::of_static(&creds()),
        action: "StopInstances",
        params: params.into(),
    };
    // A person's first and second edit go at once; the third in a second
    // waits for company, and another mutation is not part of that burst.
    assert!(!actor.in_burst(&key("SOFT/KEEP_CHARGING")));
    assert!(!actor.in_burst(&key("SOFT/KEEP_CHARGING")));
    assert!(!actor.in_burst(&key("HARD/KEEP_CHARGING")));
    assert!(actor.in_burst(&key("SOFT/KEEP_CHARGING")));
    assert!(actor.in_burst(&key("SOFT/KEEP_CHARGING")));
}

#[test]
fn actions_setting_different_members_never_share_a_key() {
    let modify = [
        CloudAction::Rename {
            name: "true".into(),
        },
        CloudAction::SetHostName {
            name: "true".into(),
        },
        CloudAction::SetCamRole {
            name: "true".into(),
        },
        CloudAction::SetTerminationProtection { enabled: true },
        CloudAction::SetSecurityGroups {
            ids: vec!["true".into()],
        },
    ];
    let keys: std::collections::HashSet<Option<String>> = modify.iter().map(batch_params).collect();
    assert_eq!(keys.len(), modify.len(), "{keys:?}");
    // Write-only values and per-call limits: alone.
    assert_eq!(batch_params(&CloudAction::SetUserData), None);
    assert_eq!(
        batch_params(&CloudAction::ResetType {
            instance_type: "S5.LARGE8".into()
        }),
        None
    );
    assert_eq!(batch_params(&CloudAction::SetBandwidth { mbps: 5 }), None);
}
