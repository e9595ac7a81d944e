//! What can go wrong in SCEP, and how each failure should be answered.

use std::fmt;

use openssl::error::ErrorStack;

use super::request::ReplyTo;

/// The reason a `CertRep` gives for a `FAILURE` (RFC 8894 §3.2.1.4, `failInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Integrity check (signature) failed, or the message could not be opened.
    BadMessageCheck,
    /// The transaction is not permitted or not supported (wrong challenge, refused key, …).
    BadRequest,
    /// The signingTime attribute was not close enough to the CA's time.
    BadTime,
    /// No certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    /// The number carried in the `failInfo` attribute.
    pub fn code(&self) -> u8 {
        match self {
            FailInfo::BadAlg => 0,
            FailInfo::BadMessageCheck => 1,
            FailInfo::BadRequest => 2,
            FailInfo::BadTime => 3,
            FailInfo::BadCertId => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<FailInfo> {
        Some(match code {
            0 => FailInfo::BadAlg,
            1 => FailInfo::BadMessageCheck,
            2 => FailInfo::BadRequest,
            3 => FailInfo::BadTime,
            4 => FailInfo::BadCertId,
            _ => return None,
        })
    }

    /// RFC 8894's name: `badAlg`, `badMessageCheck`, ….
    pub fn as_str(&self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
        }
    }
}

impl fmt::Display for FailInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a SCEP operation failed.
///
/// Errors from [`decode_request`](super::decode_request) come in two kinds. Those raised
/// before the request's transaction ID and nonce could be read ([`NotSignedData`],
/// [`Malformed`]) cannot be answered with a `CertRep`: answer HTTP 400. The others carry a
/// [`ReplyTo`] ([`ScepError::reply_to`]) and a [`FailInfo`] ([`ScepError::fail_info`]), so
/// the device gets a `FAILURE` it understands (and shows) instead of retrying blindly.
///
/// [`NotSignedData`]: ScepError::NotSignedData
/// [`Malformed`]: ScepError::Malformed
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScepError {
    /// The body is not a CMS SignedData at all: not a SCEP `PKIOperation` message.
    #[error(
        "the PKIOperation body is not a SCEP message ({detail}); a SCEP client sends a CMS \
         SignedData, as DER in a POST body or base64 in the GET 'message' parameter"
    )]
    NotSignedData { detail: String },

    /// A SignedData whose structure is damaged or which lacks the SCEP attributes needed to
    /// answer it (transaction ID, sender nonce, message type).
    #[error("the SCEP message is damaged or incomplete ({detail}); the client must send a new request")]
    Malformed { detail: String },

    /// The signature over the request does not verify with the certificate it names, or that
    /// certificate is not in the message. Answer `FAILURE`/`badMessageCheck`.
    #[error(
        "the SCEP request's signature does not verify ({detail}): it was altered on the way or \
         was not made by the certificate it carries"
    )]
    BadSignature { detail: String, reply_to: Box<ReplyTo> },

    /// A message type other than PKCSReq (19) or RenewalReq (17). Answer
    /// `FAILURE`/`badRequest`.
    #[error(
        "the SCEP message type {message_type} is not supported; Russet answers PKCSReq (19) \
         and RenewalReq (17), issues at once and never asks a client to poll"
    )]
    UnsupportedMessageType {
        message_type: String,
        reply_to: Box<ReplyTo>,
    },

    /// A digest or content cipher this CA does not accept. Answer `FAILURE`/`badAlg`.
    #[error(
        "the SCEP request uses {detail}; use SHA-256 and AES, as the CA's GetCACaps answer \
         advertises"
    )]
    UnsupportedAlgorithm { detail: String, reply_to: Box<ReplyTo> },

    /// The request is encrypted to some other certificate: the device fetched another CA's
    /// certificate, or the CA was replaced since. Answer `FAILURE`/`badMessageCheck`.
    #[error(
        "the SCEP request is encrypted for another certificate ({recipients}), not for this \
         CA: the client must fetch the CA certificate again (GetCACert) and retry; a device \
         keeps the CA certificate of the profile it was given, so reinstall the profile"
    )]
    NotForThisCa { recipients: String, reply_to: Box<ReplyTo> },

    /// The encrypted part cannot be opened with the CA key, or is not an EnvelopedData.
    /// Answer `FAILURE`/`badMessageCheck`.
    #[error(
        "the SCEP request's encrypted part cannot be opened ({detail}); the client must send a \
         new request"
    )]
    BadEnvelope { detail: String, reply_to: Box<ReplyTo> },

    /// The certificate request inside is unreadable, its signature does not verify, or its key
    /// is refused (RSA under 2048 bits, an unsupported key type). Answer `FAILURE`/`badRequest`.
    /// `reply_to` is absent when the error comes from [`issue_identity`](super::issue_identity).
    #[error("the certificate signing request is refused: {detail}")]
    BadCsr {
        detail: String,
        reply_to: Option<Box<ReplyTo>>,
    },

    /// The caller passed something unusable (an empty name, a zero lifetime, a key that does
    /// not belong to the CA certificate, an expired CA). A bug or a configuration problem on
    /// the server side, not the device's fault.
    #[error("SCEP CA: {detail}")]
    InvalidArgument { detail: String },

    /// OpenSSL failed to do something that should work (generate a key, sign, encrypt).
    #[error("SCEP CA: {detail}")]
    Crypto { detail: String },
}

