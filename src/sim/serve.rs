//! How the simulator meets the network: its accept loop, outages that keep
//! the simulator's state, and the `Date` header from its own clock.
//!
//! An outage is what a caller of the real API sees when the service or the
//! path to it fails, in three kinds (switchable at runtime, in-process or by
//! `PUT /_sim/outage`): the listener closed and every connection cut
//! (connection refused), connections accepted and requests read but never
//! answered (timeouts), and a gateway answering 503. Instances, quotas and
//! counters survive every kind; nothing sent during an outage takes effect.
//!
//! The simulator's clock can be skewed (`PUT /_sim/clock`): the signature
//! window and the `Date` header follow it, as a node whose clock is off sees
//! the real API (the mirror image: there the node's clock is wrong).

use super::Shared;
use super::auth::header_str;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What the network does to callers of the API (the `/_sim/*` routes are
/// spared, except by `Refuse`, which closes the one listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutageMode {
    /// Serving normally.
    #[default]
    None,
    /// The listener is closed and open connections are cut: callers get
    /// "connection refused".
    Refuse,
    /// Connections are accepted and requests read, but never answered:
    /// callers time out. Held requests are cut when the mode changes.
    Blackhole,
    /// A gateway in front answers every request `503 Service Unavailable`.
    ServerError,
}

/// One step of an [`OutagePlan`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutagePhase {
    pub mode: OutageMode,
    pub seconds: f64,
}

/// Phases run in order, then service resumes (`PUT /_sim/outage`; the only
/// way to end a `Refuse` phase over HTTP, since the listener is closed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutagePlan {
    #[serde(default)]
    pub phases: Vec<OutagePhase>,
}

impl OutagePlan {
    /// The whole plan's length.
    pub fn duration(&self) -> Duration {
        let secs: f64 = self.phases.iter().map(|p| p.seconds.max(0.0)).sum();
        Duration::from_secs_f64(secs)
    }
}

/// `PUT /_sim/clock` and `GET /_sim/clock`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockSetting {
    /// Seconds added to the simulator's wall clock.
    pub offset_secs: i64,
}

impl Shared {
    /// Switches the outage mode now, cancelling a running plan.
    pub(crate) fn set_outage(&self, mode: OutageMode) {
        self.cancel_plan();
        self.outage.send_replace(mode);
    }

    fn cancel_plan(&self) {
        let mut plan = self.outage_plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = plan.take() {
            task.abort();
        }
    }

    /// Runs `plan` in a background task after `delay` (needs a Tokio runtime).
    pub(crate) fn schedule_outage(self: &Arc<Self>, plan: OutagePlan, delay: Duration) {
        self.cancel_plan();
        let shared = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for phase in &plan.phases {
                tracing::info!(mode = ?phase.mode, seconds = phase.seconds, "simulated outage");
                shared.outage.send_replace(phase.mode);
                tokio::time::sleep(Duration::from_secs_f64(phase.seconds.max(0.0))).await;
            }
            tracing::info!("simulated outage over");
            shared.outage.send_replace(OutageMode::None);
        });
        *self.outage_plan.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    }
}

/// Serves `router` on `listener` until the task is dropped, closing and
/// re-opening the listener (same address) as the outage mode says.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    router: Router,
    listener: TcpListener,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let mut listener = Some(listener);
    let mut modes = shared.outage.subscribe();
    let mut mode = *modes.borrow_and_update();
    let mut connections = JoinSet::new();
    loop {
        if mode == OutageMode::Refuse {
            listener = None;
            connections.abort_all();
        } else if listener.is_none() {
            listener = Some(rebind(addr).await?);
        }
        tokio::select! {
            changed = modes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let next = *modes.borrow_and_update();
                if mode == OutageMode::Blackhole && next != OutageMode::Blackhole {
                    // The held requests die with their connections, as
                    // flows through a broken path do.
                    connections.abort_all();
                }
                mode = next;
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// The same address again (Tokio sets SO_REUSEADDR, so connections in
/// TIME_WAIT do not hold it); retried for a few seconds in case a client
/// socket briefly took the port.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, %addr, "simulator: cannot re-open the listener yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper_util::service::TowerToHyperService::new(router);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// In front of the API routes: what the outage does to a request. Requests
/// it answers (or holds) are counted per action, not as calls.
pub(crate) async fn outage_gate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let mode = *shared.outage.borrow();
    if matches!(mode, OutageMode::None | OutageMode::Refuse) {
        return next.run(request).await;
    }
    let action = if request.uri().path().starts_with("/latest/") {
        super::METADATA_ACTION
    } else {
        header_str(request.headers(), "x-tc-action").unwrap_or("-")
    }
    .to_string();
    shared.stats.outage(&action);
    if mode == OutageMode::Blackhole {
        // Cut when the mode changes (see `serve`).
        return std::future::pending().await;
    }
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Every answer carries `Date` from the simulator's (possibly skewed) clock,
/// as the real API's does: a client measures its own clock's error with it.
pub(crate) async fn date_header(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(request).await;
    let now =
        jiff::Timestamp::from_second(shared.now_unix()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&now)
        .ok()
        .and_then(|d| HeaderValue::from_str(&d).ok());
    if let Some(date) = date {
        resp.headers_mut().insert(header::DATE, date);
    }
    resp
}

/// `GET /_sim/outage`: the current mode.
pub async fn get_outage(State(shared): State<Arc<Shared>>) -> Response {
    let mode = *shared.outage.borrow();
    axum::Json(serde_json::json!({ "mode": mode })).into_response()
}

/// `PUT /_sim/outage` with an [`OutagePlan`]; it starts 100 ms after the
/// answer, so the answer gets out before a `Refuse` phase cuts connections.
pub async fn put_outage(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<OutagePlan>(&body) {
        Ok(plan) => {
            shared.schedule_outage(plan, Duration::from_millis(100));
            let mut resp = StatusCode::ACCEPTED.into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /_sim/clock`.
pub async fn get_clock(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(ClockSetting {
        offset_secs: shared.clock_offset(),
    })
    .into_response()
}

/// `PUT /_sim/clock` with a [`ClockSetting`].
pub async fn put_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ClockSetting>(&body) {
        Ok(c) => {
            shared.set_clock_offset(c.offset_secs);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
