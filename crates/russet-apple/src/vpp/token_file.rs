//! The `.vpptoken` file an administrator downloads for one Apps and Books location.
//!
//! The file is base64 (Apple: standard alphabet, padded, sometimes followed by a newline) of a
//! JSON object `{"token": "…", "expDate": "2027-11-24T10:00:00+0000", "orgName": "…"}`. The
//! location's name is not in the file: [`VppClient::client_config`](super::VppClient::client_config)
//! reports it.
//!
//! **The bearer credential is the file's text itself**, trimmed of surrounding whitespace
//! (and of a UTF-8 byte order mark), exactly as Apple issued it: the API is called with
//! `Authorization: Bearer <that text>`. If a file was saved in the URL-safe alphabet or
//! without padding, it is still read, and its text is still sent unchanged: re-encoding it
//! would send Apple a credential it never issued, while an unchanged text is refused by
//! Apple with a clear token error if it was in fact altered.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use secrecy::SecretString;
use serde_json::Value;
use time::OffsetDateTime;

use super::types::parse_vpp_time;

/// The largest `.vpptoken` file accepted (Apple's are well under 1 KiB).
pub const MAX_VPP_TOKEN_FILE: usize = 16 * 1024;

/// What to do about any unreadable token file.
const DOWNLOAD_AGAIN: &str = "download a new token from Apple Business Manager (or Apple School Manager) → \
     Preferences → Payments and Billing → Apps and Books, and upload that .vpptoken file as it was downloaded";

/// A readable `.vpptoken` file. `Debug` does not show the bearer credential.
#[derive(Clone)]
pub struct VppTokenFile {
    /// `orgName`: the organisation the token belongs to (may be empty if Apple sent it so).
    pub org_name: String,
    /// `expDate`: when Apple stops accepting the token. Not checked when the file is read; see
    /// [`is_expired_at`](VppTokenFile::is_expired_at).
    pub expires_at: OffsetDateTime,
    bearer: SecretString,
}

impl VppTokenFile {
    /// The credential to call the API with: the file's text, trimmed, as Apple issued it.
    pub fn bearer(&self) -> &SecretString {
        &self.bearer
    }

    /// Whether Apple no longer accepts the token at `now` (the expiry instant itself counts as
    /// expired).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for VppTokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VppTokenFile")
            .field("org_name", &self.org_name)
            .field("expires_at", &self.expires_at)
            .field("bearer", &"[REDACTED]")
            .finish()
    }
}

/// Why a `.vpptoken` file cannot be used. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VppTokenFileError {
    /// The file is empty or holds only whitespace.
    #[error("the Apps and Books token file is empty: {DOWNLOAD_AGAIN}")]
    Empty,

    /// The file is larger than [`MAX_VPP_TOKEN_FILE`].
    #[error(
        "the file is {size} bytes, far larger than an Apps and Books token (at most {MAX_VPP_TOKEN_FILE} bytes): \
         check that this is the .vpptoken file; if it is, {DOWNLOAD_AGAIN}"
    )]
    TooLarge {
        /// The file's size in bytes.
        size: usize,
    },

    /// The file is not one block of base64 text.
    #[error(
        "this is not an Apps and Books token: a .vpptoken file is one line of base64 text (perhaps this is \
         another file, such as an enrollment program server token, or the token was edited); {DOWNLOAD_AGAIN}"
    )]
    NotBase64,

    /// The decoded content is not a UTF-8 JSON object.
    #[error(
        "the Apps and Books token file is base64 but does not hold the JSON object Apple puts in a token \
         ({detail}): the file is damaged or is not a .vpptoken file; {DOWNLOAD_AGAIN}"
    )]
    NotJson {
        /// What is wrong with the content (never quotes it).
        detail: String,
    },

    /// `token` is missing, empty or not a string.
    #[error("the Apps and Books token file holds no token (\"token\" is missing or empty): {DOWNLOAD_AGAIN}")]
    MissingToken,

    /// `expDate` is missing or empty.
    #[error("the Apps and Books token file does not say when it expires (\"expDate\" is missing): {DOWNLOAD_AGAIN}")]
    MissingExpDate,

    /// `expDate` is not a date and time Russet can read.
    #[error(
        "the expiry date {value:?} of the Apps and Books token file cannot be read (expected a date and time \
         such as 2027-11-24T10:00:00+0000): {DOWNLOAD_AGAIN}"
    )]
    BadExpDate {
        /// `expDate` as found (its JSON text when it is not a string).
        value: String,
    },

    /// `orgName` is missing or not a string.
    #[error("the Apps and Books token file does not name its organisation (\"orgName\" is missing): {DOWNLOAD_AGAIN}")]
    MissingOrgName,
}

