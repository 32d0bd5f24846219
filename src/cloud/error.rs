//! Typed errors of the CVM client and the one place that classifies them.
//!
//! Every caller decides what to do from [`ErrorClass`]: the client's retry
//! loop (throttled/transient only) and the reconciler's error policy. So the
//! classification is exhaustive over the codes in cvm-api.md §2.2–2.3 and
//! defaults unknown codes to `Permanent`, the class that never hot-loops.

use super::clock::{SIGNATURE_EXPIRE, describe_skew};
use super::scrub::SecretValues;
use std::time::Duration;

/// What kind of failure this is, which decides the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The request was refused by a rate limit and had no effect: retry later.
    Throttled,
    /// A server or network failure; the request may or may not have taken
    /// effect. Retry (idempotent calls only, in the client).
    Transient,
    /// The instance is in a state or operation that forbids this now; it will
    /// pass once the instance settles. Re-observe, then retry.
    Busy,
    /// The instance does not exist.
    NotFound,
    /// Credentials are missing, wrong, expired or not allowed.
    Auth,
    /// The request's timestamp was refused: the clock that signed it is off
    /// by more than the API allows (the credentials may be fine).
    ClockSkew,
    /// Not sent: the API has not answered anyone lately (see
    /// [`reachability`](super::reachability)); it is retried when it answers.
    Unreachable,
    /// The request itself is wrong (parameters, quota, stock, image, type,
    /// zone…). Retrying the same request cannot succeed.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Busy => "busy",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Auth => "auth",
            ErrorClass::ClockSkew => "clock_skew",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Permanent => "permanent",
        }
    }

    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Throttled,
        ErrorClass::Transient,
        ErrorClass::Unreachable,
        ErrorClass::Busy,
        ErrorClass::NotFound,
        ErrorClass::Auth,
        ErrorClass::ClockSkew,
        ErrorClass::Permanent,
    ];
}

/// Classifies a Tencent Cloud error code.
pub fn classify_code(code: &str) -> ErrorClass {
    if code == SIGNATURE_EXPIRE {
        return ErrorClass::ClockSkew;
    }
    let (head, _) = code.split_once('.').unwrap_or((code, ""));
    match head {
        "RequestLimitExceeded" => return ErrorClass::Throttled,
        "AuthFailure" | "UnauthorizedOperation" => return ErrorClass::Auth,
        "InternalError" | "InternalServerError" | "ServiceUnavailable" | "ResourceInUse" => {
            return ErrorClass::Transient;
        }
        "OperationDenied" | "MutexOperation" => {
            // OperationDenied.InstanceOperationInProgress, MutexOperation.TaskRunning;
            // other OperationDenied.* codes are policy refusals.
            return if code == "OperationDenied.InstanceOperationInProgress"
                || head == "MutexOperation"
            {
                ErrorClass::Busy
            } else {
                ErrorClass::Permanent
            };
        }
        _ => {}
    }
    match code {
        // Rate limits that some products report under LimitExceeded.
        "LimitExceeded.RateLimitExceeded" => ErrorClass::Throttled,
        // Bare ResourceUnavailable is a passing capacity problem;
        // ResourceUnavailable.InstanceType ("not sold in this zone") is not.
        "ResourceUnavailable" => ErrorClass::Transient,
        // Generic failures without a specific reason: worth a bounded retry.
        "FailedOperation" | "ResourceBusy" => ErrorClass::Transient,
        // Bare ResourceNotFound: the Tag service's answer for a resource
        // (instance) that no longer exists.
        "InvalidInstanceId.NotFound"
        | "ResourceNotFound"
        | "ResourceNotFound.InvalidInstanceIdNotFound"
        | "ResourceNotFound.InvalidInstance" => ErrorClass::NotFound,
        c if c.starts_with("UnsupportedOperation.InstanceState") => ErrorClass::Busy,
        c if c.starts_with("InvalidInstanceState") => ErrorClass::Busy,
        "IpInBlacklist" | "IpNotInWhitelist" | "InvalidAccount.UnauthorizedOperation" => {
            ErrorClass::Auth
        }
        _ => ErrorClass::Permanent,
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// The service answered with an `Error` envelope.
    #[error("{action} failed: {code}: {message} (RequestId: {request_id})")]
    Api {
        action: String,
        code: String,
        message: String,
        request_id: String,
    },
    /// The service refused the request's timestamp
    /// (`AuthFailure.SignatureExpire`); `skew_secs` is the API's time minus
    /// the node's, from the answer's `Date` header, when it had one.
    #[error("{action} failed: {SIGNATURE_EXPIRE}: {} (RequestId: {request_id})", clock_message(*.skew_secs, message))]
    ClockSkew {
        action: String,
        message: String,
        request_id: String,
        skew_secs: Option<i64>,
    },
    /// Not sent: calls to `host` have gone unanswered since `since` (the
    /// last with `last_error`); one call per probe interval tries again.
    #[error(
        "{action} not sent: the CVM API at {host} has not answered since {} (last: {last_error})",
        since.strftime("%Y-%m-%dT%H:%M:%SZ")
    )]
    Unreachable {
        action: String,
        host: String,
        since: jiff::Timestamp,
        last_error: String,
    },
    /// The request may not have reached the service, or its answer was lost.
    #[error("{action} failed: network error{}: {message}", if *.connect { " before sending" } else { "" })]
    Network {
        action: String,
        /// True when the connection could not be made, so the request was
        /// certainly not executed (safe to retry even when not idempotent).
        connect: bool,
        message: String,
    },
    #[error("{action} timed out after {after:?}")]
    Timeout { action: String, after: Duration },
    /// A non-200 HTTP status. The API answers 200 even for errors, so this
    /// comes from a proxy or gateway in between.
    #[error("{action} failed: HTTP status {status}")]
    HttpStatus { action: String, status: u16 },
    /// A 200 answer whose body is not a CVM envelope.
    #[error("{action}: cannot decode the response: {detail}")]
    Decode {
        action: String,
        detail: String,
        request_id: Option<String>,
    },
    /// Refused before sending (for example an over-long ClientToken).
    #[error("{action}: invalid request: {detail}")]
    InvalidRequest { action: String, detail: String },
}

