//! The simulator's outages (connection refused, unanswered requests, a
//! gateway's 503) and clock skew, seen through the client: each failure has
//! the class the operator's policies expect, the simulator keeps its state
//! throughout, and the client measures (and corrects) a skewed clock.

use super::*;
use cvm_operator::sim::{OutageMode, OutagePhase, OutagePlan};

async fn zones(c: &CvmClient) -> Result<(), CloudError> {
    c.call::<model::DescribeZones>(&creds(), REGION, &model::DescribeZonesRequest {})
        .await
        .map(|_| ())
}

fn no_retries(cfg: &mut ClientConfig) {
    cfg.retry = RetryPolicy::none();
    cfg.request_timeout = Duration::from_millis(700);
}

#[tokio::test]
async fn every_outage_kind_fails_as_its_class_and_keeps_the_state() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, no_retries);
    let id = run_one(&c, "survivor").await;

    // Refused: the listener is closed, the pooled connection is cut.
    sim.sim.set_outage(OutageMode::Refuse);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = zones(&c).await.unwrap_err();
    assert!(
        matches!(refused, CloudError::Network { connect: true, .. }),
        "{refused:?}"
    );
    assert!(refused.certainly_not_executed());

    // Black-holed: accepted, read, never answered (the listener re-opens
    // within milliseconds).
    sim.sim.set_outage(OutageMode::Blackhole);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let held = zones(&c).await.unwrap_err();
    assert!(matches!(held, CloudError::Timeout { .. }), "{held:?}");
    assert!(t0.elapsed() >= Duration::from_millis(600));
    // A mutation sent into the hole does not happen.
    let stop = model::StopInstancesRequest {
        instance_ids: vec![id.clone()],
        ..Default::default()
    };
    let lost = c
        .call::<model::StopInstances>(&creds(), REGION, &stop)
        .await;
    assert!(matches!(lost, Err(CloudError::Timeout { .. })), "{lost:?}");

    // A gateway's 503: transient.
    sim.sim.set_outage(OutageMode::ServerError);
    let gateway = zones(&c).await.unwrap_err();
    assert!(
        matches!(gateway, CloudError::HttpStatus { status: 503, .. }),
        "{gateway:?}"
    );
    assert_eq!(gateway.class(), ErrorClass::Transient);

    // Back: same address, same instances, nothing stopped.
    sim.sim.set_outage(OutageMode::None);
    zones(&c).await.unwrap();
    let i = settle(&c, &id, InstanceState::Running).await;
    assert_eq!(i.instance_name.as_deref(), Some("survivor"));
    let stats = sim.sim.stats();
    assert_eq!(stats.calls("StopInstances"), 0, "the black hole ate it");
    assert_eq!(stats.outage.get("StopInstances"), Some(&1));
    assert_eq!(stats.outage.get("DescribeZones"), Some(&2));
}

#[tokio::test]
async fn an_outage_plan_over_http_runs_its_phases_and_ends() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, no_retries);
    let admin = reqwest::Client::new();
    let plan = OutagePlan {
        phases: vec![
            OutagePhase {
                mode: OutageMode::Refuse,
                seconds: 0.6,
            },
            OutagePhase {
                mode: OutageMode::ServerError,
                seconds: 0.6,
            },
        ],
    };
    assert_eq!(plan.duration(), Duration::from_millis(1200));
    let put = admin
        .put(format!("{}/_sim/outage", sim.endpoint()))
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 202);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let refused = zones(&c).await.unwrap_err();
    assert!(matches!(refused, CloudError::Network { connect: true, .. }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mode: serde_json::Value = admin
        .get(format!("{}/_sim/outage", sim.endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mode["mode"], "serverError");
    tokio::time::sleep(Duration::from_millis(600)).await;
    zones(&c).await.unwrap();
    assert_eq!(sim.sim.outage(), OutageMode::None);
}

#[tokio::test]
async fn a_skewed_clock_is_measured_and_corrected() {
    let sim = start(fast_config()).await;
    // The API's clock is 10 minutes ahead: the node is 600 s behind.
    let admin = reqwest::Client::new();
    let put = admin
        .put(format!("{}/_sim/clock", sim.endpoint()))
        .json(&serde_json::json!({"offsetSecs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let raw = admin
        .get(format!("{}/_sim/stats", sim.endpoint()))
        .send()
        .await
        .unwrap();
    let date = raw.headers()["date"].to_str().unwrap().to_string();
    let node = cvm_operator::cloud::clock::node_now();
    let skew = cvm_operator::cloud::clock::skew_from_date(&date, node).unwrap();
    assert!((598..=602).contains(&skew), "Date {date} is {skew} s off");

    // Without correction: every call fails, naming the skew.
    let strict = client_for(&sim, |cfg| cfg.correct_clock_skew = false);
    let err = zones(&strict).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ClockSkew);
    let measured = match &err {
        CloudError::ClockSkew { skew_secs, .. } => skew_secs.unwrap(),
        other => panic!("{other:?}"),
    };
    assert!((598..=602).contains(&measured), "{measured}");
    assert!(err.message().contains("s behind the CVM API's"), "{err}");
    assert!(
        err.certainly_not_executed(),
        "refused before anything happened"
    );

    // With correction (the default): the first call is resent with the
    // API's time and succeeds; later ones are signed right at once.
    let calls: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = calls.clone();
    let fixing = client_for(&sim, |cfg| {
        cfg.retry = RetryPolicy::none();
        cfg.observer = Some(Arc::new(move |r: &CallRecord| {
            seen.lock()
                .unwrap()
                .push(r.error.as_ref().map(|e| e.0.clone()));
        }));
    });
    zones(&fixing).await.unwrap();
    zones(&fixing).await.unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [Some("AuthFailure.SignatureExpire".to_string()), None, None],
        "one refused attempt, then signed with the API's time"
    );

    // The node's clock is "fixed" (here: the API's returns): re-measured.
    sim.sim.set_clock_offset(0);
    zones(&fixing).await.unwrap();
}

#[tokio::test]
async fn calls_wait_while_the_api_does_not_answer_and_resume_at_its_first_answer() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |cfg| {
        no_retries(cfg);
        cfg.probe_interval = Duration::from_millis(500);
    });
    let recoveries = c.reachability().recoveries();
    zones(&c).await.unwrap();
    sim.sim.set_outage(OutageMode::ServerError);
    // Unanswered for 5 s and three calls: the endpoint is down.
    let t0 = Instant::now();
    while c.reachability().down().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never declared down"
        );
        let e = zones(&c).await.unwrap_err();
        assert!(
            e.unanswered() || e.class() == ErrorClass::Unreachable,
            "{e:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(t0.elapsed() >= Duration::from_secs(5));
    // Calls now fail at once, without reaching the simulator…
    let reached = sim.sim.stats().outage.values().sum::<u64>();
    let mut not_sent = 0;
    for _ in 0..20 {
        match zones(&c).await.unwrap_err() {
            CloudError::Unreachable { last_error, .. } => {
                assert!(last_error.contains("503"), "{last_error}");
                not_sent += 1;
            }
            other => assert!(other.unanswered(), "{other:?}"),
        }
    }
    assert!(not_sent >= 19, "{not_sent}");
    let during = sim.sim.stats().outage.values().sum::<u64>() - reached;
    assert!(during <= 1, "{during} calls reached the simulator");
    // …but for one probe per interval, which notices the return.
    sim.sim.set_outage(OutageMode::None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.probe_unreachable().await;
    assert!(c.reachability().down().is_empty());
    assert!(
        recoveries.has_changed().unwrap(),
        "the recovery is announced"
    );
    zones(&c).await.unwrap();
}