/// Reads a `.vpptoken` file.
///
/// Accepted: surrounding whitespace and newlines, a UTF-8 byte order mark, the standard or
/// URL-safe base64 alphabet, with or without padding; `expDate` with a `+0000`, `+00:00` or
/// `Z` offset (other ISO 8601 / RFC 3339 forms too, and no offset meaning UTC). The expiry is
/// not checked against a clock here; use [`VppTokenFile::is_expired_at`].
pub fn parse_vpp_token(bytes: &[u8]) -> Result<VppTokenFile, VppTokenFileError> {
    if bytes.len() > MAX_VPP_TOKEN_FILE {
        return Err(VppTokenFileError::TooLarge { size: bytes.len() });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| VppTokenFileError::NotBase64)?;
    let text = bearer_text(text);
    if text.is_empty() {
        return Err(VppTokenFileError::Empty);
    }
    let decoded = STANDARD_PAD_INDIFFERENT
        .decode(text)
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(text))
        .map_err(|_| VppTokenFileError::NotBase64)?;
    let json = std::str::from_utf8(&decoded).map_err(|_| VppTokenFileError::NotJson {
        detail: "the decoded content is not UTF-8 text".to_owned(),
    })?;
    // serde_json's syntax errors name a position, never the content.
    let value: Value =
        serde_json::from_str(json.trim_start_matches('\u{feff}')).map_err(|e| VppTokenFileError::NotJson {
            detail: format!("not JSON: {e}"),
        })?;
    let Value::Object(object) = value else {
        return Err(VppTokenFileError::NotJson {
            detail: "the JSON is not an object".to_owned(),
        });
    };

    match object.get("token") {
        Some(Value::String(token)) if !token.trim().is_empty() => {}
        _ => return Err(VppTokenFileError::MissingToken),
    }
    let expires_at = match object.get("expDate") {
        None | Some(Value::Null) => return Err(VppTokenFileError::MissingExpDate),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(VppTokenFileError::MissingExpDate),
        Some(Value::String(s)) => {
            parse_vpp_time(s).ok_or_else(|| VppTokenFileError::BadExpDate { value: s.clone() })?
        }
        Some(other) => {
            return Err(VppTokenFileError::BadExpDate {
                value: other.to_string(),
            });
        }
    };
    let org_name = match object.get("orgName") {
        Some(Value::String(name)) => name.trim().to_owned(),
        _ => return Err(VppTokenFileError::MissingOrgName),
    };
    Ok(VppTokenFile {
        org_name,
        expires_at,
        bearer: SecretString::from(text.to_owned()),
    })
}

