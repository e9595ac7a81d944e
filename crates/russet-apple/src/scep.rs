//! SCEP (RFC 8894): the certificate authority that gives each device its MDM identity.
//!
//! An enrollment profile's `com.apple.security.scep` payload makes the device generate a key
//! pair on its own and ask the server for a certificate: `GetCACaps`, `GetCACert`, then a
//! `PKIOperation` whose body is a CMS SignedData (signed with a throw-away self-signed
//! certificate, or with the device's current identity when renewing) around an EnvelopedData
//! encrypted to the CA, around a PKCS#10 request carrying the profile's challenge password.
//! The answer (a `CertRep`) is a SignedData by the CA around an EnvelopedData encrypted to the
//! device around a certificates-only SignedData holding the new certificate.
//!
//! This module is the protocol, not the server: it knows no storage, HTTP framework or clock.
//! The caller keeps the CA key and the challenges, passes the time in, and decides policy:
//!
//! * [`new_ca`] makes the CA; [`issue_identity`] turns a verified request into a certificate;
//! * [`caps`], [`ca_cert_der`] and [`ca_certs_pkcs7`] answer `GetCACaps` and `GetCACert`;
//! * [`decode_request`] verifies, decrypts and reads a `PKIOperation` message into a
//!   [`PkiRequest`]; its errors say whether the device can be answered with a `FAILURE`
//!   ([`ScepError::reply_to`], [`ScepError::fail_info`]) or only with HTTP 400;
//! * [`cert_rep_success`] and [`cert_rep_failure`] build the `CertRep`.
//!
//! A server's `/scep` handler, in short:
//!
//! ```no_run
//! # use russet_apple::scep::{self, FailInfo, IssueParams, MessageType};
//! # fn handle(body: &[u8], ca: &openssl::x509::X509, key: &openssl::pkey::PKey<openssl::pkey::Private>,
//! #          expected_challenge: &str, now: time::OffsetDateTime) -> Result<Vec<u8>, scep::ScepError> {
//! let req = match scep::decode_request(body, ca, key) {
//!     Ok(req) => req,
//!     Err(e) => match (e.reply_to(), e.fail_info()) {
//!         (Some(to), Some(info)) => return scep::cert_rep_failure(to, info, ca, key),
//!         _ => return Err(e), // HTTP 400
//!     },
//! };
//! let allowed = match req.message_type {
//!     MessageType::PkcsReq => req.challenge_matches(expected_challenge),
//!     MessageType::RenewalReq => req.signer_issued_by(ca) && req.signer_valid_at(now),
//! };
//! if !allowed {
//!     return scep::cert_rep_failure(&req, FailInfo::BadRequest, ca, key);
//! }
//! let params = IssueParams::new(now, time::Duration::days(365));
//! let cert = scep::issue_identity(&req.csr, ca, key, &params)?;
//! scep::cert_rep_success(&req, &cert, ca, key) // Content-Type: application/x-pki-message
//! # }
//! ```
//!
//! All RSA work (signature checks, decryption with the CA key, signing) is OpenSSL's; the few
//! structures OpenSSL's Rust binding cannot build (a SignedData with SCEP's signed attributes)
//! are written with a small DER writer, and BER from devices is read with a bounded reader.

mod ca;
mod csr;
mod der;
mod envelope;
mod error;
#[cfg(test)]
mod message_tests;
mod oid;
mod request;
mod response;
mod signed;
#[cfg(test)]
mod testutil;

use base64::Engine as _;
use openssl::x509::X509Ref;

pub use ca::{CaKeyType, IssueParams, issue_identity, new_ca, new_ra};
pub use error::{FailInfo, ScepError};
pub use request::{
    ContentCipher, DecodeOptions, DigestAlgorithm, MessageType, PkiRequest, ReplyTo, decode_request,
    decode_request_for, decode_request_with,
};
pub use response::{cert_rep_failure, cert_rep_success};

/// `Content-Type` of a `PKIOperation` answer (a `CertRep`).
pub const CONTENT_TYPE_PKI_MESSAGE: &str = "application/x-pki-message";
/// `Content-Type` of a `GetCACert` answer holding one DER certificate ([`ca_cert_der`]).
pub const CONTENT_TYPE_CA_CERT: &str = "application/x-x509-ca-cert";
/// `Content-Type` of a `GetCACert` answer holding a certificates-only PKCS#7 of the CA and
/// its chain or RA certificates ([`ca_certs_pkcs7`]).
pub const CONTENT_TYPE_CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
/// `Content-Type` of a `GetCACaps` answer ([`caps`]).
pub const CONTENT_TYPE_CAPS: &str = "text/plain";

/// The largest `PKIOperation` message accepted. Real ones are 2 to 5 KiB.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// The `GetCACaps` answer: what this CA supports, one keyword per line (RFC 8894 §3.5.2).
///
/// * `Renewal`: a device may renew by signing a `RenewalReq` with its current identity;
/// * `SHA-256`, `SHA-384`, `SHA-512`, `AES`: the digests and content cipher devices should
///   use (SHA-1, AES-192 and triple DES are accepted too, for older clients, but not
///   advertised). Listing SHA-384 is also what lets strongSwan 5.9 (Debian 12) enroll: it
///   tests its capability bits with the wrong masks, and finds SHA-256 and AES through the
///   SHA-384 bit;
/// * `POSTPKIOperation`: requests may be POSTed rather than squeezed into a URL;
/// * `SCEPStandard`: all of RFC 8894's required features (AES, SHA-256, POST).
pub fn caps() -> &'static str {
    "Renewal\nSHA-256\nSHA-384\nSHA-512\nAES\nPOSTPKIOperation\nSCEPStandard"
}

