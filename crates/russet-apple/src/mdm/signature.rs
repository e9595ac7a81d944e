//! Who is behind an MDM request: the device's identity certificate and its checks.
//!
//! A device proves its identity in one of two ways (Apple: "Managing certificates for MDM
//! servers and devices"):
//!
//! * **`Mdm-Signature`** — when the enrollment profile sets `SignMessage`, every check-in and
//!   command request carries this header: the base64 of a CMS SignedData whose content, left
//!   out (detached), is exactly the request body. [`verify_mdm_signature`] checks the
//!   signature over the body and returns the signer's certificate. Devices and the Go tools
//!   sign with SHA-1 or SHA-256 and signed attributes; some produce BER.
//! * **TLS client authentication** — when TLS ends at a proxy, the proxy forwards the
//!   certificate in a header: RFC 9440 `Client-Cert` (`:base64(DER):`) or nginx's
//!   `$ssl_client_escaped_cert` (URL-escaped PEM). [`client_cert_from_header`] reads both.
//!
//! Either way the certificate is then checked with [`verify_device_identity`]: it must chain
//! to Russet's SCEP certificate authority, be valid at the time the caller gives (this crate
//! has no clock), and allow TLS client authentication (extendedKeyUsage `clientAuth`, which
//! nanomdm also requires). The result, [`IdentityInfo`], carries the SHA-256 of the
//! certificate, which the server pins to the enrollment at `Authenticate`.

pub(crate) mod signed_data;
mod verifier;

pub use verifier::{SignatureVerifier, VerifierCounts};

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509ExtendedKeyUsage, X509PurposeId, X509Ref, X509StoreContext};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dn::display_name;
use crate::server_token::openssl_reasons;
use signed_data::OutlineError;

