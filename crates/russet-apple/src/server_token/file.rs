//! Recognising the outer form of an uploaded token file and getting the CMS bytes out of it.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::message::looks_like_header_line;
use super::{FileFormat, ServerTokenError};

/// Standard alphabet; padding optional (some tools strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A bare base64 file must have at least this many base64 characters to be taken for one
/// (shorter text is reported as "not a token" rather than "damaged base64").
const MIN_BARE_BASE64: usize = 16;

/// The CMS bytes of a token file and the form they came in.
#[derive(Debug)]
pub(crate) struct Unwrapped {
    pub format: FileFormat,
    pub der: Vec<u8>,
}

fn not_cms(looks_like: impl Into<String>) -> ServerTokenError {
    ServerTokenError::NotCms {
        looks_like: Some(looks_like.into()),
    }
}

/// Makes a piece of the (hostile) input safe to quote in a message: no control characters,
/// at most 60 characters.
pub(crate) fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

/// UTF-8 without control characters other than tab, CR, LF and form feed.
fn as_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let plain = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n' | '\u{c}'));
    plain.then_some(text)
}

pub(crate) fn unwrap(file: &[u8]) -> Result<Unwrapped, ServerTokenError> {
    let file = file.strip_prefix(b"\xef\xbb\xbf").unwrap_or(file);
    if file.iter().all(u8::is_ascii_whitespace) {
        return Err(ServerTokenError::Empty);
    }
    let Some(text) = as_text(file) else {
        // A CMS ContentInfo is a SEQUENCE: 0x30. (Text starting with the digit '0' is 0x30
        // too, hence the text check first.)
        if file.first() == Some(&0x30) {
            return Ok(Unwrapped {
                format: FileFormat::Der,
                der: file.to_vec(),
            });
        }
        return Err(not_cms(guess_binary(file)));
    };
    let trimmed = text.trim_start();
    let start_line = 1 + count_newlines(&text[..text.len() - trimmed.len()]);

    if trimmed.starts_with("-----BEGIN ") {
        return pem(trimmed, start_line);
    }
    if trimmed.starts_with('{') {
        return Err(not_cms(guess_json(trimmed)));
    }
    if trimmed.starts_with('<') {
        return Err(not_cms(
            "an XML or HTML document, such as a configuration profile or a saved web page",
        ));
    }
    if looks_like_header_line(trimmed.lines().next().unwrap_or_default()) {
        return smime(trimmed, start_line);
    }
    if let Some(pos) = find_line_starting(trimmed, "-----BEGIN ") {
        return pem(&trimmed[pos..], start_line + count_newlines(&trimmed[..pos]));
    }
    let symbols = trimmed.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    let all_base64 = trimmed.bytes().all(|b| is_base64_symbol(b) || b.is_ascii_whitespace());
    if all_base64 && symbols >= MIN_BARE_BASE64 {
        let der = decode_base64(trimmed, start_line)?;
        if der.first() == Some(&0x30) {
            return Ok(Unwrapped {
                format: FileFormat::Base64,
                der,
            });
        }
        if der.first() == Some(&b'{') {
            return Err(not_cms(guess_json(&String::from_utf8_lossy(&der))));
        }
        return Err(not_cms("base64 text that does not hold a CMS/PKCS#7 message"));
    }
    Err(not_cms("plain text"))
}

fn count_newlines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

