//! The PKCS#10 certificate signing request inside a SCEP request (RFC 2986): the checks
//! every request must pass before a certificate is issued for it, and the two attributes
//! SCEP cares about (challengePassword and the requested subjectAltName), which OpenSSL's
//! Rust binding does not expose and which are read here from the request's encoding.

use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::X509ReqRef;

use super::oid;
use crate::ber::{BerError, Class, Element, Reader, Tag};

/// The smallest RSA key accepted.
pub(crate) const MIN_RSA_BITS: u32 = 2048;
/// The largest RSA key accepted (verifying and encrypting to larger keys is slow, and no
/// SCEP client makes them).
pub(crate) const MAX_RSA_BITS: u32 = 8192;
/// Longer challenge passwords are not something a profile carries.
const MAX_CHALLENGE_CHARS: usize = 1024;

/// The kind of key a request is for, once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA: signs and encrypts, so the certificate gets keyEncipherment too.
    Rsa,
    /// ECDSA on P-256, P-384 or P-521: signs only.
    Ec,
}

/// Checks the request's signature and key. The message says what is wrong and what to do.
pub(crate) fn check(csr: &X509ReqRef) -> Result<KeyKind, String> {
    let key = csr
        .public_key()
        .map_err(|_| "its public key cannot be read".to_owned())?;
    let kind = match key.id() {
        Id::RSA => {
            let bits = key.bits();
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "its RSA key has {bits} bits, and at least {MIN_RSA_BITS} are required: set the \
                     SCEP payload's Keysize to 2048 or more"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "its RSA key has {bits} bits, more than the {MAX_RSA_BITS} accepted: use 2048 \
                     to 4096 bits"
                ));
            }
            KeyKind::Rsa
        }
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1) => KeyKind::Ec,
                Some(other) => {
                    return Err(format!(
                        "its elliptic-curve key is on {}, while P-256, P-384 and P-521 are \
                         accepted: use one of those or RSA with 2048 bits or more",
                        other.short_name().unwrap_or("an unnamed curve")
                    ));
                }
                None => {
                    return Err("its elliptic-curve key uses explicit curve parameters, which are not \
                         accepted: use P-256, P-384 or P-521, or RSA with 2048 bits or more"
                        .to_owned());
                }
            }
        }
        other => {
            return Err(format!(
                "its key type ({}) is not supported: use RSA with 2048 bits or more",
                key_type_name(other)
            ));
        }
    };
    match csr.verify(&key) {
        Ok(true) => Ok(kind),
        _ => Err(
            "its signature does not verify with its own public key, so it was altered or \
                  made wrongly"
                .to_owned(),
        ),
    }
}

fn key_type_name(id: Id) -> String {
    match id {
        Id::DSA => "DSA".to_owned(),
        Id::DH => "Diffie-Hellman".to_owned(),
        Id::ED25519 => "Ed25519".to_owned(),
        Id::ED448 => "Ed448".to_owned(),
        Id::RSA_PSS => "RSA-PSS".to_owned(),
        other => format!("OpenSSL key type {}", other.as_raw()),
    }
}

/// The subjectAltName extension a request asks for, as encoded in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestedSan {
    pub critical: bool,
    /// The DER of GeneralNames (the extension's extnValue contents).
    pub value: Vec<u8>,
}

/// What SCEP reads from a request's attributes.
#[derive(Debug, Default)]
pub(crate) struct Attributes {
    pub challenge: Option<String>,
    pub san: Option<RequestedSan>,
}

