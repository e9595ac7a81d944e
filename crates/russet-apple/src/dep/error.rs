//! Errors of the device assignment API client and the parsing of Apple's error bodies.

use std::fmt;
use std::time::Duration;

use super::MAX_DEVICES_PER_REQUEST;

/// `403` body token: the organisation has not accepted Apple's latest terms and conditions.
pub const T_C_NOT_SIGNED: &str = "T_C_NOT_SIGNED";
/// `403` body token: the token has no access (revoked, or another MDM server's).
pub const ACCESS_DENIED: &str = "ACCESS_DENIED";
/// `403` body token: the session is not valid (depsim after a restart); re-authenticate.
pub const FORBIDDEN: &str = "FORBIDDEN";
/// `400` on fetch: the cursor already returned everything; switch to sync.
pub const EXHAUSTED_CURSOR: &str = "EXHAUSTED_CURSOR";
/// `400` on sync: the cursor is older than 7 days; fetch again from scratch.
pub const EXPIRED_CURSOR: &str = "EXPIRED_CURSOR";
/// `400` on fetch or sync: the cursor is not valid; fetch again from scratch.
pub const INVALID_CURSOR: &str = "INVALID_CURSOR";

/// Why a call to Apple's device assignment (DEP / ADE) API failed.
///
/// Every message says what happened and what the administrator should do about it. The
/// helpers ([`code`](DepError::code), [`is_cursor_reset`](DepError::is_cursor_reset), …) let
/// the caller decide what to do without matching strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepError {
    /// Apple refused the request with a status not covered by the other variants (mostly
    /// `400`, also `404`, `405`, and `400` from `/session` for malformed OAuth parameters).
    /// `code` is Apple's error token (`INVALID_CURSOR`, `PROFILE_NOT_FOUND`, …) taken from a
    /// bare, quoted or JSON body, or the OAuth problem of `/session`; `body` is the response
    /// body (at most 4 KiB of it).
    #[error("{}", ApiMessage { status: *status, code: code.as_deref(), body })]
    Api {
        status: u16,
        code: Option<String>,
        body: String,
    },

    /// `403 T_C_NOT_SIGNED`, from `/session` or any call.
    #[error(
        "Apple refused the request because the organisation has not accepted Apple's latest terms \
         and conditions (403 T_C_NOT_SIGNED): an administrator must sign in to Apple Business Manager \
         / Apple School Manager and accept the new terms and conditions; device assignment resumes \
         on its own once they are accepted"
    )]
    TermsNotSigned,

    /// `403 ACCESS_DENIED`, from `/session` or any call.
    #[error(
        "Apple denied access with this server token (403 ACCESS_DENIED): the token was revoked or \
         belongs to another MDM server; in Apple Business Manager, open the MDM server's settings, \
         download a new server token and upload it to Russet"
    )]
    AccessDenied,

    /// `/session` refused the credentials (invalid, expired or replaced token, bad signature),
    /// or a call was still refused after one re-authentication.
    #[error(
        "Apple did not accept the server token ({detail}): the token is invalid, has expired, or was \
         replaced by a newer download (also check that this server's clock is correct); download a \
         new server token from Apple Business Manager and upload it to Russet"
    )]
    Unauthorized { detail: String },

    /// `429` after the retries, or with a `Retry-After` longer than the configured maximum.
    #[error(
        "Apple is rate-limiting this server's requests (HTTP 429){}: the request will be tried again \
         later; no action is needed unless this persists, in which case sync less often",
        After(*retry_after)
    )]
    RateLimited { retry_after: Option<Duration> },

    /// `5xx` after the retries, or with a `Retry-After` longer than the configured maximum.
    #[error(
        "Apple's device assignment service failed with HTTP {status}{}: this is usually a temporary \
         problem at Apple and the request will be tried again later; if it persists, check Apple's \
         system status page",
        After(*retry_after)
    )]
    ServerError { status: u16, retry_after: Option<Duration> },

    /// No response: connection refused or reset, DNS failure, TLS failure, timeout, or the
    /// connection closed before a complete answer (after the retries).
    #[error(
        "could not reach Apple's device assignment service ({detail}): check this server's network \
         connection, DNS, firewall and proxy settings for mdmenrollment.apple.com; the request will \
         be tried again later"
    )]
    Transport { detail: String },

    /// A successful response whose body is not the expected JSON.
    #[error(
        "Apple's device assignment service sent a response that cannot be read ({detail}): Apple may \
         have changed its API; try again later and report the problem if it persists"
    )]
    Decode { detail: String },

    /// More than [`MAX_DEVICES_PER_REQUEST`] serial numbers in one call; nothing was sent.
    #[error(
        "{count} devices were given in one request, but Apple accepts at most \
         {MAX_DEVICES_PER_REQUEST} at a time: split the devices into batches of at most \
         {MAX_DEVICES_PER_REQUEST} serial numbers"
    )]
    TooManyDevices { count: usize },

    /// The [`DepConfig`](super::DepConfig) or the credentials cannot be used.
    #[error("the device assignment client cannot be set up: {detail}")]
    InvalidConfig { detail: String },

    /// The OAuth signature could not be computed (OpenSSL or the system's random number
    /// generator failed).
    #[error(
        "the OAuth signature for Apple's device assignment service could not be computed ({detail}): \
         this server's OpenSSL library or random number generator is not working; check the \
         server's installation"
    )]
    Crypto { detail: String },
}

