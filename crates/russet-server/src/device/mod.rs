//! The device-facing endpoints: SCEP (`/scep`), enrollment links (`/enroll/{secret}`), and
//! (later) the MDM check-in and command endpoints. No admin key here: devices prove who they
//! are with challenges and certificates, checked by the domain.

pub mod enroll;
pub mod scep;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::AppState;

/// The device-facing routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scep",
            get(scep::get)
                .post(scep::post)
                .layer(DefaultBodyLimit::max(russet_apple::scep::MAX_MESSAGE_SIZE)),
        )
        .route("/enroll/{secret}", get(enroll::profile))
}
