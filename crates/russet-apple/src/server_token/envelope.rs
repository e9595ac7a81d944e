//! Reading the unencrypted parts of a CMS EnvelopedData (RFC 5652 §6): who it is encrypted for
//! and with which content cipher. The cryptography itself is left to OpenSSL.

use std::cmp::Ordering;

use openssl::x509::X509Ref;

use super::{ContentCipher, RecipientId, ServerTokenError};
use crate::ber::{self, BerError, Element, Reader, Tag};
use crate::dn::display_name;

const OID_PKCS7_PREFIX: &str = "1.2.840.113549.1.7.";
const OID_CMS_CT_PREFIX: &str = "1.2.840.113549.1.9.16.1.";
const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";

/// More recipients than this is not a server token (Apple's have one), and a hostile file must
/// not make us format thousands of names.
const MAX_RECIPIENTS: usize = 64;

/// RFC 5280 allows 20 bytes; be lenient but bounded.
const MAX_SERIAL_LEN: usize = 64;

/// What identifies one recipient certificate, in the form used for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecipientKey {
    /// The issuer Name exactly as encoded in the token (BER or DER).
    issuer_encoded: Vec<u8>,
    negative: bool,
    /// Big-endian magnitude without leading zero bytes (empty for zero).
    magnitude: Vec<u8>,
}

impl RecipientKey {
    /// Same issuer (compared the way OpenSSL compares names) and same serial number.
    pub fn matches(&self, cert: &X509Ref) -> bool {
        let Ok(issuer) = openssl::x509::X509Name::from_der(&self.issuer_encoded) else {
            return false;
        };
        if !matches!(issuer.try_cmp(cert.issuer_name()), Ok(Ordering::Equal)) {
            return false;
        }
        let Ok(serial) = cert.serial_number().to_bn() else {
            return false;
        };
        serial.is_negative() == self.negative && serial.to_vec() == self.magnitude
    }
}

#[derive(Debug)]
pub(crate) struct Envelope {
    pub recipients: Vec<RecipientId>,
    pub keys: Vec<RecipientKey>,
    pub cipher: ContentCipher,
}

fn malformed(e: BerError) -> ServerTokenError {
    ServerTokenError::Malformed { detail: e.to_string() }
}

fn content_type_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.7.1" => "unencrypted data",
        "1.2.840.113549.1.7.2" => "signed data",
        "1.2.840.113549.1.7.4" => "signed and enveloped data",
        "1.2.840.113549.1.7.5" => "digested data",
        "1.2.840.113549.1.7.6" => "password-encrypted data",
        "1.2.840.113549.1.9.16.1.2" => "authenticated data",
        "1.2.840.113549.1.9.16.1.9" => "compressed data",
        "1.2.840.113549.1.9.16.1.23" => "authenticated-enveloped (AES-GCM) data",
        _ => return None,
    })
}

/// Decides what the DER/BER bytes are before reading them in full, so that a truncated token
/// is reported as damaged while a certificate or a signed message gets its own error.
fn check_content_type(der: &[u8]) -> Result<(), ServerTokenError> {
    let (tag, header_len) = match ber::header(der) {
        Ok(h) => h,
        Err(e) => {
            return Err(ServerTokenError::Malformed { detail: e.to_string() });
        }
    };
    if tag != Tag::SEQUENCE {
        return Err(ServerTokenError::NotCms {
            looks_like: Some("binary data of an unknown kind".into()),
        });
    }
    let rest = der.get(header_len..).unwrap_or_default();
    let oid = match ber::peek_tag(rest) {
        None => {
            return Err(ServerTokenError::Malformed {
                detail: format!("the data ends after {} bytes", der.len()),
            });
        }
        Some(Tag::OID) => Reader::with_offset(rest, header_len)
            .read()
            .and_then(|e| e.oid())
            .map_err(malformed)?,
        Some(Tag::SEQUENCE) => {
            return Err(ServerTokenError::NotCms {
                looks_like: Some("a certificate in binary (DER) form".into()),
            });
        }
        Some(Tag::INTEGER) => {
            return Err(ServerTokenError::NotCms {
                looks_like: Some("a private key or PKCS#12 bundle in binary (DER) form".into()),
            });
        }
        Some(_) => {
            return Err(ServerTokenError::NotCms {
                looks_like: Some("binary (DER) data of an unknown kind".into()),
            });
        }
    };
    if oid == OID_ENVELOPED_DATA {
        return Ok(());
    }
    if let Some(name) = content_type_name(&oid) {
        return Err(ServerTokenError::NotEnvelopedData {
            content_type: format!("{name}, content type {oid}"),
        });
    }
    if oid.starts_with(OID_PKCS7_PREFIX) || oid.starts_with(OID_CMS_CT_PREFIX) {
        return Err(ServerTokenError::NotEnvelopedData {
            content_type: format!("content type {oid}"),
        });
    }
    Err(ServerTokenError::NotCms {
        looks_like: Some(format!("binary (DER) data of another kind, object identifier {oid}")),
    })
}

