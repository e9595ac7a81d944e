//! File uploads of the admin API: the raw file as the body, or `multipart/form-data` with a
//! `file` part and the upload's options as text fields.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use crate::AppState;
use crate::error::ApiError;

/// Reads an uploaded file of at most `limit` bytes (the route's body limit). Each other
/// multipart field goes to `field` by name, which refuses the ones it does not know. `what`
/// names the file in messages ("server token", ".vpptoken").
pub async fn read_file(
    state: &AppState,
    request: Request,
    limit: usize,
    what: &str,
    mut field: impl FnMut(&str, String) -> Result<(), ApiError>,
) -> Result<Bytes, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let file = if is_multipart {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|r| ApiError::bad_request("invalid_multipart", r.body_text()))?;
        let mut file: Option<Bytes> = None;
        while let Some(part) = multipart.next_field().await? {
            let name = part.name().unwrap_or("").to_string();
            if name == "file" || name == "token" {
                if file.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_multipart",
                        format!("send exactly one {what} file"),
                    ));
                }
                file = Some(part.bytes().await?);
            } else {
                let text = part.text().await?;
                field(&name, text)?;
            }
        }
        file.unwrap_or_default()
    } else {
        Bytes::from_request(request, state).await.map_err(|r| match r {
            axum::extract::rejection::BytesRejection::FailedToBufferBody(_) => ApiError::too_large(limit),
            other => ApiError::bad_request("invalid_body", other.body_text()),
        })?
    };
    if file.is_empty() {
        return Err(ApiError::bad_request(
            "missing_file",
            format!("no {what} in the request: send the file as the body, or as the `file` part of a multipart form"),
        ));
    }
    Ok(file)
}

/// A boolean form field (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; empty is false).
pub fn bool_field(name: &str, text: &str) -> Result<bool, ApiError> {
    match text.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(ApiError::bad_request(
            "invalid_multipart",
            format!("{name} must be true or false (got \"{other}\")"),
        )),
    }
}
