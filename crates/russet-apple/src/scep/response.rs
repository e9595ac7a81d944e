//! Building the `CertRep` (messageType 3) that answers a `PKIOperation`.
//!
//! Every answer is a SignedData by the CA whose signed attributes echo the request's
//! transactionID and senderNonce (as recipientNonce), carry a fresh senderNonce, and give the
//! pkiStatus (and failInfo). A `SUCCESS` signs an EnvelopedData, encrypted to the request's
//! signer certificate with the request's content cipher, around a certificates-only
//! SignedData holding the issued certificate. A `FAILURE` signs no content (RFC 8894 §3.3.2).
//! Both carry the CA certificate, with which clients check the signature.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;

use super::error::{FailInfo, ScepError, crypto};
use super::request::{PkiRequest, ReplyTo, check_ca};
use super::{der, oid, signed};

/// The length of the CA's senderNonce, as RFC 8894 specifies.
const NONCE_LEN: usize = 16;

/// pkiStatus values.
const STATUS_SUCCESS: &str = "0";
const STATUS_FAILURE: &str = "2";

/// The `SUCCESS` answer delivering `issued` (from [`issue_identity`](super::issue_identity))
/// to the device: serve it with `Content-Type:` [`CONTENT_TYPE_PKI_MESSAGE`](super::CONTENT_TYPE_PKI_MESSAGE).
///
/// The certificate is encrypted to `req.signer` with `req.content_cipher` and the answer is
/// signed with `req.digest`, so that whatever the client could send it can read.
pub fn cert_rep_success(
    req: &PkiRequest,
    issued: &X509,
    ca_cert: &X509,
    ca_key: &PKey<Private>,
) -> Result<Vec<u8>, ScepError> {
    check_ca(ca_cert, ca_key)?;
    let issued_key = issued
        .public_key()
        .map_err(crypto("reading the issued certificate's key"))?;
    let csr_key = req.csr.public_key().map_err(crypto("reading the request's key"))?;
    if !issued_key.public_eq(&csr_key) {
        return Err(ScepError::InvalidArgument {
            detail: "the certificate to deliver is not for the key in this request; issue it from req.csr".into(),
        });
    }
    let certs_only = signed::certs_only(&[issued])?;
    let mut recipients = Stack::new().map_err(crypto("preparing the answer's envelope"))?;
    recipients
        .push(req.signer.clone())
        .map_err(crypto("preparing the answer's envelope"))?;
    let envelope = CmsContentInfo::encrypt(
        &recipients,
        &certs_only,
        req.content_cipher.cipher(),
        CMSOptions::BINARY,
    )
    .and_then(|cms| cms.to_der())
    .map_err(crypto("encrypting the certificate to the device"))?;
    let to = req.reply_to();
    // The issued certificate also goes first among the answer's own certificates, where
    // some clients look for it (micromdm's server does the same, and Apple devices are
    // used to it); the CA certificate follows, for checking the signature.
    signed::sign(
        Some(&envelope),
        attributes(&to, STATUS_SUCCESS, None)?,
        to.digest,
        &[issued],
        ca_cert,
        ca_key,
    )
}

/// The `FAILURE` answer: serve it with `Content-Type:`
/// [`CONTENT_TYPE_PKI_MESSAGE`](super::CONTENT_TYPE_PKI_MESSAGE) and status 200, like a success.
/// `to` is the request (`&req`) or, for a request that failed to decode, the error's
/// [`ScepError::reply_to`].
pub fn cert_rep_failure(
    to: impl Into<ReplyTo>,
    fail_info: FailInfo,
    ca_cert: &X509,
    ca_key: &PKey<Private>,
) -> Result<Vec<u8>, ScepError> {
    check_ca(ca_cert, ca_key)?;
    let to = to.into();
    signed::sign(
        None,
        attributes(&to, STATUS_FAILURE, Some(fail_info))?,
        to.digest,
        &[],
        ca_cert,
        ca_key,
    )
}

/// The SCEP signed attributes of a `CertRep` (contentType and messageDigest are added when
/// signing).
fn attributes(to: &ReplyTo, status: &str, fail_info: Option<FailInfo>) -> Result<Vec<Vec<u8>>, ScepError> {
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).map_err(crypto("making a nonce"))?;
    let mut attrs = vec![
        der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable("3")),
        der::attribute(oid::SCEP_PKI_STATUS, der::printable(status)),
        der::attribute(oid::SCEP_TRANSACTION_ID, der::text(&to.transaction_id)),
        der::attribute(oid::SCEP_SENDER_NONCE, der::octet_string(&nonce)),
        der::attribute(oid::SCEP_RECIPIENT_NONCE, der::octet_string(&to.sender_nonce)),
    ];
    if let Some(info) = fail_info {
        attrs.push(der::attribute(
            oid::SCEP_FAIL_INFO,
            der::printable(&info.code().to_string()),
        ));
    }
    Ok(attrs)
}
