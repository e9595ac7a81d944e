//! `/api/v1/enrollment-links`, `/api/v1/commands`, `/api/v1/enrollments`: enrolling devices
//! outside ABM, sending them commands, and seeing them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::enroll::EnrollmentLink;
use russet_core::mdm::{CommandStatus, Enrollment, NewCommandRequest, QueuedCommand};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};

/// Largest command request body (a raw InstallProfile can carry a large profile).
pub const COMMAND_BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    /// A name to tell links apart, e.g. "Loaner iPads".
    pub name: String,
    /// Days the link stays usable (1-365, default 30).
    pub valid_days: Option<i64>,
    /// The link enrolls one device, then stops working.
    #[serde(default)]
    pub single_use: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub links: Vec<EnrollmentLink>,
}

#[utoipa::path(
    post, path = "/api/v1/enrollment-links", tag = "enrollment",
    request_body = CreateLink,
    responses(
        (status = 201, description = "The link, with its URL (shown only now)", body = EnrollmentLink),
        (status = 422, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn create_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<CreateLink>,
) -> Result<Response, ApiError> {
    let link = state
        .core
        .enrollment_link_create(&actor, &body.name, body.valid_days.unwrap_or(30), body.single_use)
        .await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

#[utoipa::path(get, path = "/api/v1/enrollment-links", tag = "enrollment",
    responses((status = 200, body = LinkList)), security(("admin_key" = [])))]
pub async fn list_links(State(state): State<AppState>) -> Result<Json<LinkList>, ApiError> {
    Ok(Json(LinkList {
        links: state.core.enrollment_link_list().await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/enrollment-links/{id}", tag = "enrollment",
    params(("id" = i64, Path, description = "Link id")),
    responses((status = 200, description = "Revoked", body = EnrollmentLink), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn revoke_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EnrollmentLink>, ApiError> {
    Ok(Json(state.core.enrollment_link_revoke(&actor, id).await?))
}

#[utoipa::path(
    post, path = "/api/v1/commands", tag = "commands",
    request_body = NewCommandRequest,
    responses(
        (status = 201, description = "Queued for the enrolled targets, which are pushed", body = QueuedCommand),
        (status = 404, description = "No target is an enrolled device", body = ErrorBody),
        (status = 422, description = "Not a valid command for Apple's schema (details.fields says which)", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn enqueue(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<NewCommandRequest>,
) -> Result<Response, ApiError> {
    let queued = state.core.command_enqueue(&actor, &body).await?;
    Ok((StatusCode::CREATED, Json(queued)).into_response())
}

#[utoipa::path(get, path = "/api/v1/commands/{uuid}", tag = "commands",
    params(("uuid" = String, Path, description = "CommandUUID")),
    responses((status = 200, body = CommandStatus), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn command(
    State(state): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<CommandStatus>, ApiError> {
    Ok(Json(state.core.command_status(&uuid).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentQuery {
    /// Only this serial number.
    pub serial: Option<String>,
    /// Ids after this one (the previous page's last id).
    pub after: Option<String>,
    /// At most this many (1-1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentList {
    pub enrollments: Vec<Enrollment>,
}

#[utoipa::path(get, path = "/api/v1/enrollments", tag = "enrollment", params(EnrollmentQuery),
    responses((status = 200, body = EnrollmentList)), security(("admin_key" = [])))]
pub async fn enrollments(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EnrollmentQuery>,
) -> Result<Json<EnrollmentList>, ApiError> {
    Ok(Json(EnrollmentList {
        enrollments: state
            .core
            .enrollment_list(q.after.as_deref(), q.limit.unwrap_or(100), q.serial.as_deref())
            .await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/enrollments/{id}", tag = "enrollment",
    params(("id" = String, Path, description = "Enrollment id (UDID for a device)")),
    responses((status = 200, body = Enrollment), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn enrollment(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Enrollment>, ApiError> {
    Ok(Json(state.core.enrollment_get(&id).await?))
}

#[utoipa::path(post, path = "/api/v1/enrollments/{id}/release", tag = "enrollment",
    params(("id" = String, Path, description = "Enrollment id (UDID for a device)")),
    responses((status = 200, body = Enrollment, description = "DeviceConfigured queued and pushed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Not awaiting configuration")),
    security(("admin_key" = [])))]
/// Releases a device held in Setup Assistant (awaiting configuration): DeviceConfigured is
/// queued and pushed.
pub async fn release(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Enrollment>, ApiError> {
    Ok(Json(state.core.enrollment_release(&actor, &id).await?))
}
