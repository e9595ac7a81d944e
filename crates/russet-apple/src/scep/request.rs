//! Decoding a `PKIOperation` message: verify the signature, read the SCEP attributes,
//! decrypt the envelope with the CA key, and check the certificate request inside.

use std::fmt;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::{X509, X509Ref, X509Req, X509VerifyResult};
use time::OffsetDateTime;

use super::error::ScepError;
use super::signed::SignedMessage;
use super::{MAX_MESSAGE_SIZE, csr, envelope, oid, signed};
use crate::dn::display_name;

/// The longest transaction ID accepted. Clients send a hash in hex or base64 (20 to 64
/// characters).
const MAX_TRANSACTION_ID: usize = 256;
/// The nonce is 16 bytes by RFC 8894; a little room for other clients, but bounded.
const MAX_NONCE: usize = 64;

/// A `PKIOperation` request this CA answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 19: a first enrollment, signed with a throw-away self-signed certificate and carrying
    /// the challenge password.
    PkcsReq,
    /// 17: a renewal, signed with the identity being renewed (and usually without a challenge).
    RenewalReq,
}

impl MessageType {
    pub fn code(&self) -> u8 {
        match self {
            MessageType::PkcsReq => 19,
            MessageType::RenewalReq => 17,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            MessageType::PkcsReq => "PKCSReq",
            MessageType::RenewalReq => "RenewalReq",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The digest algorithm of a request's signature, which the answer's signature reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgorithm {
    fn from_oid(oid: &str) -> Option<DigestAlgorithm> {
        Some(match oid {
            oid::SHA1 => DigestAlgorithm::Sha1,
            oid::SHA224 => DigestAlgorithm::Sha224,
            oid::SHA256 => DigestAlgorithm::Sha256,
            oid::SHA384 => DigestAlgorithm::Sha384,
            oid::SHA512 => DigestAlgorithm::Sha512,
            _ => return None,
        })
    }

    /// The dotted OID.
    pub fn oid(&self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => oid::SHA1,
            DigestAlgorithm::Sha224 => oid::SHA224,
            DigestAlgorithm::Sha256 => oid::SHA256,
            DigestAlgorithm::Sha384 => oid::SHA384,
            DigestAlgorithm::Sha512 => oid::SHA512,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => "SHA-1",
            DigestAlgorithm::Sha224 => "SHA-224",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        }
    }

    pub(crate) fn message_digest(&self) -> MessageDigest {
        match self {
            DigestAlgorithm::Sha1 => MessageDigest::sha1(),
            DigestAlgorithm::Sha224 => MessageDigest::sha224(),
            DigestAlgorithm::Sha256 => MessageDigest::sha256(),
            DigestAlgorithm::Sha384 => MessageDigest::sha384(),
            DigestAlgorithm::Sha512 => MessageDigest::sha512(),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The content cipher of a request's envelope, which the answer's envelope reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    /// Triple DES: what older Apple devices use when the CA does not advertise AES.
    DesEde3Cbc,
    /// Single DES (56-bit keys, broken). Only accepted with
    /// [`DecodeOptions::allow_single_des`].
    DesCbc,
}

impl ContentCipher {
    fn from_oid(oid: &str) -> Option<ContentCipher> {
        Some(match oid {
            oid::AES_128_CBC => ContentCipher::Aes128Cbc,
            oid::AES_192_CBC => ContentCipher::Aes192Cbc,
            oid::AES_256_CBC => ContentCipher::Aes256Cbc,
            oid::DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
            oid::DES_CBC => ContentCipher::DesCbc,
            _ => return None,
        })
    }

    /// The dotted OID.
    pub fn oid(&self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => oid::AES_128_CBC,
            ContentCipher::Aes192Cbc => oid::AES_192_CBC,
            ContentCipher::Aes256Cbc => oid::AES_256_CBC,
            ContentCipher::DesEde3Cbc => oid::DES_EDE3_CBC,
            ContentCipher::DesCbc => oid::DES_CBC,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => "AES-128-CBC",
            ContentCipher::Aes192Cbc => "AES-192-CBC",
            ContentCipher::Aes256Cbc => "AES-256-CBC",
            ContentCipher::DesEde3Cbc => "DES-EDE3-CBC",
            ContentCipher::DesCbc => "DES-CBC",
        }
    }

    pub(crate) fn cipher(&self) -> Cipher {
        match self {
            ContentCipher::Aes128Cbc => Cipher::aes_128_cbc(),
            ContentCipher::Aes192Cbc => Cipher::aes_192_cbc(),
            ContentCipher::Aes256Cbc => Cipher::aes_256_cbc(),
            ContentCipher::DesEde3Cbc => Cipher::des_ede3_cbc(),
            ContentCipher::DesCbc => Cipher::des_cbc(),
        }
    }
}

impl fmt::Display for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What any answer to a request must echo: enough to send a `FAILURE` even for a request
/// that could not be fully read. Obtained from a [`PkiRequest`] (`(&req).into()`) or from an
/// error ([`ScepError::reply_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// Copied into the answer's transactionID.
    pub transaction_id: String,
    /// Copied into the answer's recipientNonce.
    pub sender_nonce: Vec<u8>,
    /// The answer is signed with this digest: the request's, or SHA-256 when the request's
    /// is unknown.
    pub digest: DigestAlgorithm,
}

impl From<&PkiRequest> for ReplyTo {
    fn from(req: &PkiRequest) -> Self {
        req.reply_to()
    }
}

impl From<&ReplyTo> for ReplyTo {
    fn from(to: &ReplyTo) -> Self {
        to.clone()
    }
}

/// How strict [`decode_request_with`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Accept requests encrypted with single DES (and answer them in kind). Off by default:
    /// single DES is broken and no Apple device needs it (they use AES or triple DES). Some
    /// old SCEP clients, Debian's `scepclient` 2.1 among them, use nothing else. Turning it on
    /// loads OpenSSL's legacy provider into the process when such a request first arrives.
    pub allow_single_des: bool,
}

/// A verified and decrypted PKCSReq or RenewalReq.
///
/// Verified means: the signature checks out with the certificate the message carries, the
/// envelope was addressed to this CA and opened with its key, and the certificate request
/// inside has a valid self-signature and an acceptable key. It does not mean the request is
/// allowed: check [`PkiRequest::challenge_matches`] for a PKCSReq, or
/// [`PkiRequest::signer_issued_by`] and [`PkiRequest::signer_valid_at`] for a RenewalReq.
pub struct PkiRequest {
    pub message_type: MessageType,
    /// The client's transactionID (RFC 8894 wants a hash of the public key; any text is kept).
    pub transaction_id: String,
    /// The client's senderNonce, which the answer echoes as its recipientNonce.
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the message: self-signed for a first enrollment, the
    /// identity being renewed for a renewal. Answers are encrypted to it.
    pub signer: X509,
    /// Whether `signer` is self-signed (issuer = subject, and its signature verifies with its
    /// own key).
    pub signer_is_self_signed: bool,
    /// The certificate request, with its self-signature and key already checked.
    pub csr: X509Req,
    /// The request's challengePassword, if it has one.
    pub challenge: Option<String>,
    /// The digest algorithm of the request's signature.
    pub digest: DigestAlgorithm,
    /// The content cipher of the request's envelope.
    pub content_cipher: ContentCipher,
}

impl fmt::Debug for PkiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkiRequest")
            .field("message_type", &self.message_type)
            .field("transaction_id", &self.transaction_id)
            .field("sender_nonce", &hex::encode(&self.sender_nonce))
            .field("signer", &display_name(self.signer.subject_name()))
            .field("signer_is_self_signed", &self.signer_is_self_signed)
            .field("csr_subject", &display_name(self.csr.subject_name()))
            .field("challenge", &self.challenge.as_ref().map(|_| "[REDACTED]"))
            .field("digest", &self.digest)
            .field("content_cipher", &self.content_cipher)
            .finish()
    }
}

