//! The decrypted server token: Apple's MIME-wrapped JSON object with the OAuth 1.0a credentials.

use std::fmt;

use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::ServerTokenError;

const BEGIN_MESSAGE: &str = "-----BEGIN MESSAGE-----";
const END_MESSAGE: &str = "-----END MESSAGE-----";

/// The decrypted token: the OAuth 1.0a credentials for Apple's device assignment (DEP) API.
///
/// `Debug` shows the consumer key and the expiry; the secrets are redacted.
#[derive(Clone)]
pub struct ServerToken {
    /// `CK_…`. Not secret: identifies the MDM server's token in Apple's logs and in ours.
    pub consumer_key: String,
    /// `CS_…`
    pub consumer_secret: SecretString,
    /// `AT_…`
    pub access_token: SecretString,
    /// `AS_…`
    pub access_secret: SecretString,
    /// When Apple stops accepting the token (about a year after it was downloaded), in UTC.
    pub access_token_expiry: OffsetDateTime,
}

impl fmt::Debug for ServerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerToken")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[REDACTED]")
            .field("access_token", &"[REDACTED]")
            .field("access_secret", &"[REDACTED]")
            .field("access_token_expiry", &self.access_token_expiry)
            .finish()
    }
}

/// The JSON object as Apple writes it. Every field is optional here so that all missing ones
/// can be reported at once; values are zeroized by [`Raw::wipe`].
#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    consumer_key: Option<String>,
    #[serde(default)]
    consumer_secret: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    access_secret: Option<String>,
    #[serde(default)]
    access_token_expiry: Option<String>,
}

impl Raw {
    fn wipe(&mut self) {
        for s in [
            &mut self.consumer_key,
            &mut self.consumer_secret,
            &mut self.access_token,
            &mut self.access_secret,
            &mut self.access_token_expiry,
        ]
        .into_iter()
        .flatten()
        {
            s.zeroize();
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.wipe();
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    consumer_key: &'a str,
    consumer_secret: &'a str,
    access_token: &'a str,
    access_secret: &'a str,
    access_token_expiry: &'a str,
}

/// The JSON keys, in Apple's order.
const FIELDS: [&str; 5] = [
    "consumer_key",
    "consumer_secret",
    "access_token",
    "access_secret",
    "access_token_expiry",
];

/// Copies a string into a `SecretString` whose buffer has exactly the right size, so that
/// `String::into_boxed_str` does not reallocate and leave an unzeroized copy behind.
/// The caller's copy is wiped by `Zeroizing` when it is dropped.
pub(crate) fn into_secret(s: &str) -> SecretString {
    let mut exact = String::with_capacity(s.len());
    exact.push_str(s);
    SecretString::from(exact)
}

fn take_nonempty(field: &mut Option<String>) -> Option<Zeroizing<String>> {
    let value = Zeroizing::new(field.take()?);
    if value.is_empty() { None } else { Some(value) }
}

/// Skips a MIME header block ("Name: value" lines, possibly folded, up to a blank line) if the
/// text starts with one. Returns the rest.
pub(crate) fn skip_mime_headers(text: &str) -> Result<&str, ServerTokenError> {
    let first_line = text.lines().next().unwrap_or_default();
    if !looks_like_header_line(first_line) {
        return Ok(text);
    }
    let mut rest = text;
    loop {
        let Some((line, after)) = rest.split_once('\n') else {
            return Err(ServerTokenError::NotJson {
                detail: "the MIME headers are not followed by a blank line and a body".into(),
            });
        };
        rest = after;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Ok(rest);
        }
    }
}

/// `Name: value`, where the name looks like a MIME header name (`Content-Type`, `X-Foo`):
/// starts with a letter, then letters, digits and hyphens.
pub(crate) fn looks_like_header_line(line: &str) -> bool {
    match line.split_once(':') {
        Some((name, _)) => {
            name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        None => false,
    }
}

fn parse_expiry(value: &str) -> Result<OffsetDateTime, ServerTokenError> {
    let bad = || ServerTokenError::BadExpiry {
        value: value.chars().take(64).collect(),
    };
    let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| bad())?;
    // The canonical form has whole seconds; drop any fraction so that to_json round-trips.
    parsed
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| bad())
}