impl CloudError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CloudError::Api { code, .. } => classify_code(code),
            CloudError::ClockSkew { .. } => ErrorClass::ClockSkew,
            CloudError::Unreachable { .. } => ErrorClass::Unreachable,
            CloudError::Network { .. } | CloudError::Timeout { .. } => ErrorClass::Transient,
            CloudError::HttpStatus { status, .. } => match status {
                429 => ErrorClass::Throttled,
                401 | 403 => ErrorClass::Auth,
                500..=599 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            // A garbled body from a healthy-looking server: likely a proxy;
            // bounded retries are the sane reaction.
            CloudError::Decode { .. } => ErrorClass::Transient,
            CloudError::InvalidRequest { .. } => ErrorClass::Permanent,
        }
    }

    pub fn action(&self) -> &str {
        match self {
            CloudError::Api { action, .. }
            | CloudError::ClockSkew { action, .. }
            | CloudError::Unreachable { action, .. }
            | CloudError::Network { action, .. }
            | CloudError::Timeout { action, .. }
            | CloudError::HttpStatus { action, .. }
            | CloudError::Decode { action, .. }
            | CloudError::InvalidRequest { action, .. } => action,
        }
    }

    /// The Tencent error code, or a `ClientError.*` pseudo-code for failures
    /// that never reached the API (the naming the official SDKs use).
    pub fn code(&self) -> &str {
        match self {
            CloudError::Api { code, .. } => code,
            CloudError::ClockSkew { .. } => SIGNATURE_EXPIRE,
            CloudError::Unreachable { .. } => "ClientError.Unreachable",
            CloudError::Network { .. } => "ClientError.NetworkError",
            CloudError::Timeout { .. } => "ClientError.Timeout",
            CloudError::HttpStatus { .. } => "ClientError.HttpStatusCodeError",
            CloudError::Decode { .. } => "ClientError.DecodeError",
            CloudError::InvalidRequest { .. } => "ClientError.InvalidRequest",
        }
    }

    pub fn message(&self) -> String {
        match self {
            CloudError::Api { message, .. } => message.clone(),
            CloudError::ClockSkew {
                message, skew_secs, ..
            } => clock_message(*skew_secs, message),
            other => other.to_string(),
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            CloudError::Api { request_id, .. } | CloudError::ClockSkew { request_id, .. } => {
                Some(request_id)
            }
            CloudError::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The same error with every value of `secrets` cut out of its texts.
    /// The client applies it to every error of a call, so a service that
    /// echoes a password, user data or a token never puts it in an event.
    pub fn scrubbed(self, secrets: &SecretValues) -> CloudError {
        if secrets.is_empty() {
            return self;
        }
        let s = |t: String| secrets.scrub(&t);
        match self {
            CloudError::Api {
                action,
                code,
                message,
                request_id,
            } => CloudError::Api {
                action,
                code,
                message: s(message),
                request_id,
            },
            CloudError::ClockSkew {
                action,
                message,
                request_id,
                skew_secs,
            } => CloudError::ClockSkew {
                action,
                message: s(message),
                request_id,
                skew_secs,
            },
            CloudError::Network {
                action,
                connect,
                message,
            } => CloudError::Network {
                action,
                connect,
                message: s(message),
            },
            CloudError::Decode {
                action,
                detail,
                request_id,
            } => CloudError::Decode {
                action,
                detail: s(detail),
                request_id,
            },
            CloudError::InvalidRequest { action, detail } => CloudError::InvalidRequest {
                action,
                detail: s(detail),
            },
            CloudError::Unreachable {
                action,
                host,
                since,
                last_error,
            } => CloudError::Unreachable {
                action,
                host,
                since,
                last_error: s(last_error),
            },
            other @ (CloudError::Timeout { .. } | CloudError::HttpStatus { .. }) => other,
        }
    }

    /// True when no answer came: the connection failed or timed out, or a
    /// gateway in front answered 5xx (see [`reachability`](super::reachability)).
    pub fn unanswered(&self) -> bool {
        match self {
            CloudError::Network { .. } | CloudError::Timeout { .. } => true,
            CloudError::HttpStatus { status, .. } => (500..=599).contains(status),
            _ => false,
        }
    }

    /// True when the request certainly had no effect, so even a non-idempotent
    /// call may be sent again.
    pub fn certainly_not_executed(&self) -> bool {
        match self {
            CloudError::Network { connect, .. } => *connect,
            CloudError::ClockSkew { .. } | CloudError::Unreachable { .. } => true,
            CloudError::Api { code, .. } => matches!(
                classify_code(code),
                ErrorClass::Throttled | ErrorClass::Auth | ErrorClass::ClockSkew
            ),
            CloudError::InvalidRequest { .. } => true,
            _ => false,
        }
    }
}

/// A refused timestamp's message, led by the measured skew (the fact a
/// person needs; the API's own text does not say by how much).
fn clock_message(skew_secs: Option<i64>, message: &str) -> String {
    match skew_secs {
        Some(skew) => format!(
            "the node's clock is {} the CVM API's (its Date header), outside the signature's 300 s window; fix the node's time (NTP). {message}",
            describe_skew(skew)
        ),
        None => format!(
            "the request's timestamp is outside the signature's 300 s window: the node's clock is off (the answer had no Date header to measure it); fix the node's time (NTP). {message}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn every_documented_code_has_the_intended_class() {
        let table: &[(&str, ErrorClass)] = &[
            ("RequestLimitExceeded", Throttled),
            ("RequestLimitExceeded.UinLimitExceeded", Throttled),
            ("RequestLimitExceeded.IPLimitExceeded", Throttled),
            (
                "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
                Throttled,
            ),
            ("LimitExceeded.RateLimitExceeded", Throttled),
            ("InternalError", Transient),
            ("InternalError.TradeUnknownError", Transient),
            ("InternalServerError", Transient),
            ("ServiceUnavailable", Transient),
            ("ResourceInUse", Transient),
            ("ResourceUnavailable", Transient),
            ("FailedOperation", Transient),
            ("OperationDenied.InstanceOperationInProgress", Busy),
            ("MutexOperation.TaskRunning", Busy),
            ("UnsupportedOperation.InstanceStatePending", Busy),
            ("UnsupportedOperation.InstanceStateRunning", Busy),
            ("UnsupportedOperation.InstanceStateStopped", Busy),
            ("UnsupportedOperation.InstanceStateStopping", Busy),
            ("UnsupportedOperation.InstanceStateShutdown", Busy),
            ("UnsupportedOperation.InstanceStateTerminating", Busy),
            ("UnsupportedOperation.InstanceStateNotRunning", Busy),
            ("InvalidInstanceId.NotFound", NotFound),
            ("ResourceNotFound.InvalidInstanceIdNotFound", NotFound),
            ("ResourceNotFound", NotFound),
            ("InvalidParameterValue.ResourceDescriptionError", Permanent),
            ("UnsupportedOperation.StoppedModeStopCharging", Permanent),
            ("InvalidKeyPairId.NotFound", Permanent),
            ("AuthFailure.SignatureFailure", Auth),
            ("AuthFailure.SignatureExpire", ClockSkew),
            ("AuthFailure.SecretIdNotFound", Auth),
            ("AuthFailure.InvalidSecretId", Auth),
            ("AuthFailure.TokenFailure", Auth),
            ("AuthFailure.InvalidAuthorization", Auth),
            ("AuthFailure.UnauthorizedOperation", Auth),
            ("UnauthorizedOperation", Auth),
            ("UnauthorizedOperation.InvalidToken", Auth),
            ("IpNotInWhitelist", Auth),
            ("InvalidParameter", Permanent),
            ("InvalidParameterValue", Permanent),
            ("InvalidParameterValue.InstanceTypeNotFound", Permanent),
            ("InvalidParameterValue.LimitExceeded", Permanent),
            ("InvalidParameterCombination", Permanent),
            ("MissingParameter", Permanent),
            ("UnknownParameter", Permanent),
            ("InvalidAction", Permanent),
            ("NoSuchVersion", Permanent),
            ("LimitExceeded.InstanceQuota", Permanent),
            ("LimitExceeded.CvmInstanceQuota", Permanent),
            ("InstancesQuotaLimitExceeded", Permanent),
            ("ResourceInsufficient.SpecifiedInstanceType", Permanent),
            ("ResourcesSoldOut.SpecifiedInstanceType", Permanent),
            ("ResourceInsufficient.AvailabilityZoneSoldOut", Permanent),
            ("ResourceInsufficient.CloudDiskSoldOut", Permanent),
            ("ResourceUnavailable.InstanceType", Permanent),
            ("ResourceNotFound.InvalidZoneInstanceType", Permanent),
            ("InvalidZone.MismatchRegion", Permanent),
            ("InvalidParameterValue.ZoneNotSupported", Permanent),
            ("InvalidImageId.NotFound", Permanent),
            ("InvalidImageId.Malformed", Permanent),
            ("InvalidInstanceType.Malformed", Permanent),
            ("InvalidClientToken.TooLong", Permanent),
            ("InvalidInstanceId.Malformed", Permanent),
            ("UnsupportedOperation.InstancesProtected", Permanent),
            ("UnsupportedOperation.StoppedModeStopCharging", Permanent),
            ("FailedOperation.Unreturnable", Permanent),
            ("InvalidAccount.InsufficientBalance", Permanent),
            ("OperationDenied.SomethingElse", Permanent),
            ("SomeBrandNewCode.NobodyKnows", Permanent),
        ];
        for (code, want) in table {
            assert_eq!(classify_code(code), *want, "{code}");
        }
        // Every class is reachable (but the client's own verdict that the
        // API does not answer, which no code carries).
        for class in ErrorClass::ALL.into_iter().filter(|c| *c != Unreachable) {
            assert!(table.iter().any(|(_, c)| *c == class), "{class:?}");
        }
    }

    #[test]
    fn non_api_failures_are_classified_and_keep_context() {
        let net = CloudError::Network {
            action: "DescribeInstances".into(),
            connect: true,
            message: "refused".into(),
        };
        assert_eq!(net.class(), Transient);
        assert!(net.certainly_not_executed());
        assert_eq!(net.code(), "ClientError.NetworkError");
        let lost = CloudError::Network {
            action: "RunInstances".into(),
            connect: false,
            message: "reset".into(),
        };
        assert!(!lost.certainly_not_executed());
        assert_eq!(
            CloudError::Timeout {
                action: "X".into(),
                after: Duration::from_secs(1)
            }
            .class(),
            Transient
        );
        assert_eq!(
            CloudError::HttpStatus {
                action: "X".into(),
                status: 502
            }
            .class(),
            Transient
        );
        assert_eq!(
            CloudError::HttpStatus {
                action: "X".into(),
                status: 429
            }
            .class(),
            Throttled
        );
        assert_eq!(
            CloudError::HttpStatus {
                action: "X".into(),
                status: 404
            }
            .class(),
            Permanent
        );

        let api = CloudError::Api {
            action: "RunInstances".into(),
            code: "LimitExceeded.InstanceQuota".into(),
            message: "quota".into(),
            request_id: "rid-1".into(),
        };
        assert_eq!(api.request_id(), Some("rid-1"));
        assert_eq!(
            api.to_string(),
            "RunInstances failed: LimitExceeded.InstanceQuota: quota (RequestId: rid-1)"
        );
        assert!(!api.certainly_not_executed());
    }

    #[test]
    fn scrubbing_removes_request_secrets_from_every_text() {
        let mut secrets = SecretValues::default();
        secrets.add("Sup3r-Secret!");
        let api = CloudError::Api {
            action: "RunInstances".into(),
            code: "InvalidPassword".into(),
            message: "password Sup3r-Secret! is too weak".into(),
            request_id: "rid".into(),
        }
        .scrubbed(&secrets);
        assert_eq!(api.message(), "password <redacted> is too weak");
        assert_eq!(api.code(), "InvalidPassword");
        assert_eq!(api.request_id(), Some("rid"));
        let decode = CloudError::Decode {
            action: "RunInstances".into(),
            detail: "unexpected `Sup3r-Secret!`".into(),
            request_id: None,
        }
        .scrubbed(&secrets);
        assert!(!decode.to_string().contains("Sup3r"), "{decode}");
        let net = CloudError::Network {
            action: "X".into(),
            connect: false,
            message: "reset after Sup3r-Secret!".into(),
        }
        .scrubbed(&secrets);
        assert!(!net.to_string().contains("Sup3r"), "{net}");
    }
}
