//! Apple's device assignment API (DEP / ADE, `mdmenrollment.apple.com`): the client Russet
//! uses to list the devices Apple Business / School Manager assigned to it and to hand them
//! enrollment profiles.
//!
//! * Authentication: [`DepClient`] trades the server token's OAuth 1.0a credentials
//!   ([`OAuthCredentials`], from a decrypted
//!   [`ServerToken`]) for a session at `GET /session`
//!   ([`oauth_authorization`] signs it), caches the session for all clones, follows Apple's
//!   session rotation header and re-authenticates once when a session is refused.
//! * Robustness: `429`, `5xx` and network failures are retried with exponential backoff and
//!   full jitter, or after Apple's `Retry-After`; a `Retry-After` longer than
//!   [`DepConfig::max_retry_after`] is returned at once in the error.
//! * Errors ([`DepError`]) say what happened and what an administrator should do, and have
//!   helpers for the sync loop ([`DepError::is_exhausted_cursor`],
//!   [`DepError::is_cursor_reset`], [`DepError::is_terms_not_signed`], …).
//!
//! The sync loop itself (fetch until `more_to_follow` is false, then sync; `EXHAUSTED_CURSOR`
//! → sync; `EXPIRED_CURSOR` / `INVALID_CURSOR` → fetch from scratch) belongs to the caller.
//!
//! Every request carries `User-Agent` (Apple rejects requests without one),
//! `X-Server-Protocol-Version: 10`, `Content-Type: application/json;charset=UTF8` and
//! `Accept: application/json`. Requests are logged at debug level with method, path, status
//! and latency; credentials, the `Authorization` header and session tokens are never logged.

pub(crate) mod client;
mod error;
pub(crate) mod lenient;
mod oauth;
mod types;

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

pub use client::DepClient;
pub use error::{ACCESS_DENIED, DepError, EXHAUSTED_CURSOR, EXPIRED_CURSOR, FORBIDDEN, INVALID_CURSOR, T_C_NOT_SIGNED};
pub use lenient::parse_time;
pub use oauth::oauth_authorization;
pub use types::{
    Account, AccountUrl, AccountUrlLimit, AssignProfileResponse, DefineProfileResponse, Device, DeviceDetails,
    DevicePage, DeviceStatus, DeviceStatuses, OpType, Profile,
};

use crate::server_token::ServerToken;

/// Apple's production base URL.
pub const APPLE_DEP_URL: &str = "https://mdmenrollment.apple.com";

/// The `X-Server-Protocol-Version` sent: 10 adds `retry_after_seconds` to throttled
/// assignments and the EID / IMEI / MAC address device keys.
pub const PROTOCOL_VERSION: u32 = 10;

/// Apple's documented maximum devices per assign/fetch page.
pub const MAX_DEVICES_PER_REQUEST: usize = 1000;

/// How a [`DepClient`] talks to Apple.
#[derive(Clone, Debug)]
pub struct DepConfig {
    /// [`APPLE_DEP_URL`], or a simulator / proxy. `http` or `https`, optionally with a path
    /// prefix; a trailing slash is accepted.
    pub base_url: String,
    /// Sent on every request. Apple rejects a missing one and some generic ones: use a
    /// product string such as `russet/0.1.0`.
    pub user_agent: String,
    /// The whole request, from connecting to the end of the body. Default 60 s.
    pub request_timeout: Duration,
    /// Establishing the connection (TCP and TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// How often a request that failed with `429`, `5xx` or a network error is tried again.
    /// Default 3.
    pub max_retries: u32,
    /// The first backoff ceiling; retry *n* (from 0) waits a random time between 0 and
    /// `min(backoff_base × 2ⁿ, backoff_max)` ("full jitter"). Default 500 ms.
    pub backoff_base: Duration,
    /// Default 30 s.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned at once with
    /// [`DepError::retry_after`] set so that the caller can reschedule. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for DepConfig {
    fn default() -> DepConfig {
        DepConfig {
            base_url: APPLE_DEP_URL.to_owned(),
            user_agent: concat!("russet/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The four OAuth values of a server token. `Debug` redacts the secrets.
#[derive(Clone)]
pub struct OAuthCredentials {
    /// `CK_…`; not secret.
    pub consumer_key: String,
    /// `CS_…`
    pub consumer_secret: SecretString,
    /// `AT_…`
    pub access_token: SecretString,
    /// `AS_…`
    pub access_secret: SecretString,
}

impl fmt::Debug for OAuthCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[REDACTED]")
            .field("access_token", &"[REDACTED]")
            .field("access_secret", &"[REDACTED]")
            .finish()
    }
}

impl From<&ServerToken> for OAuthCredentials {
    fn from(token: &ServerToken) -> OAuthCredentials {
        OAuthCredentials {
            consumer_key: token.consumer_key.clone(),
            consumer_secret: token.consumer_secret.clone(),
            access_token: token.access_token.clone(),
            access_secret: token.access_secret.clone(),
        }
    }
}
