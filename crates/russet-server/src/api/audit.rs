//! `/api/v1/audit`: the audit log of changes made through the API.

use axum::Json;
use axum::extract::State;
use russet_core::admin::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiQuery};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// Only entries older than this id (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// Only entries about this kind of object, e.g. `ade_token`.
    pub target_type: Option<String>,
    /// Only entries about this object id (with `target_type`).
    pub target_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, body = AuditPage)),
    security(("admin_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = p.limit.unwrap_or(0);
    if p.limit == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let entries = state
        .core
        .audit_list(AuditQuery {
            before_id: p.before,
            target_type: p.target_type,
            target_id: p.target_id,
            limit,
        })
        .await?;
    let page_size = if limit == 0 {
        russet_core::admin::AUDIT_PAGE_DEFAULT
    } else {
        limit.min(russet_core::admin::AUDIT_PAGE_MAX)
    };
    let next_before = if entries.len() == page_size as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage { entries, next_before }))
}
