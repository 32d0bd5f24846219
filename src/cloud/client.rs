//! The CVM API client: one pooled HTTP client, TC3 signing, client-side rate
//! limits, and retries with backoff for throttled and transient failures.

use super::clock::{self, SIGNATURE_EXPIRE, SigningClock};
use super::credentials::Credentials;
use super::endpoint::valid_region;
pub use super::endpoint::{DEFAULT_ENDPOINT, Endpoint, host_header};
use super::error::{CloudError, ErrorClass};
use super::form;
use super::model::{self, Action};
use super::ratelimit::{Limiters, RateLimits};
use super::reachability::{self, Reachability};
use super::scrub::{self, SecretValues};
use super::sign;
use super::sts;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The documented maximum ClientToken length.
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;
/// DescribeInstances accepts at most this many ids per call.
pub const MAX_DESCRIBE_IDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// JSON body; recommended.
    Post,
    /// Flattened query parameters.
    Get,
}

/// Exponential backoff with full jitter, bounded in attempts and time.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total tries including the first; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Throttling gets a longer base delay: the bucket refills per second.
    pub throttled_base_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            throttled_base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `attempt` (0-based): a random value in
    /// [0, min(max_delay, base · 2^attempt)] ("full jitter").
    pub fn delay(&self, attempt: u32, class: ErrorClass) -> Duration {
        let base = if class == ErrorClass::Throttled {
            self.throttled_base_delay
        } else {
            self.base_delay
        };
        let cap = base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// One HTTP attempt, reported to an observer (metrics, tests).
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub action: &'static str,
    pub region: String,
    /// `None` on success; otherwise the error code and class.
    pub error: Option<(String, ErrorClass)>,
    pub duration: Duration,
    pub attempt: u32,
}

pub type CallObserver = Arc<dyn Fn(&CallRecord) + Send + Sync>;

#[derive(Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    /// Where STS calls go; `None` derives it from `endpoint` (the same URL
    /// for an override such as the simulator, which serves both services).
    pub sts_endpoint: Option<Endpoint>,
    pub method: HttpMethod,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub rate_limits: RateLimits,
    /// `X-TC-Language`, e.g. `en-US`.
    pub language: Option<String>,
    /// Added to the clock when stamping requests (tests of expiry); the
    /// starting offset of the signing clock.
    pub clock_skew_secs: i64,
    /// After `AuthFailure.SignatureExpire`, sign with the API's time (from
    /// its `Date` header) and resend once (see [`clock`]).
    pub correct_clock_skew: bool,
    /// While an endpoint does not answer, one call per this interval goes
    /// through as a probe; the others fail at once (see [`reachability`]).
    pub probe_interval: Duration,
    pub observer: Option<CallObserver>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::Default,
            sts_endpoint: None,
            method: HttpMethod::Post,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            rate_limits: RateLimits::default(),
            language: Some("en-US".into()),
            clock_skew_secs: 0,
            correct_clock_skew: true,
            probe_interval: Duration::from_secs(15),
            observer: None,
        }
    }
}

impl ClientConfig {
    /// The endpoint of `service`.
    pub fn endpoint_for(&self, service: &str) -> &Endpoint {
        match (&self.sts_endpoint, service) {
            (Some(sts), sts::SERVICE) => sts,
            _ => &self.endpoint,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("method", &self.method)
            .field("retry", &self.retry)
            .field("rate_limits", &self.rate_limits)
            .finish_non_exhaustive()
    }
}

/// A successful answer: the action's fields plus the RequestId.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub request_id: String,
    pub body: T,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    limiters: Limiters,
    clock: SigningClock,
    reachability: Reachability,
}

