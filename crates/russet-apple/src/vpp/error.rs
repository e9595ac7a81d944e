//! Errors of the Apps and Books client and the reading of Apple's error bodies
//! (`{"errorNumber": 9625, "errorMessage": "…"}`, with any HTTP status, 200 included).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::types::number_value;
use super::{
    DUPLICATE_ASSETS, DUPLICATE_CLIENT_USER_IDS, DUPLICATE_SERIAL_NUMBERS, INTERNAL_ERROR, INVALID_ARGUMENT,
    LOGIN_REQUIRED, MAINTENANCE, MALFORMED_AUTHORIZATION, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_REVOKED, TOO_MANY_ASSETS,
    TOO_MANY_CLIENT_USER_IDS, TOO_MANY_REQUESTS, TOO_MANY_SERIAL_NUMBERS,
};

/// Where a new token comes from, for the token errors.
const RENEW: &str = "download a new token for this location from Apple Business Manager (or Apple School \
     Manager) → Preferences → Payments and Billing → Apps and Books, and renew the token in Russet";

/// Why a call to Apple's Apps and Books API failed.
///
/// Every message says what happened and what the administrator should do. The helpers
/// ([`number`](VppError::number), [`is_revoked`](VppError::is_revoked),
/// [`retry_after`](VppError::retry_after), …) let the caller decide without matching strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VppError {
    /// Apple refused the request for a reason not covered by the other variants (mostly
    /// `400`: 9602 invalid argument, 9700–9705 batch limits and duplicates), or answered with
    /// an unexpected status. `number` is Apple's `errorNumber`, `message` its `errorMessage`
    /// (or, without one, the start of the body).
    #[error("{}", ApiMessage { http_status: *http_status, number: *number, message })]
    Api {
        /// The HTTP status (200 when the error came in a successful answer).
        http_status: u16,
        /// Apple's `errorNumber`.
        number: Option<i64>,
        /// Apple's `errorMessage`, or the start of the body.
        message: String,
    },

    /// 9621: the token expired.
    #[error("Apple says this Apps and Books token has expired (9621): tokens are valid for one year; {RENEW}")]
    Expired {
        /// The HTTP status (Apple: 401).
        http_status: u16,
    },

    /// 9625: Apple revoked the token.
    #[error(
        "Apple revoked this Apps and Books token (9625): it was replaced or revoked in Apple Business Manager; \
         download a new token for this location and renew the token in Russet"
    )]
    Revoked {
        /// The HTTP status (Apple: 401).
        http_status: u16,
    },

    /// 9622: Apple does not know the token.
    #[error(
        "Apple does not accept this Apps and Books token (9622 invalid token): it is not a token Apple issued, \
         or it was invalidated, for instance by a password change of the account that downloaded it; {RENEW}"
    )]
    InvalidToken {
        /// The HTTP status (Apple: 401).
        http_status: u16,
    },

    /// 9601 (login required), 9722 (malformed Authorization header), or `401` without a known
    /// error number: Apple did not find a usable credential in the request.
    #[error("{}", UnauthorizedMessage { http_status: *http_status, number: *number, message })]
    Unauthorized {
        /// The HTTP status (Apple: 401).
        http_status: u16,
        /// Apple's `errorNumber`.
        number: Option<i64>,
        /// Apple's `errorMessage`, or the start of the body.
        message: String,
    },

    /// 9646 or HTTP `429`, after the retries or with a `Retry-After` longer than the
    /// configured maximum.
    #[error(
        "Apple is rate-limiting this location's Apps and Books requests (9646 too many requests){}: the request \
         will be tried again later; no action is needed unless this persists, in which case sync less often",
        After(*retry_after)
    )]
    RateLimited {
        /// Apple's `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// HTTP `5xx` or 9603 (internal error), after the retries or with a `Retry-After` longer
    /// than the configured maximum.
    #[error(
        "Apple's Apps and Books service failed ({}){}: this is usually a temporary problem at Apple and the \
         request will be tried again later; if it persists, check Apple's system status page",
        Failure { http_status: *http_status, number: *number },
        After(*retry_after)
    )]
    ServerError {
        /// The HTTP status (200 when 9603 came in a successful answer).
        http_status: u16,
        /// Apple's `errorNumber`, if it sent one.
        number: Option<i64>,
        /// Apple's `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// No (complete) answer: connection refused or reset, DNS, TLS, timeout (after the
    /// retries).
    #[error(
        "could not reach Apple's Apps and Books service ({detail}): check this server's network connection, DNS, \
         firewall and proxy settings for vpp.itunes.apple.com; the request will be tried again later"
    )]
    Transport {
        /// What failed (never the credential).
        detail: String,
    },

    /// An answer that is not the expected JSON, lacks a required value, or is too large.
    #[error(
        "Apple's Apps and Books service sent an answer that cannot be read ({detail}): Apple may have changed \
         its API; try again later and report the problem if it persists"
    )]
    Decode {
        /// What is wrong with the answer.
        detail: String,
    },

    /// Paging did not end: more pages than the configured maximum, or a page index that came
    /// back again.
    #[error(
        "Apple's Apps and Books service did not finish listing ({detail}); the list was not used; try again \
         later and report the problem if it persists"
    )]
    Paging {
        /// What went wrong.
        detail: String,
    },

    /// The request cannot be sent as given (nothing was sent).
    #[error(
        "the Apps and Books request was not sent because it is incomplete ({detail}); this is a bug, please report it"
    )]
    InvalidRequest {
        /// What is missing.
        detail: String,
    },

    /// The [`VppConfig`](super::VppConfig) or the token cannot be used.
    #[error("the Apps and Books client cannot be set up: {detail}")]
    InvalidConfig {
        /// What is wrong.
        detail: String,
    },
}