/// The longest header value accepted (`Mdm-Signature` or a forwarded certificate). Real ones
/// are 2 to 4 KiB; a signature carrying a chain of a few certificates stays well under this.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Base64 as devices and proxies write it: standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a device's identity was not accepted.
///
/// The server answers a device with HTTP 400 for all of these (never 401, which would make an
/// enrolled device unenroll) and logs the message, which is written for its operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdmIdentityError {
    /// The header is empty or only whitespace.
    #[error(
        "the {header} header is empty: the device or the proxy in front of Russet sent no \
         identity; check that the enrollment profile sets SignMessage, or that the proxy \
         forwards the TLS client certificate"
    )]
    EmptyHeader { header: &'static str },

    /// The header is longer than [`MAX_HEADER_LEN`].
    #[error(
        "the {header} header is {size} bytes, more than the {MAX_HEADER_LEN} accepted; a \
         device's is a few kilobytes, so this request was not made by an enrolled device"
    )]
    HeaderTooLarge { header: &'static str, size: usize },

    /// `Mdm-Signature` is not base64.
    #[error(
        "the Mdm-Signature header is not base64 ({detail}); a device sends the base64 of a CMS \
         signature: if a proxy is in front of Russet, check that it passes the header unchanged"
    )]
    NotBase64 { detail: String },

    /// The decoded `Mdm-Signature` is not a CMS / PKCS#7 structure.
    #[error(
        "the Mdm-Signature header does not hold a CMS signature ({detail}); the request was \
         not signed by an enrolled device"
    )]
    NotCms { detail: String },

    /// A CMS structure, but not a signature.
    #[error(
        "the Mdm-Signature header holds a CMS message that is not a signature ({content_type}); \
         the request was not signed by an enrolled device"
    )]
    NotSignedData { content_type: String },

    /// The signature carries its own content; `Mdm-Signature` is detached.
    #[error(
        "the Mdm-Signature header carries signed content of its own, while a device's signature \
         leaves the content out (it is the request body); the request was not made by an \
         enrolled device"
    )]
    ContentAttached,

    /// The signature has no signer.
    #[error(
        "the Mdm-Signature header holds a CMS signature without any signer, so it proves no \
         identity; the request was not made by an enrolled device"
    )]
    NoSigner,

    /// More than one signer: a device signs alone.
    #[error(
        "the Mdm-Signature header holds {count} signers where a device signs alone; the \
         request was refused because it is unclear which identity it speaks for"
    )]
    ManySigners { count: usize },

    /// The signer used a digest algorithm that is not accepted (MD5, or an unknown one).
    #[error(
        "the Mdm-Signature signature uses the digest algorithm {algorithm}, which Russet does \
         not accept (SHA-1 and SHA-2 are); the request was not signed by an Apple device"
    )]
    UnsupportedDigest { algorithm: String },

    /// The signer's certificate is not in the signature.
    #[error(
        "the Mdm-Signature signature does not carry the signer's certificate, which devices \
         always include; the request cannot be attributed to a device"
    )]
    SignerCertificateMissing,

    /// The signature does not match the body: the body or the signature was altered.
    #[error(
        "the Mdm-Signature signature does not match the request body ({detail}): the body was \
         changed after signing (a proxy that rewrites bodies does this) or the signature was made \
         for another request"
    )]
    SignatureMismatch { detail: String },

    /// A forwarded client certificate header is in neither accepted form.
    #[error(
        "the client certificate header cannot be read ({detail}); Russet accepts RFC 9440 \
         (:base64 of the DER:) or URL-escaped PEM as nginx's $ssl_client_escaped_cert gives: \
         configure the proxy to send one of these"
    )]
    BadClientCertHeader { detail: String },

    /// A certificate cannot be parsed.
    #[error("the device's certificate cannot be read ({detail}); it is damaged or not a certificate")]
    BadCertificate { detail: String },

    /// No CA certificate to check against (a configuration problem).
    #[error(
        "no certificate authority was given to check device identities against; Russet's SCEP \
         certificate authority must be set up before devices can enroll"
    )]
    NoCaCertificates,

    /// The certificate's validity starts after `now`.
    #[error(
        "the device's certificate ({subject}) is not valid before {}, and it is {} now: check \
         the clocks of the server and of the certificate authority",
        Rfc3339Display(not_before),
        Rfc3339Display(now)
    )]
    NotYetValid {
        subject: String,
        not_before: OffsetDateTime,
        now: OffsetDateTime,
    },

    /// The certificate expired before `now`.
    #[error(
        "the device's certificate ({subject}) expired on {}; the device must renew its identity \
         (re-enroll it, or have it renew through SCEP before expiry)",
        Rfc3339Display(not_after)
    )]
    Expired {
        subject: String,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    },

    /// The certificate does not allow TLS client authentication.
    #[error(
        "the device's certificate ({subject}) {}, so it is not a device identity: Russet's SCEP \
         certificate authority issues identities with clientAuth",
        if *eku_present { "lists extended key usages without clientAuth" } else { "has no extended key usage" }
    )]
    NoClientAuth { subject: String, eku_present: bool },

    /// The certificate does not chain to any of the given certificate authorities.
    #[error(
        "the device's certificate ({subject}) was not issued by Russet's certificate authority \
         ({detail}); the device must enroll again to get an identity from Russet"
    )]
    Untrusted { subject: String, detail: String },

    /// OpenSSL failed on something that is not about the input (memory, a broken library).
    #[error("the device's identity could not be checked because OpenSSL failed ({detail}); this is a server problem")]
    Crypto { detail: String },
}

struct Rfc3339Display<'a>(&'a OffsetDateTime);

impl fmt::Display for Rfc3339Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

fn crypto(e: openssl::error::ErrorStack) -> MdmIdentityError {
    MdmIdentityError::Crypto {
        detail: openssl_reasons(&e),
    }
}

/// A device's identity certificate as a request presented it: its DER and SHA-256, parsed
/// only when needed (a certificate already pinned to its device needs no parsing).
#[derive(Clone, Debug)]
pub struct DeviceCertificate {
    der: std::sync::Arc<[u8]>,
    sha256: [u8; 32],
    sha256_hex: std::sync::Arc<str>,
    /// The certificate, when the request's check already parsed it.
    parsed: Option<X509>,
}

impl DeviceCertificate {
    /// The identity of a parsed certificate.
    pub fn from_certificate(cert: X509) -> Result<DeviceCertificate, MdmIdentityError> {
        let der = cert.to_der().map_err(crypto)?;
        let sha256 = openssl::sha::sha256(&der);
        Ok(DeviceCertificate {
            der: der.into(),
            sha256,
            sha256_hex: hex::encode(sha256).into(),
            parsed: Some(cert),
        })
    }

