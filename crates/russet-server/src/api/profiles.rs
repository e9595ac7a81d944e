//! `/api/v1/profiles`: ADE enrollment profiles, their assignment to devices, and the Setup
//! Assistant panes they may skip.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::jobs::Job;
use russet_core::profiles::{AdeProfile, AssignTarget, ProfileEdit, ProfileSettings};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};

/// Largest assignment body: a million serial numbers.
pub const ASSIGN_BODY_LIMIT: usize = 24 * 1024 * 1024;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProfileParams {
    /// Only the profiles of this token.
    pub token_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    pub profiles: Vec<AdeProfile>,
}

#[utoipa::path(
    post, path = "/api/v1/ade-tokens/{id}/profiles", tag = "profiles",
    params(("id" = i64, Path, description = "Token id")),
    request_body = ProfileSettings,
    responses(
        (status = 201, description = "Created and defined at Apple", body = AdeProfile),
        (status = 409, body = ErrorBody),
        (status = 422, description = "Invalid settings (details.fields names each problem) or refused by Apple", body = ErrorBody),
        (status = 502, description = "Apple refused (terms not signed, token revoked)", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(token_id): ApiPath<i64>,
    ApiJson(settings): ApiJson<ProfileSettings>,
) -> Result<(StatusCode, Json<AdeProfile>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.profile_create(&actor, token_id, &settings).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/profiles", tag = "profiles", params(ProfileParams), responses((status = 200, body = ProfileList)), security(("admin_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ProfileParams>,
) -> Result<Json<ProfileList>, ApiError> {
    Ok(Json(ProfileList {
        profiles: state.core.profile_list(p.token_id).await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = i64, Path, description = "Profile id")),
    responses((status = 200, body = AdeProfile), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<AdeProfile>, ApiError> {
    Ok(Json(state.core.profile_get(id).await?))
}

#[utoipa::path(
    patch, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = i64, Path, description = "Profile id")),
    request_body(content = Object, description = "Settings to change (any keys of ProfileSettings); the rest stay"),
    responses(
        (status = 200, description = "Defined again at Apple; its devices are being reassigned (see notice)", body = ProfileEdit),
        (status = 422, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn edit(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(changes): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<ProfileEdit>, ApiError> {
    if changes.is_empty() {
        return Err(ApiError::bad_request(
            "no_changes",
            "send the settings to change, e.g. {\"department\": \"IT\"}",
        ));
    }
    Ok(Json(state.core.profile_edit(&actor, id, &changes).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = i64, Path, description = "Profile id")),
    responses((status = 204), (status = 409, description = "Default profile, or devices should have it", body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.profile_delete(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which devices to assign the profile to: `serials`, or a `filter`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// Serial numbers of devices of the profile's token.
    pub serials: Option<Vec<String>>,
    /// `unassigned` (devices without a profile), `any` (every device of the token), or `profile` (with `profile`).
    pub filter: Option<String>,
    /// With `filter: "profile"`: the devices that now have this profile (name or id).
    pub profile: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/profiles/{id}/assign", tag = "profiles",
    params(("id" = i64, Path, description = "Profile id")),
    request_body = AssignRequest,
    responses(
        (status = 202, description = "Devices marked and being sent to Apple in batches of 1000; follow the job", body = Job),
        (status = 422, description = "Serials that are not devices of the token, or a bad filter", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn assign(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let target = match (body.serials, body.filter.as_deref(), body.profile) {
        (Some(serials), None, None) => AssignTarget::Serials(serials),
        (None, Some("unassigned"), None) => AssignTarget::Unassigned,
        (None, Some("any"), None) => AssignTarget::Any,
        (None, Some("profile"), Some(p)) => AssignTarget::Profile(p),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_assignment",
                "send either {\"serials\": [...]}, {\"filter\": \"unassigned\"}, {\"filter\": \"any\"} or \
                 {\"filter\": \"profile\", \"profile\": \"NAME\"}",
            ));
        }
    };
    let job = state.core.profile_assign(&actor, id, &target).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// A Setup Assistant pane a profile can skip.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pane {
    /// Friendly name used in `skip_setup_panes`.
    pub name: &'static str,
    /// Apple's skip key (also accepted).
    pub key: &'static str,
    pub title: &'static str,
    /// The OS versions that deprecated the key.
    pub deprecated: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaneList {
    pub panes: Vec<Pane>,
}

#[utoipa::path(get, path = "/api/v1/setup-panes", tag = "profiles", responses((status = 200, body = PaneList)), security(("admin_key" = [])))]
pub async fn panes() -> Json<PaneList> {
    Json(PaneList {
        panes: russet_core::profiles::panes::PANES
            .iter()
            .map(|p| Pane {
                name: p.name,
                key: p.key,
                title: p.title,
                deprecated: p.deprecated,
            })
            .collect(),
    })
}
