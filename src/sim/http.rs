//! The simulator's HTTP front: the CVM API 3.0 protocol (POST JSON and GET
//! query), strict TC3 verification as the real service does it, rate limits,
//! fault injection, the response envelope, and the `/_sim/*` introspection.
//! Which engine call answers which action is in [`dispatch`].

mod dispatch;

use super::auth::{authenticate, header_str};
use super::engine::{ApiError, Ctx, api_err};
use super::faults::LostMode;
use super::sts::StsConfig;
use super::{Shared, Stats};
use crate::cloud::form;
use crate::cloud::model::{self, Action};
use crate::cloud::sts;
use crate::cloud::tag;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dispatch::{dispatch, dispatch_sts, dispatch_tag};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const MAX_POST_BYTES: usize = 10 * 1024 * 1024;
const MAX_GET_BYTES: usize = 32 * 1024;

/// Parameters that are numbers or booleans, for typing GET query values.
const NUMERIC_PARAMS: &[&str] = &[
    "Limit",
    "Offset",
    "InstanceCount",
    "MinCount",
    "ProjectId",
    "DiskSize",
    "InternetMaxBandwidthOut",
    "Period",
    "Ipv6AddressCount",
    "DurationSeconds",
    "PartitionNumber",
    "ThroughputPerformance",
];
const BOOL_PARAMS: &[&str] = &[
    "DryRun",
    "ForceStop",
    "ForceReboot",
    "DeleteWithInstance",
    "PublicIpAssigned",
    "Encrypt",
    "AsVpcGateway",
    "DisableApiTermination",
    "AutoReboot",
    "ReleaseAddress",
    "ReleasePrepaidDataDisks",
    "EnableJumboFrame",
    "BurstPerformance",
    "ModifyPortableDataDisk",
    "ResizeOnline",
    "ReserveHostName",
    "Force",
];

fn json_response(body: Value) -> Response {
    json_bytes_response(body.to_string().into_bytes())
}

fn json_bytes_response(body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    // Exactly `application/json`: the Python SDK only looks for an Error
    // object when the type is exactly this (cvm-api.md §2.1).
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(err: &ApiError, request_id: &str) -> Response {
    json_response(
        json!({"Response": {"Error": {"Code": err.code, "Message": err.message}, "RequestId": request_id}}),
    )
}

/// Gives GET leaves their JSON types.
fn coerce(v: Value, key: Option<&str>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let c = coerce(v, Some(&k));
                    (k, c)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| coerce(v, key)).collect()),
        Value::String(s) => match key {
            Some(k) if NUMERIC_PARAMS.contains(&k) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(s)),
            Some(k) if BOOL_PARAMS.contains(&k) => match s.as_str() {
                "true" | "True" | "TRUE" => Value::Bool(true),
                "false" | "False" | "FALSE" => Value::Bool(false),
                _ => Value::String(s),
            },
            _ => Value::String(s),
        },
        other => other,
    }
}

/// The action's parameters as JSON, from the body (POST) or the query (GET).
fn params(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = header_str(headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let from_form = |raw: &str| -> Result<Value, ApiError> {
        let pairs = form::decode_query(raw).map_err(|e| api_err("InvalidParameter", e))?;
        let v = form::unflatten(&pairs).map_err(|e| api_err("InvalidParameter", e))?;
        Ok(coerce(v, None))
    };
    if *method == Method::GET {
        return from_form(uri.query().unwrap_or(""));
    }
    if content_type.starts_with("application/json") {
        if body.is_empty() {
            return Ok(json!({}));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            api_err(
                "InvalidParameter",
                format!("The request body is not valid JSON: {e}."),
            )
        })?;
        if !v.is_object() {
            return Err(api_err(
                "InvalidParameter",
                "The request body must be a JSON object.",
            ));
        }
        Ok(v)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        from_form(
            std::str::from_utf8(body)
                .map_err(|_| api_err("InvalidParameter", "The body is not UTF-8."))?,
        )
    } else {
        Err(api_err(
            "InvalidParameter",
            format!("The Content-Type `{content_type}` is not supported; use application/json."),
        ))
    }
}

/// The service an action belongs to: the simulator serves CVM, STS and Tag
/// at one address (the real ones at `cvm.`, `sts.` and
/// `tag.tencentcloudapi.com`), so the action decides, and the version and
/// credential scope must match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Cvm,
    Sts,
    Tag,
}