impl DepError {
    /// Apple's error token: the code of [`DepError::Api`], `T_C_NOT_SIGNED` for
    /// [`DepError::TermsNotSigned`] and `ACCESS_DENIED` for [`DepError::AccessDenied`].
    pub fn code(&self) -> Option<&str> {
        match self {
            DepError::Api { code, .. } => code.as_deref(),
            DepError::TermsNotSigned => Some(T_C_NOT_SIGNED),
            DepError::AccessDenied => Some(ACCESS_DENIED),
            _ => None,
        }
    }

    /// How long Apple asked to wait (`Retry-After`) before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DepError::RateLimited { retry_after } | DepError::ServerError { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of Apple's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            DepError::Api { status, .. } | DepError::ServerError { status, .. } => Some(*status),
            DepError::RateLimited { .. } => Some(429),
            DepError::TermsNotSigned | DepError::AccessDenied => Some(403),
            _ => None,
        }
    }

    /// `EXHAUSTED_CURSOR`: a fetch cursor already returned every device; continue with
    /// [`sync_devices`](super::DepClient::sync_devices) using the same cursor.
    pub fn is_exhausted_cursor(&self) -> bool {
        self.code() == Some(EXHAUSTED_CURSOR)
    }

    /// `EXPIRED_CURSOR` or `INVALID_CURSOR`: forget the cursor and fetch from scratch.
    pub fn is_cursor_reset(&self) -> bool {
        matches!(self.code(), Some(EXPIRED_CURSOR | INVALID_CURSOR))
    }

    /// `T_C_NOT_SIGNED`: an administrator must accept Apple's new terms.
    pub fn is_terms_not_signed(&self) -> bool {
        matches!(self, DepError::TermsNotSigned)
    }

    /// Worth trying again later without anyone doing anything: rate limiting, Apple's server
    /// errors and network failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DepError::RateLimited { .. } | DepError::ServerError { .. } | DepError::Transport { .. }
        )
    }
}

/// The largest part of an error body kept in [`DepError::Api`].
pub(crate) const MAX_ERROR_BODY: usize = 4096;