impl VppError {
    /// Apple's error number: the one Apple sent, or the one the variant stands for (9621,
    /// 9625, 9622; 9646 for rate limiting, even on a `429` without a body).
    pub fn number(&self) -> Option<i64> {
        match self {
            VppError::Api { number, .. }
            | VppError::Unauthorized { number, .. }
            | VppError::ServerError { number, .. } => *number,
            VppError::Expired { .. } => Some(TOKEN_EXPIRED),
            VppError::Revoked { .. } => Some(TOKEN_REVOKED),
            VppError::InvalidToken { .. } => Some(TOKEN_INVALID),
            VppError::RateLimited { .. } => Some(TOO_MANY_REQUESTS),
            _ => None,
        }
    }

    /// The HTTP status of Apple's answer, if there was one (429 for rate limiting).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            VppError::Api { http_status, .. }
            | VppError::Expired { http_status }
            | VppError::Revoked { http_status }
            | VppError::InvalidToken { http_status }
            | VppError::Unauthorized { http_status, .. }
            | VppError::ServerError { http_status, .. } => Some(*http_status),
            VppError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// How long Apple asked to wait (`Retry-After`) before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VppError::RateLimited { retry_after } | VppError::ServerError { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// 9621: the token expired.
    pub fn is_expired(&self) -> bool {
        matches!(self, VppError::Expired { .. })
    }

    /// 9625: Apple revoked the token.
    pub fn is_revoked(&self) -> bool {
        matches!(self, VppError::Revoked { .. })
    }

    /// 9622: Apple does not know the token.
    pub fn is_invalid(&self) -> bool {
        matches!(self, VppError::InvalidToken { .. })
    }

    /// 9601 / 9722 (or a bare `401`): Apple found no usable credential in the request.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, VppError::Unauthorized { .. })
    }

    /// Any of [`is_expired`](VppError::is_expired), [`is_revoked`](VppError::is_revoked),
    /// [`is_invalid`](VppError::is_invalid), [`is_unauthorized`](VppError::is_unauthorized):
    /// the token no longer works and an administrator must upload a new one.
    pub fn is_token_error(&self) -> bool {
        self.is_expired() || self.is_revoked() || self.is_invalid() || self.is_unauthorized()
    }

    /// 9646 / `429`.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, VppError::RateLimited { .. })
    }

    /// Worth trying again later without anyone doing anything: rate limiting, Apple's server
    /// errors and maintenance (9644), and network failures.
    pub fn is_transient(&self) -> bool {
        match self {
            VppError::RateLimited { .. } | VppError::ServerError { .. } | VppError::Transport { .. } => true,
            VppError::Api { number, .. } => *number == Some(MAINTENANCE),
            _ => false,
        }
    }
}