impl Service {
    fn of(action: &str) -> Option<Self> {
        if model::ACTIONS.contains(&action) {
            Some(Service::Cvm)
        } else if sts::ACTIONS.contains(&action) {
            Some(Service::Sts)
        } else if tag::ACTIONS.contains(&action) {
            Some(Service::Tag)
        } else {
            None
        }
    }
    fn name(self) -> &'static str {
        match self {
            Service::Cvm => model::SERVICE,
            Service::Sts => sts::SERVICE,
            Service::Tag => tag::SERVICE,
        }
    }
    fn version(self) -> &'static str {
        match self {
            Service::Cvm => model::API_VERSION,
            Service::Sts => sts::API_VERSION,
            Service::Tag => tag::API_VERSION,
        }
    }
}

/// `{"Response": {<fields>, "RequestId": "…"}}` from the serialised fields.
fn envelope(fields: &[u8], request_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + 80);
    out.extend_from_slice(b"{\"Response\":");
    let inner = fields.strip_suffix(b"}").unwrap_or(fields);
    out.extend_from_slice(inner);
    if inner.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"RequestId\":\"");
    out.extend_from_slice(request_id.as_bytes());
    out.extend_from_slice(b"\"}}");
    out
}

/// `/`: every CVM action.
pub async fn cvm(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let action = header_str(&headers, "x-tc-action")
        .unwrap_or_default()
        .to_string();
    shared.stats.request(&action);
    match handle(
        &shared,
        &method,
        &uri,
        &headers,
        &body,
        &action,
        &request_id,
    )
    .await
    {
        Ok(resp) => resp,
        Err(err) => {
            shared.stats.error(&action, &err.code);
            error_response(&err, &request_id)
        }
    }
}

/// Protocol checks before authentication: method, size, action, version.
fn check_protocol(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    action: &str,
) -> Result<Service, ApiError> {
    if *method != Method::GET && *method != Method::POST {
        return Err(api_err(
            "UnsupportedProtocol",
            "Only GET and POST are supported.",
        ));
    }
    let (size, limit) = if *method == Method::GET {
        (uri.query().map_or(0, str::len), MAX_GET_BYTES)
    } else {
        (body.len(), MAX_POST_BYTES)
    };
    if size > limit {
        return Err(api_err(
            "RequestSizeLimitExceeded",
            "The request is too large.",
        ));
    }
    if action.is_empty() {
        return Err(api_err(
            "MissingParameter",
            "The request is missing a required parameter `Action`.",
        ));
    }
    let service = Service::of(action).ok_or_else(|| {
        api_err(
            "InvalidAction",
            format!("The requested action `{action}` does not exist."),
        )
    })?;
    match header_str(headers, "x-tc-version") {
        None => Err(api_err(
            "MissingParameter",
            "The request is missing a required parameter `Version`.",
        )),
        Some(v) if v == service.version() => Ok(service),
        Some(v) => Err(api_err(
            "NoSuchVersion",
            format!(
                "The requested version `{v}` of service `{}` does not exist.",
                service.name()
            ),
        )),
    }
}

/// `X-TC-Region`: required by CVM and one of the catalogue's; STS and Tag
/// take any (a tagged resource names its own region).
fn check_region(
    shared: &Shared,
    service: Service,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let region = header_str(headers, "x-tc-region")
        .unwrap_or_default()
        .to_string();
    if service != Service::Cvm {
        return Ok(region);
    }
    if region.is_empty() {
        return Err(api_err(
            "MissingParameter",
            "The request is missing a required parameter `Region`.",
        ));
    }
    if shared
        .engine
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .catalogue()
        .region(&region)
        .is_none()
    {
        return Err(api_err(
            "UnsupportedRegion",
            format!("The region `{region}` is not supported."),
        ));
    }
    Ok(region)
}

async fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    action: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let service = check_protocol(method, uri, headers, body, action)?;
    // AssumeRoleWithWebIdentity is unsigned (`Authorization: SKIP`): the
    // OIDC token it carries is the proof.
    let who = if action == sts::AssumeRoleWithWebIdentity::NAME {
        None
    } else {
        Some(authenticate(
            shared,
            service.name(),
            method,
            uri,
            headers,
            body,
        )?)
    };
    let region = check_region(shared, service, headers)?;
    let account = who.as_ref().map_or("", |p| p.account.as_str());
    if !shared.limiters.try_acquire(account, &region, action) {
        let limit = shared.limiters.limits().rps(action);
        return Err(api_err(
            "RequestLimitExceeded",
            format!(
                "Your current request frequency exceeds the limit of {limit} requests per second for `{action}`. Please reduce the frequency of calls."
            ),
        ));
    }
    let (injected, lost, latency) = {
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        (f.pick_error(action), f.pick_lost(action), f.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if let Some(code) = injected {
        return Err(api_err(&code, format!("Injected fault: {code}.")));
    }
    let params = params(method, uri, headers, body)?;
    let fields = match service {
        Service::Sts => dispatch_sts(shared, action, who.as_ref(), params)?,
        Service::Cvm | Service::Tag => {
            let chinese = header_str(headers, "x-tc-language")
                .is_some_and(|l| l.eq_ignore_ascii_case("zh-CN"));
            let ctx = Ctx {
                account,
                region: &region,
                request_id,
                now: shared.clock.now(),
                chinese,
            };
            if service == Service::Tag {
                dispatch_tag(shared, action, &ctx, params)?
            } else {
                dispatch(shared, action, &ctx, params)?
            }
        }
    };
    let resp = json_bytes_response(envelope(&fields, request_id));
    Ok(deliver(shared, action, resp, lost).await)
}

/// The answer as the network delivers it: intact, or lost the way the
/// injected fault says (a gateway error, a dropped connection, a long hang).
async fn deliver(
    shared: &Shared,
    action: &str,
    resp: Response,
    lost: Option<(LostMode, u64)>,
) -> Response {
    let Some((mode, hold_ms)) = lost else {
        return resp;
    };
    shared.stats.lost(action);
    match mode {
        LostMode::ServerError => {
            (StatusCode::BAD_GATEWAY, "upstream connect error").into_response()
        }
        LostMode::Drop => {
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("response lost"))
            });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        LostMode::Hang => {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            resp
        }
    }
}