/// Tokens looked for anywhere in an error body, most specific first.
const KNOWN_CODES: &[&str] = &[
    T_C_NOT_SIGNED,
    ACCESS_DENIED,
    EXHAUSTED_CURSOR,
    EXPIRED_CURSOR,
    INVALID_CURSOR,
    "CURSOR_REQUIRED",
    "MALFORMED_REQUEST_BODY",
    "DEVICE_ID_REQUIRED",
    "PROFILE_UUID_REQUIRED",
    "PROFILE_NOT_FOUND",
    "DEVICE_NOT_FOUND",
    "USER_AGENT_MISSING",
    "USER_AGENT_INVALID",
    "TOO_MANY_REQUESTS",
    "APPLE_SEED_FOR_IT_TURNED_OFF",
    "CONFIG_NAME_REQUIRED",
    "CONFIG_NAME_INVALID",
    "CONFIG_URL_REQUIRED",
    "CONFIG_URL_INVALID",
    "DEPARTMENT_REQUIRED",
    "DEPARTMENT_INVALID",
    "SUPPORT_PHONE_REQUIRED",
    "SUPPORT_PHONE_INVALID",
    "SUPPORT_EMAIL_INVALID",
    "FLAGS_INVALID",
    "LOCALE_INVALID",
    "MAGIC_INVALID",
    "UNAUTHORIZED",
    FORBIDDEN,
];

/// Apple's error token in an error body.
///
/// Apple's bodies are inconsistent (research §2.7): a bare token (`INVALID_CURSOR`), a quoted
/// JSON string (`"INVALID_CURSOR"`, depsim), a JSON object (`{"code":"…"}` or `{"error":"…"}`),
/// or OAuth problem text on `/session` (`oauth_problem=signature_invalid`,
/// `token_expiredForbidden`). In that order of preference: a JSON string or `code` / `error`
/// member; a known token anywhere in the body; a leading upper-case token; an
/// `oauth_problem=` value; a leading lower-case `snake_case` word.
pub(crate) fn extract_code(body: &str) -> Option<String> {
    let trimmed = body.trim().trim_start_matches('\u{feff}');
    if trimmed.is_empty() {
        return None;
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) {
        let text = match &value {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(map) => ["code", "error", "error_code"]
                .iter()
                .find_map(|k| map.get(*k).and_then(|v| v.as_str())),
            _ => None,
        };
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            return Some(leading_token(text).unwrap_or(text).to_owned());
        }
    }
    if let Some(known) = KNOWN_CODES.iter().find(|c| trimmed.contains(*c)) {
        return Some((*known).to_owned());
    }
    let unquoted = trimmed.trim_matches(|c| c == '"' || c == '\'');
    if let Some(token) = leading_token(unquoted) {
        return Some(token.to_owned());
    }
    if let Some(pos) = unquoted.find("oauth_problem=") {
        let rest = &unquoted[pos + "oauth_problem=".len()..];
        let value: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !value.is_empty() {
            return Some(value);
        }
    }
    // petarov's raw bodies: `token_expiredForbidden`, `oauth_problem_adviceBad Request`.
    let word: String = unquoted
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    if word.len() >= 3 && word.contains('_') {
        return Some(word);
    }
    None
}

/// A token of upper-case letters, digits and `_` (at least 3 characters, starting with a
/// letter) at the start of `text`, ended by the end of text or a character that is not part
/// of a word.
fn leading_token(text: &str) -> Option<&str> {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
        .map_or(text.len(), |(i, _)| i);
    let token = &text[..end];
    let next = text[end..].chars().next();
    let ends_word = next.is_none_or(|c| !c.is_alphanumeric());
    (token.len() >= 3 && token.starts_with(|c: char| c.is_ascii_uppercase()) && ends_word).then_some(token)
}