impl ScepError {
    /// What a `FAILURE` answer to this error must echo, when one can be given.
    pub fn reply_to(&self) -> Option<&ReplyTo> {
        match self {
            ScepError::BadSignature { reply_to, .. }
            | ScepError::UnsupportedMessageType { reply_to, .. }
            | ScepError::UnsupportedAlgorithm { reply_to, .. }
            | ScepError::NotForThisCa { reply_to, .. }
            | ScepError::BadEnvelope { reply_to, .. } => Some(reply_to),
            ScepError::BadCsr { reply_to, .. } => reply_to.as_deref(),
            ScepError::NotSignedData { .. }
            | ScepError::Malformed { .. }
            | ScepError::InvalidArgument { .. }
            | ScepError::Crypto { .. } => None,
        }
    }

    /// The `failInfo` a `FAILURE` answer to this error should carry; `None` for errors that
    /// are not the device's doing or cannot be answered with a `CertRep`.
    pub fn fail_info(&self) -> Option<FailInfo> {
        match self {
            ScepError::BadSignature { .. } | ScepError::NotForThisCa { .. } | ScepError::BadEnvelope { .. } => {
                Some(FailInfo::BadMessageCheck)
            }
            ScepError::UnsupportedMessageType { .. } | ScepError::BadCsr { .. } => Some(FailInfo::BadRequest),
            ScepError::UnsupportedAlgorithm { .. } => Some(FailInfo::BadAlg),
            ScepError::NotSignedData { .. }
            | ScepError::Malformed { .. }
            | ScepError::InvalidArgument { .. }
            | ScepError::Crypto { .. } => None,
        }
    }
}

impl From<crate::ber::BerError> for ScepError {
    fn from(e: crate::ber::BerError) -> Self {
        ScepError::Malformed { detail: e.to_string() }
    }
}

/// The reasons OpenSSL gives, without file and line noise.
pub(crate) fn openssl_reasons(e: &ErrorStack) -> String {
    let reasons: Vec<&str> = e.errors().iter().filter_map(|e| e.reason()).collect();
    if reasons.is_empty() {
        "OpenSSL gave no reason".to_owned()
    } else {
        format!("OpenSSL reports: {}", reasons.join("; "))
    }
}

/// Maps an OpenSSL failure in something that should not fail to [`ScepError::Crypto`].
pub(crate) fn crypto(what: &'static str) -> impl FnOnce(ErrorStack) -> ScepError {
    move |e| ScepError::Crypto {
        detail: format!("{what} failed: {}", openssl_reasons(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_info_codes() {
        for code in 0..=4 {
            let info = FailInfo::from_code(code).unwrap();
            assert_eq!(info.code(), code);
        }
        assert_eq!(FailInfo::from_code(5), None);
        assert_eq!(FailInfo::BadMessageCheck.to_string(), "badMessageCheck");
    }
}
