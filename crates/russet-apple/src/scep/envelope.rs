//! The encrypted part of a SCEP request: a CMS EnvelopedData (RFC 5652 §6) addressed to the
//! CA. Who it is for and which content cipher it uses are read here, so that a message for
//! another CA or in a refused cipher gets its own answer; the decryption is OpenSSL's.

use std::sync::OnceLock;

use openssl::cms::CmsContentInfo;
use openssl::pkey::{PKeyRef, Private};
use openssl::provider::Provider;
use openssl::x509::{X509, X509Name, X509Ref};

use super::error::openssl_reasons;
use super::oid;
use super::signed::serial_matches;
use crate::ber::{BerError, Element, Reader, Tag};
use crate::dn::display_name;

/// More recipients than this is not a SCEP client's doing (they encrypt to one CA or RA).
const MAX_RECIPIENTS: usize = 16;

/// One recipient of the envelope.
#[derive(Debug)]
enum Recipient {
    IssuerAndSerial {
        issuer: Vec<u8>,
        serial: Vec<u8>,
    },
    SubjectKeyId(Vec<u8>),
    /// Key agreement, KEK or password recipients: never the CA's RSA key.
    Other,
}

/// The readable parts of the EnvelopedData.
#[derive(Debug)]
pub(crate) struct Envelope {
    recipients: Vec<Recipient>,
    /// The content-encryption algorithm, dotted.
    pub cipher_oid: String,
}

impl Envelope {
    /// Whether some recipient is `cert` (by issuer and serial number, or key identifier).
    pub fn is_for(&self, cert: &X509Ref) -> bool {
        self.recipients.iter().any(|r| match r {
            Recipient::IssuerAndSerial { issuer, serial } => {
                let Ok(name) = X509Name::from_der(issuer) else {
                    return false;
                };
                matches!(name.try_cmp(cert.issuer_name()), Ok(std::cmp::Ordering::Equal))
                    && serial_matches(serial, cert)
            }
            Recipient::SubjectKeyId(id) => cert.subject_key_id().is_some_and(|ski| ski.as_slice() == id.as_slice()),
            Recipient::Other => false,
        })
    }

    /// The recipients, for error messages: "issued by CN=…, serial number 0A1B".
    pub fn describe_recipients(&self) -> String {
        let parts: Vec<String> = self
            .recipients
            .iter()
            .map(|r| match r {
                Recipient::IssuerAndSerial { issuer, serial } => {
                    let issuer = X509Name::from_der(issuer)
                        .map(|n| display_name(&n))
                        .unwrap_or_else(|_| "an unreadable name".to_owned());
                    format!(
                        "a certificate issued by {issuer}, serial number {}",
                        hex::encode_upper(serial)
                    )
                }
                Recipient::SubjectKeyId(id) => format!("the key with identifier {}", hex::encode_upper(id)),
                Recipient::Other => "a recipient that is not an RSA certificate".to_owned(),
            })
            .collect();
        parts.join("; ")
    }
}

/// Reads a ContentInfo holding an EnvelopedData. The error says what is wrong.
pub(crate) fn read(der: &[u8]) -> Result<Envelope, String> {
    read_inner(der).map_err(|e| match e {
        Problem::Ber(e) => format!("the encrypted part is damaged: {e}"),
        Problem::Other(s) => s,
    })
}

enum Problem {
    Ber(BerError),
    Other(String),
}

impl From<BerError> for Problem {
    fn from(e: BerError) -> Self {
        Problem::Ber(e)
    }
}

