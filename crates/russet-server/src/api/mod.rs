//! The admin API under `/api/v1`: JSON in and out, `Authorization: Bearer <admin key>`,
//! described by the OpenAPI document at `/api/v1/openapi.json` generated from this code.

pub mod ade_tokens;
pub mod audit;
pub mod devices;
pub mod health;
pub mod jobs;
pub mod mdm;
pub mod profiles;
pub mod push_cert;
pub mod upload;
pub mod users;
pub mod vpp_tokens;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::{AppState, auth};

/// Largest JSON body the admin API accepts.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Russet admin API", description = "Manage Russet: enrollment program tokens and their device sync, ADE enrollment profiles and assignment, devices, jobs, the audit log, the MDM push certificate, enrollment links and commands, end users, Apps and Books tokens, credential health. \
        Every endpoint except the OpenAPI document needs `Authorization: Bearer <admin key>`."),
    paths(
        info,
        ade_tokens::create, ade_tokens::list, ade_tokens::show, ade_tokens::public_key,
        ade_tokens::upload_server_token, ade_tokens::delete, ade_tokens::sync, ade_tokens::set_default_profile,
        profiles::create, profiles::list, profiles::show, profiles::edit, profiles::delete, profiles::assign, profiles::panes,
        devices::list, devices::show, devices::delete,
        jobs::list, jobs::show,
        audit::list,
        push_cert::show, push_cert::new_csr, push_cert::pending_csr, push_cert::upload,
        mdm::create_link, mdm::list_links, mdm::revoke_link, mdm::enqueue, mdm::command, mdm::enrollments, mdm::enrollment, mdm::release,
        users::create, users::list, users::show, users::update, users::delete, users::set_password, users::unlock,
        vpp_tokens::upload, vpp_tokens::renew, vpp_tokens::list, vpp_tokens::show, vpp_tokens::sync, vpp_tokens::delete, vpp_tokens::assets,
        health::credentials, health::check, health::notifications,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&AdminKeyScheme),
    tags(
        (name = "server", description = "This server"),
        (name = "ade-tokens", description = "Enrollment program (ADE) tokens exchanged with Apple Business Manager, and their device sync"),
        (name = "profiles", description = "ADE enrollment profiles, defined at Apple and assigned to devices"),
        (name = "devices", description = "Devices ABM assigned to Russet's tokens"),
        (name = "jobs", description = "Syncs and assignments with their progress"),
        (name = "audit", description = "Who changed what, and when"),
        (name = "enrollment", description = "Enrollment links for devices outside ABM, and enrolled devices"),
        (name = "commands", description = "MDM commands queued for enrolled devices and their results"),
        (name = "push-cert", description = "The MDM push certificate: CSR, upload, renewal keeping the topic"),
        (name = "users", description = "End users who sign in during Automated Device Enrollment (local accounts)"),
        (name = "vpp-tokens", description = "Apps and Books (VPP) location tokens: upload, renew in place, sync of apps and books and their licences"),
        (name = "health", description = "The health of every Apple credential, and the notifications sent when it changes"),
    )
)]
pub struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin API key from <data-dir>/admin-api-key"))
                    .build(),
            ),
        );
    }
}

/// This server, as the API reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerInfo {
    pub version: String,
    /// The URL devices and browsers reach this server at.
    pub public_url: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

#[utoipa::path(get, path = "/api/v1/info", tag = "server", responses((status = 200, body = ServerInfo)), security(("admin_key" = [])))]
pub async fn info(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        public_url: state.public_url.to_string(),
        database: state.core.store.backend().as_str().to_string(),
    })
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such API endpoint; see /api/v1/openapi.json",
    )
}

/// The `/api/v1` routes.
pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/info", get(info))
        .route("/ade-tokens", get(ade_tokens::list).post(ade_tokens::create))
        .route("/ade-tokens/{id}", get(ade_tokens::show).delete(ade_tokens::delete))
        .route("/ade-tokens/{id}/public-key", get(ade_tokens::public_key))
        .route(
            "/ade-tokens/{id}/server-token",
            put(ade_tokens::upload_server_token).layer(DefaultBodyLimit::max(ade_tokens::UPLOAD_BODY_LIMIT)),
        )
        .route("/ade-tokens/{id}/sync", post(ade_tokens::sync))
        .route("/ade-tokens/{id}/default-profile", put(ade_tokens::set_default_profile))
        .route("/ade-tokens/{id}/profiles", post(profiles::create))
        .route("/profiles", get(profiles::list))
        .route(
            "/profiles/{id}",
            get(profiles::show).patch(profiles::edit).delete(profiles::delete),
        )
        .route(
            "/profiles/{id}/assign",
            post(profiles::assign).layer(DefaultBodyLimit::max(profiles::ASSIGN_BODY_LIMIT)),
        )
        .route("/setup-panes", get(profiles::panes))
        .route("/devices", get(devices::list))
        .route("/devices/{serial}", get(devices::show).delete(devices::delete))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::show))
        .route("/audit", get(audit::list))
        .route(
            "/push-cert",
            get(push_cert::show)
                .put(push_cert::upload)
                .layer(DefaultBodyLimit::max(push_cert::UPLOAD_BODY_LIMIT)),
        )
        .route("/push-cert/csr", get(push_cert::pending_csr).post(push_cert::new_csr))
        .route("/enrollment-links", get(mdm::list_links).post(mdm::create_link))
        .route("/enrollment-links/{id}", axum::routing::delete(mdm::revoke_link))
        .route(
            "/commands",
            post(mdm::enqueue).layer(DefaultBodyLimit::max(mdm::COMMAND_BODY_LIMIT)),
        )
        .route("/commands/{uuid}", get(mdm::command))
        .route("/enrollments", get(mdm::enrollments))
        .route("/enrollments/{id}", get(mdm::enrollment))
        .route("/enrollments/{id}/release", post(mdm::release))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::show).patch(users::update).delete(users::delete),
        )
        .route("/users/{id}/password", put(users::set_password))
        .route("/users/{id}/unlock", post(users::unlock))
        .route(
            "/vpp-tokens",
            get(vpp_tokens::list)
                .post(vpp_tokens::upload)
                .layer(DefaultBodyLimit::max(vpp_tokens::UPLOAD_BODY_LIMIT)),
        )
        .route("/vpp-tokens/{id}", get(vpp_tokens::show).delete(vpp_tokens::delete))
        .route(
            "/vpp-tokens/{id}/token",
            put(vpp_tokens::renew).layer(DefaultBodyLimit::max(vpp_tokens::UPLOAD_BODY_LIMIT)),
        )
        .route("/vpp-tokens/{id}/sync", post(vpp_tokens::sync))
        .route("/vpp-assets", get(vpp_tokens::assets))
        .route("/health/credentials", get(health::credentials))
        .route("/health/check", post(health::check))
        .route("/health/notifications", get(health::notifications))
        .route_layer(middleware::from_fn_with_state(state, auth::require_admin));
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
}
