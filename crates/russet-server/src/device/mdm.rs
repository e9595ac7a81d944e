//! `/mdm/checkin` and `/mdm/connect`: the MDM protocol endpoints devices `PUT` to.
//!
//! The device's identity comes from the `Mdm-Signature` header (a detached CMS signature over
//! the exact body) or, behind a TLS-terminating proxy, from the client certificate header the
//! configuration names (`mdm.client_cert_header`; RFC 9440 or nginx's escaped PEM). Failures
//! answer 400 (or 413 for oversized bodies) with a short text: never 401, which would make an
//! enrolled device unenroll.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use russet_apple::mdm::DeviceCertificate;
use russet_core::mdm::CheckinReply;
use russet_core::{CoreError, ErrorKind};

use crate::AppState;
use crate::tls::TlsClientCert;

const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

/// A failure as the device sees it: a status and one line of text (logged too).
fn device_error(e: &CoreError) -> Response {
    let status = match e.kind {
        ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Gone | ErrorKind::Forbidden => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable | ErrorKind::RateLimited => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Upstream | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(code = e.code, error = %e, "MDM request failed");
    } else {
        tracing::info!(code = e.code, error = %e, "MDM request refused");
    }
    (status, format!("{}: {}\n", e.code, e.message)).into_response()
}

/// The certificate behind the request, if it carries one: the `Mdm-Signature` header's signer,
/// else the certificate presented to Russet's own TLS listener, else the one a trusted proxy
/// forwards in `mdm.client_cert_header`. A header that is present but wrong is an error.
fn identity(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&TlsClientCert>,
    body: &[u8],
) -> Result<Option<DeviceCertificate>, CoreError> {
    if let Some(sig) = headers.get("mdm-signature") {
        let value = sig
            .to_str()
            .map_err(|_| CoreError::invalid("mdm_signature", "the Mdm-Signature header is not ASCII"))?;
        return state
            .mdm_signatures
            .verify(value, body)
            .map(Some)
            .map_err(|e| CoreError::invalid("mdm_signature", format!("the Mdm-Signature is not valid: {e}")));
    }
    if let Some(TlsClientCert(der)) = tls {
        return openssl::x509::X509::from_der(der)
            .map_err(|e| {
                CoreError::invalid(
                    "mdm_client_cert",
                    format!("the TLS client certificate cannot be read: {e}"),
                )
            })
            .and_then(|c| {
                DeviceCertificate::from_certificate(c)
                    .map_err(|e| CoreError::invalid("mdm_client_cert", format!("the TLS client certificate: {e}")))
            })
            .map(Some);
    }
    if let Some(name) = state.client_cert_header.as_deref()
        && let Some(v) = headers.get(name)
    {
        let value = v
            .to_str()
            .map_err(|_| CoreError::invalid("mdm_client_cert", "the client certificate header is not ASCII"))?;
        return russet_apple::mdm::client_cert_from_header(value)
            .and_then(DeviceCertificate::from_certificate)
            .map(Some)
            .map_err(|e| {
                CoreError::invalid(
                    "mdm_client_cert",
                    format!("the client certificate header is not valid: {e}"),
                )
            });
    }
    Ok(None)
}

fn is_checkin(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with(CHECKIN_CONTENT_TYPE))
}

async fn checkin_response(state: &AppState, headers: &HeaderMap, tls: Option<&TlsClientCert>, body: &[u8]) -> Response {
    let cert = match identity(state, headers, tls, body) {
        Ok(c) => c,
        Err(e) => return device_error(&e),
    };
    match state.core.mdm_checkin(body, cert.as_ref()).await {
        Ok(CheckinReply::Empty) => StatusCode::OK.into_response(),
        Ok(CheckinReply::Plist(p)) => {
            let mut r = (StatusCode::OK, p).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            r
        }
        Ok(CheckinReply::Gone) => (StatusCode::GONE, "user channels are not supported yet\n").into_response(),
        Err(e) => device_error(&e),
    }
}

/// `PUT /mdm/checkin`.
pub async fn checkin(
    State(state): State<AppState>,
    tls: Option<Extension<Option<TlsClientCert>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tls = tls.and_then(|Extension(c)| c);
    checkin_response(&state, &headers, tls.as_ref(), &body).await
}

/// `PUT /mdm/connect`: command reports; check-ins too when the device uses one URL (by their
/// Content-Type, as NanoMDM decides; a missing Content-Type is a report).
pub async fn connect(
    State(state): State<AppState>,
    tls: Option<Extension<Option<TlsClientCert>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tls = tls.and_then(|Extension(c)| c);
    if is_checkin(&headers) {
        return checkin_response(&state, &headers, tls.as_ref(), &body).await;
    }
    let cert = match identity(&state, &headers, tls.as_ref(), &body) {
        Ok(c) => c,
        Err(e) => return device_error(&e),
    };
    match state.core.mdm_connect(&body, cert.as_ref()).await {
        Ok(Some(command)) => {
            let mut r = (StatusCode::OK, command).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            r
        }
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => device_error(&e),
    }
}