/// Cheap to clone; all clones share the connection pool and rate limits.
#[derive(Clone)]
pub struct CvmClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CvmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CvmClient")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl CvmClient {
    pub fn new(config: ClientConfig) -> Result<Self, CloudError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("cvm-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::InvalidRequest {
                action: "client".into(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limiters: Limiters::new(config.rate_limits.clone()),
                clock: SigningClock::new(config.clock_skew_secs, config.correct_clock_skew),
                reachability: Reachability::new(config.probe_interval),
                config,
            }),
        })
    }

    /// Calls `A` with retries and rate limiting.
    ///
    /// Retry rule: throttled errors are always retried (the request had no
    /// effect); transient ones only when the request is idempotent or certainly
    /// was not executed. RunInstances is made idempotent by filling in a
    /// ClientToken when the caller gave none; the same token is used on every
    /// attempt. Errors come back scrubbed of every secret the request carried
    /// (see [`scrub`]).
    pub async fn call<A: Action>(
        &self,
        creds: &Credentials,
        region: &str,
        req: &A::Request,
    ) -> Result<Reply<A::Response>, CloudError> {
        self.call_as::<A>(Some(creds), region, req).await
    }

    /// Calls an action the service takes unsigned (`Authorization: SKIP`, no
    /// token): AssumeRoleWithWebIdentity, whose OIDC token is the proof.
    pub async fn call_unsigned<A: Action>(
        &self,
        region: &str,
        req: &A::Request,
    ) -> Result<Reply<A::Response>, CloudError> {
        if !A::UNSIGNED {
            return Err(CloudError::InvalidRequest {
                action: A::NAME.into(),
                detail: "this action must be signed".into(),
            });
        }
        self.call_as::<A>(None, region, req).await
    }

    async fn call_as<A: Action>(
        &self,
        creds: Option<&Credentials>,
        region: &str,
        req: &A::Request,
    ) -> Result<Reply<A::Response>, CloudError> {
        let (mut body, mut secrets) = self.prepare::<A>(creds, region, req)?;
        if let Some(c) = creds {
            secrets.add(c.secret_key().expose());
            if let Some(t) = c.token() {
                secrets.add(t.expose());
            }
        }
        let mut idempotent = A::idempotent(req);
        if A::NAME == model::RunInstances::NAME {
            fill_client_token(A::NAME, &mut body)?;
            idempotent = true;
        }
        let policy = &self.inner.config.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut corrected = false;
        let account = creds.map_or("", |c| c.secret_id());
        let host = host_header(
            &self
                .inner
                .config
                .endpoint_for(A::SERVICE)
                .url(A::SERVICE, region),
        );
        loop {
            self.admit::<A>(&host, creds, region)?;
            self.inner.limiters.acquire(account, region, A::NAME).await;
            let t0 = Instant::now();
            let result = self
                .send_once::<A>(creds, region, &body)
                .await
                .map_err(|e| e.scrubbed(&secrets));
            self.record_reachability(&host, &result);
            self.report_call(A::NAME, region, &result, t0, attempt);
            let err = match result {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            if let CloudError::ClockSkew {
                skew_secs: Some(skew),
                ..
            } = &err
                && !corrected
                && self.inner.clock.adopt(*skew)
            {
                // Refused before anything happened: resend, signed right.
                corrected = true;
                continue;
            }
            let class = err.class();
            let retryable = match class {
                ErrorClass::Throttled => true,
                ErrorClass::Transient => idempotent || err.certainly_not_executed(),
                _ => false,
            };
            attempt += 1;
            if !retryable || attempt >= policy.max_attempts {
                return Err(err);
            }
            let delay = policy.delay(attempt - 1, class);
            if started.elapsed() + delay > policy.max_elapsed {
                return Err(err);
            }
            tracing::debug!(
                action = A::NAME,
                region,
                attempt,
                ?delay,
                code = err.code(),
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Tells the observer (metrics, tests) about one attempt.
    fn report_call<T>(
        &self,
        action: &'static str,
        region: &str,
        result: &Result<T, CloudError>,
        started: Instant,
        attempt: u32,
    ) {
        if let Some(obs) = &self.inner.config.observer {
            obs(&CallRecord {
                action,
                region: region.to_string(),
                error: result
                    .as_ref()
                    .err()
                    .map(|e| (e.code().to_string(), e.class())),
                duration: started.elapsed(),
                attempt,
            });
        }
    }

    /// Whether the endpoint is worth a call now (see [`reachability`]).
    fn admit<A: Action>(
        &self,
        host: &str,
        creds: Option<&Credentials>,
        region: &str,
    ) -> Result<(), CloudError> {
        self.inner
            .reachability
            .admit(host, creds, region)
            .map_err(|down| CloudError::Unreachable {
                action: A::NAME.into(),
                host: down.host,
                since: down.since,
                last_error: down.last_error,
            })
    }

    fn record_reachability<T>(&self, host: &str, result: &Result<T, CloudError>) {
        let (outcome, error) = match result {
            Err(e) if e.unanswered() => (reachability::Outcome::Unanswered, Some(e)),
            _ => (reachability::Outcome::Answered, None),
        };
        self.inner.reachability.record(host, outcome, || {
            error.map_or_else(String::new, |e| format!("{}: {}", e.code(), e.message()))
        });
    }

    /// Whether the API answers, per endpoint host.
    pub fn reachability(&self) -> &Reachability {
        &self.inner.reachability
    }

    /// Probes every endpoint that is down and due for a probe (a cheap
    /// DescribeZones with the last caller's credentials), so an idle
    /// operator still notices the API's return at once.
    pub async fn probe_unreachable(&self) {
        for (host, creds, region) in self.inner.reachability.probe_due() {
            let req = model::DescribeZonesRequest {};
            let (body, _) = match self.prepare::<model::DescribeZones>(Some(&creds), &region, &req)
            {
                Ok(b) => b,
                Err(_) => continue,
            };
            let t0 = Instant::now();
            let result = self
                .send_once::<model::DescribeZones>(Some(&creds), &region, &body)
                .await;
            self.report_call(model::DescribeZones::NAME, &region, &result, t0, 0);
            tracing::debug!(%host, answered = !result.as_ref().is_err_and(|e| e.unanswered()), "probed the CVM API");
            self.record_reachability(&host, &result);
        }
    }

    /// The request as JSON plus the secret values it carries; refuses a
    /// malformed region before it reaches a host name or a header.
    fn prepare<A: Action>(
        &self,
        creds: Option<&Credentials>,
        region: &str,
        req: &A::Request,
    ) -> Result<(serde_json::Value, SecretValues), CloudError> {
        let invalid = |detail: String| CloudError::InvalidRequest {
            action: A::NAME.into(),
            detail,
        };
        if !region.is_empty() && !valid_region(region) {
            return Err(invalid(format!(
                "the region {region:?} is not a region name (lower-case letters, digits and dashes, like ap-guangzhou)"
            )));
        }
        if creds.is_none() && !A::UNSIGNED {
            return Err(invalid("credentials are required".into()));
        }
        let (body, secrets) = scrub::collecting(|| serde_json::to_value(req));
        let body = body.map_err(|e| invalid(e.to_string()))?;
        Ok((body, secrets))
    }

    async fn send_once<A: Action>(
        &self,
        creds: Option<&Credentials>,
        region: &str,
        body: &serde_json::Value,
    ) -> Result<Reply<A::Response>, CloudError> {
        let cfg = &self.inner.config;
        let mut url = cfg.endpoint_for(A::SERVICE).url(A::SERVICE, region);
        let host = host_header(&url);
        let (content_type, payload, query) = match cfg.method {
            HttpMethod::Post => (
                "application/json",
                serde_json::to_vec(body).expect("a Value always serialises"),
                String::new(),
            ),
            HttpMethod::Get => (
                "application/x-www-form-urlencoded",
                Vec::new(),
                form::encode_query(&form::flatten(body)),
            ),
        };
        if !query.is_empty() {
            url.set_query(Some(&query));
        }
        let timestamp = self.inner.clock.now().to_string();
        let method = match cfg.method {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
        };
        // Signed: the official SDKs' `content-type;host`, plus the action (so
        // a captured StartInstances cannot be replayed as TerminateInstances
        // within the timestamp window), the version, the timestamp and the
        // region. The documentation's own example signs `x-tc-action` too.
        let mut signed = vec![
            ("content-type", content_type),
            ("host", host.as_str()),
            ("x-tc-action", A::NAME),
            ("x-tc-timestamp", timestamp.as_str()),
            ("x-tc-version", A::VERSION),
        ];
        if !region.is_empty() {
            signed.push(("x-tc-region", region));
        }
        let authorization = match creds {
            None => sign::UNSIGNED.to_string(),
            Some(c) => sign::sign(
                c.secret_key().expose(),
                &sign::SigningInput {
                    method,
                    query: &query,
                    headers: &signed,
                    payload: &payload,
                    timestamp: timestamp.parse().unwrap_or_default(),
                    service: A::SERVICE,
                },
            )
            .ok_or_else(|| CloudError::InvalidRequest {
                action: A::NAME.into(),
                detail: "the clock is outside the representable range".into(),
            })?
            .authorization(c.secret_id()),
        };

        let mut rb = match cfg.method {
            HttpMethod::Post => self.inner.http.post(url),
            HttpMethod::Get => self.inner.http.get(url),
        }
        .header("Host", &host)
        .header("Content-Type", content_type)
        .header("Authorization", authorization)
        .header("X-TC-Action", A::NAME)
        .header("X-TC-Version", A::VERSION)
        .header("X-TC-Timestamp", &timestamp)
        .header(
            "X-TC-RequestClient",
            concat!("cvm-operator/", env!("CARGO_PKG_VERSION")),
        );
        if !region.is_empty() {
            rb = rb.header("X-TC-Region", region);
        }
        if let Some(token) = creds.and_then(Credentials::token) {
            rb = rb.header("X-TC-Token", token.expose());
        }
        if let Some(lang) = &cfg.language {
            rb = rb.header("X-TC-Language", lang);
        }
        if !payload.is_empty() {
            rb = rb.body(payload);
        }

        let resp = rb
            .send()
            .await
            .map_err(|e| transport_error(A::NAME, e, cfg.request_timeout))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(CloudError::HttpStatus {
                action: A::NAME.into(),
                status,
            });
        }
        let date = resp.headers().get(reqwest::header::DATE).cloned();
        let received_at = clock::node_now();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(A::NAME, e, cfg.request_timeout))?;
        decode_envelope::<A::Response>(A::NAME, &bytes).map_err(|e| {
            let date = date.as_ref().and_then(|d| d.to_str().ok());
            with_clock_skew(e, date, received_at)
        })
    }

    // -- conveniences -------------------------------------------------------

    /// DescribeInstances for any number of ids, in calls of at most 100.
    /// Unknown ids are simply absent from the result.
    pub async fn describe_instances_by_ids(
        &self,
        creds: &Credentials,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<model::Instance>, CloudError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_DESCRIBE_IDS) {
            let req = model::DescribeInstancesRequest {
                instance_ids: Some(chunk.to_vec()),
                limit: Some(MAX_DESCRIBE_IDS as i64),
                ..Default::default()
            };
            let reply = self
                .call::<model::DescribeInstances>(creds, region, &req)
                .await?;
            out.extend(reply.body.instance_set.unwrap_or_default());
        }
        Ok(out)
    }

    /// DescribeInstances with filters, following Offset/Limit pages to the end.
    pub async fn describe_instances_filtered(
        &self,
        creds: &Credentials,
        region: &str,
        filters: Vec<model::Filter>,
    ) -> Result<Vec<model::Instance>, CloudError> {
        let mut out = Vec::new();
        let mut offset = 0i64;
        loop {
            let req = model::DescribeInstancesRequest {
                filters: (!filters.is_empty()).then(|| filters.clone()),
                offset: Some(offset),
                limit: Some(MAX_DESCRIBE_IDS as i64),
                ..Default::default()
            };
            let reply = self
                .call::<model::DescribeInstances>(creds, region, &req)
                .await?;
            let page = reply.body.instance_set.unwrap_or_default();
            let total = reply.body.total_count.unwrap_or(0);
            let n = page.len() as i64;
            out.extend(page);
            offset += n;
            if n == 0 || offset >= total {
                return Ok(out);
            }
        }
    }
}