impl PkiRequest {
    /// What an answer to this request must echo.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            transaction_id: self.transaction_id.clone(),
            sender_nonce: self.sender_nonce.clone(),
            digest: self.digest,
        }
    }

    /// Whether the request's challenge password is `expected`, compared in constant time
    /// (for equal lengths). `false` when the request has none.
    pub fn challenge_matches(&self, expected: &str) -> bool {
        match &self.challenge {
            Some(given) => given.len() == expected.len() && openssl::memcmp::eq(given.as_bytes(), expected.as_bytes()),
            None => false,
        }
    }

    /// Whether the signer certificate was issued by `ca_cert` (names and key identifiers
    /// chain, and its signature verifies with the CA's key) and is meant for client
    /// authentication (extendedKeyUsage clientAuth). For a RenewalReq this says the device
    /// holds the key of an identity this CA issued; whether that identity is still valid is
    /// [`PkiRequest::signer_valid_at`], and whether it was revoked is the server's to know.
    pub fn signer_issued_by(&self, ca_cert: &X509Ref) -> bool {
        if self.signer_is_self_signed {
            return false;
        }
        let Ok(ca_key) = ca_cert.public_key() else {
            return false;
        };
        ca_cert.issued(&self.signer) == X509VerifyResult::OK
            && self.signer.verify(&ca_key).unwrap_or(false)
            && self
                .signer
                .extended_key_usage()
                .is_some_and(|eku| eku.contains(openssl::x509::X509ExtendedKeyUsage::SSL_CLIENT))
    }

    /// Whether `now` is within the signer certificate's validity period.
    pub fn signer_valid_at(&self, now: OffsetDateTime) -> bool {
        let Ok(now) = Asn1Time::from_unix(now.unix_timestamp()) else {
            return false;
        };
        matches!(
            self.signer.not_before().compare(&now),
            Ok(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ) && matches!(self.signer.not_after().compare(&now), Ok(std::cmp::Ordering::Greater))
    }

    /// Whether the certificate request is for the same key as the signer certificate (true
    /// for a first enrollment; a renewal usually brings a new key).
    pub fn csr_key_matches_signer(&self) -> bool {
        match (self.csr.public_key(), self.signer.public_key()) {
            (Ok(a), Ok(b)) => a.public_eq(&b),
            _ => false,
        }
    }
}