fn read_inner(der: &[u8]) -> Result<Envelope, Problem> {
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
    let mut top = Reader::new(der);
    let content_info = top.expect(Tag::SEQUENCE, "the encrypted part")?;
    top.finish("the encrypted part")?;
    let mut r = content_info.children()?;
    let content_type = r.expect(Tag::OID, "the content type")?.oid()?;
    if content_type != oid::ENVELOPED_DATA {
        return Err(Problem::Other(format!(
            "the signed content is CMS {}, not the enveloped (encrypted) data SCEP requires",
            oid::describe(&content_type)
        )));
    }
    let explicit = r.expect(Tag::context(0, true), "the enveloped data")?;
    r.finish("the enveloped data")?;
    let mut r = explicit.children()?;
    let enveloped = r.expect(Tag::SEQUENCE, "the EnvelopedData")?;
    r.finish("the EnvelopedData")?;

    // EnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL,
    //   recipientInfos SET, encryptedContentInfo, unprotectedAttrs [1] IMPLICIT OPTIONAL }
    let mut r = enveloped.children()?;
    r.expect(Tag::INTEGER, "the EnvelopedData version")?;
    if r.peek()? == Some(Tag::context(0, true)) {
        r.read()?;
    }
    let recipient_infos = r.expect(Tag::SET, "the recipient list")?;
    let encrypted = r.expect(Tag::SEQUENCE, "the encrypted content")?;
    if r.peek()? == Some(Tag::context(1, true)) {
        r.read()?;
    }
    r.finish("the encrypted content")?;

    let recipients = read_recipients(&recipient_infos)?;

    // EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
    //   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
    let mut r = encrypted.children()?;
    r.expect(Tag::OID, "the encrypted content type")?;
    let algorithm = r.expect(Tag::SEQUENCE, "the content encryption algorithm")?;
    let cipher_oid = algorithm
        .children()?
        .expect(Tag::OID, "the content encryption algorithm")?
        .oid()?;
    if r.is_empty() {
        return Err(Problem::Other("the encrypted content is missing".into()));
    }
    let content = r.read()?;
    if !content.tag.same_type(&Tag::context(0, false)) {
        return Err(Problem::Other(format!(
            "expected the encrypted content ([0]) at byte {}, found {}",
            content.offset, content.tag
        )));
    }
    Ok(Envelope { recipients, cipher_oid })
}

fn read_recipients(set: &Element<'_>) -> Result<Vec<Recipient>, Problem> {
    let mut recipients = Vec::new();
    let mut r = set.children()?;
    while !r.is_empty() {
        if recipients.len() == MAX_RECIPIENTS {
            return Err(Problem::Other(format!(
                "the request is encrypted to more than {MAX_RECIPIENTS} recipients"
            )));
        }
        let info = r.read()?;
        // KeyTransRecipientInfo is the untagged SEQUENCE; the others are [1]..[4].
        if info.tag != Tag::SEQUENCE {
            recipients.push(Recipient::Other);
            continue;
        }
        let mut k = info.children()?;
        k.expect(Tag::INTEGER, "the recipient version")?;
        let rid = k.read()?;
        if rid.tag == Tag::SEQUENCE {
            let mut ias = rid.children()?;
            let issuer = ias.expect(Tag::SEQUENCE, "the recipient's issuer")?;
            let serial = ias.expect(Tag::INTEGER, "the recipient's serial number")?;
            recipients.push(Recipient::IssuerAndSerial {
                issuer: issuer.encoded.to_vec(),
                serial: serial.integer_bytes()?.to_vec(),
            });
        } else if rid.tag.same_type(&Tag::context(0, false)) {
            recipients.push(Recipient::SubjectKeyId(rid.string_contents()?.into_owned()));
        } else {
            recipients.push(Recipient::Other);
        }
    }
    if recipients.is_empty() {
        return Err(Problem::Other("the recipient list is empty".into()));
    }
    Ok(recipients)
}

/// OpenSSL 3 keeps single DES in its "legacy" provider, loaded once on first need and kept
/// for the life of the process. The default provider stays available.
static LEGACY_PROVIDER: OnceLock<Result<Provider, String>> = OnceLock::new();

pub(crate) fn load_legacy_provider() -> Result<(), String> {
    LEGACY_PROVIDER
        .get_or_init(|| Provider::try_load(None, "legacy", true).map_err(|e| openssl_reasons(&e)))
        .as_ref()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "OpenSSL's legacy provider, which holds single DES, cannot be loaded ({e}); \
                 install it (on Debian it ships with libssl3) or have the client use AES"
            )
        })
}

/// Decrypts the envelope with the CA's key. OpenSSL is given the certificate, so it tries
/// only the matching recipient and, when the RSA step fails, carries on with a random key
/// rather than reporting it (no padding oracle): every failure looks the same.
pub(crate) fn decrypt(der: &[u8], ca_key: &PKeyRef<Private>, ca_cert: &X509) -> Result<Vec<u8>, String> {
    let cms = CmsContentInfo::from_der(der)
        .map_err(|e| format!("OpenSSL cannot read the encrypted part ({})", openssl_reasons(&e)))?;
    cms.decrypt(ca_key, ca_cert).map_err(|_| {
        "decryption with the CA key failed: the encrypted part is damaged or was not encrypted \
         with this CA's key"
            .to_owned()
    })
}
