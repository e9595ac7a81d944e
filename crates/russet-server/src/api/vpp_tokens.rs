//! `/api/v1/vpp-tokens` and `/api/v1/vpp-assets`: Apps and Books location tokens and the
//! apps and books they hold licences for.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::vpp::{VppAsset, VppDeleteImpact, VppToken, VppUpload, VppUploadOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, ErrorBody};

/// Largest accepted upload body: the file (16 KiB at most) and multipart framing.
pub const UPLOAD_BODY_LIMIT: usize = russet_core::vpp::MAX_VPP_TOKEN_BYTES + 16 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct VppTokenList {
    pub tokens: Vec<VppToken>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VppAssetList {
    pub assets: Vec<VppAsset>,
}

/// Options of an upload or renewal, as query parameters (or multipart fields).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Display name (new tokens; defaults to the location's name).
    pub name: Option<String>,
    /// The Managed Apple Account that downloaded the token.
    pub apple_id: Option<String>,
    /// `business` (default) or `education` (new tokens).
    pub account_type: Option<String>,
    /// Take the location over from the MDM that manages it now.
    pub take_over: Option<bool>,
}

/// Reads the `.vpptoken` from a raw body or a multipart form, with its options.
async fn read_upload(state: &AppState, request: Request, params: &mut UploadParams) -> Result<Bytes, ApiError> {
    super::upload::read_file(state, request, UPLOAD_BODY_LIMIT, ".vpptoken", |name, text| {
        match name {
            "name" => params.name = Some(text),
            "apple_id" => params.apple_id = Some(text),
            "account_type" => params.account_type = Some(text),
            "take_over" => params.take_over = Some(super::upload::bool_field("take_over", &text)?),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_multipart",
                    format!("unknown form field \"{other}\": expected file, name, apple_id, account_type, take_over"),
                ));
            }
        }
        Ok(())
    })
    .await
}

fn upload_of<'a>(file: &'a [u8], params: &'a UploadParams) -> VppUpload<'a> {
    VppUpload {
        file,
        name: params.name.as_deref(),
        apple_id: params.apple_id.as_deref().filter(|a| !a.trim().is_empty()),
        account_type: params.account_type.as_deref(),
        take_over: params.take_over.unwrap_or(false),
    }
}

#[utoipa::path(
    post, path = "/api/v1/vpp-tokens", tag = "vpp-tokens",
    params(UploadParams),
    request_body(
        description = "The .vpptoken file from Apple Business Manager (Preferences › Payments and Billing › Apps and \
            Books): the raw file (`application/octet-stream`, options as query parameters) or `multipart/form-data` \
            with a `file` part and optional `name`, `apple_id`, `account_type`, `take_over` fields. At most 16 KiB.",
        content((Vec<u8> = "application/octet-stream"))
    ),
    responses(
        (status = 201, description = "Token added; its apps sync in the background", body = VppUploadOutcome),
        (status = 409, description = "Russet already has this location (renew that token), another MDM manages it (take_over), or the name is taken", body = ErrorBody),
        (status = 413, description = "File over 16 KiB", body = ErrorBody),
        (status = 422, description = "Not a .vpptoken, expired, missing fields", body = ErrorBody),
        (status = 502, description = "Apple refused the token (revoked, invalid)", body = ErrorBody),
        (status = 503, description = "Apple could not be reached", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(mut params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let file = read_upload(&state, request, &mut params).await?;
    let outcome = state.core.vpp_token_upload(&actor, upload_of(&file, &params)).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/vpp-tokens/{}", outcome.token.id)).ok();
    let mut response = (StatusCode::CREATED, Json(outcome)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(
    put, path = "/api/v1/vpp-tokens/{id}/token", tag = "vpp-tokens",
    params(("id" = i64, Path, description = "Token id"), UploadParams),
    request_body(
        description = "A new .vpptoken for the token's location, expired or not: the token keeps its id, apps and \
            assignments. Raw file or multipart form as for the upload. At most 16 KiB.",
        content((Vec<u8> = "application/octet-stream"))
    ),
    responses(
        (status = 200, description = "Renewed in place (`renewed`), or the same file (`unchanged`)", body = VppUploadOutcome),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A file for another location, or another MDM manages it (take_over)", body = ErrorBody),
        (status = 422, description = "Not a .vpptoken, expired, missing fields", body = ErrorBody),
        (status = 502, description = "Apple refused the token", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn renew(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(mut params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<Json<VppUploadOutcome>, ApiError> {
    let file = read_upload(&state, request, &mut params).await?;
    if params.name.is_some() || params.account_type.is_some() {
        return Err(ApiError::bad_request(
            "invalid_option",
            "a renewal keeps the token's name and account type: leave out name and account_type",
        ));
    }
    Ok(Json(
        state
            .core
            .vpp_token_renew(&actor, id, upload_of(&file, &params))
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/vpp-tokens", tag = "vpp-tokens",
    responses((status = 200, body = VppTokenList)),
    security(("admin_key" = []))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<VppTokenList>, ApiError> {
    Ok(Json(VppTokenList {
        tokens: state.core.vpp_token_list().await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/vpp-tokens/{id}", tag = "vpp-tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = VppToken), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<VppToken>, ApiError> {
    Ok(Json(state.core.vpp_token_get(id).await?))
}

#[utoipa::path(
    post, path = "/api/v1/vpp-tokens/{id}/sync", tag = "vpp-tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "Synced: the token with its new counts", body = VppToken),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A sync is running", body = ErrorBody),
        (status = 502, description = "Apple refused (revoked, invalid, expired); recorded on the token", body = ErrorBody),
        (status = 503, description = "Apple unavailable or rate-limiting (Retry-After); recorded on the token", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn sync(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<VppToken>, ApiError> {
    Ok(Json(state.core.vpp_token_sync(id).await?))
}

/// Options of a delete.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Delete even though the token holds licences (the refusal says what would go).
    pub confirm: Option<bool>,
}

#[utoipa::path(
    delete, path = "/api/v1/vpp-tokens/{id}", tag = "vpp-tokens",
    params(("id" = i64, Path, description = "Token id"), DeleteParams),
    responses(
        (status = 200, description = "Deleted; what went with it", body = VppDeleteImpact),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The token holds licences: the details say what would go; repeat with confirm=true", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<Json<VppDeleteImpact>, ApiError> {
    Ok(Json(
        state
            .core
            .vpp_token_delete(&actor, id, params.confirm.unwrap_or(false))
            .await?,
    ))
}

/// Which assets to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetParams {
    /// Only the assets this token holds licences for.
    pub token_id: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/vpp-assets", tag = "vpp-tokens",
    params(AssetParams),
    responses((status = 200, description = "Apps and books, each once, with every token's licences", body = VppAssetList), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn assets(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AssetParams>,
) -> Result<Json<VppAssetList>, ApiError> {
    Ok(Json(VppAssetList {
        assets: state.core.vpp_assets(params.token_id).await?,
    }))
}