    pub(crate) fn known(
        der: std::sync::Arc<[u8]>,
        sha256: [u8; 32],
        sha256_hex: std::sync::Arc<str>,
    ) -> DeviceCertificate {
        DeviceCertificate {
            der,
            sha256,
            sha256_hex,
            parsed: None,
        }
    }

    /// SHA-256 of the certificate's DER, lowercase hex (as [`cert_sha256_hex`]).
    pub fn sha256_hex(&self) -> &str {
        &self.sha256_hex
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, parsed (once).
    pub fn certificate(&self) -> Result<X509, MdmIdentityError> {
        match &self.parsed {
            Some(cert) => Ok(cert.clone()),
            None => verifier::parse(&self.der),
        }
    }
}

/// The DER of the CMS structure in an `Mdm-Signature` header value.
fn decode_signature_header(header_value: &str) -> Result<Vec<u8>, MdmIdentityError> {
    const HEADER: &str = "Mdm-Signature";
    if header_value.len() > MAX_HEADER_LEN {
        return Err(MdmIdentityError::HeaderTooLarge {
            header: HEADER,
            size: header_value.len(),
        });
    }
    let compact: String = header_value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(MdmIdentityError::EmptyHeader { header: HEADER });
    }
    BASE64
        .decode(compact.as_bytes())
        .map_err(|e| MdmIdentityError::NotBase64 { detail: e.to_string() })
}

fn outline_error(e: OutlineError) -> MdmIdentityError {
    match e {
        OutlineError::NotCms(detail) => MdmIdentityError::NotCms { detail },
        OutlineError::NotSignedData(content_type) => MdmIdentityError::NotSignedData { content_type },
        OutlineError::Malformed(detail) => MdmIdentityError::NotCms {
            detail: format!("the signature is damaged: {detail}"),
        },
    }
}

/// The one signer of a device's signature, with an accepted digest, over detached content.
fn device_signer(
    signers: &[signed_data::Signer],
    content_attached: bool,
) -> Result<&signed_data::Signer, MdmIdentityError> {
    let signer = match signers {
        [] => return Err(MdmIdentityError::NoSigner),
        [one] => one,
        many => return Err(MdmIdentityError::ManySigners { count: many.len() }),
    };
    if signed_data::accepted_digest(&signer.digest_oid).is_none() {
        return Err(MdmIdentityError::UnsupportedDigest {
            algorithm: signed_data::digest_display(&signer.digest_oid),
        });
    }
    if content_attached {
        return Err(MdmIdentityError::ContentAttached);
    }
    Ok(signer)
}

/// OpenSSL's CMS verification of the detached signature `der` over `body` by `cert`.
fn cms_verify(der: &[u8], cert: &X509, body: &[u8]) -> Result<(), MdmIdentityError> {
    let mut cms = CmsContentInfo::from_der(der).map_err(|e| MdmIdentityError::NotCms {
        detail: format!("OpenSSL cannot read it: {}", openssl_reasons(&e)),
    })?;
    // Only the signer's own certificate is offered, and the embedded ones are not searched
    // (NOINTERN), so OpenSSL checks the very certificate the caller names.
    let mut signer_only = Stack::new().map_err(crypto)?;
    signer_only.push(cert.clone()).map_err(crypto)?;
    cms.verify(
        Some(&signer_only),
        None,
        Some(body),
        None,
        CMSOptions::BINARY | CMSOptions::NOVERIFY | CMSOptions::NOINTERN,
    )
    .map_err(|e| MdmIdentityError::SignatureMismatch {
        detail: openssl_reasons(&e),
    })
}

/// Checks an `Mdm-Signature` header against the exact request body and returns the signer's
/// certificate.
///
/// The header is base64 (whitespace anywhere is ignored, padding is optional) of a CMS or
/// PKCS#7 SignedData in DER or BER, with detached content, exactly one signer whose digest is
/// SHA-1 or SHA-2, and the signer's certificate embedded. OpenSSL checks the signature and the
/// `messageDigest` attribute over `body` byte for byte (`CMS_BINARY`). The certificate chain is
/// **not** checked here (`CMS_NOVERIFY`): pass the result to [`verify_device_identity`].
///
/// A server checking many requests uses a [`SignatureVerifier`], which gives the same answers
/// much faster for certificates it has seen.
pub fn verify_mdm_signature(header_value: &str, body: &[u8]) -> Result<X509, MdmIdentityError> {
    let der = decode_signature_header(header_value)?;
    let outline = signed_data::read(&der).map_err(outline_error)?;
    let signer = device_signer(&outline.signers, outline.content_attached)?;
    let Some(cert) = outline.certificate_of(signer) else {
        return Err(MdmIdentityError::SignerCertificateMissing);
    };
    cms_verify(&der, cert, body)?;
    Ok(cert.clone())
}

