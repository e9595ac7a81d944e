//! CMS SignedData (RFC 5652 §5) as SCEP uses it: reading the one a client sends (BER or DER)
//! and writing the ones the CA sends back (DER).
//!
//! Reading takes the structure apart with the bounded BER reader so that the signer, the
//! digest algorithm and the signed attributes are known; the signature itself is checked by
//! OpenSSL's `CMS_verify`, told to use exactly the certificate found here. Writing assembles
//! the structure with the DER writer and signs the signed attributes with OpenSSL.

use std::borrow::Cow;
use std::cmp::Ordering;

use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::hash;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Name, X509Ref};

use super::der;
use super::error::{ScepError, crypto, openssl_reasons};
use super::oid;
use super::request::DigestAlgorithm;
use crate::ber::{self, BerError, Element, Reader, Tag};

/// More certificates than this in a request is not a SCEP client's doing (they send one).
const MAX_CERTIFICATES: usize = 16;
/// More signed attributes than this is not a SCEP client's doing (they send about six).
const MAX_ATTRIBUTES: usize = 32;

fn malformed(e: BerError) -> ScepError {
    ScepError::Malformed { detail: e.to_string() }
}

/// One signed attribute: its type and its values, still encoded.
#[derive(Debug)]
pub(crate) struct Attribute<'a> {
    pub oid: String,
    pub values: Vec<Element<'a>>,
}

/// How a SignerInfo names its certificate.
#[derive(Debug)]
pub(crate) enum SignerId<'a> {
    IssuerAndSerial { issuer: &'a [u8], serial: &'a [u8] },
    SubjectKeyId(Cow<'a, [u8]>),
}

impl SignerId<'_> {
    pub fn matches(&self, cert: &X509Ref) -> bool {
        match self {
            SignerId::IssuerAndSerial { issuer, serial } => {
                let Ok(name) = X509Name::from_der(issuer) else {
                    return false;
                };
                matches!(name.try_cmp(cert.issuer_name()), Ok(Ordering::Equal)) && serial_matches(serial, cert)
            }
            SignerId::SubjectKeyId(id) => cert.subject_key_id().is_some_and(|ski| ski.as_slice() == id.as_ref()),
        }
    }
}

/// Whether an INTEGER's contents (two's complement) equal `cert`'s serial number.
pub(crate) fn serial_matches(contents: &[u8], cert: &X509Ref) -> bool {
    let Ok(serial) = cert.serial_number().to_bn() else {
        return false;
    };
    let negative = contents.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude = if negative {
        twos_complement_negate(contents)
    } else {
        contents.to_vec()
    };
    let Ok(value) = BigNum::from_slice(&magnitude) else {
        return false;
    };
    serial.is_negative() == negative && serial.ucmp(&value) == Ordering::Equal
}

/// The magnitude of a negative two's complement number: invert and add one.
fn twos_complement_negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in out.iter_mut().rev() {
        let (sum, carry) = b.overflowing_add(1);
        *b = sum;
        if !carry {
            break;
        }
    }
    out
}

/// The readable parts of a client's SignedData.
#[derive(Debug)]
pub(crate) struct SignedMessage<'a> {
    pub certificates: Vec<X509>,
    pub signer: SignerId<'a>,
    /// The SignerInfo's digest algorithm, dotted.
    pub digest_oid: String,
    pub attributes: Vec<Attribute<'a>>,
    /// The encapsulated content type, dotted.
    pub content_type: String,
    pub has_content: bool,
}

impl<'a> SignedMessage<'a> {
    /// The single value of a signed attribute, if present. An attribute that appears twice,
    /// or with other than one value, is an error.
    pub fn attribute(&self, oid: &str, name: &str) -> Result<Option<Element<'a>>, ScepError> {
        let mut found = None;
        for a in self.attributes.iter().filter(|a| a.oid == oid) {
            if found.is_some() {
                return Err(ScepError::Malformed {
                    detail: format!("the {name} attribute appears more than once"),
                });
            }
            match a.values.as_slice() {
                [value] => found = Some(*value),
                values => {
                    return Err(ScepError::Malformed {
                        detail: format!("the {name} attribute has {} values instead of one", values.len()),
                    });
                }
            }
        }
        Ok(found)
    }

    /// The certificate the SignerInfo names, among those the message carries.
    pub fn signer_certificate(&self) -> Option<&X509> {
        self.certificates.iter().find(|c| self.signer.matches(c))
    }
}

/// What a DER/BER blob is, for the error when it is not a SignedData.
fn not_signed_data(detail: impl Into<String>) -> ScepError {
    ScepError::NotSignedData { detail: detail.into() }
}