/// The `GetCACert` answer for a CA without intermediates or RA: the CA certificate in DER,
/// served as [`CONTENT_TYPE_CA_CERT`].
///
/// With a chain or a separate RA certificate, the answer would instead be a degenerate
/// (certificates-only) PKCS#7 served as [`CONTENT_TYPE_CA_RA_CERT`]: see [`ca_certs_pkcs7`].
pub fn ca_cert_der(ca_cert: &X509Ref) -> Result<Vec<u8>, ScepError> {
    ca_cert.to_der().map_err(|e| ScepError::Crypto {
        detail: format!("encoding the CA certificate failed: {}", error::openssl_reasons(&e)),
    })
}

/// The `GetCACert` answer for a CA with a chain or RA certificates: a certificates-only CMS
/// SignedData (DER) holding `certs` in the given order, served as [`CONTENT_TYPE_CA_RA_CERT`].
/// RFC 8894 §4.2.1.2 wants the certificate the device encrypts to (the RA's, or else the
/// issuing CA's) first.
pub fn ca_certs_pkcs7(certs: &[&X509Ref]) -> Result<Vec<u8>, ScepError> {
    if certs.is_empty() {
        return Err(ScepError::InvalidArgument {
            detail: "a GetCACert answer needs at least one certificate".into(),
        });
    }
    signed::certs_only(certs)
}

/// The SCEP `operation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetCaCaps,
    GetCaCert,
    /// Asked by clients that look for a CA certificate roll-over; Russet has none to offer.
    GetNextCaCert,
    PkiOperation,
}

impl Operation {
    /// Reads the `operation` parameter. Clients spell it exactly as RFC 8894 does; `None` for
    /// anything else.
    pub fn parse(value: &str) -> Option<Operation> {
        match value {
            "GetCACaps" => Some(Operation::GetCaCaps),
            "GetCACert" => Some(Operation::GetCaCert),
            "GetNextCACert" => Some(Operation::GetNextCaCert),
            "PKIOperation" => Some(Operation::PkiOperation),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::GetCaCaps => "GetCACaps",
            Operation::GetCaCert => "GetCACert",
            Operation::GetNextCaCert => "GetNextCACert",
            Operation::PkiOperation => "PKIOperation",
        }
    }
}

/// Decodes the `message` query parameter of a `GET …?operation=PKIOperation&message=…`
/// (after URL percent-decoding). Clients use standard or URL-safe base64, with or without
/// padding, and some leave `+` unescaped, which form decoding turns into a space: all of
/// these are accepted. The result is the DER/BER message for [`decode_request`].
pub fn decode_message_param(value: &str) -> Result<Vec<u8>, ScepError> {
    let cleaned: String = value
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| match c {
            ' ' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim_end_matches('=');
    if trimmed.len() > MAX_MESSAGE_SIZE / 3 * 4 + 4 {
        return Err(ScepError::Malformed {
            detail: format!(
                "the message parameter is {} characters long, more than a {MAX_MESSAGE_SIZE}-byte message needs",
                value.len()
            ),
        });
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|e| ScepError::Malformed {
            detail: format!("the message parameter is not base64 ({e})"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_one_per_line() {
        let lines: Vec<&str> = caps().lines().collect();
        for want in [
            "Renewal",
            "SHA-256",
            "SHA-384",
            "SHA-512",
            "AES",
            "POSTPKIOperation",
            "SCEPStandard",
        ] {
            assert!(lines.contains(&want), "{want} missing from {lines:?}");
        }
        assert!(lines.iter().all(|l| !l.trim().is_empty() && l.trim() == *l));
    }

    #[test]
    fn operations_round_trip() {
        for op in [
            Operation::GetCaCaps,
            Operation::GetCaCert,
            Operation::GetNextCaCert,
            Operation::PkiOperation,
        ] {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operation::parse("getcacaps"), None);
        assert_eq!(Operation::parse(""), None);
    }

    #[test]
    fn message_parameter_in_every_base64_dialect() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert!(std.contains('+') && std.contains('/'));
        assert_eq!(decode_message_param(&std).unwrap(), bytes);
        assert_eq!(decode_message_param(&url).unwrap(), bytes);
        assert_eq!(decode_message_param(&std.replace('+', " ")).unwrap(), bytes);
        let wrapped: String = std
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(decode_message_param(&wrapped).unwrap(), bytes);
        assert!(matches!(
            decode_message_param("not*base64"),
            Err(ScepError::Malformed { .. })
        ));
        let huge = "A".repeat(MAX_MESSAGE_SIZE * 2);
        assert!(matches!(decode_message_param(&huge), Err(ScepError::Malformed { .. })));
    }
}
