//! `/api/v1/devices`: devices ABM assigned to Russet's tokens.

use axum::extract::State;
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::devices::DeviceFilter;
use russet_core::devices::{DeviceDetail, DevicePage};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, ErrorBody};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceParams {
    pub token_id: Option<i64>,
    /// Devices that should have this profile.
    pub profile_id: Option<i64>,
    /// `true`: only devices without a profile.
    pub unassigned: Option<bool>,
    /// Apple's profile status: `empty`, `assigned`, `pushed`, `removed`.
    pub profile_status: Option<String>,
    /// Russet's assignment state: `pending`, `success`, `not_accessible`, `failed`, `throttled`.
    pub assign_state: Option<String>,
    pub serial_prefix: Option<String>,
    pub model: Option<String>,
    /// `Mac`, `iPhone`, `iPad`, `AppleTV`, `Vision`…
    pub family: Option<String>,
    /// `OSX`, `iOS`, `iPadOS`, `tvOS`, `visionOS`.
    pub os: Option<String>,
    /// RFC 3339: devices Russet first saw at or after this time.
    pub added_since: Option<String>,
    /// `true`: also devices released or moved away in ABM.
    pub include_removed: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–1000 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceParams), responses((status = 200, body = DevicePage), (status = 400, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<DeviceParams>,
) -> Result<Json<DevicePage>, ApiError> {
    let added_since = p
        .added_since
        .as_deref()
        .map(|t| time::OffsetDateTime::parse(t, &Rfc3339))
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "added_since must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z",
            )
        })?;
    if let Some(s) = p.profile_status.as_deref()
        && !matches!(s, "empty" | "assigned" | "pushed" | "removed")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "profile_status must be empty, assigned, pushed or removed",
        ));
    }
    if let Some(s) = p.assign_state.as_deref()
        && !matches!(s, "pending" | "success" | "not_accessible" | "failed" | "throttled")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "assign_state must be pending, success, not_accessible, failed or throttled",
        ));
    }
    let filter = DeviceFilter {
        token_id: p.token_id,
        profile_id: p.profile_id,
        unassigned: p.unassigned.unwrap_or(false),
        abm_profile_status: p.profile_status,
        assign_state: p.assign_state,
        serial_prefix: p.serial_prefix,
        model: p.model,
        device_family: p.family,
        os: p.os,
        added_since,
        include_removed: p.include_removed.unwrap_or(false),
    };
    Ok(Json(
        state
            .core
            .device_list(filter, p.cursor.as_deref(), p.limit.unwrap_or(0))
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/devices/{serial}", tag = "devices",
    params(("serial" = String, Path, description = "Serial number")),
    responses((status = 200, body = DeviceDetail), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(serial): ApiPath<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    Ok(Json(state.core.device_get(&serial).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// What happens next (a device ABM still assigns comes back at the next full sync).
    pub notice: String,
}

#[utoipa::path(
    delete, path = "/api/v1/devices/{serial}", tag = "devices",
    params(("serial" = String, Path, description = "Serial number")),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(serial): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    Ok(Json(Deleted {
        notice: state.core.device_delete(&actor, &serial).await?,
    }))
}