/// Takes a client's ContentInfo/SignedData apart. Errors are [`ScepError::NotSignedData`]
/// when it is something else entirely and [`ScepError::Malformed`] when it is damaged.
pub(crate) fn parse(der: &[u8]) -> Result<SignedMessage<'_>, ScepError> {
    if der.is_empty() {
        return Err(not_signed_data("the body is empty"));
    }
    let (tag, _) = ber::header(der).map_err(|e| not_signed_data(e.to_string()))?;
    if tag != Tag::SEQUENCE {
        return Err(not_signed_data(format!("it starts with a {tag}, not a SEQUENCE")));
    }
    let mut top = Reader::new(der);
    let content_info = top.read().map_err(malformed)?;
    top.finish("the SignedData").map_err(malformed)?;
    let mut r = content_info.children().map_err(malformed)?;
    if r.peek().map_err(malformed)? != Some(Tag::OID) {
        return Err(not_signed_data(
            "it is not a CMS ContentInfo (a certificate or key, perhaps)",
        ));
    }
    let content_type = r.read().and_then(|e| e.oid()).map_err(malformed)?;
    if content_type != oid::SIGNED_DATA {
        return Err(not_signed_data(format!(
            "it is CMS {}, not signed data",
            oid::describe(&content_type)
        )));
    }
    let explicit = r.expect(Tag::context(0, true), "the signed data").map_err(malformed)?;
    r.finish("the signed data").map_err(malformed)?;
    let mut r = explicit.children().map_err(malformed)?;
    let signed_data = r.expect(Tag::SEQUENCE, "the SignedData").map_err(malformed)?;
    r.finish("the SignedData").map_err(malformed)?;
    read_signed_data(&signed_data)
}

/// SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
///   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos SET }
fn read_signed_data<'a>(signed_data: &Element<'a>) -> Result<SignedMessage<'a>, ScepError> {
    let mut r = signed_data.children()?;
    r.expect(Tag::INTEGER, "the SignedData version")?;
    r.expect(Tag::SET, "the digest algorithm list")?;
    let encap = r.expect(Tag::SEQUENCE, "the encapsulated content")?;
    let mut certificates = Vec::new();
    if r.peek()? == Some(Tag::context(0, true)) {
        let set = r.read()?;
        let mut c = set.children()?;
        while !c.is_empty() {
            let cert = c.read()?;
            // Other certificate formats ([0]..[3]) are not X.509 certificates: skip them.
            if cert.tag != Tag::SEQUENCE {
                continue;
            }
            if certificates.len() == MAX_CERTIFICATES {
                return Err(ScepError::Malformed {
                    detail: format!("the message carries more than {MAX_CERTIFICATES} certificates"),
                });
            }
            match X509::from_der(cert.encoded) {
                Ok(x) => certificates.push(x),
                Err(e) => {
                    return Err(ScepError::Malformed {
                        detail: format!(
                            "the certificate at byte {} cannot be read ({})",
                            cert.offset,
                            openssl_reasons(&e)
                        ),
                    });
                }
            }
        }
    }
    if r.peek()? == Some(Tag::context(1, true)) {
        r.read()?;
    }
    let signer_infos = r.expect(Tag::SET, "the signer list")?;
    r.finish("the signer list")?;

    // EncapsulatedContentInfo ::= SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING OPTIONAL }
    let mut e = encap.children()?;
    let content_type = e.expect(Tag::OID, "the content type")?.oid()?;
    let has_content = !e.is_empty();
    if has_content {
        e.expect(Tag::context(0, true), "the content")?;
    }
    e.finish("the content")?;

    let mut s = signer_infos.children()?;
    if s.is_empty() {
        return Err(ScepError::Malformed {
            detail: "the message is not signed (its signer list is empty)".into(),
        });
    }
    let signer_info = s.expect(Tag::SEQUENCE, "the SignerInfo")?;
    if !s.is_empty() {
        return Err(ScepError::Malformed {
            detail: "the message has more than one signer, while a SCEP request has exactly one".into(),
        });
    }

    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT OPTIONAL,
    //   signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL }
    let mut si = signer_info.children()?;
    si.expect(Tag::INTEGER, "the SignerInfo version")?;
    let sid = si.read()?;
    let signer = if sid.tag == Tag::SEQUENCE {
        let mut ias = sid.children()?;
        let issuer = ias.expect(Tag::SEQUENCE, "the signer's issuer")?;
        let serial = ias.expect(Tag::INTEGER, "the signer's serial number")?;
        ias.finish("the signer's serial number")?;
        SignerId::IssuerAndSerial {
            issuer: issuer.encoded,
            serial: serial.integer_bytes()?,
        }
    } else if sid.tag.same_type(&Tag::context(0, false)) {
        SignerId::SubjectKeyId(sid.string_contents()?)
    } else {
        return Err(ScepError::Malformed {
            detail: format!(
                "the signer is identified by a {}, which is not a CMS signer identifier",
                sid.tag
            ),
        });
    };
    let digest = si.expect(Tag::SEQUENCE, "the digest algorithm")?;
    let digest_oid = digest.children()?.expect(Tag::OID, "the digest algorithm")?.oid()?;
    if si.peek()? != Some(Tag::context(0, true)) {
        return Err(ScepError::Malformed {
            detail: "the signature has no signed attributes, so it carries no SCEP transaction".into(),
        });
    }
    let signed_attrs = si.read()?;
    let mut attributes = Vec::new();
    let mut a = signed_attrs.children()?;
    while !a.is_empty() {
        if attributes.len() == MAX_ATTRIBUTES {
            return Err(ScepError::Malformed {
                detail: format!("the signature has more than {MAX_ATTRIBUTES} signed attributes"),
            });
        }
        let attribute = a.expect(Tag::SEQUENCE, "a signed attribute")?;
        let mut fields = attribute.children()?;
        let oid = fields.expect(Tag::OID, "the attribute type")?.oid()?;
        let set = fields.expect(Tag::SET, "the attribute values")?;
        fields.finish("the attribute values")?;
        let mut values = Vec::new();
        let mut v = set.children()?;
        while !v.is_empty() {
            values.push(v.read()?);
        }
        attributes.push(Attribute { oid, values });
    }
    si.expect(Tag::SEQUENCE, "the signature algorithm")?;
    let signature = si.read()?;
    if !signature.tag.same_type(&Tag::OCTET_STRING) {
        return Err(ScepError::Malformed {
            detail: format!("the signature is a {}, not an OCTET STRING", signature.tag),
        });
    }

    Ok(SignedMessage {
        certificates,
        signer,
        digest_oid,
        attributes,
        content_type,
        has_content,
    })
}

