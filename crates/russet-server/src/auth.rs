//! Admin API authentication: `Authorization: Bearer <admin key>`. A missing, malformed,
//! unknown or revoked key gets 401 with a JSON error; a valid one puts the [`Actor`] into
//! the request for the audit log.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use russet_core::Actor;

use crate::AppState;
use crate::error::ApiError;

pub async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let header_value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "this endpoint needs the admin API key: send `Authorization: Bearer <key>` (the first start wrote the key \
             to <data-dir>/admin-api-key; `russet admin-key rotate` makes a new one)",
        )
    })?;
    let presented = header_value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <admin key>`"))?;
    let key = state.core.admin_key_verify(presented).await?.ok_or_else(|| {
        ApiError::unauthorized(
            "the admin API key is not valid (wrong, or revoked by `russet admin-key rotate`): use the current key from \
             <data-dir>/admin-api-key",
        )
    })?;
    req.extensions_mut().insert(Actor::admin_key(key.id, &key.name));
    Ok(next.run(req).await)
}

/// Compares two secrets in time independent of where they differ (and of their lengths,
/// by comparing their SHA-256 digests).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = openssl::sha::sha256(a);
    let db = openssl::sha::sha256(b);
    openssl::memcmp::eq(&da, &db)
}