/// Reads the client certificate a TLS-terminating proxy forwards in a header.
///
/// Two forms are accepted:
///
/// * RFC 9440 `Client-Cert`: `:` + base64 of the DER + `:` (padding optional);
/// * URL-escaped PEM, as nginx's `$ssl_client_escaped_cert` gives (`-----BEGIN%20CERTIFICATE
///   -----%0AMII…`). Plain PEM passes too, and so does the form-encoded variant where spaces
///   are `+` (`-----BEGIN+CERTIFICATE-----`).
///
/// The certificate is only parsed: check it with [`verify_device_identity`].
pub fn client_cert_from_header(value: &str) -> Result<X509, MdmIdentityError> {
    const HEADER: &str = "client certificate";
    if value.len() > MAX_HEADER_LEN {
        return Err(MdmIdentityError::HeaderTooLarge {
            header: HEADER,
            size: value.len(),
        });
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(MdmIdentityError::EmptyHeader { header: HEADER });
    }
    if let Some(inner) = value.strip_prefix(':') {
        let inner = inner
            .strip_suffix(':')
            .ok_or_else(|| MdmIdentityError::BadClientCertHeader {
                detail: "it starts with ':' as RFC 9440 does, but does not end with ':'".into(),
            })?;
        let der = BASE64
            .decode(inner.trim().as_bytes())
            .map_err(|e| MdmIdentityError::BadClientCertHeader {
                detail: format!("the RFC 9440 value is not base64: {e}"),
            })?;
        return X509::from_der(&der).map_err(|e| MdmIdentityError::BadCertificate {
            detail: format!("the RFC 9440 value is not a DER certificate: {}", openssl_reasons(&e)),
        });
    }
    // Form encoding writes spaces as '+'; in escaped PEM a real '+' is "%2B", so a '+' in the
    // header line can only stand for a space.
    let value = if value.contains("BEGIN+CERTIFICATE") {
        value.replace('+', " ")
    } else {
        value.to_owned()
    };
    let pem = percent_encoding::percent_decode_str(&value)
        .decode_utf8()
        .map_err(|_| MdmIdentityError::BadClientCertHeader {
            detail: "the URL-escaped value does not decode to text".into(),
        })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(MdmIdentityError::BadClientCertHeader {
            detail: "it is neither RFC 9440 (:base64:) nor a PEM certificate".into(),
        });
    }
    X509::from_pem(pem.as_bytes()).map_err(|e| MdmIdentityError::BadCertificate {
        detail: format!("the PEM certificate cannot be parsed: {}", openssl_reasons(&e)),
    })
}

/// What the server needs to know about a verified device identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo {
    /// SHA-256 of the certificate's DER, lowercase hex: the value pinned to an enrollment
    /// (nanomdm's `cert_auth_associations` uses the same form).
    pub sha256_hex: String,
    /// The serial number in uppercase hex as OpenSSL prints it (`-` first when negative).
    pub serial_hex: String,
    /// The subject, most specific attribute first: `CN=…, O=…`.
    pub subject: String,
    /// The end of the certificate's validity.
    pub not_after: OffsetDateTime,
}

/// The SHA-256 of a certificate's DER encoding, lowercase hex.
pub fn cert_sha256_hex(cert: &X509Ref) -> Result<String, MdmIdentityError> {
    let digest = cert.digest(MessageDigest::sha256()).map_err(crypto)?;
    Ok(hex::encode(digest))
}

/// Checks a device identity certificate: it is valid at `now`, allows TLS client
/// authentication, and chains to one of `ca_certs`.
///
/// Same as [`verify_device_identity_with_intermediates`] without intermediates.
pub fn verify_device_identity(
    cert: &X509Ref,
    ca_certs: &[X509],
    now: OffsetDateTime,
) -> Result<IdentityInfo, MdmIdentityError> {
    verify_device_identity_with_intermediates(cert, ca_certs, &[], now)
}