/// The largest part of an error body or message kept.
const MAX_ERROR_TEXT: usize = 1024;

/// Apple's error in a body: `Some` when the body is a JSON object with a non-null
/// `errorNumber` (its number, when readable, and `errorMessage`).
pub(crate) struct AppleError {
    pub number: Option<i64>,
    pub message: Option<String>,
}

pub(crate) fn apple_error(body: &[u8]) -> Option<AppleError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let number = object.get("errorNumber").filter(|v| !v.is_null())?;
    let message = match object.get("errorMessage") {
        Some(Value::String(s)) => Some(truncate(s.trim())),
        _ => None,
    };
    Some(AppleError {
        number: number_value(number),
        message,
    })
}

/// The error an answer stands for, or `None` for a success (2xx without `errorNumber`).
/// `retry_after` is the answer's `Retry-After`.
pub(crate) fn classify(http_status: u16, body: &[u8], retry_after: Option<Duration>) -> Option<VppError> {
    let apple = apple_error(body);
    let success = (200..300).contains(&http_status);
    if success && apple.is_none() {
        return None;
    }
    let number = apple.as_ref().and_then(|a| a.number);
    let message = || {
        apple
            .as_ref()
            .and_then(|a| a.message.clone())
            .unwrap_or_else(|| truncate(String::from_utf8_lossy(body).trim()))
    };
    Some(match number {
        Some(TOKEN_EXPIRED) => VppError::Expired { http_status },
        Some(TOKEN_REVOKED) => VppError::Revoked { http_status },
        Some(TOKEN_INVALID) => VppError::InvalidToken { http_status },
        Some(LOGIN_REQUIRED | MALFORMED_AUTHORIZATION) => VppError::Unauthorized {
            http_status,
            number,
            message: message(),
        },
        Some(TOO_MANY_REQUESTS) => VppError::RateLimited { retry_after },
        Some(INTERNAL_ERROR) => VppError::ServerError {
            http_status,
            number,
            retry_after,
        },
        _ if http_status == 429 => VppError::RateLimited { retry_after },
        _ if http_status >= 500 => VppError::ServerError {
            http_status,
            number,
            retry_after,
        },
        _ if http_status == 401 => VppError::Unauthorized {
            http_status,
            number,
            message: message(),
        },
        _ => VppError::Api {
            http_status,
            number,
            message: message(),
        },
    })
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

struct After(Option<Duration>);

impl fmt::Display for After {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) if d.subsec_millis() == 0 => write!(f, " and asked to wait {} s", d.as_secs()),
            Some(d) => write!(f, " and asked to wait {:.1} s", d.as_secs_f64()),
            None => Ok(()),
        }
    }
}

/// "HTTP 503", "HTTP 500, error 9603".
struct Failure {
    http_status: u16,
    number: Option<i64>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.http_status)?;
        if let Some(number) = self.number {
            write!(f, ", error {number}")?;
        }
        Ok(())
    }
}

/// "HTTP 400, error 9602 \"Invalid argument.\"".
struct Cause<'a> {
    http_status: u16,
    number: Option<i64>,
    message: &'a str,
}

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Failure {
            http_status: self.http_status,
            number: self.number,
        }
        .fmt(f)?;
        if !self.message.is_empty() {
            let excerpt: String = self.message.chars().take(200).collect();
            write!(f, " {excerpt:?}")?;
        }
        Ok(())
    }
}

struct UnauthorizedMessage<'a> {
    http_status: u16,
    number: Option<i64>,
    message: &'a str,
}

impl fmt::Display for UnauthorizedMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Apple found no usable Apps and Books token in the request ({}): the stored token is damaged or is not \
             a .vpptoken file as downloaded; {RENEW}, using the file exactly as downloaded",
            Cause {
                http_status: self.http_status,
                number: self.number,
                message: self.message
            }
        )
    }
}

struct ApiMessage<'a> {
    http_status: u16,
    number: Option<i64>,
    message: &'a str,
}

impl fmt::Display for ApiMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Apple's Apps and Books service refused the request ({}): {}",
            Cause {
                http_status: self.http_status,
                number: self.number,
                message: self.message
            },
            api_advice(self.http_status, self.number)
        )
    }
}