/// Checks the signature with exactly `signer` (never a certificate picked by OpenSSL from the
/// message) and returns the signed content. The certificate itself is not validated here:
/// whether it is trusted is the caller's question.
pub(crate) fn verify(der: &[u8], signer: &X509) -> Result<Vec<u8>, String> {
    let mut cms = CmsContentInfo::from_der(der)
        .map_err(|e| format!("OpenSSL cannot read the signed data ({})", openssl_reasons(&e)))?;
    let mut certs = Stack::new().map_err(|e| openssl_reasons(&e))?;
    certs.push(signer.clone()).map_err(|e| openssl_reasons(&e))?;
    let mut content = Vec::new();
    cms.verify(
        Some(&certs),
        None,
        None,
        Some(&mut content),
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .map_err(|e| openssl_reasons(&e))?;
    Ok(content)
}

/// IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }, copied byte for
/// byte from the certificate's DER.
pub(crate) fn issuer_and_serial(cert: &X509Ref) -> Result<Vec<u8>, ScepError> {
    let der = cert.to_der().map_err(crypto("encoding a certificate"))?;
    let read = || -> Result<Vec<u8>, BerError> {
        let mut top = Reader::new(&der);
        let certificate = top.expect(Tag::SEQUENCE, "the certificate")?;
        let mut c = certificate.children()?;
        let tbs = c.expect(Tag::SEQUENCE, "the certificate body")?;
        let mut t = tbs.children()?;
        if t.peek()? == Some(Tag::context(0, true)) {
            t.read()?;
        }
        let serial = t.expect(Tag::INTEGER, "the serial number")?;
        t.expect(Tag::SEQUENCE, "the signature algorithm")?;
        let issuer = t.expect(Tag::SEQUENCE, "the issuer")?;
        Ok(der::sequence(&[issuer.encoded, serial.encoded]))
    };
    read().map_err(|e| ScepError::InvalidArgument {
        detail: format!("the CA certificate cannot be read: {e}"),
    })
}

/// A certificates-only SignedData ("degenerate PKCS#7"): no content, no signers, `certs` in
/// the given order.
pub(crate) fn certs_only(certs: &[&X509Ref]) -> Result<Vec<u8>, ScepError> {
    let mut encoded = Vec::new();
    for cert in certs {
        encoded.extend_from_slice(&cert.to_der().map_err(crypto("encoding a certificate"))?);
    }
    let signed_data = der::sequence(&[
        &der::unsigned_integer(1),
        &der::tlv(der::SET, &[]),
        &der::sequence(&[&der::oid(oid::DATA)]),
        &der::context(0, &encoded),
        &der::tlv(der::SET, &[]),
    ]);
    Ok(content_info_signed(&signed_data))
}

fn content_info_signed(signed_data: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::oid(oid::SIGNED_DATA), &der::context(0, signed_data)])
}