fn format_expiry(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl ServerToken {
    /// Parses the decrypted message content: optional MIME headers (CRLF or LF) ending in a
    /// blank line, then optional `-----BEGIN MESSAGE-----` / `-----END MESSAGE-----` lines
    /// around one JSON object, or just the JSON object. Empty strings count as missing fields.
    /// Fractions of a second in the expiry are dropped.
    pub fn from_message(bytes: &[u8]) -> Result<ServerToken, ServerTokenError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ServerTokenError::NotUtf8)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let body = skip_mime_headers(text)?.trim();
        let json = match body.strip_prefix(BEGIN_MESSAGE) {
            Some(inner) => match inner.find(END_MESSAGE) {
                Some(end) => {
                    if !inner[end + END_MESSAGE.len()..].trim().is_empty() {
                        return Err(ServerTokenError::NotJson {
                            detail: format!("there is text after the {END_MESSAGE} line"),
                        });
                    }
                    inner[..end].trim()
                }
                None => {
                    return Err(ServerTokenError::NotJson {
                        detail: format!("the {END_MESSAGE} line is missing"),
                    });
                }
            },
            None => body,
        };
        if json.is_empty() {
            return Err(ServerTokenError::NotJson {
                detail: "the message is empty".into(),
            });
        }
        let mut raw: Raw =
            serde_json::from_str(json).map_err(|e| ServerTokenError::NotJson { detail: e.to_string() })?;

        let values = [
            take_nonempty(&mut raw.consumer_key),
            take_nonempty(&mut raw.consumer_secret),
            take_nonempty(&mut raw.access_token),
            take_nonempty(&mut raw.access_secret),
            take_nonempty(&mut raw.access_token_expiry),
        ];
        let missing: Vec<&'static str> = FIELDS
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        let [
            Some(consumer_key),
            Some(consumer_secret),
            Some(access_token),
            Some(access_secret),
            Some(expiry),
        ] = values
        else {
            return Err(ServerTokenError::MissingFields { fields: missing });
        };
        let access_token_expiry = parse_expiry(&expiry)?;
        Ok(ServerToken {
            consumer_key: consumer_key.to_string(),
            consumer_secret: into_secret(&consumer_secret),
            access_token: into_secret(&access_token),
            access_secret: into_secret(&access_secret),
            access_token_expiry,
        })
    }

    /// The canonical JSON: Apple's five keys in Apple's order, the expiry as
    /// `YYYY-MM-DDTHH:MM:SSZ`. [`ServerToken::from_message`] reads it back unchanged.
    pub fn to_json(&self) -> SecretString {
        let expiry = format_expiry(self.access_token_expiry);
        let canonical = Canonical {
            consumer_key: &self.consumer_key,
            consumer_secret: self.consumer_secret.expose_secret(),
            access_token: self.access_token.expose_secret(),
            access_secret: self.access_secret.expose_secret(),
            access_token_expiry: &expiry,
        };
        // Size the buffer for the worst case (every character escaped as \uXXXX) so that it
        // never reallocates and leaves unzeroized pieces of the secrets behind.
        let capacity = 6
            * (canonical.consumer_key.len()
                + canonical.consumer_secret.len()
                + canonical.access_token.len()
                + canonical.access_secret.len()
                + expiry.len())
            + 128;
        let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
        // Serializing a struct of strings into memory cannot fail, and serde_json writes UTF-8;
        // should either ever go wrong, return an empty object (which from_message rejects)
        // rather than panic.
        if serde_json::to_writer(&mut *buf, &canonical).is_err() {
            return into_secret("{}");
        }
        into_secret(std::str::from_utf8(&buf).unwrap_or("{}"))
    }
}
