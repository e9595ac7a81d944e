//! Apple's Apps and Books (formerly VPP) API v2 (`vpp.itunes.apple.com/mdm/v2`): the
//! `.vpptoken` file of a location and the client Russet uses to read the location, its
//! licences and their assignments, and to assign and revoke licences.
//!
//! * The token file: [`parse_vpp_token`] reads a `.vpptoken` ([`VppTokenFile`]: organisation,
//!   expiry, and the bearer credential, which is the file's own text) and refuses each kind of
//!   bad file with its own [`VppTokenFileError`]. It does not look at a clock:
//!   [`VppTokenFile::is_expired_at`] takes the caller's time.
//! * The client: [`VppClient`] sends `Authorization: Bearer <the token file's text>` on every
//!   call; [`client_config`](VppClient::client_config) tells the location (`uId`, name) and
//!   which MDM claimed it, [`set_client_config`](VppClient::set_client_config) claims it;
//!   [`all_assets`](VppClient::all_assets) and [`assignments_page`](VppClient::assignments_page)
//!   list licences; [`associate`](VppClient::associate),
//!   [`disassociate`](VppClient::disassociate) and [`revoke`](VppClient::revoke) start
//!   asynchronous events that [`status`](VppClient::status) follows.
//! * Robustness: Apple may put an error (`{"errorNumber": …}`) in any answer, HTTP 200
//!   included, so every body is checked. `429` / 9646, `5xx` / 9603 and network failures are
//!   retried with exponential backoff and full jitter, or after Apple's `Retry-After` (seconds
//!   or an HTTP date); a `Retry-After` longer than [`VppConfig::max_retry_after`] is returned
//!   at once in the error so that the caller can reschedule. Answers are limited in size,
//!   requests in time, paging in length.
//! * Errors ([`VppError`]) say what happened and what an administrator should do, with
//!   helpers for the caller ([`VppError::is_revoked`], [`VppError::is_expired`],
//!   [`VppError::is_token_error`], [`VppError::retry_after`], …).
//! * Apple's JSON is read tolerantly (see `types.rs`): an asset with an unknown product type
//!   or a count sent as a string does not fail its page.
//!
//! Requests are logged at debug level with method, path, status, Apple's error number and
//! latency; the token, the `Authorization` header and notification secrets are never logged,
//! and `Debug` of every type here hides them.
//!
//! What to do with the answers (storing licences, ownership checks, polling events) belongs to
//! the caller.

mod client;
mod error;
mod token_file;
mod types;

use std::time::Duration;

pub use client::VppClient;
pub use error::VppError;
pub use token_file::{MAX_VPP_TOKEN_FILE, VppTokenFile, VppTokenFileError, parse_vpp_token};
pub use types::{
    AllPages, Asset, AssetRef, AssetsPage, AssetsQuery, Assignment, AssignmentsPage, AssignmentsQuery,
    AssociateRequest, ClientConfig, ClientConfigRequest, EventFailure, EventResponse, EventStatus, EventType, MdmInfo,
    ProductType, RevokeRequest, ServiceConfig, ServiceErrorCode, ServiceLimits, StatusResponse, parse_vpp_time,
};

/// Apple's production base URL.
pub const APPLE_VPP_URL: &str = "https://vpp.itunes.apple.com/mdm/v2";

/// 9601 "Login required.": no or garbled `Authorization` header.
pub const LOGIN_REQUIRED: i64 = 9601;
/// 9602 "Invalid argument.".
pub const INVALID_ARGUMENT: i64 = 9602;
/// 9603 "Internal error.": Apple's side failed; retried.
pub const INTERNAL_ERROR: i64 = 9603;
/// 9616: the licence is already assigned (an event failure that needs no retry).
pub const ALREADY_ASSIGNED: i64 = 9616;
/// 9621: the token has expired.
pub const TOKEN_EXPIRED: i64 = 9621;
/// 9622 "Invalid authentication token.".
pub const TOKEN_INVALID: i64 = 9622;
/// 9625 "The server has revoked the sToken.".
pub const TOKEN_REVOKED: i64 = 9625;
/// 9641: the Apple Account is already associated (event failure).
pub const ACCOUNT_ALREADY_ASSOCIATED: i64 = 9641;
/// 9644: Apple's service is in maintenance.
pub const MAINTENANCE: i64 = 9644;
/// 9646 "Too many recent calls …": rate limited (HTTP 429).
pub const TOO_MANY_REQUESTS: i64 = 9646;
/// 9700: more assets in one request than `limits.maxAssets`.
pub const TOO_MANY_ASSETS: i64 = 9700;
/// 9701: more users in one request than `limits.maxClientUserIds`.
pub const TOO_MANY_CLIENT_USER_IDS: i64 = 9701;
/// 9702: more devices in one request than `limits.maxSerialNumbers`.
pub const TOO_MANY_SERIAL_NUMBERS: i64 = 9702;
/// 9703: an asset named twice in one request.
pub const DUPLICATE_ASSETS: i64 = 9703;
/// 9704: a user named twice in one request.
pub const DUPLICATE_CLIENT_USER_IDS: i64 = 9704;
/// 9705: a device named twice in one request.
pub const DUPLICATE_SERIAL_NUMBERS: i64 = 9705;
/// 9709: not enough licences (event failure).
pub const NOT_ENOUGH_LICENSES: i64 = 9709;
/// 9722 "Authorization header is malformed.".
pub const MALFORMED_AUTHORIZATION: i64 = 9722;

/// How a [`VppClient`] talks to Apple.
#[derive(Clone, Debug)]
pub struct VppConfig {
    /// [`APPLE_VPP_URL`], or a simulator / proxy (applesim: `{base}/mdm/v2`). `http` or
    /// `https`, optionally with a path; a trailing slash is accepted.
    pub base_url: String,
    /// Sent on every request: a product string such as `russet/0.1.0`.
    pub user_agent: String,
    /// The whole request, from connecting to the end of the body. Default 60 s.
    pub request_timeout: Duration,
    /// Establishing the connection (TCP and TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// How often a request that failed with `429` / 9646, `5xx` / 9603 or a network error is
    /// tried again. Default 3.
    pub max_retries: u32,
    /// The first backoff ceiling; retry *n* (from 0) waits a random time between 0 and
    /// `min(backoff_base × 2ⁿ, backoff_max)` ("full jitter") when Apple sent no
    /// `Retry-After`. Default 1 s.
    pub backoff_base: Duration,
    /// Default 30 s.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned at once with
    /// [`VppError::retry_after`] set so that the caller can reschedule. Default 60 s.
    pub max_retry_after: Duration,
    /// The most pages [`VppClient::all_assets`] and [`VppClient::all_assignments`] fetch
    /// before giving up with [`VppError::Paging`]. Default 1000 (a million items at Apple's
    /// page size).
    pub max_pages: u32,
    /// Answers larger than this are refused with [`VppError::Decode`]. Default 64 MiB (a page
    /// of 1000 assets is about 0.3 MiB).
    pub max_response_bytes: usize,
}

impl Default for VppConfig {
    fn default() -> VppConfig {
        VppConfig {
            base_url: APPLE_VPP_URL.to_owned(),
            user_agent: concat!("russet/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_pages: 1000,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}
