//! `/api/v1/jobs`: syncs and assignments with their progress.

use axum::Json;
use axum::extract::State;
use russet_core::jobs::Job;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, ErrorBody};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    pub token_id: Option<i64>,
    /// `sync` or `assign`.
    pub kind: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<Job>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobParams), responses((status = 200, body = JobList)), security(("admin_key" = [])))]
pub async fn list(State(state): State<AppState>, ApiQuery(p): ApiQuery<JobParams>) -> Result<Json<JobList>, ApiError> {
    if let Some(kind) = p.kind.as_deref()
        && !matches!(kind, "sync" | "assign")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("kind must be sync or assign (got \"{kind}\")"),
        ));
    }
    Ok(Json(JobList {
        jobs: state
            .core
            .job_list(p.token_id, p.kind.as_deref(), p.limit.unwrap_or(50))
            .await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.core.job_get(id).await?))
}
