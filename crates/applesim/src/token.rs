//! Server tokens: new credentials and the S/MIME `.p7m` file made like Apple's.
//!
//! The file is exactly Apple's four MIME header lines (LF line ends, as in the real token),
//! a blank line, and 76-column base64 of a CMS/PKCS#7 EnvelopedData in BER with
//! indefinite lengths: AES-128-CBC content encryption, RSA PKCS#1 v1.5 key transport to
//! the uploaded certificate, recipient identified by issuer and serial number.

use base64::Engine as _;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use time::OffsetDateTime;

use crate::catalog::{Rng, random_hex};
use crate::types::{SimCredentials, SimError};

/// The four header lines of Apple's token file, then the blank line.
pub const SMIME_HEADER: &str = "Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\n\
Content-Transfer-Encoding: base64\n\
Content-Disposition: attachment; filename=\"smime.p7m\"\n\
Content-Description: S/MIME Encrypted Message\n\n";

/// One year after `t` (same calendar date; 29 February becomes 28 February).
pub(crate) fn one_year_after(t: OffsetDateTime) -> OffsetDateTime {
    let y = t.year() + 1;
    t.replace_year(y)
        .or_else(|_| t.replace_day(28).and_then(|t| t.replace_year(y)))
        .unwrap_or(t.saturating_add(time::Duration::days(365)))
}

/// Fresh credentials shaped like Apple's, downloaded at `now`: expiry one year later.
pub(crate) fn new_credentials(now: OffsetDateTime) -> SimCredentials {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let epoch_ms = now.unix_timestamp() * 1000 + Rng::from_os().below(1000) as i64;
    let mut rng = Rng::from_os();
    let digits: String = (0..10).map(|_| char::from(b'0' + rng.below(10) as u8)).collect();
    SimCredentials {
        consumer_key: format!("CK_{}", random_hex(48, false)),
        consumer_secret: format!("CS_{}", random_hex(20, false)),
        access_token: format!("AT_O{digits}O{}O{epoch_ms}", random_hex(20, false)),
        access_secret: format!("AS_{}", random_hex(20, false)),
        access_token_expiry: one_year_after(now),
    }
}

/// The plaintext Apple encrypts: MIME headers (CRLF), blank line, the JSON between markers (LF).
pub fn token_plaintext(creds: &SimCredentials) -> Result<Vec<u8>, SimError> {
    let json = serde_json::to_string(creds).map_err(|e| SimError::Crypto(e.to_string()))?;
    Ok(format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\n{json}\n-----END MESSAGE-----\n"
    )
    .into_bytes())
}

/// Encrypt `plaintext` to `cert`: EnvelopedData in BER laid out exactly like Apple's token
/// (see [`apple_ber`]).
pub(crate) fn envelope_ber(cert: &X509, plaintext: &[u8]) -> Result<Vec<u8>, SimError> {
    let crypto = |e: openssl::error::ErrorStack| SimError::Crypto(e.to_string());
    let mut certs = Stack::new().map_err(crypto)?;
    certs.push(cert.clone()).map_err(crypto)?;
    let p7 = Pkcs7::encrypt(&certs, plaintext, Cipher::aes_128_cbc(), Pkcs7Flags::BINARY).map_err(crypto)?;
    let der = p7.to_der().map_err(crypto)?;
    apple_ber(&der).ok_or_else(|| SimError::Crypto("unexpected EnvelopedData layout from OpenSSL".into()))
}

/// One DER TLV: (tag, content, rest of input).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A child TLV: (tag, content, the whole encoding).
type Child<'a> = (u8, &'a [u8], &'a [u8]);