/// Reads the recipients and the content cipher of a CMS EnvelopedData.
pub(crate) fn read(der: &[u8]) -> Result<Envelope, ServerTokenError> {
    check_content_type(der)?;
    read_enveloped(der)
}

fn read_enveloped(der: &[u8]) -> Result<Envelope, ServerTokenError> {
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
    let mut top = Reader::new(der);
    let content_info = top.expect(Tag::SEQUENCE, "the ContentInfo")?;
    top.finish("the end of the CMS structure")?;
    let mut r = content_info.children()?;
    r.expect(Tag::OID, "the content type")?;
    let explicit = r.expect(Tag::context(0, true), "the content")?;
    r.finish("the content")?;
    let mut r = explicit.children()?;
    let enveloped = r.expect(Tag::SEQUENCE, "the EnvelopedData")?;
    r.finish("the EnvelopedData")?;

    // EnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL,
    //   recipientInfos SET OF RecipientInfo, encryptedContentInfo, unprotectedAttrs [1] IMPLICIT OPTIONAL }
    let mut r = enveloped.children()?;
    r.expect(Tag::INTEGER, "the EnvelopedData version")?;
    if r.peek()? == Some(Tag::context(0, true)) {
        r.read()?;
    }
    let recipient_infos = r.expect(Tag::SET, "the recipient list")?;
    let encrypted_content_info = r.expect(Tag::SEQUENCE, "the EncryptedContentInfo")?;
    if r.peek()? == Some(Tag::context(1, true)) {
        r.read()?;
    }
    r.finish("the EncryptedContentInfo")?;

    let (recipients, keys) = read_recipients(&recipient_infos)?;
    let cipher = read_cipher(&encrypted_content_info)?;
    Ok(Envelope {
        recipients,
        keys,
        cipher,
    })
}

fn read_recipients(set: &Element<'_>) -> Result<(Vec<RecipientId>, Vec<RecipientKey>), ServerTokenError> {
    let mut recipients = Vec::new();
    let mut keys = Vec::new();
    let mut count = 0usize;
    let mut r = set.children()?;
    while !r.is_empty() {
        let info = r.read()?;
        count += 1;
        if count > MAX_RECIPIENTS {
            return Err(ServerTokenError::Malformed {
                detail: format!("the token lists more than {MAX_RECIPIENTS} recipients, while Apple's list one"),
            });
        }
        // Only KeyTransRecipientInfo (an untagged SEQUENCE) identified by issuer and serial
        // number names a certificate; other kinds ([1]..[4], or a subject key identifier) are
        // skipped, so a token made only for those matches no certificate.
        if info.tag != Tag::SEQUENCE {
            continue;
        }
        let mut k = info.children()?;
        k.expect(Tag::INTEGER, "the recipient version")?;
        let rid = k.read()?;
        if rid.tag == Tag::context(0, false) {
            continue;
        }
        if rid.tag != Tag::SEQUENCE {
            return Err(ServerTokenError::Malformed {
                detail: format!(
                    "a recipient identifier is a {} at byte {}, not an issuer and serial number",
                    rid.tag, rid.offset
                ),
            });
        }
        let mut s = rid.children()?;
        let issuer = s.expect(Tag::SEQUENCE, "the recipient's issuer name")?;
        let serial = s.expect(Tag::INTEGER, "the recipient's serial number")?;
        s.finish("the recipient's serial number")?;
        let (recipient, key) = recipient(&issuer, &serial)?;
        recipients.push(recipient);
        keys.push(key);
    }
    if count == 0 {
        return Err(ServerTokenError::Malformed {
            detail: "the recipient list is empty".into(),
        });
    }
    Ok((recipients, keys))
}