fn find_line_starting(text: &str, prefix: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with(prefix) {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

fn is_base64_symbol(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

fn guess_binary(file: &[u8]) -> &'static str {
    if file.starts_with(b"%PDF") {
        "a PDF document"
    } else if file.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if file.starts_with(b"bplist") {
        "a binary property list"
    } else {
        "binary data of an unknown kind"
    }
}

fn guess_json(text: &str) -> &'static str {
    if text.contains("\"consumer_key\"") || text.contains("\"access_secret\"") {
        "an already decrypted server token (JSON), while Russet needs the encrypted .p7m file"
    } else if text.contains("\"orgName\"") || text.contains("\"expDate\"") {
        "an Apps and Books content token (.vpptoken), which is uploaded elsewhere"
    } else {
        "a JSON document"
    }
}

/// Decodes base64 text spread over lines. `first_line` is the line number of `text`'s first line
/// in the file, for messages.
fn decode_base64(text: &str, first_line: usize) -> Result<Vec<u8>, ServerTokenError> {
    let mut line = first_line;
    let mut column = 0usize;
    let mut symbols = Vec::with_capacity(text.len());
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let Ok(b) = u8::try_from(c) else {
            return Err(bad_character(c, line, column));
        };
        if !is_base64_symbol(b) {
            return Err(bad_character(c, line, column));
        }
        symbols.push(b);
    }
    if symbols.is_empty() {
        return Err(ServerTokenError::Malformed {
            detail: "there is no encoded content".into(),
        });
    }
    BASE64.decode(&symbols).map_err(|e| {
        let detail = match e {
            base64::DecodeError::InvalidByte(_, b'=') => "a '=' padding character appears before the end".to_owned(),
            base64::DecodeError::InvalidByte(_, b) => {
                format!("the byte 0x{b:02x} is not a base64 character")
            }
            base64::DecodeError::InvalidLength(n) => {
                format!("{n} base64 characters is not a possible length, so the text is probably cut short")
            }
            base64::DecodeError::InvalidLastSymbol { .. } => {
                "the last character does not end the data properly, so the text is probably cut short".to_owned()
            }
            base64::DecodeError::InvalidPadding => "the '=' padding at the end is wrong".to_owned(),
        };
        ServerTokenError::BadBase64 { detail }
    })
}

fn bad_character(c: char, line: usize, column: usize) -> ServerTokenError {
    let shown = if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("'{c}'")
    };
    ServerTokenError::BadBase64 {
        detail: format!("the character {shown} on line {line}, column {column} is not base64"),
    }
}

fn pem(text: &str, first_line: usize) -> Result<Unwrapped, ServerTokenError> {
    let (begin, rest) = text.split_once('\n').unwrap_or((text, ""));
    let begin = begin.trim_end();
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .unwrap_or_default();
    match label {
        "PKCS7" | "CMS" => {}
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            return Err(not_cms(
                "a PEM certificate, perhaps the public key certificate that is uploaded to \
                 Apple Business Manager rather than the token downloaded from it",
            ));
        }
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
            return Err(not_cms("a PEM certificate signing request"));
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => return Err(not_cms("a PEM public key")),
        l if l.contains("PRIVATE KEY") => return Err(not_cms("a PEM private key")),
        l => return Err(not_cms(format!("a PEM block labelled {:?}", quote(l)))),
    }
    let end_marker = format!("-----END {label}-----");
    let Some(end) = find_line_starting(rest, &end_marker) else {
        return Err(ServerTokenError::Malformed {
            detail: format!("the {end_marker} line is missing, so the file is probably cut short"),
        });
    };
    let body = &rest[..end];
    // RFC 1421 headers ("Name: value" lines and a blank line) are not used for CMS; skip them if present.
    let (body, body_line) = if looks_like_header_line(body.lines().next().unwrap_or_default()) {
        match body.find("\n\n").or_else(|| body.find("\n\r\n")) {
            Some(pos) => (&body[pos..], first_line + 1 + count_newlines(&body[..pos])),
            None => (body, first_line + 1),
        }
    } else {
        (body, first_line + 1)
    };
    Ok(Unwrapped {
        format: FileFormat::Pem,
        der: decode_base64(body, body_line)?,
    })
}