/// Fills in a ClientToken when the caller gave none and checks its length.
fn fill_client_token(action: &str, body: &mut serde_json::Value) -> Result<(), CloudError> {
    let obj = body.as_object_mut().expect("requests are objects");
    let token = obj
        .entry("ClientToken")
        .or_insert_with(|| serde_json::Value::String(uuid::Uuid::new_v4().to_string()));
    let t = token.as_str().unwrap_or_default();
    if t.is_empty() || t.len() > MAX_CLIENT_TOKEN_LEN || !t.is_ascii() {
        return Err(CloudError::InvalidRequest {
            action: action.into(),
            detail: format!("ClientToken must be 1..={MAX_CLIENT_TOKEN_LEN} ASCII characters"),
        });
    }
    Ok(())
}

fn transport_error(action: &str, e: reqwest::Error, timeout: Duration) -> CloudError {
    if e.is_connect() {
        CloudError::Network {
            action: action.into(),
            connect: true,
            message: e.to_string(),
        }
    } else if e.is_timeout() {
        CloudError::Timeout {
            action: action.into(),
            after: timeout,
        }
    } else {
        CloudError::Network {
            action: action.into(),
            connect: false,
            message: e.to_string(),
        }
    }
}

/// A refused timestamp becomes [`CloudError::ClockSkew`], with the node's
/// skew measured from the answer's `Date` header (read at `received_at`).
fn with_clock_skew(e: CloudError, date: Option<&str>, received_at: i64) -> CloudError {
    match e {
        CloudError::Api {
            action,
            code,
            message,
            request_id,
        } if code == SIGNATURE_EXPIRE => CloudError::ClockSkew {
            action,
            message,
            request_id,
            skew_secs: date.and_then(|d| clock::skew_from_date(d, received_at)),
        },
        other => other,
    }
}

