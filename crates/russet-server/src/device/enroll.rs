//! `/enroll/{secret}`: an enrollment link's profile, with a fresh one-time challenge.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

pub async fn profile(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, ApiError> {
    if secret.len() > 128 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "enrollment_link_not_found",
            "no such enrollment link",
        ));
    }
    let profile = state.core.enrollment_profile_for_link(&secret).await?;
    let mut r = (StatusCode::OK, profile.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(russet_apple::mdm::profile::PROFILE_CONTENT_TYPE),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"enroll.mobileconfig\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