/// The children of a constructed DER value.
fn children(mut content: &[u8]) -> Option<Vec<Child<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let whole = content;
        let (tag, body, rest) = tlv(content)?;
        out.push((tag, body, &whole[..whole.len() - rest.len()]));
        content = rest;
    }
    Some(out)
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Re-encode OpenSSL's DER EnvelopedData the way Apple's token is encoded: indefinite
/// lengths for ContentInfo, its `[0]`, EnvelopedData and EncryptedContentInfo, and the
/// encrypted content as a constructed `[0]` holding a single OCTET STRING. The
/// recipient infos and the algorithm identifier stay definite-length, as in Apple's file.
pub fn apple_ber(der: &[u8]) -> Option<Vec<u8>> {
    const EOC: [u8; 2] = [0, 0];
    let (0x30, ci, _) = tlv(der)? else { return None };
    let ci = children(ci)?;
    let [(0x06, _, oid_enveloped), (0xA0, explicit, _)] = ci.as_slice() else {
        return None;
    };
    let inner = children(explicit)?;
    let [(0x30, env, _)] = inner.as_slice() else {
        return None;
    };
    let env = children(env)?;
    let [(0x02, _, version), (0x31, _, recipients), (0x30, eci, _)] = env.as_slice() else {
        return None;
    };
    let eci = children(eci)?;
    let [(0x06, _, oid_data), (0x30, _, alg), (0x80, encrypted, _)] = eci.as_slice() else {
        return None;
    };

    let mut out = Vec::with_capacity(der.len() + 32);
    out.extend_from_slice(&[0x30, 0x80]);
    out.extend_from_slice(oid_enveloped);
    out.extend_from_slice(&[0xA0, 0x80, 0x30, 0x80]);
    out.extend_from_slice(version);
    out.extend_from_slice(recipients);
    out.extend_from_slice(&[0x30, 0x80]);
    out.extend_from_slice(oid_data);
    out.extend_from_slice(alg);
    out.extend_from_slice(&[0xA0, 0x80, 0x04]);
    der_len(&mut out, encrypted.len());
    out.extend_from_slice(encrypted);
    for _ in 0..5 {
        out.extend_from_slice(&EOC);
    }
    Some(out)
}

/// The whole `.p7m` file for these credentials, encrypted to `cert`.
pub fn make_p7m(cert: &X509, creds: &SimCredentials) -> Result<Vec<u8>, SimError> {
    let der = envelope_ber(cert, &token_plaintext(creds)?)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(SMIME_HEADER.len() + b64.len() + b64.len() / 76 + 2);
    out.push_str(SMIME_HEADER);
    for chunk in b64.as_bytes().chunks(76) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Parse an uploaded certificate: PEM, X.509, RSA public key (Apple encrypts with RSA
/// PKCS#1 v1.5, so nothing else can work).
pub(crate) fn parse_certificate(pem: &str) -> Result<X509, SimError> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(SimError::InvalidCertificate("not a PEM certificate".into()));
    }
    let cert = X509::from_pem(pem.as_bytes()).map_err(|e| SimError::InvalidCertificate(e.to_string()))?;
    let key = cert
        .public_key()
        .map_err(|e| SimError::InvalidCertificate(e.to_string()))?;
    if key.rsa().is_err() {
        return Err(SimError::InvalidCertificate("the public key is not RSA".into()));
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_shapes() {
        let now = crate::timefmt::parse("2025-01-17T11:02:21.5Z").unwrap();
        let c = new_credentials(now);
        assert_eq!(c.consumer_key.len(), 99);
        assert!(c.consumer_key.starts_with("CK_"));
        assert_eq!(c.consumer_secret.len(), 43);
        assert_eq!(c.access_secret.len(), 43);
        assert_eq!(c.access_token.len(), 69, "{}", c.access_token);
        let parts: Vec<&str> = c.access_token.trim_start_matches("AT_").split('O').collect();
        assert_eq!(parts.len(), 4);
        assert!(parts[3].starts_with("1737111741"));
        assert_eq!(crate::timefmt::format(c.access_token_expiry), "2026-01-17T11:02:21Z");
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.starts_with(r#"{"consumer_key":"CK_"#));
        assert!(json.ends_with(r#""access_token_expiry":"2026-01-17T11:02:21Z"}"#));
    }

    #[test]
    fn leap_day() {
        let t = crate::timefmt::parse("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(crate::timefmt::format(one_year_after(t)), "2025-02-28T12:00:00Z");
    }
}
