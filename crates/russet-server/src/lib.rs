//! Russet's HTTP side: the admin API under `/api/v1` with its OpenAPI document, health
//! checks, Prometheus metrics at `/metrics`, the device-facing endpoints (`/mdm`, `/scep`,
//! `/enroll`, …) and (in later issues) the web console.
//!
//! Handlers translate HTTP to calls on [`russet_core::Core`] and back; they hold no business
//! rules. [`config`] reads `russet.toml`, the environment and flags; [`serve`] opens the
//! data directory and the database and runs the server until it is told to stop.

pub mod api;
pub mod auth;
pub mod config;
pub mod device;
pub mod error;
pub mod metrics;
pub mod serve;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use russet_core::Core;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    /// Base of every device-facing URL, without a trailing slash.
    pub public_url: Arc<str>,
    /// The header a trusted TLS-terminating proxy puts the device's client certificate in.
    pub client_cert_header: Option<Arc<str>>,
    /// Checks `Mdm-Signature` headers, remembering the certificates of devices seen.
    pub mdm_signatures: Arc<russet_apple::mdm::SignatureVerifier>,
    /// HTTP request counts and latencies for `/metrics`.
    pub http_metrics: Arc<metrics::HttpMetrics>,
    /// The bearer token `/metrics` requires, when configured.
    pub metrics_token: Option<Arc<str>>,
}

/// How many device certificates the `Mdm-Signature` verifier remembers (their public keys,
/// about 2 KiB each).
pub const MDM_SIGNATURE_MEMORY: usize = 32_768;

/// How long one request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET /healthz`: the process is alive.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "alive" }))
}

/// `GET /readyz`: the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let backend = state.core.store.backend().as_str();
    if state.core.store.ping(Duration::from_secs(2)).await {
        (StatusCode::OK, Json(json!({ "status": "ready", "database": backend })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": backend, "message": "the database does not answer" })),
        )
    }
}

/// The request path as logged: an enrollment link's secret is cut off.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/enroll/") {
        "/enroll/…"
    } else {
        path
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api::router(state.clone()))
        .merge(device::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Method and path only: query strings and headers (the admin key) are never logged.
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id)
                })
                // One access-log line per request (status and latency) at the default level.
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
