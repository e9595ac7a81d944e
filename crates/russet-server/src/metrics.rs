//! Prometheus metrics at `/metrics` (text exposition format): HTTP request counts and
//! latencies (counted by a middleware, by route template), pushes sent and failed (the
//! domain's counters), and, read when scraped, every credential's seconds until expiry and
//! health, the last successful sync per token, devices per token and assignment state, and
//! the MDM command queue's depth.
//!
//! With `metrics.token` set, a scrape must send `Authorization: Bearer <token>`; without it
//! the endpoint is open (it shows names and counts, no secrets).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;

type Labels = Vec<(&'static str, String)>;

/// Latency buckets in seconds, from 1 ms to 10 s.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// HTTP request metrics, shared by every request.
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpMetrics")
    }
}

/// Counts each request by method, route template and status, and times it.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    let m = &state.http_metrics;
    m.requests
        .get_or_create(&vec![
            ("method", method.clone()),
            ("route", route.clone()),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    m.latency
        .get_or_create(&vec![("method", method), ("route", route)])
        .observe(started.elapsed().as_secs_f64());
    response
}

fn gauge_family() -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    Family::default()
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::auth::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::unauthorized(
                "the metrics endpoint needs `Authorization: Bearer <metrics.token>` (the token set in the configuration)",
            ));
        }
    }
    let core = &state.core;
    let mut registry = Registry::with_prefix("russet");

    let (sent, failed) = core.counters.pushes();
    let pushes: Family<Labels, Counter> = Family::default();
    pushes.get_or_create(&vec![("result", "sent".to_string())]).inc_by(sent);
    pushes
        .get_or_create(&vec![("result", "failed".to_string())])
        .inc_by(failed);
    registry.register(
        "apns_pushes",
        "Pushes to APNs since this process started, by result",
        pushes,
    );
    registry.register(
        "http_requests",
        "HTTP requests answered by this process, by method, route and status",
        state.http_metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer HTTP requests, by method and route",
        state.http_metrics.latency.clone(),
    );

    let health = core.credential_health().await?;
    let expiry = gauge_family();
    let status = gauge_family();
    let last_sync = gauge_family();
    let now = health.checked_at;
    for c in &health.credentials {
        let labels = vec![
            ("kind", c.kind.as_str().to_string()),
            ("id", c.id.map(|i| i.to_string()).unwrap_or_default()),
            ("name", c.name.clone()),
        ];
        if let Some(exp) = c.expires_at {
            expiry.get_or_create(&labels).set((exp - now).as_seconds_f64());
        }
        let mut with_status = labels.clone();
        with_status.push(("status", c.status.as_str().to_string()));
        with_status.push(("severity", c.severity.as_str().to_string()));
        status.get_or_create(&with_status).set(1.0);
        if let Some(t) = c.last_success_at {
            last_sync.get_or_create(&labels).set(t.unix_timestamp() as f64);
        }
    }
    registry.register(
        "credential_expiry_seconds",
        "Seconds until each Apple credential expires (negative once expired)",
        expiry,
    );
    registry.register(
        "credential_health",
        "1 for each credential's current health status and severity",
        status,
    );
    registry.register(
        "token_last_successful_sync_timestamp_seconds",
        "Unix time of each token's last successful sync with Apple",
        last_sync,
    );

    let tokens: std::collections::HashMap<i64, String> = core
        .store
        .ade_token_list()
        .await
        .map_err(russet_core::CoreError::from)?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let devices = gauge_family();
    for d in core
        .store
        .metrics_device_counts()
        .await
        .map_err(russet_core::CoreError::from)?
    {
        devices
            .get_or_create(&vec![
                ("token_id", d.token_id.to_string()),
                ("token", tokens.get(&d.token_id).cloned().unwrap_or_default()),
                ("status", d.status),
            ])
            .set(d.devices as f64);
    }
    registry.register(
        "ade_devices",
        "Devices of each enrollment program token by assignment state (removed: released by ABM)",
        devices,
    );
    let depth: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    depth.set(
        core.store
            .metrics_queue_depth()
            .await
            .map_err(russet_core::CoreError::from)? as f64,
    );
    registry.register(
        "mdm_queue_depth",
        "MDM commands queued and not yet answered for good",
        depth,
    );

    let mut body = String::new();
    encode(&mut body, &registry).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write the metrics: {e}"),
        )
    })?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// Shared HTTP metrics for [`AppState`].
pub fn new_http_metrics() -> Arc<HttpMetrics> {
    Arc::new(HttpMetrics::default())
}