/// [`decode_request_with`] with the default [`DecodeOptions`].
pub fn decode_request(der: &[u8], ca_cert: &X509, ca_key: &PKey<Private>) -> Result<PkiRequest, ScepError> {
    decode_request_with(der, ca_cert, ca_key, &DecodeOptions::default())
}

/// Verifies and opens a `PKIOperation` message (DER or BER, at most [`MAX_MESSAGE_SIZE`]
/// bytes) sent to the CA `ca_cert`, whose private key is `ca_key`.
///
/// In order: the outer SignedData is read, and its SCEP attributes (messageType,
/// transactionID, senderNonce); its signature is verified with the signer certificate it
/// carries; the message type must be PKCSReq or RenewalReq; the EnvelopedData inside must be
/// addressed to `ca_cert`, in AES-CBC or triple DES (or single DES if allowed), and is
/// decrypted with `ca_key`; the PKCS#10 request inside must have a valid self-signature and an
/// RSA key of 2048 to 8192 bits or an EC key on P-256, P-384 or P-521. See [`ScepError`] for
/// how each failure is answered.
pub fn decode_request_with(
    der: &[u8],
    ca_cert: &X509,
    ca_key: &PKey<Private>,
    options: &DecodeOptions,
) -> Result<PkiRequest, ScepError> {
    decode_request_for(der, &[(ca_cert, ca_key)], options)
}