/// Keeps at most [`MAX_ERROR_BODY`] bytes of a body, cut at a character boundary.
pub(crate) fn truncate_body(body: &str) -> String {
    if body.len() <= MAX_ERROR_BODY {
        return body.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

/// The error for a non-success answer that is neither retried nor re-authenticated.
/// `session_endpoint` is true for `GET /session`, where 401 and other 403s mean that the
/// credentials were refused.
pub(crate) fn classify(status: u16, body: &str, session_endpoint: bool) -> DepError {
    if status == 403 && body.contains(T_C_NOT_SIGNED) {
        return DepError::TermsNotSigned;
    }
    if status == 403 && body.contains(ACCESS_DENIED) {
        return DepError::AccessDenied;
    }
    let code = extract_code(body);
    if session_endpoint && (status == 401 || status == 403) {
        let problem = match &code {
            Some(code) => format!(" ({code})"),
            None => String::new(),
        };
        return DepError::Unauthorized {
            detail: format!("GET /session answered HTTP {status}{problem}"),
        };
    }
    if status == 429 {
        return DepError::RateLimited { retry_after: None };
    }
    if status >= 500 {
        return DepError::ServerError {
            status,
            retry_after: None,
        };
    }
    DepError::Api {
        status,
        code,
        body: truncate_body(body),
    }
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

struct ApiMessage<'a> {
    status: u16,
    code: Option<&'a str>,
    body: &'a str,
}

impl fmt::Display for ApiMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Apple's device assignment service refused the request (HTTP {}",
            self.status
        )?;
        match self.code {
            Some(code) => write!(f, " {code}")?,
            None if self.body.trim().is_empty() => {}
            None => {
                let excerpt: String = self.body.trim().chars().take(200).collect();
                write!(f, ", body {excerpt:?}")?;
            }
        }
        f.write_str("): ")?;
        f.write_str(api_advice(self.status, self.code))
    }
}