/// A SignedData over `content` (id-data; absent when `None`, as in `FAILURE` answers), signed
/// by the CA with `digest` and RSA PKCS#1 v1.5. The signed attributes are contentType,
/// messageDigest and `attributes` (encoded Attribute SEQUENCEs). The certificates are
/// `leading_certs` then the CA's, which clients need to check the signature.
pub(crate) fn sign(
    content: Option<&[u8]>,
    attributes: Vec<Vec<u8>>,
    digest: DigestAlgorithm,
    leading_certs: &[&X509Ref],
    ca_cert: &X509Ref,
    ca_key: &PKeyRef<Private>,
) -> Result<Vec<u8>, ScepError> {
    if ca_key.id() != Id::RSA {
        return Err(ScepError::InvalidArgument {
            detail: "the CA key is not an RSA key; SCEP clients encrypt to the CA with RSA".into(),
        });
    }
    let md = digest.message_digest();
    let content_digest = hash(md, content.unwrap_or_default()).map_err(crypto("hashing the answer"))?;
    let mut attrs = attributes;
    attrs.push(der::attribute(oid::CONTENT_TYPE, der::oid(oid::DATA)));
    attrs.push(der::attribute(oid::MESSAGE_DIGEST, der::octet_string(&content_digest)));
    let signed_attrs = der::set_of(attrs);

    let mut signer = Signer::new(md, ca_key).map_err(crypto("preparing the CA signature"))?;
    signer
        .update(&signed_attrs)
        .map_err(crypto("computing the CA signature"))?;
    let signature = signer.sign_to_vec().map_err(crypto("computing the CA signature"))?;

    // The signed attributes go in as [0] IMPLICIT: the SET's contents under another tag.
    let (_, set_header) = ber::header(&signed_attrs).map_err(|e| ScepError::Crypto {
        detail: format!("re-reading the signed attributes failed: {e}"),
    })?;
    let signer_info = der::sequence(&[
        &der::unsigned_integer(1),
        &issuer_and_serial(ca_cert)?,
        &der::sequence(&[&der::oid(digest.oid())]),
        &der::context(0, &signed_attrs[set_header..]),
        &der::algorithm(oid::RSA_ENCRYPTION),
        &der::octet_string(&signature),
    ]);
    let encap = match content {
        Some(content) => der::sequence(&[&der::oid(oid::DATA), &der::context(0, &der::octet_string(content))]),
        None => der::sequence(&[&der::oid(oid::DATA)]),
    };
    let mut certs = Vec::new();
    for cert in leading_certs.iter().chain(std::iter::once(&ca_cert)) {
        certs.extend_from_slice(&cert.to_der().map_err(crypto("encoding a certificate"))?);
    }
    let signed_data = der::sequence(&[
        &der::unsigned_integer(1),
        &der::set_of(vec![der::sequence(&[&der::oid(digest.oid())])]),
        &encap,
        &der::context(0, &certs),
        &der::set_of(vec![signer_info]),
    ]);
    Ok(content_info_signed(&signed_data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_serials() {
        assert_eq!(twos_complement_negate(&[0xff]), vec![0x01]);
        assert_eq!(twos_complement_negate(&[0x80, 0x00]), vec![0x80, 0x00]);
        assert_eq!(twos_complement_negate(&[0xfe, 0xff]), vec![0x01, 0x01]);
    }

    #[test]
    fn not_signed_data_is_told_apart_from_damage() {
        assert!(matches!(parse(b""), Err(ScepError::NotSignedData { .. })));
        assert!(matches!(parse(b"hello"), Err(ScepError::NotSignedData { .. })));
        // A certificate-like SEQUENCE { SEQUENCE {} }.
        assert!(matches!(
            parse(&[0x30, 0x02, 0x30, 0x00]),
            Err(ScepError::NotSignedData { .. })
        ));
        // ContentInfo of enveloped data.
        let enveloped = der::sequence(&[&der::oid(oid::ENVELOPED_DATA), &der::context(0, &[0x30, 0x00])]);
        assert!(matches!(parse(&enveloped), Err(ScepError::NotSignedData { .. })));
        // Signed data cut short.
        let cut = der::sequence(&[&der::oid(oid::SIGNED_DATA)]);
        assert!(matches!(parse(&cut), Err(ScepError::Malformed { .. })));
    }
}