/// Decodes `{"Response": {...}}`: an `Error` object becomes
/// [`CloudError::Api`], anything else the typed body. Two passes over the
/// bytes (a probe for Error/RequestId, then the body), no intermediate tree.
pub fn decode_envelope<T: serde::de::DeserializeOwned>(
    action: &str,
    bytes: &[u8],
) -> Result<Reply<T>, CloudError> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "Code", default)]
        code: Option<String>,
        #[serde(rename = "Message", default)]
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct ProbeInner {
        #[serde(rename = "Error", default)]
        error: Option<ErrorBody>,
        #[serde(rename = "RequestId", default)]
        request_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "Response")]
        response: ProbeInner,
    }
    #[derive(serde::Deserialize)]
    struct Full<T> {
        #[serde(rename = "Response")]
        response: T,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| CloudError::Decode {
        action: action.into(),
        detail: format!("not a CVM response envelope: {e}"),
        request_id: None,
    })?;
    let request_id = probe.response.request_id.unwrap_or_default();
    if let Some(err) = probe.response.error {
        return Err(CloudError::Api {
            action: action.into(),
            code: err.code.unwrap_or_else(|| "UnknownError".into()),
            message: err.message.unwrap_or_default(),
            request_id,
        });
    }
    let full: Full<T> = serde_json::from_slice(bytes).map_err(|e| CloudError::Decode {
        action: action.into(),
        detail: e.to_string(),
        request_id: Some(request_id.clone()),
    })?;
    Ok(Reply {
        request_id,
        body: full.response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_errors_keep_code_message_and_request_id() {
        let body = br#"{"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad"}, "RequestId": "ed93f3cb"}}"#;
        let err = decode_envelope::<model::EmptyResponse>("DescribeZones", body).unwrap_err();
        match &err {
            CloudError::Api {
                code,
                message,
                request_id,
                action,
            } => {
                assert_eq!(code, "AuthFailure.SignatureFailure");
                assert_eq!(message, "bad");
                assert_eq!(request_id, "ed93f3cb");
                assert_eq!(action, "DescribeZones");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.class(), ErrorClass::Auth);
        let ok = decode_envelope::<model::RunInstancesResponse>(
            "RunInstances",
            br#"{"Response": {"InstanceIdSet": ["ins-bfw5zq3y"], "RequestId": "r1"}}"#,
        )
        .unwrap();
        assert_eq!(ok.request_id, "r1");
        assert_eq!(ok.body.instance_id_set.unwrap(), vec!["ins-bfw5zq3y"]);
        assert!(matches!(
            decode_envelope::<model::EmptyResponse>("X", b"<html>").unwrap_err(),
            CloudError::Decode { .. }
        ));
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            for class in [ErrorClass::Transient, ErrorClass::Throttled] {
                assert!(p.delay(attempt, class) <= p.max_delay);
            }
        }
        // The upper bound of attempt 3 is 8× the base; sample to see growth.
        let max_seen = (0..200)
            .map(|_| p.delay(3, ErrorClass::Transient))
            .max()
            .unwrap();
        assert!(max_seen > p.base_delay, "{max_seen:?}");
    }
}
