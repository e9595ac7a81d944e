//! `/api/v1/ade-tokens`: enrollment program tokens.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::ade_tokens::{AdeToken, ServerTokenUpload, UploadIntent, UploadOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};

/// Largest accepted server token upload body (the file itself is limited to 1 MiB by the
/// parser; this leaves room for multipart framing).
pub const UPLOAD_BODY_LIMIT: usize = russet_apple::server_token::MAX_FILE_SIZE + 64 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdeToken {
    /// A name to tell tokens apart, e.g. "ABM – Head office". Unique, at most 100 characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdeTokenList {
    pub tokens: Vec<AdeToken>,
}

/// Options of a server token upload, as query parameters (or multipart fields).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The Apple ID used in Apple Business Manager to download the token.
    pub apple_id: Option<String>,
    /// Accept a token from a different ABM MDM server (its devices would be lost), or an older file.
    pub force: Option<bool>,
    /// `initial` refuses if the token is already active, `renewal` refuses if it is still pending.
    pub intent: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/ade-tokens", tag = "ade-tokens",
    request_body = CreateAdeToken,
    responses(
        (status = 201, description = "Pending token created with its key pair", body = AdeToken),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<CreateAdeToken>,
) -> Result<Response, ApiError> {
    let token = state.core.ade_token_create(&actor, &body.name).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/ade-tokens/{}", token.id)).ok();
    let mut response = (StatusCode::CREATED, Json(token)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(
    get, path = "/api/v1/ade-tokens", tag = "ade-tokens",
    responses((status = 200, body = AdeTokenList)),
    security(("admin_key" = []))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<AdeTokenList>, ApiError> {
    Ok(Json(AdeTokenList {
        tokens: state.core.ade_token_list().await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/ade-tokens/{id}", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = AdeToken), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<AdeToken>, ApiError> {
    Ok(Json(state.core.ade_token_get(id).await?))
}

#[utoipa::path(
    get, path = "/api/v1/ade-tokens/{id}/public-key", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "The PEM certificate to upload to the MDM server in Apple Business Manager",
         content_type = "application/x-pem-file", body = String),
        (status = 404, body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn public_key(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Response, ApiError> {
    let key = state.core.ade_token_public_key(id).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", key.file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, key.pem).into_response())
}

#[utoipa::path(
    put, path = "/api/v1/ade-tokens/{id}/server-token", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id"), UploadParams),
    request_body(
        description = "The server token (.p7m) from Apple Business Manager: either the raw file \
            (`application/pkcs7-mime` or `application/octet-stream`, options as query parameters), or \
            `multipart/form-data` with a `file` part and optional `apple_id`, `force` and `intent` fields. At most 1 MiB.",
        content(
            (Vec<u8> = "application/pkcs7-mime"),
            (Vec<u8> = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "Stored: first upload (`activated`), renewal in place (`renewed`), or no change", body = UploadOutcome),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Refused to protect the token: another ABM MDM server, an older file, a mismatched intent", body = ErrorBody),
        (status = 413, description = "File over 1 MiB", body = ErrorBody),
        (status = 422, description = "Not a server token, wrong key, expired, missing fields", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn upload_server_token(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(mut params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<Json<UploadOutcome>, ApiError> {
    let file = super::upload::read_file(
        &state,
        request,
        UPLOAD_BODY_LIMIT,
        "server token (.p7m)",
        |name, text| {
            match name {
                "apple_id" => params.apple_id = Some(text),
                "force" => params.force = Some(super::upload::bool_field("force", &text)?),
                "intent" => params.intent = Some(text),
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_multipart",
                        format!("unknown form field \"{other}\": expected file, apple_id, force, intent"),
                    ));
                }
            }
            Ok(())
        },
    )
    .await?;
    let intent = match params.intent.as_deref() {
        None | Some("") | Some("any") => UploadIntent::Any,
        Some("initial") => UploadIntent::Initial,
        Some("renewal") => UploadIntent::Renewal,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_intent",
                format!("intent must be initial, renewal or any (got \"{other}\")"),
            ));
        }
    };
    let outcome = state
        .core
        .ade_token_upload(
            &actor,
            id,
            ServerTokenUpload {
                file: &file,
                apple_id: params.apple_id.as_deref().unwrap_or(""),
                force: params.force.unwrap_or(false),
                intent,
            },
        )
        .await?;
    Ok(Json(outcome))
}

#[utoipa::path(
    delete, path = "/api/v1/ade-tokens/{id}", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 204, description = "Deleted with its key material"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Devices or enrollment profiles still depend on it", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.ade_token_delete(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// A full sync (every device again); at most once every 7 days, sooner it only adds new serials.
    #[serde(default)]
    pub full: bool,
}

#[utoipa::path(
    post, path = "/api/v1/ade-tokens/{id}/sync", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id")),
    request_body(content = SyncRequest, description = "Optional; `{}` for a delta sync"),
    responses(
        (status = 202, description = "Sync started; follow it at /api/v1/jobs/{id}", body = russet_core::jobs::Job),
        (status = 409, description = "A sync is running, or the token is pending or expired", body = ErrorBody),
        (status = 429, description = "A manual sync ran less than 15 minutes ago (Retry-After says when the next is possible)", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn sync(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<russet_core::jobs::Job>), ApiError> {
    // The body is optional: none means a delta sync.
    let full = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<SyncRequest>(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("the JSON body is not valid: {e}")))?
            .full
    };
    let job = state.core.ade_sync_request(&actor, id, full).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultProfile {
    /// The profile newly synced devices get; `null` for none.
    pub profile_id: Option<i64>,
}

#[utoipa::path(
    put, path = "/api/v1/ade-tokens/{id}/default-profile", tag = "ade-tokens",
    params(("id" = i64, Path, description = "Token id")),
    request_body = DefaultProfile,
    responses((status = 200, body = AdeToken), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn set_default_profile(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DefaultProfile>,
) -> Result<Json<AdeToken>, ApiError> {
    state.core.profile_set_default(&actor, id, body.profile_id).await?;
    Ok(Json(state.core.ade_token_get(id).await?))
}