/// Reads the challengePassword and the subjectAltName of the extensionRequest from a
/// CertificationRequest's encoding (DER or BER).
pub(crate) fn attributes(der: &[u8]) -> Result<Attributes, String> {
    read_attributes(der).map_err(|e| match e {
        Problem::Ber(e) => format!("its encoding is damaged: {e}"),
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

fn read_attributes(der: &[u8]) -> Result<Attributes, Problem> {
    // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
    // CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, attributes [0] IMPLICIT }
    let mut top = Reader::new(der);
    let request = top.expect(Tag::SEQUENCE, "the certificate request")?;
    let mut r = request.children()?;
    let info = r.expect(Tag::SEQUENCE, "the request information")?;
    let mut i = info.children()?;
    i.expect(Tag::INTEGER, "the request version")?;
    i.expect(Tag::SEQUENCE, "the subject")?;
    i.expect(Tag::SEQUENCE, "the public key")?;
    let mut out = Attributes::default();
    if i.is_empty() {
        return Ok(out);
    }
    let attrs = i.expect(Tag::context(0, true), "the attributes")?;
    let mut a = attrs.children()?;
    while !a.is_empty() {
        let attribute = a.expect(Tag::SEQUENCE, "an attribute")?;
        let mut fields = attribute.children()?;
        let oid = fields.expect(Tag::OID, "the attribute type")?.oid()?;
        let values = fields.expect(Tag::SET, "the attribute values")?;
        let mut v = values.children()?;
        let value = v.read()?;
        if !v.is_empty() {
            return Err(Problem::Other(format!(
                "its attribute {} has more than one value",
                oid::describe(&oid)
            )));
        }
        match oid.as_str() {
            oid::CHALLENGE_PASSWORD => {
                if out.challenge.is_some() {
                    return Err(Problem::Other("it has two challenge passwords".into()));
                }
                out.challenge = Some(challenge_text(&value)?);
            }
            oid::EXTENSION_REQUEST => {
                if let Some(san) = requested_san(&value)? {
                    if out.san.is_some() {
                        return Err(Problem::Other("it asks for two subjectAltName extensions".into()));
                    }
                    out.san = Some(san);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// challengePassword is a DirectoryString; clients also use IA5String, and an old client
/// sent an OCTET STRING. All are read as text (UTF-8, Latin-1 for TeletexString, UTF-16 for
/// BMPString).
fn challenge_text(value: &Element<'_>) -> Result<String, Problem> {
    /// How a string type's bytes become text.
    enum Charset {
        Utf8,
        Latin1,
        Utf16Be,
    }
    let not_text = || Problem::Other("its challenge password is not valid text".into());
    let charset = match (value.tag.class, value.tag.number) {
        // UTF8String, PrintableString, IA5String (ASCII is UTF-8), OCTET STRING.
        (Class::Universal, 12 | 19 | 22 | 4) => Charset::Utf8,
        // TeletexString: Latin-1 in practice.
        (Class::Universal, 20) => Charset::Latin1,
        // BMPString.
        (Class::Universal, 30) => Charset::Utf16Be,
        _ => {
            return Err(Problem::Other(format!(
                "its challenge password is a {}, not a string",
                value.tag
            )));
        }
    };
    let bytes = value.string_contents()?;
    let text = match charset {
        Charset::Utf8 => String::from_utf8(bytes.into_owned()).map_err(|_| not_text())?,
        Charset::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        Charset::Utf16Be => {
            if bytes.len() % 2 != 0 {
                return Err(not_text());
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| not_text())?
        }
    };
    if text.chars().count() > MAX_CHALLENGE_CHARS {
        return Err(Problem::Other(format!(
            "its challenge password is longer than {MAX_CHALLENGE_CHARS} characters"
        )));
    }
    Ok(text)
}

/// Extensions ::= SEQUENCE OF Extension; Extension ::= SEQUENCE { extnID, critical BOOLEAN
/// DEFAULT FALSE, extnValue OCTET STRING }.
fn requested_san(extensions: &Element<'_>) -> Result<Option<RequestedSan>, Problem> {
    if extensions.tag != Tag::SEQUENCE {
        return Err(Problem::Other(format!(
            "its extension request is a {}, not a list of extensions",
            extensions.tag
        )));
    }
    let mut found = None;
    let mut r = extensions.children()?;
    while !r.is_empty() {
        let extension = r.expect(Tag::SEQUENCE, "a requested extension")?;
        let mut e = extension.children()?;
        let id = e.expect(Tag::OID, "the extension type")?.oid()?;
        let mut critical = false;
        if e.peek()? == Some(Tag::BOOLEAN) {
            let flag = e.read()?;
            critical = flag.contents.iter().any(|&b| b != 0);
        }
        let value = e.read()?;
        if !value.tag.same_type(&Tag::OCTET_STRING) {
            return Err(Problem::Other(format!(
                "its requested extension {id} has a {} where the value should be",
                value.tag
            )));
        }
        if id != oid::SUBJECT_ALT_NAME {
            continue;
        }
        if found.is_some() {
            return Err(Problem::Other("it asks for two subjectAltName extensions".into()));
        }
        let value = value.string_contents()?.into_owned();
        // GeneralNames ::= SEQUENCE OF GeneralName: check it is one whole element.
        let mut names = Reader::new(&value);
        let seq = names.expect(Tag::SEQUENCE, "the subjectAltName names")?;
        names.finish("the subjectAltName names")?;
        if seq.children()?.is_empty() {
            return Err(Problem::Other("its subjectAltName extension names nothing".into()));
        }
        found = Some(RequestedSan { critical, value });
    }
    Ok(found)
}