/// The part of a token file's text that is the bearer credential: without surrounding
/// whitespace or a byte order mark.
pub(crate) fn bearer_text(text: &str) -> &str {
    text.trim().trim_start_matches('\u{feff}').trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use secrecy::ExposeSecret;
    use time::macros::datetime;

    const JSON: &str =
        r#"{"token":"VlBQVE9LRU4+Pz8/Pz8/Pz8/","expDate":"2027-11-24T10:00:00+0000","orgName":"Example Org"}"#;

    fn file(json: &str) -> String {
        STANDARD.encode(json)
    }

    #[test]
    fn apple_file_is_read_and_its_text_is_the_bearer() {
        let text = file(JSON);
        let token = parse_vpp_token(text.as_bytes()).unwrap();
        assert_eq!(token.org_name, "Example Org");
        assert_eq!(token.expires_at, datetime!(2027-11-24 10:00 UTC));
        assert_eq!(token.bearer().expose_secret(), text);
    }

    #[test]
    fn accepted_forms_keep_the_text_as_issued() {
        // The JSON is chosen so that its base64 uses `+` / `/` (standard) or `-` / `_` (URL-safe)
        // and needs padding.
        let json = (0..9)
            .map(|n| {
                format!(
                    r#"{{"token":"~~~???{}","expDate":"2027-11-24T10:00:00+0000","orgName":"Example Org"}}"#,
                    "~".repeat(n)
                )
            })
            .find(|json| {
                let text = STANDARD.encode(json);
                text.contains('+') && text.contains('/') && text.ends_with('=')
            })
            .unwrap();
        let standard = STANDARD.encode(&json);
        for (text, bearer) in [
            (standard.clone(), standard.clone()),
            (format!("{standard}\n"), standard.clone()),
            (format!("\r\n  {standard}\r\n\r\n"), standard.clone()),
            (format!("\u{feff}{standard}\n"), standard.clone()),
            (STANDARD_NO_PAD.encode(&json), STANDARD_NO_PAD.encode(&json)),
            (URL_SAFE.encode(&json), URL_SAFE.encode(&json)),
            (
                format!("{}\n", URL_SAFE_NO_PAD.encode(&json)),
                URL_SAFE_NO_PAD.encode(&json),
            ),
        ] {
            let token = parse_vpp_token(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(token.bearer().expose_secret(), bearer, "{text:?}");
            assert_eq!(token.org_name, "Example Org");
        }
    }

    #[test]
    fn expiry_offsets() {
        let expected = datetime!(2027-11-24 10:00 UTC);
        for date in [
            "2027-11-24T10:00:00+0000",
            "2027-11-24T10:00:00Z",
            "2027-11-24T10:00:00+00:00",
            "2027-11-24T12:00:00+0200",
            "2027-11-24T05:00:00-0500",
            "2027-11-24T12:00:00+02:00",
            "2027-11-24T10:00:00.000+0000",
            " 2027-11-24T10:00:00+0000 ",
        ] {
            let json = format!(r#"{{"token":"t","expDate":"{date}","orgName":"O"}}"#);
            let token = parse_vpp_token(file(&json).as_bytes()).unwrap_or_else(|e| panic!("{date}: {e}"));
            assert_eq!(token.expires_at, expected, "{date}");
        }
    }

    #[test]
    fn expiry_is_judged_by_the_callers_clock() {
        let token = parse_vpp_token(file(JSON).as_bytes()).unwrap();
        assert!(!token.is_expired_at(datetime!(2027-11-24 09:59:59 UTC)));
        assert!(token.is_expired_at(datetime!(2027-11-24 10:00 UTC)));
        assert!(token.is_expired_at(datetime!(2030-01-01 0:00 UTC)));
        // An expired file is still read.
        let old = r#"{"token":"t","expDate":"2001-01-01T00:00:00+0000","orgName":"O"}"#;
        assert!(parse_vpp_token(file(old).as_bytes()).is_ok());
    }

    #[test]
    fn every_bad_file_has_its_error() {
        use VppTokenFileError as E;
        let cases: Vec<(Vec<u8>, E)> = vec![
            (Vec::new(), E::Empty),
            (b" \n\r\n\t".to_vec(), E::Empty),
            (b"\xEF\xBB\xBF\n".to_vec(), E::Empty),
            (
                vec![b'A'; MAX_VPP_TOKEN_FILE + 1],
                E::TooLarge {
                    size: MAX_VPP_TOKEN_FILE + 1,
                },
            ),
            (b"not a token!".to_vec(), E::NotBase64),
            (
                b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n".to_vec(),
                E::NotBase64,
            ),
            (b"\xff\xfe\x00A".to_vec(), E::NotBase64),
            // Base64 line breaks inside the text are not Apple's format.
            (
                format!("{}\n{}", &file(JSON)[..40], &file(JSON)[40..]).into_bytes(),
                E::NotBase64,
            ),
            // Both alphabets at once.
            (b"ab+c-d==".to_vec(), E::NotBase64),
            (
                STANDARD.encode([0xff, 0xfe, 0xfd]).into_bytes(),
                E::NotJson {
                    detail: "the decoded content is not UTF-8 text".to_owned(),
                },
            ),
            (
                file("[1,2]").into_bytes(),
                E::NotJson {
                    detail: "the JSON is not an object".to_owned(),
                },
            ),
            (
                file("\"token\"").into_bytes(),
                E::NotJson {
                    detail: "the JSON is not an object".to_owned(),
                },
            ),
            (
                file(r#"{"expDate":"2027-11-24T10:00:00+0000","orgName":"O"}"#).into_bytes(),
                E::MissingToken,
            ),
            (
                file(r#"{"token":"","expDate":"2027-11-24T10:00:00+0000","orgName":"O"}"#).into_bytes(),
                E::MissingToken,
            ),
            (
                file(r#"{"token":"  ","expDate":"2027-11-24T10:00:00+0000","orgName":"O"}"#).into_bytes(),
                E::MissingToken,
            ),
            (
                file(r#"{"token":42,"expDate":"2027-11-24T10:00:00+0000","orgName":"O"}"#).into_bytes(),
                E::MissingToken,
            ),
            (file(r#"{"token":"t","orgName":"O"}"#).into_bytes(), E::MissingExpDate),
            (
                file(r#"{"token":"t","expDate":null,"orgName":"O"}"#).into_bytes(),
                E::MissingExpDate,
            ),
            (
                file(r#"{"token":"t","expDate":"","orgName":"O"}"#).into_bytes(),
                E::MissingExpDate,
            ),
            (
                file(r#"{"token":"t","expDate":"next year","orgName":"O"}"#).into_bytes(),
                E::BadExpDate {
                    value: "next year".to_owned(),
                },
            ),
            (
                file(r#"{"token":"t","expDate":"2027-13-45T10:00:00+0000","orgName":"O"}"#).into_bytes(),
                E::BadExpDate {
                    value: "2027-13-45T10:00:00+0000".to_owned(),
                },
            ),
            (
                file(r#"{"token":"t","expDate":1827050400,"orgName":"O"}"#).into_bytes(),
                E::BadExpDate {
                    value: "1827050400".to_owned(),
                },
            ),
            (
                file(r#"{"token":"t","expDate":"2027-11-24T10:00:00+0000"}"#).into_bytes(),
                E::MissingOrgName,
            ),
            (
                file(r#"{"token":"t","expDate":"2027-11-24T10:00:00+0000","orgName":null}"#).into_bytes(),
                E::MissingOrgName,
            ),
        ];
        for (bytes, expected) in cases {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            assert_eq!(parse_vpp_token(&bytes).unwrap_err(), expected, "{shown:?}");
        }
        // Not JSON at all: the message names the problem but not the content.
        let err = parse_vpp_token(file("token: secret-value").as_bytes()).unwrap_err();
        assert!(matches!(err, E::NotJson { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret-value"), "{err}");
    }

    #[test]
    fn an_empty_org_name_is_kept() {
        let token =
            parse_vpp_token(file(r#"{"token":"t","expDate":"2027-11-24T10:00:00Z","orgName":""}"#).as_bytes()).unwrap();
        assert_eq!(token.org_name, "");
    }

    #[test]
    fn messages_say_where_to_get_a_new_token() {
        for error in [
            VppTokenFileError::Empty,
            VppTokenFileError::TooLarge { size: 20_000 },
            VppTokenFileError::NotBase64,
            VppTokenFileError::NotJson { detail: "x".to_owned() },
            VppTokenFileError::MissingToken,
            VppTokenFileError::MissingExpDate,
            VppTokenFileError::BadExpDate { value: "x".to_owned() },
            VppTokenFileError::MissingOrgName,
        ] {
            let text = error.to_string();
            assert!(
                text.contains("download a new token from Apple Business Manager")
                    && text.contains("Payments and Billing → Apps and Books"),
                "{text}"
            );
        }
    }

    #[test]
    fn debug_hides_the_bearer() {
        let text = file(JSON);
        let token = parse_vpp_token(text.as_bytes()).unwrap();
        let shown = format!("{token:?}");
        assert!(shown.contains("Example Org") && shown.contains("REDACTED"), "{shown}");
        assert!(!shown.contains(&text[..20]), "{shown}");
        assert!(!shown.contains("VlBQVE9LRU4"), "{shown}");
    }
}