/// `GET /latest/meta-data/cam/security-credentials/`: the instance role's
/// name, 404 when none is bound (as on a CVM without a role).
pub async fn metadata_role(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.metadata();
    let sts = shared.sts.lock().unwrap_or_else(|e| e.into_inner());
    match &sts.config.instance_role {
        Some(r) => (StatusCode::OK, r.role_name.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The pseudo-action naming metadata credential reads in fault injection
/// (`{"errors": [{"action": "MetadataSecurityCredentials", …}]}` answers 500).
pub const METADATA_ACTION: &str = "MetadataSecurityCredentials";

/// `GET /latest/meta-data/cam/security-credentials/<role>`.
pub async fn metadata_credentials(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(role): axum::extract::Path<String>,
) -> Response {
    shared.stats.metadata();
    let injected = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pick_error(METADATA_ACTION);
    if injected.is_some() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metadata unavailable").into_response();
    }
    let now = shared.now_unix();
    let creds = shared
        .sts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .instance_credentials(&role, now);
    match creds {
        Some(c) => json_response(serde_json::to_value(c).unwrap_or_default()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /_sim/sts`: roles and the instance role (tokens included: this is
/// the simulator's own admin surface, on loopback).
pub async fn get_sts(State(shared): State<Arc<Shared>>) -> Response {
    let cfg = shared
        .sts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .config
        .clone();
    axum::Json(cfg).into_response()
}

/// `PUT /_sim/sts` with a [`StsConfig`] JSON body.
pub async fn put_sts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<StsConfig>(&body) {
        Ok(cfg) => {
            shared
                .sts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .configure(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /_sim/stats`.
pub async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot: Stats = super::snapshot(&shared);
    let mut resp = (
        StatusCode::OK,
        serde_json::to_string(&snapshot).unwrap_or_default(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `POST /_sim/stats/reset`.
pub async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.stats.reset();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/faults`.
pub async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let f = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    axum::Json(f).into_response()
}

/// `PUT /_sim/faults` with a [`super::Faults`] JSON body.
pub async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice(&body) {
        Ok(f) => {
            *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{BOOL_PARAMS, NUMERIC_PARAMS, envelope};
    use crate::cloud::fields::Leaf;

    /// GET and form requests carry every value as text: each integer and
    /// boolean member a request can have must be typed back.
    #[test]
    fn every_numeric_and_boolean_request_member_is_typed_from_a_query() {
        use crate::sim::conformance::{cvm_contracts, sts_contracts, tag_contracts};
        let all = cvm_contracts().into_iter().chain(sts_contracts());
        for c in all.chain(tag_contracts()) {
            for (path, kind) in c.request.leaves() {
                let name = path.rsplit('.').next().unwrap_or(&path);
                let name = name.trim_end_matches("[]");
                match kind {
                    Some(Leaf::Integer) => assert!(NUMERIC_PARAMS.contains(&name), "{path}"),
                    Some(Leaf::Boolean) => assert!(BOOL_PARAMS.contains(&name), "{path}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn envelope_splices_the_request_id() {
        let e = envelope(br#"{"TotalCount":1}"#, "r-1");
        assert_eq!(
            e,
            br#"{"Response":{"TotalCount":1,"RequestId":"r-1"}}"#.to_vec()
        );
        let empty = envelope(b"{}", "r-2");
        assert_eq!(empty, br#"{"Response":{"RequestId":"r-2"}}"#.to_vec());
        let v: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["Response"]["RequestId"], "r-2");
    }
}
