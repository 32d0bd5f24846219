//! The CVM client against the simulator over real HTTP on loopback: every
//! action, the lifecycle, idempotent create, pagination, filters, the error
//! envelope and classification, retries and rate limits. No Kubernetes here.

use cvm_operator::cloud::model::{self, InstanceState, OperationState};
use cvm_operator::cloud::{
    CallRecord, ClientConfig, CloudError, Credentials, CvmClient, Endpoint, ErrorClass, HttpMethod,
    RateLimits, RetryPolicy, sign,
};
use cvm_operator::sim::{
    self, Faults, LostFault, LostMode, RunningSimulator, SimConfig, Simulator,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "cloud/in_place.rs"]
mod in_place;
#[path = "cloud/outage.rs"]
mod outage;
#[path = "cloud/tags.rs"]
mod tags;

const REGION: &str = "ap-guangzhou";
const ZONE: &str = "ap-guangzhou-3";

fn fast_config() -> SimConfig {
    SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> RunningSimulator {
    Simulator::new(config)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn creds() -> Credentials {
    Credentials::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY, None).unwrap()
}

fn client_for(sim: &RunningSimulator, tweak: impl FnOnce(&mut ClientConfig)) -> CvmClient {
    let mut cfg = ClientConfig {
        endpoint: Endpoint::parse(&sim.endpoint()).unwrap(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(20),
            throttled_base_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    };
    tweak(&mut cfg);
    CvmClient::new(cfg).unwrap()
}

fn run_request(name: &str) -> model::RunInstancesRequest {
    model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some(ZONE.into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some("S5.SMALL1".into()),
        instance_name: Some(name.into()),
        internet_accessible: Some(model::InternetAccessible {
            internet_charge_type: Some("TRAFFIC_POSTPAID_BY_HOUR".into()),
            internet_max_bandwidth_out: Some(1),
            ..Default::default()
        }),
        tag_specification: Some(vec![model::TagSpecification {
            resource_type: "instance".into(),
            tags: vec![model::Tag {
                key: "team".into(),
                value: name.into(),
            }],
        }]),
        ..Default::default()
    }
}

async fn describe(c: &CvmClient, id: &str) -> Option<model::Instance> {
    c.describe_instances_by_ids(&creds(), REGION, &[id.to_string()])
        .await
        .unwrap()
        .into_iter()
        .next()
}

/// Waits until the instance is in `state` with no operation in flight.
async fn settle(c: &CvmClient, id: &str, state: InstanceState) -> model::Instance {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = describe(c, id).await.expect("instance exists");
        if i.instance_state.as_ref() == Some(&state)
            && i.latest_operation_state != Some(OperationState::Operating)
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state}: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gone(c: &CvmClient, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while describe(c, id).await.is_some() {
        assert!(Instant::now() < deadline, "{id} never disappeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn api_code(e: &CloudError) -> &str {
    match e {
        CloudError::Api { code, .. } => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn run_one(c: &CvmClient, name: &str) -> String {
    let reply = c
        .call::<model::RunInstances>(&creds(), REGION, &run_request(name))
        .await
        .unwrap();
    assert!(!reply.request_id.is_empty());
    reply.body.instance_id_set.unwrap().remove(0)
}

#[tokio::test]
async fn full_lifecycle_over_post_and_get() {
    for method in [HttpMethod::Post, HttpMethod::Get] {
        let sim = start(fast_config()).await;
        let c = client_for(&sim, |cfg| cfg.method = method);
        let id = run_one(&c, "web-1").await;
        assert!(sim::engine::is_instance_id(&id), "{id}");
        let pending = describe(&c, &id).await.unwrap();
        assert_eq!(
            pending.instance_state,
            Some(InstanceState::Pending),
            "visible at once as PENDING"
        );
        assert_eq!(pending.latest_operation.as_deref(), Some("RunInstances"));
        let running = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(running.instance_type.as_deref(), Some("S5.SMALL1"));
        assert_eq!((running.cpu, running.memory), (Some(1), Some(1)));
        assert_eq!(running.zone(), Some(ZONE));
        assert_eq!(running.tag("team"), Some("web-1"));
        assert_eq!(running.private_ip_addresses.as_ref().map(Vec::len), Some(1));
        assert_eq!(running.public_ip_addresses.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            running.latest_operation_state,
            Some(OperationState::Success)
        );

        let ids = vec![id.clone()];
        let stop = model::StopInstancesRequest {
            instance_ids: ids.clone(),
            stop_type: Some("SOFT".into()),
            stopped_mode: Some("KEEP_CHARGING".into()),
            ..Default::default()
        };
        c.call::<model::StopInstances>(&creds(), REGION, &stop)
            .await
            .unwrap();
        assert_eq!(
            describe(&c, &id).await.unwrap().instance_state,
            Some(InstanceState::Stopping)
        );
        let stopped = settle(&c, &id, InstanceState::Stopped).await;
        assert_eq!(stopped.latest_operation.as_deref(), Some("StopInstances"));
        assert_eq!(stopped.stop_charging_mode.as_deref(), Some("KEEP_CHARGING"));

        let resize = model::ResetInstancesTypeRequest {
            instance_ids: ids.clone(),
            instance_type: "S5.MEDIUM4".into(),
            force_stop: None,
        };
        c.call::<model::ResetInstancesType>(&creds(), REGION, &resize)
            .await
            .unwrap();
        // Documented: after the change the instance shows RUNNING by itself.
        let resized = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(resized.instance_type.as_deref(), Some("S5.MEDIUM4"));
        assert_eq!((resized.cpu, resized.memory), (Some(2), Some(4)));

        c.call::<model::StopInstances>(&creds(), REGION, &stop)
            .await
            .unwrap();
        settle(&c, &id, InstanceState::Stopped).await;
        let start = model::StartInstancesRequest {
            instance_ids: ids.clone(),
        };
        c.call::<model::StartInstances>(&creds(), REGION, &start)
            .await
            .unwrap();
        settle(&c, &id, InstanceState::Running).await;

        let bw = model::ResetInstancesInternetMaxBandwidthRequest {
            instance_ids: ids.clone(),
            internet_accessible: model::InternetAccessible {
                internet_max_bandwidth_out: Some(5),
                ..Default::default()
            },
            ..Default::default()
        };
        c.call::<model::ResetInstancesInternetMaxBandwidth>(&creds(), REGION, &bw)
            .await
            .unwrap();
        assert_eq!(
            settle(&c, &id, InstanceState::Running)
                .await
                .bandwidth_out(),
            Some(5)
        );

        let rename = model::ModifyInstancesAttributeRequest {
            instance_ids: ids.clone(),
            instance_name: Some("web-1-renamed".into()),
            ..Default::default()
        };
        c.call::<model::ModifyInstancesAttribute>(&creds(), REGION, &rename)
            .await
            .unwrap();
        // A second mutation during the operation's tail is refused as busy.
        let sg = model::ModifyInstancesAttributeRequest {
            instance_ids: ids.clone(),
            security_groups: Some(vec!["sg-gz000002".into(), "sg-gz000003".into()]),
            ..Default::default()
        };
        let busy = c
            .call::<model::ModifyInstancesAttribute>(&creds(), REGION, &sg)
            .await
            .unwrap_err();
        assert_eq!(
            api_code(&busy),
            "OperationDenied.InstanceOperationInProgress"
        );
        assert_eq!(busy.class(), ErrorClass::Busy);
        settle(&c, &id, InstanceState::Running).await;
        c.call::<model::ModifyInstancesAttribute>(&creds(), REGION, &sg)
            .await
            .unwrap();
        let modified = settle(&c, &id, InstanceState::Running).await;
        assert_eq!(modified.instance_name.as_deref(), Some("web-1-renamed"));
        assert_eq!(
            modified.security_group_ids.as_deref(),
            Some(&["sg-gz000002".to_string(), "sg-gz000003".to_string()][..])
        );

        c.call::<model::RebootInstances>(
            &creds(),
            REGION,
            &model::RebootInstancesRequest {
                instance_ids: ids.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            describe(&c, &id).await.unwrap().instance_state,
            Some(InstanceState::Rebooting)
        );
        settle(&c, &id, InstanceState::Running).await;

        c.call::<model::TerminateInstances>(
            &creds(),
            REGION,
            &model::TerminateInstancesRequest {
                instance_ids: ids.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            describe(&c, &id).await.unwrap().instance_state,
            Some(InstanceState::Terminating)
        );
        gone(&c, &id).await;
        // Mutations on a vanished instance are NotFound; Describe just omits it.
        let err = c
            .call::<model::StartInstances>(&creds(), REGION, &start)
            .await
            .unwrap_err();
        assert_eq!(api_code(&err), "InvalidInstanceId.NotFound");
        assert_eq!(err.class(), ErrorClass::NotFound);
        assert_eq!(sim.sim.stats().instances, 0, "{method:?}");
    }
}

#[tokio::test]
async fn state_rules_and_prepaid_recycle_bin() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let id = run_one(&c, "rules").await;
    let ids = vec![id.clone()];
    // PENDING: nothing may be started or stopped.
    let err = c
        .call::<model::StopInstances>(
            &creds(),
            REGION,
            &model::StopInstancesRequest {
                instance_ids: ids.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnsupportedOperation.InstanceStatePending");
    settle(&c, &id, InstanceState::Running).await;
    // Start a RUNNING instance: refused with the state in the code.
    let err = c
        .call::<model::StartInstances>(
            &creds(),
            REGION,
            &model::StartInstancesRequest {
                instance_ids: ids.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnsupportedOperation.InstanceStateRunning");
    assert_eq!(err.class(), ErrorClass::Busy);
    // Resize while RUNNING without ForceStop: refused.
    let resize = model::ResetInstancesTypeRequest {
        instance_ids: ids.clone(),
        instance_type: "S5.MEDIUM2".into(),
        force_stop: None,
    };
    let err = c
        .call::<model::ResetInstancesType>(&creds(), REGION, &resize)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnsupportedOperation.InstanceStateRunning");
    // ... and with ForceStop it stops, resizes and comes back RUNNING.
    let forced = model::ResetInstancesTypeRequest {
        force_stop: Some(true),
        ..resize
    };
    c.call::<model::ResetInstancesType>(&creds(), REGION, &forced)
        .await
        .unwrap();
    let i = settle(&c, &id, InstanceState::Running).await;
    assert_eq!(i.instance_type.as_deref(), Some("S5.MEDIUM2"));
    // Terminate protection.
    c.call::<model::ModifyInstancesAttribute>(
        &creds(),
        REGION,
        &model::ModifyInstancesAttributeRequest {
            instance_ids: ids.clone(),
            disable_api_termination: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    settle(&c, &id, InstanceState::Running).await;
    let term = model::TerminateInstancesRequest {
        instance_ids: ids.clone(),
        ..Default::default()
    };
    let err = c
        .call::<model::TerminateInstances>(&creds(), REGION, &term)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "UnsupportedOperation.InstancesProtected");
    assert_eq!(err.class(), ErrorClass::Permanent);

    // Prepaid: the first terminate goes to SHUTDOWN (recycle bin), the second destroys.
    let mut prepaid = run_request("prepaid");
    prepaid.instance_charge_type = Some("PREPAID".into());
    prepaid.instance_charge_prepaid = Some(model::InstanceChargePrepaid {
        period: Some(1),
        renew_flag: Some("NOTIFY_AND_AUTO_RENEW".into()),
    });
    let pid = c
        .call::<model::RunInstances>(&creds(), REGION, &prepaid)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap()
        .remove(0);
    let p = settle(&c, &pid, InstanceState::Running).await;
    assert_eq!(p.renew_flag.as_deref(), Some("NOTIFY_AND_AUTO_RENEW"));
    assert!(p.expired_time.is_some());
    let pterm = model::TerminateInstancesRequest {
        instance_ids: vec![pid.clone()],
        ..Default::default()
    };
    c.call::<model::TerminateInstances>(&creds(), REGION, &pterm)
        .await
        .unwrap();
    let shut = settle(&c, &pid, InstanceState::Shutdown).await;
    assert_eq!(shut.isolated_source.as_deref(), Some("MANMADE"));
    c.call::<model::TerminateInstances>(&creds(), REGION, &pterm)
        .await
        .unwrap();
    gone(&c, &pid).await;

    // STOP_CHARGING only for postpaid, and a no-charge stop blocks resizing.
    let id2 = run_one(&c, "nocharge").await;
    settle(&c, &id2, InstanceState::Running).await;
    c.call::<model::StopInstances>(
        &creds(),
        REGION,
        &model::StopInstancesRequest {
            instance_ids: vec![id2.clone()],
            stopped_mode: Some("STOP_CHARGING".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = settle(&c, &id2, InstanceState::Stopped).await;
    assert_eq!(s.stop_charging_mode.as_deref(), Some("STOP_CHARGING"));
    let err = c
        .call::<model::ResetInstancesType>(
            &creds(),
            REGION,
            &model::ResetInstancesTypeRequest {
                instance_ids: vec![id2.clone()],
                instance_type: "S5.MEDIUM4".into(),
                force_stop: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        "UnsupportedOperation.StoppedModeStopCharging"
    );
}

#[tokio::test]
async fn launch_failure_is_final_and_reported() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let mut req = run_request("broken");
    req.image_id = Some("img-brokenz1".into());
    let id = c
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap()
        .remove(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let i = loop {
        let i = describe(&c, &id).await.unwrap();
        if i.instance_state == Some(InstanceState::LaunchFailed) {
            break i;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(i.latest_operation_state, Some(OperationState::Failed));
    assert!(
        i.latest_operation_error_msg
            .unwrap()
            .contains("img-brokenz1")
    );
    let err = c
        .call::<model::TerminateInstances>(
            &creds(),
            REGION,
            &model::TerminateInstancesRequest {
                instance_ids: vec![id],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        "UnsupportedOperation.InstanceStateLaunchFailed"
    );
}

#[tokio::test]
async fn client_token_makes_create_idempotent() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let mut req = run_request("idem");
    req.client_token = Some("uid-0f6c-42-create".into());
    let first = c
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap();
    let second = c
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap();
    assert_eq!(first.body.instance_id_set, second.body.instance_id_set);
    assert_ne!(
        first.request_id, second.request_id,
        "a fresh RequestId on every response"
    );
    assert_eq!(sim.sim.stats().instances, 1);
    // Another token creates another instance.
    req.client_token = Some("uid-0f6c-42-create-2".into());
    c.call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap();
    assert_eq!(sim.sim.stats().instances, 2);
    // Over-long tokens are refused before sending.
    req.client_token = Some("x".repeat(65));
    let err = c
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::InvalidRequest { .. }), "{err:?}");
}

#[tokio::test]
async fn lost_run_response_is_retried_with_the_same_client_token() {
    let sim = start(fast_config()).await;
    sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("RunInstances".into()),
            rate: 1.0,
            mode: LostMode::Drop,
            hold_ms: 0,
            remaining: Some(2),
        }],
        ..Faults::default()
    });
    let attempts = Arc::new(Mutex::new(Vec::<CallRecord>::new()));
    let seen = attempts.clone();
    let c = client_for(&sim, |cfg| {
        cfg.observer = Some(Arc::new(move |r: &CallRecord| {
            seen.lock().unwrap().push(r.clone())
        }))
    });
    // No ClientToken given: the client makes one and keeps it for the retries.
    let reply = c
        .call::<model::RunInstances>(&creds(), REGION, &run_request("lost"))
        .await
        .unwrap();
    let stats = sim.sim.stats();
    assert_eq!(
        stats.calls("RunInstances"),
        3,
        "two lost answers, then the replay"
    );
    assert_eq!(stats.lost["RunInstances"], 2);
    assert_eq!(
        stats.instances, 1,
        "retries must not create a second instance"
    );
    assert_eq!(reply.body.instance_id_set.unwrap().len(), 1);
    let recs = attempts.lock().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].error.as_ref().unwrap().1, ErrorClass::Transient);
    assert!(recs[2].error.is_none());
}

#[tokio::test]
async fn non_idempotent_calls_are_not_retried_after_an_unknown_outcome() {
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |_| {});
    let id = run_one(&c, "stopper").await;
    settle(&c, &id, InstanceState::Running).await;
    sim.sim.set_faults(Faults {
        lost: vec![LostFault {
            action: Some("StopInstances".into()),
            rate: 1.0,
            mode: LostMode::ServerError,
            hold_ms: 0,
            remaining: Some(1),
        }],
        ..Faults::default()
    });
    let err = c
        .call::<model::StopInstances>(
            &creds(),
            REGION,
            &model::StopInstancesRequest {
                instance_ids: vec![id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::HttpStatus { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(
        sim.sim.stats().calls("StopInstances"),
        1,
        "no blind retry of a stop"
    );
    // It did take effect: the caller must re-observe, not resend.
    assert_ne!(
        describe(&c, &id).await.unwrap().instance_state,
        Some(InstanceState::Running)
    );
}

#[tokio::test]
async fn throttled_then_success_and_permanent_not_retried() {
    let sim = start(fast_config()).await;
    sim.sim.set_faults(Faults {
        errors: vec![sim::ErrorFault {
            action: Some("DescribeZones".into()),
            code: "RequestLimitExceeded".into(),
            rate: 1.0,
            remaining: Some(2),
        }],
        ..Faults::default()
    });
    let c = client_for(&sim, |_| {});
    let zones = c
        .call::<model::DescribeZones>(&creds(), REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap();
    assert_eq!(sim.sim.stats().calls("DescribeZones"), 3);
    let zs = zones.body.zone_set.unwrap();
    assert!(
        zs.iter().any(|z| z.zone.as_deref() == Some(ZONE)
            && z.zone_name.as_deref() == Some("Guangzhou Zone 3"))
    );

    // A permanent error is returned at once.
    let mut bad = run_request("bad-type");
    bad.instance_type = Some("S5.HUGE999".into());
    let err = c
        .call::<model::RunInstances>(&creds(), REGION, &bad)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "InvalidParameterValue.InstanceTypeNotFound");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.request_id().is_some_and(|r| !r.is_empty()));
    assert_eq!(sim.sim.stats().calls("RunInstances"), 1);

    // Transient errors on an idempotent read are retried up to the bound.
    sim.sim.set_faults(Faults {
        errors: vec![sim::ErrorFault {
            action: Some("DescribeImages".into()),
            code: "InternalError".into(),
            rate: 1.0,
            remaining: None,
        }],
        ..Faults::default()
    });
    let err = c
        .call::<model::DescribeImages>(&creds(), REGION, &model::DescribeImagesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "InternalError");
    assert_eq!(
        sim.sim.stats().calls("DescribeImages"),
        RetryPolicy::default().max_attempts as u64
    );
}

#[tokio::test]
async fn client_rate_limit_keeps_under_the_service_quota() {
    // The simulator enforces 40/s for DescribeInstances. A burst of 120 calls
    // through the client's own limiter sees no RequestLimitExceeded at all.
    let sim = start(fast_config()).await;
    let c = client_for(&sim, |cfg| cfg.retry = RetryPolicy::none());
    let calls = (0..120).map(|_| {
        let c = c.clone();
        async move {
            c.call::<model::DescribeInstances>(
                &creds(),
                REGION,
                &model::DescribeInstancesRequest::default(),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(
        sim.sim
            .stats()
            .errors("DescribeInstances", "RequestLimitExceeded"),
        0
    );

    // Without the client limiter the same burst is throttled by the service.
    let unlimited = client_for(&sim, |cfg| {
        cfg.retry = RetryPolicy::none();
        cfg.rate_limits = RateLimits::disabled();
    });
    let calls = (0..120).map(|_| {
        let c = unlimited.clone();
        async move {
            c.call::<model::DescribeInstances>(
                &creds(),
                REGION,
                &model::DescribeInstancesRequest::default(),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let throttled = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| e.class() == ErrorClass::Throttled)
        })
        .count();
    assert!(throttled > 0, "the simulator must enforce its quota");
}

#[tokio::test]
async fn pagination_filters_and_id_batches() {
    let sim = start(SimConfig {
        rate_limits: RateLimits::disabled(),
        ..fast_config()
    })
    .await;
    let c = client_for(&sim, |_| {});
    let mut req = run_request("fleet");
    req.instance_count = Some(100);
    req.tag_specification.as_mut().unwrap()[0]
        .tags
        .push(model::Tag {
            key: "batch".into(),
            value: "a".into(),
        });
    let mut ids = c
        .call::<model::RunInstances>(&creds(), REGION, &req)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap();
    req.instance_count = Some(50);
    req.tag_specification.as_mut().unwrap()[0].tags[1].value = "b".into();
    req.instance_name = Some("other".into());
    ids.extend(
        c.call::<model::RunInstances>(&creds(), REGION, &req)
            .await
            .unwrap()
            .body
            .instance_id_set
            .unwrap(),
    );
    assert_eq!(ids.len(), 150);

    // Offset/Limit pages with a TotalCount of all matches.
    let page = c
        .call::<model::DescribeInstances>(
            &creds(),
            REGION,
            &model::DescribeInstancesRequest {
                offset: Some(140),
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .body;
    assert_eq!(page.total_count, Some(150));
    assert_eq!(page.instance_set.unwrap().len(), 10);
    let all = c
        .describe_instances_filtered(&creds(), REGION, vec![])
        .await
        .unwrap();
    assert_eq!(all.len(), 150);

    // Filters: AND across filters, OR within values.
    let b = c
        .describe_instances_filtered(
            &creds(),
            REGION,
            vec![model::Filter::new("tag:batch", ["b"])],
        )
        .await
        .unwrap();
    assert_eq!(b.len(), 50);
    let both = c
        .describe_instances_filtered(
            &creds(),
            REGION,
            vec![
                model::Filter::new("tag:batch", ["a", "b"]),
                model::Filter::new("zone", [ZONE]),
                model::Filter::new("instance-state", ["PENDING", "RUNNING"]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(both.len(), 150);
    let by_key = c
        .describe_instances_filtered(
            &creds(),
            REGION,
            vec![model::Filter::new("tag-key", ["batch"])],
        )
        .await
        .unwrap();
    assert_eq!(by_key.len(), 150);
    let by_id = c
        .describe_instances_filtered(
            &creds(),
            REGION,
            vec![model::Filter::new("instance-id", [ids[3].clone()])],
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let by_vpc = c
        .describe_instances_filtered(
            &creds(),
            REGION,
            vec![model::Filter::new("vpc-id", ["vpc-gz000001"])],
        )
        .await
        .unwrap();
    assert_eq!(by_vpc.len(), 150);
    assert!(
        c.describe_instances_filtered(
            &creds(),
            REGION,
            vec![model::Filter::new("zone", ["ap-guangzhou-4"])]
        )
        .await
        .unwrap()
        .is_empty()
    );

    // Ids: 150 ids take two calls of ≤ 100; unknown ids are simply absent.
    sim.sim.reset_stats();
    let mut query = ids.clone();
    query.push("ins-zzzzzzzz".into());
    let found = c
        .describe_instances_by_ids(&creds(), REGION, &query)
        .await
        .unwrap();
    assert_eq!(found.len(), 150);
    assert_eq!(sim.sim.stats().calls("DescribeInstances"), 2);

    // Other regions do not see these instances.
    let other = c
        .call::<model::DescribeInstances>(
            &creds(),
            "ap-shanghai",
            &model::DescribeInstancesRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(other.body.total_count, Some(0));

    // Request-shape errors.
    let too_many = model::DescribeInstancesRequest {
        instance_ids: Some(ids[..101].to_vec()),
        ..Default::default()
    };
    let err = c
        .call::<model::DescribeInstances>(&creds(), REGION, &too_many)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "InvalidParameterValue.LimitExceeded");
    let mixed = model::DescribeInstancesRequest {
        instance_ids: Some(vec![ids[0].clone()]),
        filters: Some(vec![model::Filter::new("zone", [ZONE])]),
        ..Default::default()
    };
    assert_eq!(
        api_code(
            &c.call::<model::DescribeInstances>(&creds(), REGION, &mixed)
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    let bad_filter = model::DescribeInstancesRequest {
        filters: Some(vec![model::Filter::new("colour", ["red"])]),
        ..Default::default()
    };
    assert_eq!(
        api_code(
            &c.call::<model::DescribeInstances>(&creds(), REGION, &bad_filter)
                .await
                .unwrap_err()
        ),
        "InvalidFilter"
    );
    let malformed = model::DescribeInstancesRequest {
        instance_ids: Some(vec!["ins-1122".into()]),
        ..Default::default()
    };
    assert_eq!(
        api_code(
            &c.call::<model::DescribeInstances>(&creds(), REGION, &malformed)
                .await
                .unwrap_err()
        ),
        "InvalidInstanceId.Malformed"
    );
    let big_limit = model::DescribeInstancesRequest {
        limit: Some(101),
        ..Default::default()
    };
    assert_eq!(
        api_code(
            &c.call::<model::DescribeInstances>(&creds(), REGION, &big_limit)
                .await
                .unwrap_err()
        ),
        "InvalidParameterValue.Range"
    );
}

#[tokio::test]
async fn run_instances_validation_codes() {
    let sim = start(SimConfig {
        engine: sim::EngineConfig {
            instance_quota: 2,
            ..Default::default()
        },
        ..fast_config()
    })
    .await;
    let c = client_for(&sim, |_| {});
    type Tweak = Box<dyn Fn(&mut model::RunInstancesRequest)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("MissingParameter", Box::new(|r| r.placement = None)),
        ("MissingParameter", Box::new(|r| r.image_id = None)),
        (
            "InvalidZone.MismatchRegion",
            Box::new(|r| r.placement.as_mut().unwrap().zone = Some("ap-shanghai-2".into())),
        ),
        (
            "InvalidParameterValue.ZoneNotSupported",
            Box::new(|r| r.placement.as_mut().unwrap().zone = Some("ap-guangzhou-2".into())),
        ),
        (
            "InvalidImageId.Malformed",
            Box::new(|r| r.image_id = Some("ubuntu".into())),
        ),
        (
            "InvalidImageId.NotFound",
            Box::new(|r| r.image_id = Some("img-00000000".into())),
        ),
        (
            "InvalidInstanceType.Malformed",
            Box::new(|r| r.instance_type = Some("small".into())),
        ),
        (
            "InvalidParameterValue.InstanceTypeNotFound",
            Box::new(|r| r.instance_type = Some("S5.HUGE999".into())),
        ),
        (
            "ResourceUnavailable.InstanceType",
            Box::new(|r| r.instance_type = Some("GN7.2XLARGE32".into())),
        ),
        (
            "ResourceInsufficient.SpecifiedInstanceType",
            Box::new(|r| r.instance_type = Some("S6.LARGE16".into())),
        ),
        (
            "InvalidPeriod",
            Box::new(|r| {
                r.instance_charge_type = Some("PREPAID".into());
                r.instance_charge_prepaid = Some(model::InstanceChargePrepaid {
                    period: Some(13),
                    renew_flag: None,
                });
            }),
        ),
        (
            "InvalidParameterValue.Range",
            Box::new(|r| {
                r.system_disk = Some(model::SystemDisk {
                    disk_size: Some(5000),
                    ..Default::default()
                })
            }),
        ),
        (
            "InvalidParameterValue.Range",
            Box::new(|r| {
                r.internet_accessible
                    .as_mut()
                    .unwrap()
                    .internet_max_bandwidth_out = Some(1000)
            }),
        ),
        (
            "InvalidParameterValue.VpcIdNotExist",
            Box::new(|r| {
                r.virtual_private_cloud = Some(model::VirtualPrivateCloud {
                    vpc_id: Some("vpc-nothere".into()),
                    subnet_id: Some("subnet-nothere".into()),
                    ..Default::default()
                })
            }),
        ),
        (
            "InvalidSecurityGroupId.NotFound",
            Box::new(|r| r.security_group_ids = Some(vec!["sg-nothere1".into()])),
        ),
        (
            "InvalidPassword",
            Box::new(|r| {
                r.login_settings = Some(model::LoginSettings {
                    password: Some(model::Secret::new("short")),
                    ..Default::default()
                })
            }),
        ),
        (
            "InvalidParameterValue.IllegalHostName",
            Box::new(|r| r.host_name = Some("-bad-".into())),
        ),
        (
            "InvalidParameterValue.InvalidUserDataFormat",
            Box::new(|r| r.user_data = Some(model::Secret::new("not base64!"))),
        ),
        (
            "InvalidInstanceName.TooLong",
            Box::new(|r| r.instance_name = Some("n".repeat(129))),
        ),
        (
            "LimitExceeded.InstanceQuota",
            Box::new(|r| r.instance_count = Some(3)),
        ),
        ("DryRunOperation", Box::new(|r| r.dry_run = Some(true))),
    ];
    for (want, tweak) in cases {
        let mut req = run_request("v");
        tweak(&mut req);
        let err = c
            .call::<model::RunInstances>(&creds(), REGION, &req)
            .await
            .unwrap_err();
        assert_eq!(api_code(&err), want, "{req:?}");
    }
    assert_eq!(
        sim.sim.stats().instances,
        0,
        "no failed create left anything behind"
    );

    // InquiryPriceRunInstances prices from the catalogue.
    let to_price = run_request("p");
    let to_price = model::InquiryPriceRunInstancesRequest {
        placement: to_price.placement.unwrap(),
        image_id: to_price.image_id.unwrap(),
        instance_type: to_price.instance_type,
        internet_accessible: to_price.internet_accessible,
        ..Default::default()
    };
    let price = c
        .call::<model::InquiryPriceRunInstances>(&creds(), REGION, &to_price)
        .await
        .unwrap()
        .body
        .price
        .unwrap();
    assert_eq!(price.instance_price.unwrap().unit_price, Some(0.09));
    assert_eq!(
        price.bandwidth_price.unwrap().charge_unit.as_deref(),
        Some("GB")
    );
    let types = c
        .call::<model::DescribeInstanceTypeConfigs>(
            &creds(),
            REGION,
            &model::DescribeInstanceTypeConfigsRequest {
                filters: Some(vec![
                    model::Filter::new("zone", [ZONE]),
                    model::Filter::new("instance-family", ["S5"]),
                ]),
            },
        )
        .await
        .unwrap()
        .body
        .instance_type_config_set
        .unwrap();
    let medium4 = types
        .iter()
        .find(|t| t.instance_type.as_deref() == Some("S5.MEDIUM4"))
        .unwrap();
    assert_eq!((medium4.cpu, medium4.memory), (Some(2), Some(4)));
    let images = c
        .call::<model::DescribeImages>(
            &creds(),
            REGION,
            &model::DescribeImagesRequest {
                filters: Some(vec![model::Filter::new("platform", ["Ubuntu"])]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .body;
    assert_eq!(images.total_count, Some(2));
}

// -- protocol and authentication, with hand-made requests ---------------------

struct Raw {
    url: String,
    host: String,
}

impl Raw {
    fn new(sim: &RunningSimulator) -> Self {
        Self {
            url: sim.endpoint(),
            host: sim.addr.to_string(),
        }
    }

    /// Sends a signed POST; `mutate` may tamper with anything after signing.
    async fn post(
        &self,
        action: &str,
        body: &str,
        key: &str,
        id: &str,
        ts: i64,
        mutate: impl FnOnce(&mut Vec<(String, String)>, &mut String),
    ) -> (reqwest::StatusCode, String, serde_json::Value) {
        let headers = [
            ("content-type", "application/json"),
            ("host", self.host.as_str()),
        ];
        let sig = sign::sign(
            key,
            &sign::SigningInput {
                method: "POST",
                query: "",
                headers: &headers,
                payload: body.as_bytes(),
                timestamp: ts,
                service: "cvm",
            },
        )
        .unwrap();
        let mut hs = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), sig.authorization(id)),
            ("X-TC-Action".to_string(), action.to_string()),
            ("X-TC-Version".to_string(), "2017-03-12".to_string()),
            ("X-TC-Timestamp".to_string(), ts.to_string()),
            ("X-TC-Region".to_string(), REGION.to_string()),
        ];
        let mut body = body.to_string();
        mutate(&mut hs, &mut body);
        let mut rb = reqwest::Client::new().post(&self.url).body(body);
        for (k, v) in hs {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let json: serde_json::Value = resp.json().await.unwrap();
        (status, ct, json)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn code_of(v: &serde_json::Value) -> &str {
    v["Response"]["Error"]["Code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn protocol_and_signature_are_checked_strictly() {
    let sim = start(fast_config()).await;
    let raw = Raw::new(&sim);
    let (key, id) = (sim::DEFAULT_SECRET_KEY, sim::DEFAULT_SECRET_ID);
    let ok = raw
        .post("DescribeZones", "{}", key, id, now(), |_, _| {})
        .await;
    assert_eq!(ok.0, 200);
    assert_eq!(ok.1, "application/json", "exactly application/json");
    assert!(ok.2["Response"]["ZoneSet"].is_array());
    let rid = ok.2["Response"]["RequestId"].as_str().unwrap().to_string();

    let cases: Vec<(&str, serde_json::Value)> = vec![
        (
            "AuthFailure.SignatureFailure",
            raw.post("DescribeZones", "{}", "wrong-key", id, now(), |_, _| {})
                .await
                .2,
        ),
        (
            "AuthFailure.SecretIdNotFound",
            raw.post("DescribeZones", "{}", key, "AKIDunknown", now(), |_, _| {})
                .await
                .2,
        ),
        (
            "AuthFailure.SignatureExpire",
            raw.post("DescribeZones", "{}", key, id, now() - 301, |_, _| {})
                .await
                .2,
        ),
        // Body changed after signing.
        (
            "AuthFailure.SignatureFailure",
            raw.post(
                "DescribeInstances",
                r#"{"Limit": 1}"#,
                key,
                id,
                now(),
                |_, b| *b = r#"{"Limit": 2}"#.into(),
            )
            .await
            .2,
        ),
        // Host changed after signing.
        (
            "AuthFailure.SignatureFailure",
            raw.post("DescribeZones", "{}", key, id, now(), |h, _| {
                h.push(("Host".into(), "cvm.tencentcloudapi.com".into()))
            })
            .await
            .2,
        ),
        (
            "AuthFailure.InvalidAuthorization",
            raw.post("DescribeZones", "{}", key, id, now(), |h, _| {
                h.retain(|(k, _)| k != "Authorization");
                h.push((
                    "Authorization".into(),
                    "TC3-HMAC-SHA256 Credential=garbage".into(),
                ));
            })
            .await
            .2,
        ),
        (
            "AuthFailure.InvalidAuthorization",
            raw.post("DescribeZones", "{}", key, id, now(), |h, _| {
                h.retain(|(k, _)| k != "Authorization")
            })
            .await
            .2,
        ),
        (
            "InvalidAction",
            raw.post("DescribeUnicorns", "{}", key, id, now(), |_, _| {})
                .await
                .2,
        ),
        (
            "NoSuchVersion",
            raw.post("DescribeZones", "{}", key, id, now(), |h, _| {
                h.retain(|(k, _)| k != "X-TC-Version");
                h.push(("X-TC-Version".into(), "2099-01-01".into()));
            })
            .await
            .2,
        ),
        (
            "MissingParameter",
            raw.post("StartInstances", "{}", key, id, now(), |_, _| {})
                .await
                .2,
        ),
        (
            "UnknownParameter",
            raw.post(
                "StartInstances",
                r#"{"InstanceIds": [], "Colour": "red"}"#,
                key,
                id,
                now(),
                |_, _| {},
            )
            .await
            .2,
        ),
        (
            "InvalidParameter",
            raw.post(
                "DescribeInstances",
                r#"{"Limit": "many"}"#,
                key,
                id,
                now(),
                |_, _| {},
            )
            .await
            .2,
        ),
        (
            "UnsupportedRegion",
            raw.post("DescribeZones", "{}", key, id, now(), |h, _| {
                h.retain(|(k, _)| k != "X-TC-Region");
                h.push(("X-TC-Region".into(), "mars-north-1".into()));
            })
            .await
            .2,
        ),
    ];
    for (want, resp) in &cases {
        assert_eq!(code_of(resp), *want, "{resp}");
        let r = resp["Response"]["RequestId"].as_str().unwrap();
        assert!(
            !r.is_empty() && r != rid,
            "a fresh RequestId on every response"
        );
    }
    // Names the field in the message.
    assert!(
        cases[9].1["Response"]["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("InstanceIds")
    );
    assert!(
        cases[10].1["Response"]["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("Colour")
    );

    // Introspection is not a CVM action, and is not reachable as one.
    let stats: sim::Stats = reqwest::get(format!("{}/_sim/stats", raw.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats.calls("DescribeZones") >= 1);
    assert!(stats.errors("DescribeZones", "AuthFailure.SignatureFailure") >= 1);
    let as_action = raw
        .post("_sim/stats", "{}", key, id, now(), |_, _| {})
        .await
        .2;
    assert_eq!(code_of(&as_action), "InvalidAction");

    // Through the typed client without correction, a stale clock is its
    // own error class (not the credentials'), with the skew measured.
    let c = client_for(&sim, |cfg| {
        cfg.clock_skew_secs = -400;
        cfg.correct_clock_skew = false;
    });
    let err = c
        .call::<model::DescribeZones>(&creds(), REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AuthFailure.SignatureExpire");
    assert_eq!(err.class(), ErrorClass::ClockSkew);
}

#[tokio::test]
async fn session_token_is_sent_and_checked() {
    let mut account = sim::SimAccount::new("AKIDtemporary00000000000000000", "temp-key");
    account.token = Some(model::Secret::new("session-token-1"));
    let sim = start(SimConfig {
        accounts: vec![account],
        ..fast_config()
    })
    .await;
    let c = client_for(&sim, |_| {});
    let good = Credentials::new(
        "AKIDtemporary00000000000000000",
        "temp-key",
        Some("session-token-1".into()),
    )
    .unwrap();
    c.call::<model::DescribeZones>(&good, REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap();
    let bad = Credentials::new(
        "AKIDtemporary00000000000000000",
        "temp-key",
        Some("stale".into()),
    )
    .unwrap();
    let err = c
        .call::<model::DescribeZones>(&bad, REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), "AuthFailure.TokenFailure");
}

/// The create guard's UID lookups share DescribeInstances calls: alone, each
/// lookup waits only the short window (no latency for a single create);
/// while creates queue for the RunInstances quota, lookups wait longer and
/// go five to a call, so a mass create does not pay one Describe per resource.
#[tokio::test]
async fn uid_lookups_batch_while_creates_queue() {
    use cvm_operator::controller::observe::{FleetKey, Observer, ObserverConfig};
    let sim = start(fast_config()).await;
    let (observer, _wake) = Observer::new(
        client_for(&sim, |_| {}),
        ObserverConfig {
            window: Duration::from_millis(25),
            backlog_window: Duration::from_millis(2000),
            ..ObserverConfig::default()
        },
    );
    let key = FleetKey::new(REGION, &cvm_operator::cloud::Identity::of_static(&creds()));
    let lookups = |tag: &'static str| {
        let observer = observer.clone();
        let key = key.clone();
        async move {
            let mut tasks = Vec::new();
            for i in 0..5 {
                let (observer, key) = (observer.clone(), key.clone());
                tasks.push(tokio::spawn(async move {
                    observer
                        .find_by_uid(&key, &creds(), &format!("{tag}-{i}"))
                        .await
                        .unwrap()
                }));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for t in tasks {
                assert!(t.await.unwrap().is_none());
            }
        }
    };
    let describes = || sim.sim.stats().calls("DescribeInstances");

    let before = describes();
    lookups("alone").await;
    assert_eq!(describes() - before, 5, "no backlog: one call per lookup");

    let guards: Vec<_> = (0..5).map(|_| observer.creating(&key)).collect();
    let before = describes();
    lookups("queued").await;
    assert_eq!(
        describes() - before,
        1,
        "backlog: five lookups share a call"
    );

    drop(guards);
    let before = describes();
    lookups("drained").await;
    assert_eq!(
        describes() - before,
        5,
        "guards dropped: back to the short window"
    );
}
