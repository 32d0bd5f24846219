//! Credential sources, signing and scrubbing, client ⇄ simulator over
//! loopback: AssumeRole into another account, TKE web identity, the CVM
//! instance role from the metadata endpoint — each refreshed during a run
//! with credentials that live a few seconds; a failed refresh serving the old
//! credentials until they expire; concurrent callers sharing one refresh; a
//! captured request replayed as another action; secrets echoed by a service
//! cut out of the error. No Kubernetes here.

use axum::body::Bytes;
use axum::http::HeaderMap;
use cvm_operator::cloud::metadata::MetadataClient;
use cvm_operator::cloud::model::{self, Action};
use cvm_operator::cloud::sources::{
    ENV_TKE_PROVIDER_ID, ENV_TKE_REGION, ENV_TKE_ROLE_ARN, ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
    RoleSession, WebIdentity,
};
use cvm_operator::cloud::{
    ClientConfig, CloudError, CredentialError, CredentialProvider, Credentials, CvmClient,
    Endpoint, ErrorClass, RetryPolicy, Secret, sign, sts,
};
use cvm_operator::sim::{
    self, ErrorFault, Faults, RunningSimulator, SimConfig, SimInstanceRole, SimRole,
    SimWebIdentityTrust, Simulator, StsConfig,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const REGION: &str = "ap-guangzhou";
const TARGET: &str = "200000000002";
const ROLE: &str = "qcs::cam::uin/200000000002:roleName/cvm-operator";

fn source_keys() -> Credentials {
    Credentials::new(sim::DEFAULT_SECRET_ID, sim::DEFAULT_SECRET_KEY, None).unwrap()
}

fn source_account() -> String {
    sim::sts::derived_uin(sim::DEFAULT_SECRET_ID)
}

async fn start() -> RunningSimulator {
    let sim = Simulator::new(SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    sim.sim.set_sts(StsConfig {
        roles: vec![SimRole {
            arn: ROLE.into(),
            trusted_accounts: vec![source_account()],
            external_id: Some("team-a".into()),
            web_identity: Some(SimWebIdentityTrust {
                provider_id: "tke-oidc".into(),
                tokens: vec![Secret::new("oidc-token-1"), Secret::new("oidc-token-2")],
            }),
        }],
        instance_role: Some(SimInstanceRole {
            role_name: "cvm-node".into(),
            role_arn: ROLE.into(),
            duration_secs: 5,
        }),
    });
    sim
}

fn client(endpoint: &str, retry: RetryPolicy) -> CvmClient {
    CvmClient::new(ClientConfig {
        endpoint: Endpoint::parse(endpoint).unwrap(),
        retry,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn role(duration_secs: u64) -> RoleSession {
    RoleSession {
        duration_secs,
        ..RoleSession::new(ROLE)
    }
}

fn assume(c: &CvmClient, duration_secs: u64) -> CredentialProvider {
    CredentialProvider::assume_role(
        c.clone(),
        CredentialProvider::fixed(source_keys()),
        role(duration_secs),
        Some(Secret::new("team-a")),
    )
    .unwrap()
}

fn code(e: &CloudError) -> &str {
    e.code()
}

/// Instances `creds` sees (their account's, in REGION).
async fn visible(c: &CvmClient, creds: &Credentials) -> Vec<String> {
    c.describe_instances_filtered(creds, REGION, vec![])
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id().to_string())
        .collect()
}

async fn launch(c: &CvmClient, creds: &Credentials, name: &str) -> String {
    let req = model::RunInstancesRequest {
        placement: Some(model::Placement {
            zone: Some("ap-guangzhou-3".into()),
            ..Default::default()
        }),
        image_id: Some("img-pi0ii46r".into()),
        instance_type: Some("S5.SMALL1".into()),
        instance_name: Some(name.into()),
        ..Default::default()
    };
    c.call::<model::RunInstances>(creds, REGION, &req)
        .await
        .unwrap()
        .body
        .instance_id_set
        .unwrap()
        .remove(0)
}

/// Every `action` (or the metadata endpoint) fails from now on.
fn fail(sim: &RunningSimulator, action: &str) {
    sim.sim.set_faults(Faults {
        errors: vec![ErrorFault {
            action: Some(action.into()),
            code: "InternalError".into(),
            rate: 1.0,
            remaining: None,
        }],
        ..Faults::default()
    });
}

async fn sleep_until(t: SystemTime) {
    tokio::time::sleep(t.duration_since(SystemTime::now()).unwrap_or_default()).await;
}

/// Uses `provider` every 200 ms for `run`, each time for a real CVM call;
/// returns the distinct SecretIds it was handed.
async fn use_for(c: &CvmClient, provider: &CredentialProvider, run: Duration) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let until = Instant::now() + run;
    while Instant::now() < until {
        let creds = provider.credentials().await.unwrap();
        c.call::<model::DescribeZones>(&creds, REGION, &model::DescribeZonesRequest {})
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", creds.masked_id()));
        if !seen.contains(&creds.secret_id().to_string()) {
            seen.push(creds.secret_id().to_string());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    seen
}

#[tokio::test]
async fn assume_role_acts_in_the_role_account_and_refreshes_before_expiry() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let provider = assume(&c, 4);
    let identity = provider.identity().clone();
    let first = provider.credentials().await.unwrap();
    assert!(
        first.token().is_some(),
        "temporary credentials carry a token"
    );

    // The role's credentials act in the role's account, not the source's.
    let there = launch(&c, &first, "in-target").await;
    assert_eq!(visible(&c, &first).await, vec![there.clone()]);
    assert!(visible(&c, &source_keys()).await.is_empty());
    let who = c
        .call::<sts::GetCallerIdentity>(&first, REGION, &sts::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .body;
    assert_eq!(who.account_id.as_deref(), Some(TARGET));
    assert_eq!(who.kind.as_deref(), Some("CAMRole"));
    assert_eq!(who.principal_id, Some(source_account()));

    // A run longer than two lifetimes: every call works, the credentials
    // change, the identity does not.
    let ids = use_for(&c, &provider, Duration::from_secs(9)).await;
    assert!(ids.len() >= 3, "refreshed twice or more: {ids:?}");
    assert_eq!(provider.identity(), &identity);
    let assume_calls = sim.sim.stats().calls("AssumeRole");
    assert!(
        (3..=5).contains(&assume_calls),
        "{assume_calls} AssumeRole calls"
    );

    // The first credentials expired meanwhile: the service says so.
    let err = c
        .call::<model::DescribeZones>(&first, REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AuthFailure.TokenFailure");

    // Nothing secret in what a log line would show.
    let now = provider.credentials().await.unwrap();
    let shown = format!("{provider:?} {} {now:?} {now}", provider.describe());
    assert!(!shown.contains(now.secret_key().expose()), "{shown}");
    assert!(!shown.contains(now.token().unwrap().expose()), "{shown}");
    assert!(!shown.contains(sim::DEFAULT_SECRET_KEY), "{shown}");
}

#[tokio::test]
async fn assume_role_refusals_are_clear_and_not_retried() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::default());
    let fixed = CredentialProvider::fixed(source_keys());
    let try_role = |arn: &str, ext: Option<&str>, src: CredentialProvider| {
        CredentialProvider::assume_role(c.clone(), src, RoleSession::new(arn), ext.map(Secret::new))
            .unwrap()
    };
    let sts_code = |e: CredentialError| match e {
        CredentialError::Sts { error, .. } => error.code().to_string(),
        other => panic!("{other}"),
    };
    let wrong_ext = try_role(ROLE, Some("team-b"), fixed.clone())
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(wrong_ext.class(), ErrorClass::Auth);
    assert!(wrong_ext.to_string().contains(ROLE), "{wrong_ext}");
    assert_eq!(sts_code(wrong_ext), "UnauthorizedOperation");
    let missing = "qcs::cam::uin/200000000002:roleName/nobody";
    assert_eq!(
        sts_code(
            try_role(missing, None, fixed)
                .credentials()
                .await
                .unwrap_err()
        ),
        "ResourceNotFound.RoleNotFound"
    );
    // A key of another account is not trusted, and a forged key is refused.
    let stranger = Credentials::new(sim::DEFAULT_SECRET_ID, "wrong-key", None).unwrap();
    let forged = try_role(ROLE, Some("team-a"), CredentialProvider::fixed(stranger));
    assert_ne!(forged.identity(), assume(&c, 60).identity());
    assert_eq!(
        sts_code(forged.credentials().await.unwrap_err()),
        "AuthFailure.SignatureFailure"
    );
    assert_eq!(
        sim.sim.stats().calls("AssumeRole"),
        3,
        "refusals are not retried"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let provider = assume(&c, 3);
    // A slow STS, so the callers really overlap.
    sim.sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let burst = |provider: CredentialProvider| async move {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let p = provider.clone();
                tokio::spawn(async move { p.credentials().await.unwrap() })
            })
            .collect();
        let mut ids = HashSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap().secret_id().to_string());
        }
        ids
    };
    let first = burst(provider.clone()).await;
    assert_eq!(first.len(), 1, "everyone got the one new set");
    assert_eq!(sim.sim.stats().calls("AssumeRole"), 1);

    // Due for refresh (a fifth of 3 s before expiry): again one call, and
    // the callers that did not make it are served the still-valid set.
    sleep_until(provider.expires_at().unwrap() - Duration::from_millis(400)).await;
    let second = burst(provider.clone()).await;
    assert_eq!(sim.sim.stats().calls("AssumeRole"), 2);
    assert!(second.len() <= 2, "{second:?}");
    let now = provider.credentials().await.unwrap();
    assert!(
        !first.contains(now.secret_id()),
        "the refresh replaced the set"
    );
}

#[tokio::test]
async fn failed_refresh_serves_the_old_credentials_until_they_expire() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let provider = assume(&c, 8);
    let old = provider.credentials().await.unwrap();
    let expires = provider.expires_at().unwrap();
    fail(&sim, "AssumeRole");
    // Past the refresh point (1.4 to 1.6 s before expiry: ExpiredTime has
    // whole seconds), before the last stretch (0.7 to 0.8 s): the refresh
    // fails, the old set is served and still works.
    sleep_until(expires - Duration::from_millis(1100)).await;
    let served = provider.credentials().await.unwrap();
    assert_eq!(served.secret_id(), old.secret_id());
    c.call::<model::DescribeZones>(&served, REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap();
    assert!(sim.sim.stats().errors("AssumeRole", "InternalError") >= 1);

    // Expired: the failure is the answer.
    tokio::time::sleep(
        expires
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("InternalError"), "{err}");

    // STS is back: new credentials.
    sim.sim.set_faults(Faults::default());
    let fresh = provider.credentials().await.unwrap();
    assert_ne!(fresh.secret_id(), old.secret_id());
    c.call::<model::DescribeZones>(&fresh, REGION, &model::DescribeZonesRequest {})
        .await
        .unwrap();
}

#[tokio::test]
async fn web_identity_exchanges_the_token_file_without_signing() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-token-1\n").unwrap();
    let env = |k: &str| match k {
        ENV_TKE_REGION => Some(REGION.to_string()),
        ENV_TKE_PROVIDER_ID => Some("tke-oidc".to_string()),
        ENV_TKE_WEB_IDENTITY_TOKEN_FILE => Some(token_file.display().to_string()),
        ENV_TKE_ROLE_ARN => Some(ROLE.to_string()),
        _ => None,
    };
    let mut web = WebIdentity::from_lookup(env).unwrap();
    web.role.duration_secs = 3;
    let provider = CredentialProvider::web_identity(c.clone(), web.clone()).unwrap();
    let creds = provider.credentials().await.unwrap();
    let there = launch(&c, &creds, "via-oidc").await;
    assert_eq!(visible(&c, &creds).await, vec![there]);

    // TKE rotates the token file; each exchange reads it afresh.
    std::fs::write(&token_file, "oidc-token-2").unwrap();
    let mut cfg = StsConfig {
        roles: vec![SimRole {
            arn: ROLE.into(),
            web_identity: Some(SimWebIdentityTrust {
                provider_id: "tke-oidc".into(),
                tokens: vec![Secret::new("oidc-token-2")],
            }),
            ..SimRole::default()
        }],
        instance_role: None,
    };
    sim.sim.set_sts(cfg.clone());
    let ids = use_for(&c, &provider, Duration::from_secs(5)).await;
    assert!(ids.len() >= 2, "refreshed with the rotated token: {ids:?}");
    assert!(sim.sim.stats().calls("AssumeRoleWithWebIdentity") >= 2);

    // A token the role does not accept: refused, and the token is not in
    // the message.
    cfg.roles[0].web_identity.as_mut().unwrap().tokens = vec![Secret::new("another")];
    sim.sim.set_sts(cfg);
    let fresh = CredentialProvider::web_identity(c.clone(), web).unwrap();
    let err = fresh.credentials().await.unwrap_err();
    assert!(err.to_string().contains("WebIdentityTokenError"), "{err}");
    assert!(!err.to_string().contains("oidc-token-2"), "{err}");
    assert!(!format!("{err:?}").contains("oidc-token-2"), "{err:?}");

    std::fs::remove_file(&token_file).unwrap();
    let gone = fresh.credentials().await.unwrap_err();
    assert!(matches!(gone, CredentialError::TokenFile { .. }), "{gone}");
}