fn smime(text: &str, first_line: usize) -> Result<Unwrapped, ServerTokenError> {
    let mut content_type: Option<String> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut rest = text;
    let mut line_no = first_line;
    // The header block: "Name: value" lines, possibly folded onto lines starting with
    // whitespace, up to a blank line.
    let mut last_name: Option<String> = None;
    let body = loop {
        let Some((line, after)) = rest.split_once('\n') else {
            if content_type.is_none() && transfer_encoding.is_none() {
                return Err(not_cms("plain text"));
            }
            return Err(ServerTokenError::Malformed {
                detail: "the S/MIME headers are not followed by a blank line and the encoded \
                         token, so the file is probably cut short"
                    .into(),
            });
        };
        rest = after;
        line_no += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            break rest;
        }
        let value = if line.starts_with([' ', '\t']) {
            // A continuation of the previous header.
            match last_name.as_deref() {
                Some("content-type") => content_type.get_or_insert_default(),
                Some("content-transfer-encoding") => transfer_encoding.get_or_insert_default(),
                _ => continue,
            }
            .push_str(line);
            continue;
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_owned();
            last_name = Some(name);
            value
        } else if content_type.is_none() && transfer_encoding.is_none() {
            return Err(not_cms("plain text"));
        } else {
            return Err(ServerTokenError::Malformed {
                detail: format!("line {} of the S/MIME headers is not a header line", line_no - 1),
            });
        };
        match last_name.as_deref() {
            Some("content-type") => content_type = Some(value),
            Some("content-transfer-encoding") => transfer_encoding = Some(value),
            _ => {}
        }
    };

    if content_type.is_none() && transfer_encoding.is_none() {
        return Err(not_cms("plain text"));
    }
    if let Some(content_type) = &content_type {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/pkcs7-mime" | "application/x-pkcs7-mime" => {}
            "multipart/signed" => {
                return Err(ServerTokenError::NotEnvelopedData {
                    content_type: "a signed S/MIME message (multipart/signed)".into(),
                });
            }
            "text/plain" => {
                return Err(not_cms(
                    "a plain-text MIME message, perhaps a server token that was already decrypted",
                ));
            }
            other => {
                return Err(not_cms(format!("a MIME message of type {}", quote(other))));
            }
        }
    }
    let encoding = transfer_encoding
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "base64".to_owned());
    let der = match encoding.as_str() {
        "base64" => decode_base64(body, line_no)?,
        other => {
            return Err(not_cms(format!(
                "a MIME message whose body is not base64 (Content-Transfer-Encoding: {})",
                quote(other)
            )));
        }
    };
    Ok(Unwrapped {
        format: FileFormat::Smime,
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_character_position_is_reported() {
        let text = "Content-Type: application/pkcs7-mime\n\nMIAG\nCS!q\n";
        match unwrap(text.as_bytes()) {
            Err(ServerTokenError::BadBase64 { detail }) => {
                assert!(detail.contains("line 4, column 3"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn folded_content_type_header() {
        let text =
            "Content-Type: application/pkcs7-mime;\n name=\"smime.p7m\"\nContent-Transfer-Encoding:\n base64\n\nMAA=\n";
        let u = unwrap(text.as_bytes()).unwrap();
        assert_eq!(u.format, FileFormat::Smime);
        assert_eq!(u.der, vec![0x30, 0x00]);
    }

    #[test]
    fn guesses() {
        let cases: [(&[u8], &str); 6] = [
            (b"{\"consumer_key\":\"CK_1\"}", "decrypted"),
            (
                b"eyJ0b2tlbiI6ImFiYyIsImV4cERhdGUiOiIyMDI2LTAxLTAxIiwib3JnTmFtZSI6Ik9yZyJ9",
                ".vpptoken",
            ),
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "private key",
            ),
            (b"%PDF-1.7 \xff\xfe", "PDF"),
            (b"<?xml version=\"1.0\"?><plist/>", "XML"),
            (b"Content-Type: text/plain\n\nhello\n", "already decrypted"),
        ];
        for (input, expected) in cases {
            match unwrap(input) {
                Err(ServerTokenError::NotCms { looks_like: Some(what) }) => assert!(what.contains(expected), "{what}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn text_starting_with_zero_is_text() {
        match unwrap(b"0 errors, 3 warnings\n") {
            Err(ServerTokenError::NotCms { looks_like: Some(what) }) => assert_eq!(what, "plain text"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(unwrap(b"\xef\xbb\xbf \n").unwrap_err(), ServerTokenError::Empty);
        assert_eq!(unwrap(b"\x30\x80\x00\x00").unwrap().format, FileFormat::Der);
        assert_eq!(unwrap(b"\x30\x00").unwrap().format, FileFormat::Der);
    }

    #[test]
    fn quote_strips_controls_and_shortens() {
        assert_eq!(quote("a\u{1b}[31mb"), "a\u{fffd}[31mb");
        assert_eq!(quote(&"x".repeat(100)).chars().count(), 61);
    }
}