/// Checks a device identity certificate, in this order:
///
/// 1. validity: `not_before <= now <= not_after`, with the caller's `now` (never the system
///    clock) — [`MdmIdentityError::NotYetValid`], [`MdmIdentityError::Expired`];
/// 2. extendedKeyUsage lists `clientAuth` (a certificate without the extension is refused,
///    as nanomdm's verifier requires the usage) — [`MdmIdentityError::NoClientAuth`];
/// 3. the chain, built by OpenSSL from `cert` through `intermediates` (untrusted helpers) to
///    one of `ca_certs` (the trust anchors: Russet's SCEP CA, which may itself be an
///    intermediate CA, so the chain may end at any of them), with every certificate's
///    validity checked at `now` and the TLS client purpose — [`MdmIdentityError::Untrusted`].
pub fn verify_device_identity_with_intermediates(
    cert: &X509Ref,
    ca_certs: &[X509],
    intermediates: &[X509],
    now: OffsetDateTime,
) -> Result<IdentityInfo, MdmIdentityError> {
    if ca_certs.is_empty() {
        return Err(MdmIdentityError::NoCaCertificates);
    }
    let subject = display_name(cert.subject_name());
    let not_before = asn1_to_datetime(cert.not_before())?;
    let not_after = asn1_to_datetime(cert.not_after())?;
    if now < not_before {
        return Err(MdmIdentityError::NotYetValid {
            subject,
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(MdmIdentityError::Expired {
            subject,
            not_after,
            now,
        });
    }
    match cert.extended_key_usage() {
        Some(usages) if usages.contains(X509ExtendedKeyUsage::SSL_CLIENT) => {}
        other => {
            return Err(MdmIdentityError::NoClientAuth {
                subject,
                eku_present: other.is_some(),
            });
        }
    }

    let mut store = X509StoreBuilder::new().map_err(crypto)?;
    for ca in ca_certs {
        store.add_cert(ca.clone()).map_err(crypto)?;
    }
    let mut param = X509VerifyParam::new().map_err(crypto)?;
    param.set_time(now.unix_timestamp());
    param
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::USE_CHECK_TIME)
        .map_err(crypto)?;
    param.set_purpose(X509PurposeId::SSL_CLIENT).map_err(crypto)?;
    store.set_param(&param).map_err(crypto)?;
    let store = store.build();
    let mut chain = Stack::new().map_err(crypto)?;
    for c in intermediates {
        chain.push(c.clone()).map_err(crypto)?;
    }
    let mut context = X509StoreContext::new().map_err(crypto)?;
    let outcome = context
        .init(&store, cert, &chain, |ctx| {
            let ok = ctx.verify_cert()?;
            let at = ctx.current_cert().map(|c| display_name(c.subject_name()));
            Ok((ok, ctx.error(), ctx.error_depth(), at))
        })
        .map_err(crypto)?;
    let (ok, error, depth, at) = outcome;
    if !ok {
        let detail = match (depth, at) {
            (0, _) | (_, None) => error.error_string().to_owned(),
            (_, Some(at)) => format!("{} at the issuing certificate {at}", error.error_string()),
        };
        return Err(MdmIdentityError::Untrusted { subject, detail });
    }

    Ok(IdentityInfo {
        sha256_hex: cert_sha256_hex(cert)?,
        serial_hex: serial_hex(cert)?,
        subject,
        not_after,
    })
}

fn serial_hex(cert: &X509Ref) -> Result<String, MdmIdentityError> {
    let bn = cert.serial_number().to_bn().map_err(crypto)?;
    let hex = bn.to_hex_str().map_err(crypto)?;
    Ok(hex.to_string())
}

/// An ASN.1 time as an `OffsetDateTime` (UTC).
pub(crate) fn asn1_to_datetime(t: &Asn1TimeRef) -> Result<OffsetDateTime, MdmIdentityError> {
    let epoch = Asn1Time::from_unix(0).map_err(crypto)?;
    let diff = epoch.diff(t).map_err(|e| MdmIdentityError::BadCertificate {
        detail: format!("a validity date cannot be read: {}", openssl_reasons(&e)),
    })?;
    let seconds = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| MdmIdentityError::BadCertificate {
        detail: format!("a validity date ({t}) is out of range"),
    })
}