#[tokio::test]
async fn instance_role_comes_from_the_metadata_endpoint() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let metadata = MetadataClient::new(&sim.endpoint()).unwrap();
    let provider = CredentialProvider::instance_role(metadata.clone(), None).unwrap();
    let creds = provider.credentials().await.unwrap();
    let there = launch(&c, &creds, "via-instance-role").await;
    assert_eq!(visible(&c, &creds).await, vec![there]);

    // Five-second credentials, used for eight seconds.
    let ids = use_for(&c, &provider, Duration::from_secs(8)).await;
    assert!(ids.len() >= 2, "{ids:?}");

    // The metadata service fails: the current set serves until it expires.
    let current = provider.credentials().await.unwrap();
    let expires = provider.expires_at().unwrap();
    fail(&sim, sim::METADATA_ACTION);
    sleep_until(expires - Duration::from_millis(700)).await;
    assert_eq!(
        provider.credentials().await.unwrap().secret_id(),
        current.secret_id()
    );
    tokio::time::sleep(
        expires
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");

    // No role bound: a clear, permanent answer.
    sim.sim.set_faults(Faults::default());
    sim.sim.set_sts(StsConfig::default());
    let unbound = CredentialProvider::instance_role(metadata, None).unwrap();
    let err = unbound.credentials().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("no CAM role"), "{err}");
}

