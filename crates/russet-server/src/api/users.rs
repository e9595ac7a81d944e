//! `/api/v1/users`: end users who sign in during Automated Device Enrollment (local accounts).
//! Passwords go in, never out: no answer holds a password or its hash.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::users::{NewUserRequest, PasswordRequest, User, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// Only the user with this username (ignoring case).
    pub username: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 409, description = "The username is taken (ignoring case)", body = ErrorBody),
        (status = 422, description = "Invalid fields (details.fields names each problem)", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<NewUserRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.core.user_create(&actor, &body).await?)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserParams),
    responses((status = 200, body = UserList)), security(("admin_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<UserParams>,
) -> Result<Json<UserList>, ApiError> {
    let users = match p.username {
        Some(name) => match state.core.user_get_by_username(&name).await {
            Ok(user) => vec![user],
            Err(e) if e.code == "user_not_found" => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        None => state.core.user_list().await?,
    };
    Ok(Json(UserList { users }))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<User>, ApiError> {
    Ok(Json(state.core.user_get(id).await?))
}

#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = UserUpdate,
    responses(
        (status = 200, body = User),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Changed by another request meanwhile", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(changes): ApiJson<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    if changes.is_empty() {
        return Err(ApiError::bad_request(
            "no_changes",
            "send the fields to change: display_name, email (null removes it) or disabled, e.g. {\"disabled\": true}",
        ));
    }
    Ok(Json(state.core.user_update(&actor, id, &changes).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.user_delete(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/api/v1/users/{id}/password", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = PasswordRequest,
    responses(
        (status = 200, description = "Set; failed attempts and any lock are cleared", body = User),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn set_password(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.core.user_set_password(&actor, id, &body.password).await?))
}

#[utoipa::path(
    post, path = "/api/v1/users/{id}/unlock", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Unlocked; failed attempts cleared", body = User),
        (status = 404, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn unlock(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.core.user_unlock(&actor, id).await?))
}
