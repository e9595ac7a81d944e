//! Reading the unsigned outline of a CMS / PKCS#7 SignedData (RFC 5652 §5) in BER or DER:
//! its signers (how each names its certificate and which digest it used), whether the content
//! is attached, and the certificates it carries.
//!
//! OpenSSL's API checks signatures but does not say how many signers there are, which digest
//! they used or which embedded certificate is the signer's; this module reads exactly that with
//! the crate's bounded BER reader, and leaves all cryptography to OpenSSL.

use std::cmp::Ordering;
use std::fmt;

use openssl::bn::BigNum;
use openssl::x509::{X509, X509Name, X509Ref};

use crate::ber::{BerError, Element, Reader, Tag};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

/// A signature with more signers or certificates than this is not one a device or Russet makes,
/// and a hostile one must not make us parse thousands of certificates.
const MAX_SIGNERS: usize = 16;
const MAX_CERTIFICATES: usize = 32;

/// Digest algorithms accepted on signatures, by OID. SHA-1 is on the list because Apple's
/// devices and the Go CMS libraries sign `Mdm-Signature` with it.
const DIGESTS: &[(&str, &str)] = &[
    ("1.3.14.3.2.26", "SHA-1"),
    ("2.16.840.1.101.3.4.2.4", "SHA-224"),
    ("2.16.840.1.101.3.4.2.1", "SHA-256"),
    ("2.16.840.1.101.3.4.2.2", "SHA-384"),
    ("2.16.840.1.101.3.4.2.3", "SHA-512"),
];

/// Names of digest algorithms that are refused, so that messages can name them.
const REFUSED_DIGESTS: &[(&str, &str)] = &[
    ("1.2.840.113549.2.5", "MD5"),
    ("1.2.840.113549.2.2", "MD2"),
    ("1.2.840.113549.2.4", "MD4"),
];

/// The name of an accepted digest algorithm, or `None` when it is not accepted.
pub(crate) fn accepted_digest(oid: &str) -> Option<&'static str> {
    DIGESTS.iter().find(|(o, _)| *o == oid).map(|(_, name)| *name)
}

/// A digest algorithm for messages: its name when known, with its OID.
pub(crate) fn digest_display(oid: &str) -> String {
    match DIGESTS.iter().chain(REFUSED_DIGESTS).find(|(o, _)| *o == oid) {
        Some((_, name)) => format!("{name} ({oid})"),
        None => oid.to_owned(),
    }
}

/// Why the outline could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutlineError {
    /// Not a CMS ContentInfo at all.
    NotCms(String),
    /// A ContentInfo of another type (the dotted OID, with a name when known).
    NotSignedData(String),
    /// A SignedData, but broken.
    Malformed(String),
}

impl fmt::Display for OutlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutlineError::NotCms(d) | OutlineError::Malformed(d) => f.write_str(d),
            OutlineError::NotSignedData(t) => write!(f, "it holds {t}, not signed data"),
        }
    }
}

fn malformed(e: BerError) -> OutlineError {
    OutlineError::Malformed(e.to_string())
}

/// How a signer names its certificate (RFC 5652 `SignerIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignerId {
    IssuerAndSerial {
        /// The issuer Name exactly as encoded.
        issuer: Vec<u8>,
        /// The serial number's INTEGER contents (two's complement, big-endian).
        serial: Vec<u8>,
    },
    SubjectKeyId(Vec<u8>),
}

impl SignerId {
    /// Whether `cert` is the certificate this identifier names.
    pub fn matches(&self, cert: &X509Ref) -> bool {
        match self {
            SignerId::SubjectKeyId(id) => cert.subject_key_id().is_some_and(|k| k.as_slice() == id.as_slice()),
            SignerId::IssuerAndSerial { issuer, serial } => {
                let Ok(issuer) = X509Name::from_der(issuer) else {
                    return false;
                };
                if !matches!(issuer.try_cmp(cert.issuer_name()), Ok(Ordering::Equal)) {
                    return false;
                }
                let (Ok(theirs), Some(ours)) = (cert.serial_number().to_bn(), integer_to_bn(serial)) else {
                    return false;
                };
                theirs == ours
            }
        }
    }
}

/// An INTEGER's two's-complement contents as a BigNum.
fn integer_to_bn(contents: &[u8]) -> Option<BigNum> {
    let negative = contents.first().is_some_and(|b| b & 0x80 != 0);
    if !negative {
        return BigNum::from_slice(contents).ok();
    }
    // Magnitude of a negative number: invert and add one.
    let mut magnitude: Vec<u8> = contents.iter().map(|b| !b).collect();
    for byte in magnitude.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    let mut bn = BigNum::from_slice(&magnitude).ok()?;
    bn.set_negative(true);
    Some(bn)
}

/// One SignerInfo, as far as this crate needs it.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    pub id: SignerId,
    /// The dotted OID of the signer's digest algorithm.
    pub digest_oid: String,
    /// The signed attributes exactly as encoded (`[0] IMPLICIT SET OF Attribute`), when the
    /// signer has them.
    pub signed_attrs: Option<Vec<u8>>,
    /// The dotted OID of the signature algorithm.
    pub signature_oid: String,
    /// The signature value.
    pub signature: Vec<u8>,
}