/// A loopback server that records every request and answers a bare success
/// (or, with `echo`, an error quoting the whole request back).
struct Recorder {
    endpoint: String,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn recorder(echo: bool) -> Recorder {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let quoted = format!(
                "{} {}",
                String::from_utf8_lossy(&body),
                headers
                    .get("x-tc-token")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            );
            log.lock().unwrap().push((headers, body));
            let answer = if echo {
                serde_json::json!({"Response": {"Error": {"Code": "InvalidParameterValue",
                    "Message": format!("cannot accept {quoted}")}, "RequestId": "echo"}})
            } else {
                serde_json::json!({"Response": {"RequestId": "recorded"}})
            };
            ([("content-type", "application/json")], answer.to_string())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Recorder {
        endpoint,
        seen,
        _task: task,
    }
}

/// Sends recorded headers and body to the simulator, `X-TC-Action` swapped.
async fn replay(sim: &RunningSimulator, headers: &HeaderMap, body: &Bytes, action: &str) -> String {
    let mut rb = reqwest::Client::new()
        .post(sim.endpoint())
        .body(body.clone());
    for (k, v) in headers {
        if k != "content-length" && k != "x-tc-action" {
            rb = rb.header(k.as_str(), v.as_bytes());
        }
    }
    let answer: serde_json::Value = rb
        .header("X-TC-Action", action)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["Response"]["Error"]["Code"]
        .as_str()
        .unwrap_or("<success>")
        .to_string()
}

#[tokio::test]
async fn a_captured_request_cannot_be_replayed_as_another_action() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    let id = launch(&c, &source_keys(), "victim").await;
    let running = |c: CvmClient, id: String| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let i = c
                .describe_instances_by_ids(&source_keys(), REGION, std::slice::from_ref(&id))
                .await
                .unwrap();
            // Running, with no operation still in flight.
            if i.first().is_some_and(|i| {
                i.instance_state == Some(model::InstanceState::Running)
                    && i.latest_operation_state != Some(model::OperationState::Operating)
            }) {
                return;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    running(c.clone(), id.clone()).await;

    // Our client's StartInstances, as an eavesdropper would capture it.
    let rec = recorder(false).await;
    let via_recorder = client(&rec.endpoint, RetryPolicy::none());
    let start = model::StartInstancesRequest {
        instance_ids: vec![id.clone()],
    };
    via_recorder
        .call::<model::StartInstances>(&source_keys(), REGION, &start)
        .await
        .unwrap();
    let (headers, body) = rec.seen.lock().unwrap()[0].clone();
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.contains(
            "SignedHeaders=content-type;host;x-tc-action;x-tc-region;x-tc-timestamp;x-tc-version,"
        ),
        "{auth}"
    );
    // Verbatim it is a valid request (refused only for the instance state)…
    let verbatim = replay(&sim, &headers, &body, model::StartInstances::NAME).await;
    assert_eq!(verbatim, "UnsupportedOperation.InstanceStateRunning");
    // …as TerminateInstances (same body shape) the signature no longer holds.
    let swapped = replay(&sim, &headers, &body, model::TerminateInstances::NAME).await;
    assert_eq!(swapped, "AuthFailure.SignatureFailure");
    let mut other_region = headers.clone();
    other_region.insert("x-tc-region", "ap-shanghai".parse().unwrap());
    assert_eq!(
        replay(&sim, &other_region, &body, model::StartInstances::NAME).await,
        "AuthFailure.SignatureFailure"
    );
    running(c.clone(), id.clone()).await;

