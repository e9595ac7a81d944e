//! `/api/v1/health`: the health of every Apple credential (ADE tokens, the push certificate,
//! Apps and Books tokens) and the notifications sent about it.

use axum::Json;
use axum::extract::State;
use russet_core::health::{HealthReport, NotificationDelivery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiQuery};

#[utoipa::path(
    get, path = "/api/v1/health/credentials", tag = "health",
    responses((status = 200, description = "Every credential with its expiry, days left and status, worst first; \
        `severity` is the worst of all (`critical` and `failed` need action now)", body = HealthReport)),
    security(("admin_key" = []))
)]
pub async fn credentials(State(state): State<AppState>) -> Result<Json<HealthReport>, ApiError> {
    Ok(Json(state.core.credential_health().await?))
}

/// What a check did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOutcome {
    /// Status changes and renewals recorded by this check.
    pub changes: usize,
    /// Notifications queued.
    pub notifications_queued: usize,
    /// Notifications delivered by this check (queued now or earlier and due).
    pub notifications_delivered: usize,
    pub report: HealthReport,
}

#[utoipa::path(
    post, path = "/api/v1/health/check", tag = "health",
    responses((status = 200, description = "Checked now (the scheduler does this every 30 seconds): changes \
        recorded, notifications queued and delivered", body = CheckOutcome)),
    security(("admin_key" = []))
)]
pub async fn check(State(state): State<AppState>) -> Result<Json<CheckOutcome>, ApiError> {
    let outcome = state.core.health_check().await?;
    let delivered = state.core.deliver_notifications().await?;
    Ok(Json(CheckOutcome {
        changes: outcome.changes,
        notifications_queued: outcome.notifications,
        notifications_delivered: delivered,
        report: state.core.credential_health().await?,
    }))
}

/// How many notifications to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// At most this many, newest first (1-1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationDelivery>,
}

#[utoipa::path(
    get, path = "/api/v1/health/notifications", tag = "health",
    params(NotificationParams),
    responses((status = 200, description = "Webhook notifications, newest first, with their delivery", body = NotificationList)),
    security(("admin_key" = []))
)]
pub async fn notifications(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<NotificationParams>,
) -> Result<Json<NotificationList>, ApiError> {
    Ok(Json(NotificationList {
        notifications: state.core.notification_deliveries(params.limit.unwrap_or(100)).await?,
    }))
}