/// What a SignedData holds, besides the signatures themselves.
#[derive(Debug)]
pub(crate) struct Outline {
    pub signers: Vec<Signer>,
    /// Whether the signed content is inside the structure (not detached).
    pub content_attached: bool,
    /// The certificates it carries, in order.
    pub certificates: Vec<X509>,
}

impl Outline {
    /// The certificate the signer names, among those carried.
    pub fn certificate_of(&self, signer: &Signer) -> Option<&X509> {
        self.certificates.iter().find(|c| signer.id.matches(c))
    }
}

/// The outline with the certificates left as their DER encodings (borrowed from the input),
/// for callers that can skip parsing a certificate they have seen before.
#[derive(Debug)]
pub(crate) struct RawOutline<'a> {
    pub signers: Vec<Signer>,
    pub content_attached: bool,
    pub certificates: Vec<&'a [u8]>,
}

impl RawOutline<'_> {
    /// Parses the certificates.
    pub fn parse_certificates(self) -> Result<Outline, OutlineError> {
        let certificates = self
            .certificates
            .iter()
            .map(|der| {
                X509::from_der(der)
                    .map_err(|_| OutlineError::Malformed("an embedded certificate cannot be read".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Outline {
            signers: self.signers,
            content_attached: self.content_attached,
            certificates,
        })
    }
}

/// Reads a ContentInfo holding a SignedData.
pub(crate) fn read(der: &[u8]) -> Result<Outline, OutlineError> {
    read_raw(der)?.parse_certificates()
}

/// Reads a ContentInfo holding a SignedData, leaving the certificates unparsed.
pub(crate) fn read_raw(der: &[u8]) -> Result<RawOutline<'_>, OutlineError> {
    let mut top = Reader::new(der);
    let Ok(Some(first)) = top.peek() else {
        return Err(OutlineError::NotCms(
            "the data is empty or does not start with an element".into(),
        ));
    };
    if first != Tag::SEQUENCE {
        return Err(OutlineError::NotCms(format!("it starts with {first}, not a SEQUENCE")));
    }
    let info = top.read().map_err(|e| OutlineError::NotCms(e.to_string()))?;
    let mut fields = info.children().map_err(malformed)?;
    if fields.peek().map_err(malformed)? != Some(Tag::OID) {
        return Err(OutlineError::NotCms(
            "it is not a CMS ContentInfo (no content type); is it a certificate?".into(),
        ));
    }
    let content_type = fields.read().and_then(|e| e.oid()).map_err(malformed)?;
    if content_type != OID_SIGNED_DATA {
        return Err(OutlineError::NotSignedData(content_type_display(&content_type)));
    }
    let explicit = fields
        .expect(Tag::context(0, true), "the signed data")
        .map_err(malformed)?;
    let mut inner = explicit.children().map_err(malformed)?;
    let signed = inner.expect(Tag::SEQUENCE, "the SignedData").map_err(malformed)?;
    read_signed_data(&signed).map_err(malformed)
}

fn read_signed_data<'a>(signed: &Element<'a>) -> Result<RawOutline<'a>, BerError> {
    // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
    //   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos SET }
    let mut fields = signed.children()?;
    fields.expect(Tag::INTEGER, "the SignedData version")?;
    fields.expect(Tag::SET, "the digest algorithms")?;
    let encap = fields.expect(Tag::SEQUENCE, "the encapsulated content info")?;
    let content_attached = content_attached(&encap)?;

    let mut certificates = Vec::new();
    if fields.peek()? == Some(Tag::context(0, true)) {
        let set = fields.read()?;
        let mut items = set.children()?;
        while !items.is_empty() {
            let item = items.read()?;
            // CertificateChoices: only plain certificates (SEQUENCE) matter; attribute and
            // other certificates are skipped.
            if item.tag != Tag::SEQUENCE {
                continue;
            }
            if certificates.len() == MAX_CERTIFICATES {
                return Err(BerError {
                    offset: item.offset,
                    message: format!("more than {MAX_CERTIFICATES} certificates are embedded"),
                });
            }
            certificates.push(item.encoded);
        }
    }
    if fields.peek()? == Some(Tag::context(1, true)) {
        fields.read()?;
    }
    let set = fields.expect(Tag::SET, "the signer infos")?;
    let mut items = set.children()?;
    let mut signers = Vec::new();
    while !items.is_empty() {
        let item = items.expect(Tag::SEQUENCE, "a signer info")?;
        if signers.len() == MAX_SIGNERS {
            return Err(BerError {
                offset: item.offset,
                message: format!("more than {MAX_SIGNERS} signers"),
            });
        }
        signers.push(read_signer(&item)?);
    }
    Ok(RawOutline {
        signers,
        content_attached,
        certificates,
    })
}

