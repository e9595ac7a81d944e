//! The device-facing endpoints: SCEP (`/scep`), enrollment links (`/enroll/{secret}`), the
//! Automated Device Enrollment endpoints of ADE profiles (`/enroll/ade/{key}`), and
//! the MDM check-in and command endpoints (`/mdm/checkin`, `/mdm/connect`). No admin key here: devices prove who they
//! are with challenges and certificates, checked by the domain.

pub mod ade;
pub mod enroll;
pub mod mdm;
pub mod scep;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

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
        .route(
            "/enroll/ade/{key}",
            post(ade::enroll).layer(DefaultBodyLimit::max(russet_apple::mdm::machine_info::MAX_MACHINE_INFO)),
        )
        .route(
            "/enroll/ade/{key}/sign-in",
            get(ade::sign_in_page)
                .post(ade::sign_in_submit)
                .layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route(
            "/mdm/checkin",
            put(mdm::checkin).layer(DefaultBodyLimit::max(russet_core::mdm::MAX_CHECKIN_BODY)),
        )
        .route(
            "/mdm/connect",
            put(mdm::connect).layer(DefaultBodyLimit::max(russet_core::mdm::MAX_REPORT_BODY)),
        )
}
