//! [`SignatureVerifier`]: `Mdm-Signature` checks at the rate devices connect.
//!
//! Handing every signature to OpenSSL's CMS code costs most of a millisecond with OpenSSL 3,
//! nearly all of it in parsing: the SignedData, the embedded certificate and its public key
//! go through OpenSSL's decoder framework on every request. A device signs each of its
//! requests with the same identity, so the verifier remembers, per certificate (by the
//! SHA-256 of its DER), the parsed certificate's public key and how the signer named it.
//!
//! For a certificate it has seen, the verifier reads the SignedData with the crate's BER
//! reader and checks the signature itself, as RFC 5652 §5.4 and §5.6 say: the
//! `messageDigest` attribute equals the digest of the body, the `contentType` attribute is
//! `id-data`, and the signature over the DER of the signed attributes verifies with the
//! certificate's key. Anything outside that narrow, common form (no signed attributes, an
//! indefinite length inside them, RSA-PSS, a signer named differently than before, or a
//! signature that does not verify) goes to OpenSSL's CMS verification, which has the last
//! word; so does every certificate seen for the first time. The fast path only ever accepts
//! what OpenSSL would accept.
//!
//! The memory is bounded: two generations of at most `capacity / 2` certificates each; when
//! the newer one is full it becomes the older one and the older one is dropped, so
//! certificates in use stay and the others age out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;

use super::signed_data::{self, SignerId};
use super::{DeviceCertificate, MdmIdentityError, cms_verify, decode_signature_header, device_signer, outline_error};
use crate::ber::{Reader, Tag};

const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_DATA: &str = "1.2.840.113549.1.7.1";

/// What is remembered of a certificate that signed a request OpenSSL verified.
struct Known {
    /// How the signer named the certificate then (byte for byte).
    id: SignerId,
    der: Arc<[u8]>,
    sha256_hex: Arc<str>,
    key: PKey<Public>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<[u8; 32], Arc<Known>>,
    previous: HashMap<[u8; 32], Arc<Known>>,
}

/// Verifies `Mdm-Signature` headers, remembering the certificates it has seen (see the module
/// documentation). Share one per process.
pub struct SignatureVerifier {
    generation: usize,
    cache: Mutex<Generations>,
    fast: AtomicU64,
    full: AtomicU64,
}

/// How a [`SignatureVerifier`]'s signatures were checked, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifierCounts {
    /// Checked from memory without OpenSSL's CMS code.
    pub fast: u64,
    /// Handed to OpenSSL's CMS code (first sight of a certificate, or an uncommon form).
    pub full: u64,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("capacity", &(self.generation * 2))
            .finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    /// A verifier remembering at most `capacity` certificates (at least 2).
    pub fn new(capacity: usize) -> SignatureVerifier {
        SignatureVerifier {
            generation: (capacity / 2).max(1),
            cache: Mutex::new(Generations::default()),
            fast: AtomicU64::new(0),
            full: AtomicU64::new(0),
        }
    }

    /// How the signatures checked so far were checked.
    pub fn counts(&self) -> VerifierCounts {
        VerifierCounts {
            fast: self.fast.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
        }
    }

    /// How many certificates are remembered now.
    pub fn remembered(&self) -> usize {
        self.cache
            .lock()
            .map(|g| g.current.len() + g.previous.len())
            .unwrap_or(0)
    }

    fn lookup(&self, sha: &[u8; 32]) -> Option<Arc<Known>> {
        let mut g = self.cache.lock().ok()?;
        if let Some(k) = g.current.get(sha) {
            return Some(k.clone());
        }
        let k = g.previous.remove(sha)?;
        self.insert_locked(&mut g, *sha, k.clone());
        Some(k)
    }

    fn insert_locked(&self, g: &mut Generations, sha: [u8; 32], known: Arc<Known>) {
        if g.current.len() >= self.generation {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(sha, known);
    }

    fn remember(&self, sha: [u8; 32], known: Known) {
        if let Ok(mut g) = self.cache.lock() {
            self.insert_locked(&mut g, sha, Arc::new(known));
        }
    }

    /// Checks an `Mdm-Signature` header against the exact request body, with the same rules
    /// and errors as [`super::verify_mdm_signature`], and returns the signer's certificate.
    pub fn verify(&self, header_value: &str, body: &[u8]) -> Result<DeviceCertificate, MdmIdentityError> {
        let der = decode_signature_header(header_value)?;
        let outline = signed_data::read_raw(&der).map_err(outline_error)?;
        let signer = device_signer(&outline.signers, outline.content_attached)?.clone();
        for cert_der in &outline.certificates {
            let sha = openssl::sha::sha256(cert_der);
            let Some(known) = self.lookup(&sha) else { continue };
            if known.id != signer.id {
                continue;
            }
            let identity = DeviceCertificate::known(known.der.clone(), sha, known.sha256_hex.clone());
            if fast_verify(&known.key, &signer, body) {
                self.fast.fetch_add(1, Ordering::Relaxed);
                return Ok(identity);
            }
            // Not the common form, or not a valid signature: OpenSSL decides.
            self.full.fetch_add(1, Ordering::Relaxed);
            let cert = identity.certificate()?;
            cms_verify(&der, &cert, body)?;
            return Ok(identity);
        }
        // A certificate not seen yet: OpenSSL verifies, then it is remembered.
        self.full.fetch_add(1, Ordering::Relaxed);
        let outline = outline.parse_certificates().map_err(outline_error)?;
        let Some(cert) = outline.certificate_of(&signer) else {
            return Err(MdmIdentityError::SignerCertificateMissing);
        };
        cms_verify(&der, cert, body)?;
        let identity = DeviceCertificate::from_certificate(cert.clone())?;
        if let Ok(key) = cert.public_key() {
            self.remember(
                identity.sha256,
                Known {
                    id: signer.id.clone(),
                    der: identity.der.clone(),
                    sha256_hex: identity.sha256_hex.clone(),
                    key,
                },
            );
        }
        Ok(identity)
    }
}