fn api_advice(status: u16, code: Option<&str>) -> &'static str {
    match code {
        Some(EXHAUSTED_CURSOR) => {
            "the full device list was already fetched with this cursor; device assignment continues \
             with incremental sync, no action is needed"
        }
        Some(EXPIRED_CURSOR | INVALID_CURSOR) => {
            "the saved sync cursor is no longer valid (cursors expire after 7 days); the full device \
             list is fetched again, no action is needed unless this keeps happening"
        }
        Some("CURSOR_REQUIRED" | "MALFORMED_REQUEST_BODY" | "DEVICE_ID_REQUIRED" | "PROFILE_UUID_REQUIRED") => {
            "Russet sent an incomplete request; this is a bug, please report it"
        }
        Some("USER_AGENT_MISSING" | "USER_AGENT_INVALID") => {
            "Apple rejected the User-Agent header; configure a product-style user agent such as \
             \"russet/<version>\" and report the problem if it persists"
        }
        Some("PROFILE_NOT_FOUND") => {
            "the enrollment profile no longer exists at Apple; save the enrollment profile again so \
             that it is defined anew, then assign the devices again"
        }
        Some("DEVICE_NOT_FOUND") => {
            "Apple does not know this device, or it is not assigned to this MDM server; check the \
             serial number and the device's MDM server in Apple Business Manager"
        }
        Some("APPLE_SEED_FOR_IT_TURNED_OFF") => {
            "AppleSeed for IT is turned off for this organisation; turn it on in Apple Business \
             Manager to use beta enrollment"
        }
        Some(c)
            if c.starts_with("CONFIG_")
                || c.starts_with("SUPPORT_")
                || c.starts_with("DEPARTMENT_")
                || matches!(c, "FLAGS_INVALID" | "LOCALE_INVALID" | "MAGIC_INVALID") =>
        {
            "Apple rejected a setting of the enrollment profile; correct the profile (name up to 125 \
             characters, a valid enrollment URL, department up to 125, support phone up to 50 and \
             support e-mail up to 250 characters, a valid language and region, and \"MDM removable\" \
             may only be off for supervised devices) and save it again"
        }
        _ if status == 404 => {
            "Apple does not know the requested object; check that the profile or device still exists \
             in Apple Business Manager"
        }
        _ if status == 405 => "Apple does not accept this method on this endpoint; this is a bug, please report it",
        _ => {
            "check the request and this server's token in Apple Business Manager; if it keeps failing, \
             report the problem with the response shown"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_from_every_body_format() {
        for body in [
            "INVALID_CURSOR",
            "  INVALID_CURSOR\n",
            "\"INVALID_CURSOR\"",
            "{\"code\":\"INVALID_CURSOR\"}",
            "{\"error\":\"INVALID_CURSOR\"}",
            "{\"code\":\"INVALID_CURSOR\",\"message\":\"cursor is invalid\"}",
            "INVALID_CURSOR: the cursor is invalid",
        ] {
            assert_eq!(extract_code(body).as_deref(), Some("INVALID_CURSOR"), "{body:?}");
        }
    }

    #[test]
    fn codes_from_oauth_problem_text() {
        assert_eq!(
            extract_code("oauth_problem=signature_invalid&oauth_problem_advice=bad").as_deref(),
            Some("signature_invalid")
        );
        assert_eq!(extract_code("token_expiredForbidden").as_deref(), Some("token_expired"));
        assert_eq!(
            extract_code("oauth_problem_adviceBad Request").as_deref(),
            Some("oauth_problem_advice")
        );
        assert_eq!(extract_code("T_C_NOT_SIGNED").as_deref(), Some("T_C_NOT_SIGNED"));
        assert_eq!(
            extract_code("Forbidden: T_C_NOT_SIGNED").as_deref(),
            Some("T_C_NOT_SIGNED")
        );
    }

    #[test]
    fn no_code_in_prose_or_empty_bodies() {
        assert_eq!(extract_code(""), None);
        assert_eq!(extract_code("   "), None);
        assert_eq!(extract_code("Bad Request"), None);
        assert_eq!(extract_code("<html><body>Bad gateway</body></html>"), None);
        assert_eq!(extract_code("{}"), None);
        assert_eq!(extract_code("OK"), None);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(403, "T_C_NOT_SIGNED", false), DepError::TermsNotSigned);
        assert_eq!(
            classify(403, "{\"code\":\"T_C_NOT_SIGNED\"}", true),
            DepError::TermsNotSigned
        );
        assert_eq!(classify(403, "\"ACCESS_DENIED\"", false), DepError::AccessDenied);
        assert!(matches!(
            classify(401, "oauth_problem=signature_invalid", true),
            DepError::Unauthorized { .. }
        ));
        assert!(matches!(
            classify(403, "token_expiredForbidden", true),
            DepError::Unauthorized { .. }
        ));
        let e = classify(400, "EXHAUSTED_CURSOR", false);
        assert!(e.is_exhausted_cursor() && !e.is_cursor_reset() && !e.is_transient());
        assert!(classify(400, "EXPIRED_CURSOR", false).is_cursor_reset());
        let e = classify(400, "oauth_problem=parameter_absent", true);
        assert_eq!(e.code(), Some("parameter_absent"));
        assert!(classify(503, "", false).is_transient());
    }

    #[test]
    fn messages_tell_what_to_do() {
        let e = DepError::TermsNotSigned;
        assert!(e.to_string().contains("accept the new terms and conditions"));
        let e = classify(400, "\"PROFILE_NOT_FOUND\"", false);
        assert!(e.to_string().contains("HTTP 400 PROFILE_NOT_FOUND"), "{e}");
        let e = DepError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(e.to_string().contains("wait 30 s"), "{e}");
        let e = classify(418, "I'm a teapot", false);
        assert!(e.to_string().contains("body \"I'm a teapot\""), "{e}");
    }

    #[test]
    fn long_bodies_are_truncated_on_char_boundaries() {
        let body = "é".repeat(MAX_ERROR_BODY);
        let kept = truncate_body(&body);
        assert!(kept.len() <= MAX_ERROR_BODY + '…'.len_utf8());
        assert!(kept.ends_with('…'));
    }
}