/// EncapsulatedContentInfo ::= SEQUENCE { eContentType, eContent [0] EXPLICIT OCTET STRING OPTIONAL }.
/// An empty eContent counts as detached.
fn content_attached(encap: &Element<'_>) -> Result<bool, BerError> {
    let mut fields = encap.children()?;
    fields.expect(Tag::OID, "the content type")?;
    if fields.is_empty() {
        return Ok(false);
    }
    let explicit = fields.expect(Tag::context(0, true), "the content")?;
    let mut inner = explicit.children()?;
    if inner.is_empty() {
        return Ok(false);
    }
    let octets = inner.read()?;
    Ok(!octets.contents.is_empty())
}

fn read_signer(info: &Element<'_>) -> Result<Signer, BerError> {
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] OPTIONAL,
    //   signatureAlgorithm, signature, unsignedAttrs [1] OPTIONAL }
    let mut fields = info.children()?;
    fields.expect(Tag::INTEGER, "the signer info version")?;
    let offset = info.offset;
    let sid = fields.read()?;
    let id = if sid.tag == Tag::SEQUENCE {
        let mut parts = sid.children()?;
        let issuer = parts.expect(Tag::SEQUENCE, "the signer's issuer")?;
        let serial = parts.expect(Tag::INTEGER, "the signer's serial number")?;
        SignerId::IssuerAndSerial {
            issuer: issuer.encoded.to_vec(),
            serial: serial.integer_bytes()?.to_vec(),
        }
    } else if sid.tag.same_type(&Tag::context(0, false)) {
        SignerId::SubjectKeyId(sid.contents.to_vec())
    } else {
        return Err(BerError {
            offset,
            message: format!("a signer is identified by {}, which is not a known form", sid.tag),
        });
    };
    let algorithm = fields.expect(Tag::SEQUENCE, "the signer's digest algorithm")?;
    let digest_oid = algorithm
        .children()?
        .expect(Tag::OID, "the digest algorithm OID")?
        .oid()?;
    let signed_attrs = if fields.peek()? == Some(Tag::context(0, true)) {
        Some(fields.read()?.encoded.to_vec())
    } else {
        None
    };
    let signature_oid = fields
        .expect(Tag::SEQUENCE, "the signature algorithm")?
        .children()?
        .expect(Tag::OID, "the signature algorithm OID")?
        .oid()?;
    let signature = fields.read()?;
    if !signature.tag.same_type(&Tag::OCTET_STRING) {
        return Err(BerError {
            offset: signature.offset,
            message: format!("expected the signature (OCTET STRING), found {}", signature.tag),
        });
    }
    Ok(Signer {
        id,
        digest_oid,
        signed_attrs,
        signature_oid,
        signature: signature.string_contents()?.into_owned(),
    })
}

fn content_type_display(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.7.1" => "unsigned data",
        "1.2.840.113549.1.7.3" => "encrypted (enveloped) data",
        "1.2.840.113549.1.7.4" => "signed and enveloped data",
        "1.2.840.113549.1.7.5" => "digested data",
        "1.2.840.113549.1.7.6" => "password-encrypted data",
        "1.2.840.113549.1.9.16.1.2" => "authenticated data",
        "1.2.840.113549.1.9.16.1.9" => "compressed data",
        _ => return format!("content type {oid}"),
    };
    format!("{name} (content type {oid})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_integers_become_negative_bignums() {
        let Some(bn) = integer_to_bn(&[0xff, 0x00]) else {
            panic!("not converted");
        };
        assert_eq!(bn.to_dec_str().map(|s| s.to_string()).ok(), Some("-256".to_owned()));
        let Some(bn) = integer_to_bn(&[0x00, 0x80]) else {
            panic!("not converted");
        };
        assert_eq!(bn.to_dec_str().map(|s| s.to_string()).ok(), Some("128".to_owned()));
    }

    #[test]
    fn digests_are_named() {
        assert_eq!(accepted_digest("1.3.14.3.2.26"), Some("SHA-1"));
        assert_eq!(accepted_digest("1.2.840.113549.2.5"), None);
        assert_eq!(digest_display("1.2.840.113549.2.5"), "MD5 (1.2.840.113549.2.5)");
        assert_eq!(digest_display("1.2.3"), "1.2.3");
    }

    #[test]
    fn not_cms_is_told_apart() {
        assert!(matches!(read(b""), Err(OutlineError::NotCms(_))));
        assert!(matches!(read(&[0x04, 0x01, 0x00]), Err(OutlineError::NotCms(_))));
        // A SEQUENCE holding a SEQUENCE: the shape of a certificate.
        assert!(matches!(read(&[0x30, 0x02, 0x30, 0x00]), Err(OutlineError::NotCms(_))));
        // ContentInfo of type data.
        let data = [
            0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        ];
        assert!(matches!(read(&data), Err(OutlineError::NotSignedData(_))));
        // SignedData cut short.
        let cut = [
            0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
        ];
        assert!(matches!(read(&cut), Err(OutlineError::Malformed(_))));
    }
}