/// [`decode_request_with`] for a CA with an RA ([`new_ra`](super::new_ra)): the envelope may
/// be addressed to any of `recipients` (certificate and private key; the RA first, then the
/// CA for clients that encrypt to it), and is opened with the key of the one it names.
pub fn decode_request_for(
    der: &[u8],
    recipients: &[(&X509, &PKey<Private>)],
    options: &DecodeOptions,
) -> Result<PkiRequest, ScepError> {
    if recipients.is_empty() {
        return Err(ScepError::InvalidArgument {
            detail: "no certificate to decrypt SCEP requests with".into(),
        });
    }
    for (cert, key) in recipients {
        check_ca(cert, key)?;
    }
    if der.len() > MAX_MESSAGE_SIZE {
        return Err(ScepError::Malformed {
            detail: format!(
                "the message is {} bytes, more than the {MAX_MESSAGE_SIZE} accepted (requests are a few kilobytes)",
                der.len()
            ),
        });
    }
    let message = signed::parse(der)?;
    let header = read_header(&message)?;
    let reply_to = Box::new(ReplyTo {
        transaction_id: header.transaction_id.clone(),
        sender_nonce: header.sender_nonce.clone(),
        digest: DigestAlgorithm::from_oid(&message.digest_oid).unwrap_or(DigestAlgorithm::Sha256),
    });

    let Some(digest) = DigestAlgorithm::from_oid(&message.digest_oid) else {
        return Err(ScepError::UnsupportedAlgorithm {
            detail: format!(
                "the digest {}, which is not accepted",
                oid::describe(&message.digest_oid)
            ),
            reply_to,
        });
    };
    let Some(signer) = message.signer_certificate().cloned() else {
        return Err(ScepError::BadSignature {
            detail: "the certificate that signed it is not in the message".into(),
            reply_to,
        });
    };
    let content = match signed::verify(der, &signer) {
        Ok(content) => content,
        Err(detail) => return Err(ScepError::BadSignature { detail, reply_to }),
    };
    let message_type = match header.message_type.as_str() {
        "19" => MessageType::PkcsReq,
        "17" => MessageType::RenewalReq,
        other => {
            let known = match other {
                "3" => " (CertRep)",
                "18" => " (UpdateReq)",
                "20" => " (CertPoll)",
                "21" => " (GetCert)",
                "22" => " (GetCRL)",
                _ => "",
            };
            return Err(ScepError::UnsupportedMessageType {
                message_type: format!("{other}{known}"),
                reply_to,
            });
        }
    };
    if message.content_type != oid::DATA || !message.has_content {
        return Err(ScepError::BadEnvelope {
            detail: format!(
                "the signed content is {}, while a SCEP request signs data holding its encrypted part",
                if message.has_content {
                    oid::describe(&message.content_type)
                } else {
                    "absent".to_owned()
                }
            ),
            reply_to,
        });
    }

    let envelope = match envelope::read(&content) {
        Ok(envelope) => envelope,
        Err(detail) => return Err(ScepError::BadEnvelope { detail, reply_to }),
    };
    let Some((ca_cert, ca_key)) = recipients.iter().find(|(cert, _)| envelope.is_for(cert)).copied() else {
        return Err(ScepError::NotForThisCa {
            recipients: envelope.describe_recipients(),
            reply_to,
        });
    };
    let content_cipher = match ContentCipher::from_oid(&envelope.cipher_oid) {
        Some(ContentCipher::DesCbc) if !options.allow_single_des => {
            return Err(ScepError::UnsupportedAlgorithm {
                detail: "the content cipher DES-CBC (single DES, 56-bit keys), which is not accepted".into(),
                reply_to,
            });
        }
        Some(cipher) => cipher,
        None => {
            return Err(ScepError::UnsupportedAlgorithm {
                detail: format!(
                    "the content cipher {}, which is not accepted",
                    oid::describe(&envelope.cipher_oid)
                ),
                reply_to,
            });
        }
    };
    if content_cipher == ContentCipher::DesCbc {
        if let Err(detail) = envelope::load_legacy_provider() {
            return Err(ScepError::UnsupportedAlgorithm { detail, reply_to });
        }
    }
    let plaintext = match envelope::decrypt(&content, ca_key, ca_cert) {
        Ok(plaintext) => plaintext,
        Err(detail) => return Err(ScepError::BadEnvelope { detail, reply_to }),
    };

    let bad_csr = |detail: String, reply_to: Box<ReplyTo>| ScepError::BadCsr {
        detail,
        reply_to: Some(reply_to),
    };
    let csr = match X509Req::from_der(&plaintext) {
        Ok(csr) => csr,
        Err(_) => {
            return Err(bad_csr(
                "the decrypted content is not a PKCS#10 certificate request".into(),
                reply_to,
            ));
        }
    };
    if let Err(detail) = csr::check(&csr) {
        return Err(bad_csr(detail, reply_to));
    }
    let attributes = match csr::attributes(&plaintext) {
        Ok(attributes) => attributes,
        Err(detail) => return Err(bad_csr(detail, reply_to)),
    };

    let signer_is_self_signed = signer.issued(&signer) == X509VerifyResult::OK
        && signer.public_key().and_then(|key| signer.verify(&key)).unwrap_or(false);

    Ok(PkiRequest {
        message_type,
        transaction_id: header.transaction_id,
        sender_nonce: header.sender_nonce,
        signer,
        signer_is_self_signed,
        csr,
        challenge: attributes.challenge,
        digest,
        content_cipher,
    })
}