fn recipient(issuer: &Element<'_>, serial: &Element<'_>) -> Result<(RecipientId, RecipientKey), ServerTokenError> {
    let name = openssl::x509::X509Name::from_der(issuer.encoded).map_err(|_| ServerTokenError::Malformed {
        detail: format!("the recipient's issuer name at byte {} cannot be read", issuer.offset),
    })?;
    let bytes = serial.integer_bytes()?;
    if bytes.len() > MAX_SERIAL_LEN {
        return Err(ServerTokenError::Malformed {
            detail: format!(
                "the recipient's serial number at byte {} is {} bytes long",
                serial.offset,
                bytes.len()
            ),
        });
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = if negative {
        twos_complement_negate(bytes)
    } else {
        bytes.to_vec()
    };
    let leading_zeros = magnitude.iter().take_while(|&&b| b == 0).count();
    magnitude.drain(..leading_zeros);
    let mut serial_text = if magnitude.is_empty() {
        "00".to_owned()
    } else {
        hex::encode_upper(&magnitude)
    };
    if negative {
        serial_text.insert(0, '-');
    }
    Ok((
        RecipientId {
            issuer: display_name(&name),
            serial: serial_text,
        },
        RecipientKey {
            issuer_encoded: issuer.encoded.to_vec(),
            negative,
            magnitude,
        },
    ))
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

fn read_cipher(info: &Element<'_>) -> Result<ContentCipher, ServerTokenError> {
    // EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
    //   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
    let mut r = info.children()?;
    r.expect(Tag::OID, "the encrypted content type")?;
    let algorithm = r.expect(Tag::SEQUENCE, "the content encryption algorithm")?;
    if r.is_empty() {
        return Err(ServerTokenError::Malformed {
            detail: "the encrypted content is missing".into(),
        });
    }
    let content = r.read()?;
    if !content.tag.same_type(&Tag::context(0, false)) {
        return Err(ServerTokenError::Malformed {
            detail: format!(
                "expected the encrypted content ([0]) at byte {}, found {}",
                content.offset, content.tag
            ),
        });
    }
    r.finish("the encrypted content")?;

    let mut a = algorithm.children()?;
    let oid = a.expect(Tag::OID, "the content encryption algorithm")?.oid()?;
    Ok(ContentCipher::from_oid(&oid))
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
    fn content_types_are_classified() {
        // SEQUENCE { OID 1.2.840.113549.1.7.2 } (truncated signed data)
        let signed = [
            0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
        ];
        assert!(matches!(
            check_content_type(&signed),
            Err(ServerTokenError::NotEnvelopedData { .. })
        ));
        // SEQUENCE { SEQUENCE {} }: certificate-like
        assert!(matches!(
            check_content_type(&[0x30, 0x02, 0x30, 0x00]),
            Err(ServerTokenError::NotCms { .. })
        ));
        // Only the outer header.
        assert!(matches!(
            check_content_type(&[0x30, 0x80]),
            Err(ServerTokenError::Malformed { .. })
        ));
        // An OID that is not a CMS content type.
        let other = [0x30, 0x05, 0x06, 0x03, 0x55, 0x04, 0x03];
        assert!(matches!(
            check_content_type(&other),
            Err(ServerTokenError::NotCms { .. })
        ));
    }
}