fn api_advice(http_status: u16, number: Option<i64>) -> &'static str {
    match number {
        Some(INVALID_ARGUMENT) => {
            "Apple found a value of the request invalid, for instance an app or book this location has no \
             licences for; sync the location's apps and books and try again, and report the problem if it persists"
        }
        Some(TOO_MANY_ASSETS | TOO_MANY_CLIENT_USER_IDS | TOO_MANY_SERIAL_NUMBERS) => {
            "the request named more apps, users or devices than Apple accepts at once (see Apple's limits in the \
             service configuration); Russet should have split it, please report the problem"
        }
        Some(DUPLICATE_ASSETS | DUPLICATE_CLIENT_USER_IDS | DUPLICATE_SERIAL_NUMBERS) => {
            "the request named the same app, user or device twice; Russet should have removed duplicates, please \
             report the problem"
        }
        Some(MAINTENANCE) => {
            "Apple's Apps and Books service is in maintenance; the request will be tried again later, no action is \
             needed"
        }
        _ if http_status == 404 => {
            "Apple does not know this endpoint or object; check that the Apps and Books service URL is \
             https://vpp.itunes.apple.com/mdm/v2 and report the problem if it is"
        }
        _ => {
            "check the location's token and its apps and books in Apple Business Manager; if it keeps failing, \
             report the problem with the answer shown"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(number: i64, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"errorNumber": number, "errorMessage": message})).unwrap()
    }

    #[test]
    fn successes_are_not_errors() {
        assert_eq!(classify(200, br#"{"assets":[]}"#, None), None);
        assert_eq!(classify(200, b"", None), None);
        assert_eq!(classify(204, b"not json", None), None);
        assert_eq!(classify(200, br#"{"errorNumber":null,"uId":"1"}"#, None), None);
    }

    #[test]
    fn every_error_number_has_its_variant() {
        let wait = Some(Duration::from_secs(7));
        let cases: Vec<(u16, Vec<u8>, VppError)> = vec![
            (
                401,
                body(9621, "The token has expired."),
                VppError::Expired { http_status: 401 },
            ),
            (
                401,
                body(9625, "The server has revoked the sToken."),
                VppError::Revoked { http_status: 401 },
            ),
            (
                200,
                body(9625, "The server has revoked the sToken."),
                VppError::Revoked { http_status: 200 },
            ),
            (
                401,
                body(9622, "Invalid authentication token."),
                VppError::InvalidToken { http_status: 401 },
            ),
            (
                401,
                body(9601, "Login required."),
                VppError::Unauthorized {
                    http_status: 401,
                    number: Some(9601),
                    message: "Login required.".to_owned(),
                },
            ),
            (
                401,
                body(9722, "Authorization header is malformed."),
                VppError::Unauthorized {
                    http_status: 401,
                    number: Some(9722),
                    message: "Authorization header is malformed.".to_owned(),
                },
            ),
            (
                401,
                b"<html>no</html>".to_vec(),
                VppError::Unauthorized {
                    http_status: 401,
                    number: None,
                    message: "<html>no</html>".to_owned(),
                },
            ),
            (429, body(9646, "Too many"), VppError::RateLimited { retry_after: wait }),
            (429, Vec::new(), VppError::RateLimited { retry_after: wait }),
            (200, body(9646, "Too many"), VppError::RateLimited { retry_after: wait }),
            (
                503,
                body(9603, "Internal error."),
                VppError::ServerError {
                    http_status: 503,
                    number: Some(9603),
                    retry_after: wait,
                },
            ),
            (
                200,
                body(9603, "Internal error."),
                VppError::ServerError {
                    http_status: 200,
                    number: Some(9603),
                    retry_after: wait,
                },
            ),
            (
                502,
                b"Bad gateway".to_vec(),
                VppError::ServerError {
                    http_status: 502,
                    number: None,
                    retry_after: wait,
                },
            ),
            (
                400,
                body(9602, "Invalid argument."),
                VppError::Api {
                    http_status: 400,
                    number: Some(9602),
                    message: "Invalid argument.".to_owned(),
                },
            ),
            (
                400,
                br#"{"errorNumber":"9700"}"#.to_vec(),
                VppError::Api {
                    http_status: 400,
                    number: Some(9700),
                    message: r#"{"errorNumber":"9700"}"#.to_owned(),
                },
            ),
            (
                200,
                br#"{"errorNumber":"weird","errorMessage":"?"}"#.to_vec(),
                VppError::Api {
                    http_status: 200,
                    number: None,
                    message: "?".to_owned(),
                },
            ),
            (
                404,
                b"Not Found".to_vec(),
                VppError::Api {
                    http_status: 404,
                    number: None,
                    message: "Not Found".to_owned(),
                },
            ),
        ];
        for (status, body, expected) in cases {
            let shown = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(classify(status, &body, wait), Some(expected), "{status} {shown}");
        }
    }

    #[test]
    fn predicates() {
        let expired = VppError::Expired { http_status: 401 };
        assert!(expired.is_expired() && expired.is_token_error() && !expired.is_transient());
        assert_eq!(expired.number(), Some(9621));
        let revoked = VppError::Revoked { http_status: 401 };
        assert!(revoked.is_revoked() && revoked.is_token_error() && !revoked.is_expired());
        assert_eq!(revoked.number(), Some(9625));
        let invalid = VppError::InvalidToken { http_status: 401 };
        assert!(invalid.is_invalid() && invalid.is_token_error());
        assert_eq!(invalid.number(), Some(9622));
        let login = classify(401, &body(9601, "Login required."), None).unwrap();
        assert!(login.is_unauthorized() && login.is_token_error() && !login.is_revoked());
        assert_eq!(login.number(), Some(9601));
        let limited = VppError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(limited.is_rate_limited() && limited.is_transient() && !limited.is_token_error());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!((limited.number(), limited.http_status()), (Some(9646), Some(429)));
        let server = classify(503, b"", Some(Duration::from_secs(120))).unwrap();
        assert!(server.is_transient());
        assert_eq!(server.retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(server.http_status(), Some(503));
        let maintenance = classify(400, &body(9644, "Maintenance"), None).unwrap();
        assert!(maintenance.is_transient());
        let invalid_argument = classify(400, &body(9602, "Invalid argument."), None).unwrap();
        assert!(!invalid_argument.is_transient() && !invalid_argument.is_token_error());
        assert_eq!(invalid_argument.number(), Some(9602));
        assert!(VppError::Transport { detail: "x".to_owned() }.is_transient());
        assert_eq!(VppError::Decode { detail: "x".to_owned() }.number(), None);
    }

    #[test]
    fn messages_tell_what_to_do() {
        let revoked = VppError::Revoked { http_status: 401 }.to_string();
        assert_eq!(
            revoked,
            "Apple revoked this Apps and Books token (9625): it was replaced or revoked in Apple Business Manager; \
             download a new token for this location and renew the token in Russet"
        );
        for token_error in [
            VppError::Expired { http_status: 401 },
            VppError::InvalidToken { http_status: 401 },
            classify(401, &body(9722, "Authorization header is malformed."), None).unwrap(),
        ] {
            let text = token_error.to_string();
            assert!(text.contains("download a new token for this location"), "{text}");
            assert!(text.contains("renew the token in Russet"), "{text}");
        }
        let text = classify(401, &body(9722, "Authorization header is malformed."), None)
            .unwrap()
            .to_string();
        assert!(
            text.contains("HTTP 401, error 9722 \"Authorization header is malformed.\""),
            "{text}"
        );
        let text = VppError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        }
        .to_string();
        assert!(text.contains("9646") && text.contains("asked to wait 30 s"), "{text}");
        let text = classify(503, &body(9603, "Internal error."), Some(Duration::from_millis(1500)))
            .unwrap()
            .to_string();
        assert!(
            text.contains("HTTP 503, error 9603") && text.contains("wait 1.5 s"),
            "{text}"
        );
        let text = classify(400, &body(9702, "Too many serial numbers."), None)
            .unwrap()
            .to_string();
        assert!(
            text.contains("error 9702") && text.contains("more apps, users or devices"),
            "{text}"
        );
        let text = classify(400, &body(9705, "Duplicate serial numbers."), None)
            .unwrap()
            .to_string();
        assert!(text.contains("same app, user or device twice"), "{text}");
    }

    #[test]
    fn long_bodies_are_cut_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_TEXT);
        let Some(VppError::Api { message, .. }) = classify(400, long.as_bytes(), None) else {
            panic!("not an API error");
        };
        assert!(message.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }
}