    // The contrast: signed the official SDKs' way (content-type;host), the
    // same swap goes through — which is why we sign more.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let host = sim.addr.to_string();
    let sig = sign::sign(
        sim::DEFAULT_SECRET_KEY,
        &sign::SigningInput {
            method: "POST",
            query: "",
            headers: &[("content-type", "application/json"), ("host", &host)],
            payload: &body,
            timestamp: ts,
            service: "cvm",
        },
    )
    .unwrap();
    let mut sdk_style = HeaderMap::new();
    for (k, v) in [
        ("content-type", "application/json".to_string()),
        ("authorization", sig.authorization(sim::DEFAULT_SECRET_ID)),
        ("x-tc-version", model::API_VERSION.to_string()),
        ("x-tc-timestamp", ts.to_string()),
        ("x-tc-region", REGION.to_string()),
    ] {
        sdk_style.insert(k, v.parse().unwrap());
    }
    assert_eq!(
        replay(&sim, &sdk_style, &body, model::TerminateInstances::NAME).await,
        "<success>"
    );
}

#[tokio::test]
async fn secrets_a_service_echoes_are_cut_from_the_error() {
    let rec = recorder(true).await;
    let c = client(&rec.endpoint, RetryPolicy::none());
    let creds = Credentials::new(
        "AKIDtemporary0000000000",
        "the-secret-key-0000",
        Some("session-token-abcdef".into()),
    )
    .unwrap();
    let user_data = "IyEvYmluL3NoCmVjaG8gaHVudGVyMg=="; // "#!/bin/sh\necho hunter2"
    let req = model::RunInstancesRequest {
        image_id: Some("img-pi0ii46r".into()),
        login_settings: Some(model::LoginSettings {
            password: Some(Secret::new("Hunter2-Passw0rd")),
            ..Default::default()
        }),
        user_data: Some(Secret::new(user_data)),
        ..Default::default()
    };
    let err = c
        .call::<model::RunInstances>(&creds, REGION, &req)
        .await
        .unwrap_err();
    let (headers, _) = rec.seen.lock().unwrap()[0].clone();
    assert_eq!(
        headers["x-tc-token"], "session-token-abcdef",
        "the token was sent"
    );
    let text = format!("{err} | {} | {err:?}", err.message());
    for secret in [
        "Hunter2-Passw0rd",
        user_data,
        "session-token-abcdef",
        "echo hunter2",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
    assert!(text.contains("img-pi0ii46r"), "the rest is kept: {text}");
}

#[tokio::test]
async fn malformed_regions_never_leave_the_client() {
    let sim = start().await;
    let c = client(&sim.endpoint(), RetryPolicy::none());
    for region in [
        "ap-guangzhou.evil.example",
        "AP-GUANGZHOU",
        "ap-guangzhou/x",
    ] {
        let err = c
            .call::<model::DescribeZones>(&source_keys(), region, &model::DescribeZonesRequest {})
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::InvalidRequest { .. }), "{err}");
    }
    assert_eq!(sim.sim.stats().requests, 0);
    let pinned = CvmClient::new(ClientConfig {
        endpoint: Endpoint::RegionPinned,
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = pinned
        .call::<model::DescribeZones>(
            &source_keys(),
            "x.example#",
            &model::DescribeZonesRequest {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::InvalidRequest { .. }), "{err}");
}
