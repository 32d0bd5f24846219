//! TC3 verification, strictly, as the real service does it: the raw query,
//! every header `SignedHeaders` names (the official SDKs sign
//! `content-type;host`, our client also the action, region, timestamp and
//! version — a header changed after signing fails), the exact body bytes,
//! the timestamp window, and for temporary credentials their token and
//! expiry.

use super::Shared;
use super::engine::{ApiError, api_err};
use super::sts::Principal;
use crate::cloud::credentials::Secret;
use crate::cloud::sign;
use axum::http::{HeaderMap, Method, Uri};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a SecretId stands for: its key, the token it must come with, whom
/// it acts as, and (temporary credentials) until when.
struct KeyHolder {
    secret_key: Secret,
    token: Option<Secret>,
    principal: Principal,
    expires: Option<i64>,
}

fn holder(shared: &Shared, secret_id: &str) -> Option<KeyHolder> {
    if shared.is_revoked(secret_id) {
        return None;
    }
    if let Some(a) = shared
        .config
        .accounts
        .iter()
        .find(|a| a.secret_id == secret_id)
    {
        return Some(KeyHolder {
            secret_key: a.secret_key.clone(),
            token: a.token.clone(),
            principal: Principal {
                account: a.uin.clone(),
                session: None,
            },
            expires: None,
        });
    }
    let sts = shared.sts.lock().unwrap_or_else(|e| e.into_inner());
    let i = sts.issued(secret_id)?;
    Some(KeyHolder {
        secret_key: i.secret_key.clone(),
        token: Some(i.token.clone()),
        principal: i.principal.clone(),
        expires: Some(i.expires),
    })
}

/// Verifies the signature of a request to `service`; returns who signed it.
pub(crate) fn authenticate(
    shared: &Shared,
    service: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Principal, ApiError> {
    let auth = header_str(headers, "authorization").ok_or_else(|| {
        api_err(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is missing.",
        )
    })?;
    let parsed = sign::parse_authorization(auth).map_err(|why| {
        api_err(
            "AuthFailure.InvalidAuthorization",
            format!("The Authorization header is malformed: {why}."),
        )
    })?;
    let ts_raw = header_str(headers, "x-tc-timestamp").ok_or_else(|| {
        api_err(
            "MissingParameter",
            "The request is missing a required parameter `Timestamp`.",
        )
    })?;
    let timestamp: i64 = ts_raw.trim().parse().map_err(|_| {
        api_err(
            "InvalidParameterValue",
            format!("The Timestamp `{ts_raw}` is not an integer."),
        )
    })?;
    let now = shared.now_unix();
    let skew = (now - timestamp).abs();
    if skew > shared.config.max_clock_skew_secs {
        return Err(api_err(
            "AuthFailure.SignatureExpire",
            format!(
                "The signature expired: the request time differs from the server time by {skew} s (more than {} s).",
                shared.config.max_clock_skew_secs
            ),
        ));
    }
    let key = holder(shared, &parsed.secret_id).ok_or_else(|| {
        api_err(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    })?;
    let signature_failure = || {
        api_err(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    };
    if parsed.service != service
        || sign::utc_date(timestamp).as_deref() != Some(parsed.date.as_str())
    {
        return Err(signature_failure());
    }
    let mut signed: Vec<(&str, &str)> = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        let value = header_str(headers, name).ok_or_else(signature_failure)?;
        signed.push((name.as_str(), value));
    }
    let expected = sign::sign(
        key.secret_key.expose(),
        &sign::SigningInput {
            method: method.as_str(),
            query: uri.query().unwrap_or(""),
            headers: &signed,
            payload: body,
            timestamp,
            service,
        },
    )
    .ok_or_else(signature_failure)?;
    if !sign::signatures_equal(&expected.signature, &parsed.signature) {
        return Err(signature_failure());
    }
    let token_ok = match (&key.token, header_str(headers, "x-tc-token")) {
        (Some(want), Some(got)) => sign::signatures_equal(want.expose(), got),
        (Some(_), None) => false,
        (None, _) => true,
    };
    if !token_ok {
        return Err(api_err(
            "AuthFailure.TokenFailure",
            "The session token is missing or invalid.",
        ));
    }
    if key.expires.is_some_and(|e| now >= e) {
        return Err(api_err(
            "AuthFailure.TokenFailure",
            "The session token has expired.",
        ));
    }
    Ok(key.principal)
}
