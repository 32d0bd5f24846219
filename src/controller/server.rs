//! `/healthz`, `/readyz` and `/metrics`.
//!
//! Ready means "serving": a standby replica waiting for the lease is ready
//! too, or rolling updates of a two-replica deployment would never finish.
//! A CVM API outage does not make a replica unready either: readiness gates
//! only the metrics Service and rollouts, so an unready operator would hide
//! its own metrics exactly when they matter and block the rollout of a fix,
//! and both replicas see the same cloud (failing over helps nothing). The
//! body says what is wrong: one line per endpoint that does not answer.

use super::metrics::Metrics;
use crate::cloud::reachability::Reachability;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// Whether the CVM API answers (reported in the `/readyz` body).
    pub cloud: Option<Reachability>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<ServerState>) -> impl IntoResponse {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string());
    }
    let mut body = String::from("ok");
    for down in s.cloud.iter().flat_map(Reachability::down) {
        body.push_str(&format!(
            "\ncloud: the CVM API at {} has not answered since {} (last: {}); reconciles wait for it, probing every {}s",
            down.host,
            down.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            down.last_error,
            s.cloud.as_ref().map_or(0, |c| c.probe_interval().as_secs()),
        ));
    }
    (StatusCode::OK, body)
}

async fn metrics(State(s): State<ServerState>) -> impl IntoResponse {
    let body = s.metrics.encode();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}
