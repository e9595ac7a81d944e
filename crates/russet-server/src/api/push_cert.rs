//! `/api/v1/push-cert`: the MDM push certificate.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use russet_core::Actor;
use russet_core::push_cert::{PushCert, PushCertUpload, PushCsr};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, ApiQuery, ErrorBody};

/// Largest accepted certificate upload body.
pub const UPLOAD_BODY_LIMIT: usize = russet_core::push_cert::MAX_CERTIFICATE_BYTES;

/// Options of a certificate upload, as query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The Apple ID used in Apple's push certificate portal. Required for the first
    /// certificate; a renewal keeps the stored one when absent.
    pub apple_id: Option<String>,
    /// Install a certificate whose topic differs from the one in place. Every enrolled device
    /// would stop receiving commands until re-enrolled.
    pub accept_topic_change: Option<bool>,
}

#[utoipa::path(
    get, path = "/api/v1/push-cert", tag = "push-cert",
    responses((status = 200, description = "The push certificate (status `none` when there is none)", body = PushCert)),
    security(("admin_key" = []))
)]
pub async fn show(State(state): State<AppState>) -> Result<Json<PushCert>, ApiError> {
    Ok(Json(state.core.push_cert_get().await?))
}

#[utoipa::path(
    post, path = "/api/v1/push-cert/csr", tag = "push-cert",
    responses(
        (status = 201, description = "A new key (kept in Russet, encrypted) and its CSR; with a configured MDM vendor \
            identity also the signed request for Apple's portal. Replaces an earlier pending CSR; the certificate in \
            place stays in use until its successor is uploaded.", body = PushCsr),
    ),
    security(("admin_key" = []))
)]
pub async fn new_csr(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> Result<Response, ApiError> {
    let csr = state.core.push_cert_new_csr(&actor).await?;
    Ok((StatusCode::CREATED, Json(csr)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/push-cert/csr", tag = "push-cert",
    responses((status = 200, description = "The CSR waiting for its certificate", body = PushCsr), (status = 404, body = ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn pending_csr(State(state): State<AppState>) -> Result<Json<PushCsr>, ApiError> {
    Ok(Json(state.core.push_cert_pending_csr().await?))
}

#[utoipa::path(
    put, path = "/api/v1/push-cert", tag = "push-cert",
    params(UploadParams),
    request_body(
        description = "The certificate Apple's push certificate portal issued, PEM or DER, as the raw body. At most 64 KiB.",
        content((Vec<u8> = "application/x-pem-file"), (Vec<u8> = "application/octet-stream"))
    ),
    responses(
        (status = 200, description = "Installed (first certificate or renewal); takes effect at once in every process", body = PushCert),
        (status = 409, description = "Refused: another topic (devices would be cut off), an older certificate, no CSR made", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Not an MDM push certificate, not for Russet's key, expired, bad Apple ID", body = ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<Json<PushCert>, ApiError> {
    let body = Bytes::from_request(request, &state).await.map_err(|r| match r {
        axum::extract::rejection::BytesRejection::FailedToBufferBody(_) => ApiError::too_large(UPLOAD_BODY_LIMIT),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "missing_file",
            "no certificate in the request: send the PEM or DER file Apple's push certificate portal issued as the body",
        ));
    }
    let cert = state
        .core
        .push_cert_upload(
            &actor,
            &PushCertUpload {
                certificate: &body,
                apple_id: params.apple_id.as_deref().filter(|a| !a.trim().is_empty()),
                accept_topic_change: params.accept_topic_change.unwrap_or(false),
            },
        )
        .await?;
    Ok(Json(cert))
}