/// Refuses a CA key that does not belong to the CA certificate: every request would then
/// fail to decrypt, which would look like the devices' fault.
pub(crate) fn check_ca(ca_cert: &X509Ref, ca_key: &PKey<Private>) -> Result<(), ScepError> {
    let public = ca_cert.public_key().map_err(|e| ScepError::InvalidArgument {
        detail: format!(
            "the CA certificate's public key cannot be read ({})",
            super::error::openssl_reasons(&e)
        ),
    })?;
    if !public.public_eq(ca_key) {
        return Err(ScepError::InvalidArgument {
            detail: "the CA private key does not belong to the CA certificate; load the key stored with it".into(),
        });
    }
    Ok(())
}

/// The SCEP attributes every request must carry.
struct Header {
    message_type: String,
    transaction_id: String,
    sender_nonce: Vec<u8>,
}

fn read_header(message: &SignedMessage<'_>) -> Result<Header, ScepError> {
    let missing = |name: &str| ScepError::Malformed {
        detail: format!("the signed attributes have no {name}, which every SCEP request carries"),
    };
    let message_type = message
        .attribute(oid::SCEP_MESSAGE_TYPE, "messageType")?
        .ok_or_else(|| missing("messageType"))?;
    let message_type = text(&message_type, "messageType")?;
    let transaction_id = message
        .attribute(oid::SCEP_TRANSACTION_ID, "transactionID")?
        .ok_or_else(|| missing("transactionID"))?;
    let transaction_id = text(&transaction_id, "transactionID")?;
    if transaction_id.is_empty() || transaction_id.len() > MAX_TRANSACTION_ID {
        return Err(ScepError::Malformed {
            detail: format!(
                "the transactionID is {} characters long; 1 to {MAX_TRANSACTION_ID} are accepted",
                transaction_id.len()
            ),
        });
    }
    let nonce = message
        .attribute(oid::SCEP_SENDER_NONCE, "senderNonce")?
        .ok_or_else(|| missing("senderNonce"))?;
    if !nonce.tag.same_type(&crate::ber::Tag::OCTET_STRING) {
        return Err(ScepError::Malformed {
            detail: format!("the senderNonce is a {}, not an OCTET STRING", nonce.tag),
        });
    }
    let sender_nonce = nonce.string_contents()?.into_owned();
    if sender_nonce.is_empty() || sender_nonce.len() > MAX_NONCE {
        return Err(ScepError::Malformed {
            detail: format!(
                "the senderNonce is {} bytes long; RFC 8894 wants 16 and 1 to {MAX_NONCE} are accepted",
                sender_nonce.len()
            ),
        });
    }
    Ok(Header {
        message_type: message_type.trim().to_owned(),
        transaction_id,
        sender_nonce,
    })
}

/// A PrintableString (as RFC 8894 wants), or a UTF8String or IA5String, as text.
fn text(value: &crate::ber::Element<'_>, name: &str) -> Result<String, ScepError> {
    use crate::ber::Tag;
    if !(value.tag.same_type(&Tag::PRINTABLE_STRING)
        || value.tag.same_type(&Tag::UTF8_STRING)
        || value.tag.same_type(&Tag::IA5_STRING))
    {
        return Err(ScepError::Malformed {
            detail: format!("the {name} is a {}, not a PrintableString", value.tag),
        });
    }
    let bytes = value.string_contents()?;
    let text = String::from_utf8(bytes.into_owned()).map_err(|_| ScepError::Malformed {
        detail: format!("the {name} is not valid text"),
    })?;
    if text.chars().any(char::is_control) {
        return Err(ScepError::Malformed {
            detail: format!("the {name} contains control characters"),
        });
    }
    Ok(text)
}