/// The digest of `data` with the accepted digest algorithm `oid`.
fn digest(oid: &str, data: &[u8]) -> Option<(MessageDigest, Vec<u8>)> {
    Some(match signed_data::accepted_digest(oid)? {
        "SHA-1" => (MessageDigest::sha1(), openssl::sha::sha1(data).to_vec()),
        "SHA-224" => (MessageDigest::sha224(), openssl::sha::sha224(data).to_vec()),
        "SHA-256" => (MessageDigest::sha256(), openssl::sha::sha256(data).to_vec()),
        "SHA-384" => (MessageDigest::sha384(), openssl::sha::sha384(data).to_vec()),
        "SHA-512" => (MessageDigest::sha512(), openssl::sha::sha512(data).to_vec()),
        _ => return None,
    })
}

/// The key type a signature algorithm needs, and the digest it names (if it names one).
fn signature_algorithm(oid: &str) -> Option<(Id, Option<&'static str>)> {
    Some(match oid {
        "1.2.840.113549.1.1.1" => (Id::RSA, None),
        "1.2.840.113549.1.1.5" => (Id::RSA, Some("SHA-1")),
        "1.2.840.113549.1.1.14" => (Id::RSA, Some("SHA-224")),
        "1.2.840.113549.1.1.11" => (Id::RSA, Some("SHA-256")),
        "1.2.840.113549.1.1.12" => (Id::RSA, Some("SHA-384")),
        "1.2.840.113549.1.1.13" => (Id::RSA, Some("SHA-512")),
        "1.2.840.10045.2.1" => (Id::EC, None),
        "1.2.840.10045.4.1" => (Id::EC, Some("SHA-1")),
        "1.2.840.10045.4.3.1" => (Id::EC, Some("SHA-224")),
        "1.2.840.10045.4.3.2" => (Id::EC, Some("SHA-256")),
        "1.2.840.10045.4.3.3" => (Id::EC, Some("SHA-384")),
        "1.2.840.10045.4.3.4" => (Id::EC, Some("SHA-512")),
        _ => return None,
    })
}

/// The common form, checked without OpenSSL's CMS code: `true` only when the signature is
/// valid. `false` means "let OpenSSL decide", not "invalid".
fn fast_verify(key: &PKey<Public>, signer: &signed_data::Signer, body: &[u8]) -> bool {
    let Some(attrs) = signer.signed_attrs.as_deref() else {
        return false;
    };
    let Some(digest_name) = signed_data::accepted_digest(&signer.digest_oid) else {
        return false;
    };
    match signature_algorithm(&signer.signature_oid) {
        Some((id, named)) if id == key.id() && named.is_none_or(|n| n == digest_name) => {}
        _ => return false,
    }
    // [0] IMPLICIT with a definite length; the signature covers the same bytes tagged SET.
    if attrs.first() != Some(&0xA0) || attrs.get(1) == Some(&0x80) {
        return false;
    }
    let mut set = attrs.to_vec();
    set[0] = 0x31;
    let Some((md, body_digest)) = digest(&signer.digest_oid, body) else {
        return false;
    };
    if !attributes_match(&set, &body_digest) {
        return false;
    }
    let Ok(mut verifier) = Verifier::new(md, key) else {
        return false;
    };
    verifier.verify_oneshot(&signer.signature, &set).unwrap_or(false)
}

/// Exactly one `contentType` (id-data) and one `messageDigest` (equal to `body_digest`),
/// each with one value, in a DER SET OF Attribute.
fn attributes_match(set: &[u8], body_digest: &[u8]) -> bool {
    let check = || -> Result<bool, crate::ber::BerError> {
        let mut top = Reader::new(set);
        let set = top.expect(Tag::SET, "the signed attributes")?;
        top.finish("the signed attributes")?;
        let mut attributes = set.children()?;
        let (mut content_type, mut message_digest) = (0, 0);
        while !attributes.is_empty() {
            let attribute = attributes.expect(Tag::SEQUENCE, "an attribute")?;
            let mut parts = attribute.children()?;
            let oid = parts.expect(Tag::OID, "the attribute type")?.oid()?;
            let mut values = parts.expect(Tag::SET, "the attribute values")?.children()?;
            parts.finish("an attribute")?;
            match oid.as_str() {
                OID_CONTENT_TYPE => {
                    content_type += 1;
                    let value = values.expect(Tag::OID, "the content type")?.oid()?;
                    if value != OID_DATA || !values.is_empty() {
                        return Ok(false);
                    }
                }
                OID_MESSAGE_DIGEST => {
                    message_digest += 1;
                    let value = values.expect(Tag::OCTET_STRING, "the message digest")?;
                    if value.contents != body_digest || !values.is_empty() {
                        return Ok(false);
                    }
                }
                _ => {}
            }
        }
        Ok(content_type == 1 && message_digest == 1)
    };
    check().unwrap_or(false)
}

/// A certificate parsed from DER (for [`DeviceCertificate::certificate`]).
pub(super) fn parse(der: &[u8]) -> Result<X509, MdmIdentityError> {
    X509::from_der(der).map_err(|e| MdmIdentityError::BadCertificate {
        detail: crate::server_token::openssl_reasons(&e),
    })
}
