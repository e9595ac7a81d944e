//! The MDM push certificate: the customer's key pair and certificate signing request, the
//! signed push certificate request an MDM vendor makes for Apple's portal, and reading the
//! certificate Apple issues (its topic, dates, serial) and checking it against the key.
//!
//! The flow (Apple's "setting up push notifications for your MDM customers"):
//! 1. the customer (Russet) makes an RSA key and a CSR — the key never leaves Russet;
//! 2. an MDM vendor signs the CSR's DER with its "MDM CSR" certificate's key (SHA-256 with
//!    RSA) and wraps CSR, chain and signature in a plist, base64 encoded as a whole
//!    ([`signed_push_request`]);
//! 3. the customer uploads that text to Apple's push certificate portal with an Apple ID
//!    and downloads the certificate, whose subject UID is the APNs *topic*
//!    ([`PushCertificate::parse`]).
//!
//! A renewal must keep the topic: enrolled devices only accept pushes for the topic their
//! enrollment profile named. Russet's domain refuses a certificate with another topic.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder, X509Req, X509ReqBuilder};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::server_token::openssl_reasons;

/// RSA key size of the push certificate's key (what Keychain Access and every MDM use).
const RSA_BITS: u32 = 2048;

/// The prefix Apple gives every MDM push topic.
pub const TOPIC_PREFIX: &str = "com.apple.mgmt";

/// Largest push certificate file accepted (a PEM certificate is about 2 KB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// What went wrong with a push certificate, its key or its request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushCertError {
    #[error("cannot make the push certificate key or request: {0}")]
    Key(String),
    #[error(
        "the file is not a certificate: {0}. Upload the certificate Apple's push certificate portal issued \
         (a .pem file; DER is accepted too)"
    )]
    NotACertificate(String),
    #[error("the push certificate file holds {0} certificates; upload only the one Apple issued")]
    SeveralCertificates(usize),
    #[error(
        "the certificate has no push topic (subject UID starting with \"com.apple.mgmt\"): it is not an Apple MDM \
         push certificate. Download the certificate from Apple's push certificate portal"
    )]
    NoTopic,
    #[error(
        "the certificate's subject UID \"{0}\" does not start with \"com.apple.mgmt\": it is not an MDM push \
         certificate (perhaps an app's push certificate). Download the MDM certificate from Apple's push \
         certificate portal"
    )]
    NotMdmTopic(String),
    #[error("the vendor signing certificate or key is unusable: {0}")]
    Vendor(String),
}

/// A fresh key pair and CSR for the push certificate.
pub struct PushKeyAndCsr {
    /// PKCS#8 PEM. Stays in Russet, encrypted.
    pub private_key_pem: SecretString,
    /// The PKCS#10 request (PEM), signed with SHA-256.
    pub csr_pem: String,
}

impl std::fmt::Debug for PushKeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushKeyAndCsr")
            .field("private_key_pem", &"[REDACTED]")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

fn key_err(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> PushCertError {
    move |e| PushCertError::Key(format!("{what}: {}", openssl_reasons(&e)))
}

/// Makes an RSA-2048 key and a CSR with subject `CN=<common_name>, O=<organization>`
/// (Apple's portal reads neither; they help an administrator recognise the request).
pub fn generate_key_and_csr(common_name: &str, organization: &str) -> Result<PushKeyAndCsr, PushCertError> {
    let rsa = Rsa::generate(RSA_BITS).map_err(key_err("generating the RSA key"))?;
    let key = PKey::from_rsa(rsa).map_err(key_err("wrapping the RSA key"))?;
    let mut name = X509NameBuilder::new().map_err(key_err("building the subject"))?;
    // X.520 bounds: 64 characters for both attributes.
    let cn: String = common_name.chars().take(64).collect();
    let org: String = organization.chars().take(64).collect();
    name.append_entry_by_nid(Nid::COMMONNAME, &cn)
        .map_err(key_err("setting the common name"))?;
    if !org.is_empty() {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, &org)
            .map_err(key_err("setting the organisation"))?;
    }
    let name = name.build();
    let mut req = X509ReqBuilder::new().map_err(key_err("building the request"))?;
    req.set_version(0).map_err(key_err("setting the request version"))?;
    req.set_subject_name(&name).map_err(key_err("setting the subject"))?;
    req.set_pubkey(&key).map_err(key_err("setting the public key"))?;
    req.sign(&key, MessageDigest::sha256())
        .map_err(key_err("signing the request"))?;
    let csr_pem = String::from_utf8(req.build().to_pem().map_err(key_err("encoding the request"))?)
        .map_err(|e| PushCertError::Key(e.to_string()))?;
    let key_pem = key
        .private_key_to_pem_pkcs8()
        .map_err(key_err("encoding the private key"))?;
    let private_key_pem = SecretString::from(
        String::from_utf8(key_pem).map_err(|_| PushCertError::Key("the private key PEM is not text".into()))?,
    );
    Ok(PushKeyAndCsr {
        private_key_pem,
        csr_pem,
    })
}

/// Wraps a PEM certificate body at 64 characters, as Apple's portal expects of every line
/// of the chain.
fn pem_64(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The MDM vendor's signing identity: its "MDM CSR" certificate from Apple, the key of that
/// certificate, and the rest of the chain up to Apple's root (WWDR intermediate, root).
pub struct VendorIdentity {
    pub certificate: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
}

impl VendorIdentity {
    /// Reads the vendor certificate (PEM; further certificates in the same file are taken
    /// as the chain), its private key (PEM, PKCS#8 or PKCS#1) and an optional separate chain
    /// (PEM). Checks that the key belongs to the certificate.
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8], chain_pem: Option<&[u8]>) -> Result<Self, PushCertError> {
        let mut certs = X509::stack_from_pem(certificate_pem).map_err(|e| {
            PushCertError::Vendor(format!("the vendor certificate is not PEM: {}", openssl_reasons(&e)))
        })?;
        if certs.is_empty() {
            return Err(PushCertError::Vendor(
                "the vendor certificate file holds no certificate".into(),
            ));
        }
        let certificate = certs.remove(0);
        let mut chain = certs;
        if let Some(c) = chain_pem {
            chain.extend(
                X509::stack_from_pem(c).map_err(|e| {
                    PushCertError::Vendor(format!("the vendor chain is not PEM: {}", openssl_reasons(&e)))
                })?,
            );
        }
        let key = PKey::private_key_from_pem(key_pem).map_err(|e| {
            PushCertError::Vendor(format!(
                "the vendor key is not a PEM private key: {}",
                openssl_reasons(&e)
            ))
        })?;
        if !cert_matches_key(&certificate, &key) {
            return Err(PushCertError::Vendor(
                "the vendor private key does not belong to the vendor certificate".into(),
            ));
        }
        Ok(VendorIdentity {
            certificate,
            key,
            chain,
        })
    }
}

/// The signed push certificate request for Apple's portal: base64 of the plist
/// `{PushCertRequestCSR, PushCertCertificateChain, PushCertSignature}`, where the CSR is
/// base64 DER, the chain the vendor certificate then the rest as PEM with 64-character
/// lines, and the signature base64 of SHA-256-with-RSA over the CSR's DER by the vendor key.
pub fn signed_push_request(csr_pem: &str, vendor: &VendorIdentity) -> Result<String, PushCertError> {
    let csr = X509Req::from_pem(csr_pem.as_bytes()).map_err(key_err("reading the push CSR"))?;
    let csr_der = csr.to_der().map_err(key_err("encoding the push CSR"))?;
    let mut signer =
        Signer::new(MessageDigest::sha256(), &vendor.key).map_err(key_err("preparing the vendor signature"))?;
    signer.update(&csr_der).map_err(key_err("signing the push CSR"))?;
    let signature = signer.sign_to_vec().map_err(key_err("signing the push CSR"))?;
    let mut chain = pem_64(
        &vendor
            .certificate
            .to_der()
            .map_err(key_err("encoding the vendor certificate"))?,
    );
    for c in &vendor.chain {
        chain.push_str(&pem_64(&c.to_der().map_err(key_err("encoding the vendor chain"))?));
    }
    let mut dict = plist::Dictionary::new();
    dict.insert(
        "PushCertRequestCSR".into(),
        plist::Value::String(STANDARD.encode(&csr_der)),
    );
    dict.insert("PushCertCertificateChain".into(), plist::Value::String(chain));
    dict.insert(
        "PushCertSignature".into(),
        plist::Value::String(STANDARD.encode(&signature)),
    );
    let mut xml = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_xml(&mut xml)
        .map_err(|e| PushCertError::Key(format!("writing the request plist: {e}")))?;
    Ok(STANDARD.encode(&xml))
}

/// True when `key` is the private half of the certificate's public key.
pub fn cert_matches_key(cert: &X509, key: &PKey<Private>) -> bool {
    match (cert.public_key(), public_of(key)) {
        (Ok(public), Some(other)) => public.public_eq(&other),
        _ => false,
    }
}

fn public_of(key: &PKey<Private>) -> Option<PKey<Public>> {
    let der = key.public_key_to_der().ok()?;
    PKey::public_key_from_der(&der).ok()
}

/// What Russet keeps of an issued push certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushCertificate {
    /// The APNs topic: the subject's UID (`com.apple.mgmt.External.<uuid>`).
    pub topic: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Upper-case hex.
    pub serial: String,
    /// The subject as one line (`UID=…, CN=APSP:…, C=US`).
    pub subject: String,
    pub issuer: String,
    /// The certificate alone, PEM.
    pub pem: String,
}

impl PushCertificate {
    /// Reads a push certificate from PEM (one certificate; a trailing private key block is
    /// ignored here) or DER, and checks it carries an MDM topic.
    pub fn parse(bytes: &[u8]) -> Result<(PushCertificate, X509), PushCertError> {
        let trimmed = trim_ascii(bytes);
        let cert = if trimmed.starts_with(b"-----") {
            let mut certs =
                X509::stack_from_pem(trimmed).map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?;
            match certs.len() {
                0 => {
                    return Err(PushCertError::NotACertificate(
                        "no CERTIFICATE block in the PEM file".into(),
                    ));
                }
                1 => certs.remove(0),
                n => return Err(PushCertError::SeveralCertificates(n)),
            }
        } else {
            // DER is binary: its last byte may well be one that looks like whitespace.
            X509::from_der(bytes).map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?
        };
        let topic = cert
            .subject_name()
            .entries_by_nid(Nid::USERID)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .ok_or(PushCertError::NoTopic)?;
        if !topic.starts_with(TOPIC_PREFIX) {
            return Err(PushCertError::NotMdmTopic(topic));
        }
        let pem = String::from_utf8(
            cert.to_pem()
                .map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?,
        )
        .map_err(|e| PushCertError::NotACertificate(e.to_string()))?;
        let info = PushCertificate {
            topic,
            not_before: asn1_to_time(cert.not_before())?,
            not_after: asn1_to_time(cert.not_after())?,
            serial: cert
                .serial_number()
                .to_bn()
                .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                .map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?,
            subject: name_line(cert.subject_name()),
            issuer: name_line(cert.issuer_name()),
            pem,
        };
        Ok((info, cert))
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn name_line(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn asn1_to_time(t: &openssl::asn1::Asn1TimeRef) -> Result<OffsetDateTime, PushCertError> {
    let epoch =
        openssl::asn1::Asn1Time::from_unix(0).map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?;
    let diff = epoch
        .diff(t)
        .map_err(|e| PushCertError::NotACertificate(openssl_reasons(&e)))?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PushCertError::NotACertificate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::sign::Verifier;
    use openssl::x509::X509Builder;

    /// A certificate for `key` with the given UID, self-signed (the tests only read it).
    fn cert_with_uid(key: &PKey<Private>, uid: Option<&str>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        if let Some(uid) = uid {
            name.append_entry_by_nid(Nid::USERID, uid).unwrap();
        }
        name.append_entry_by_nid(Nid::COMMONNAME, "APSP:test").unwrap();
        name.append_entry_by_nid(Nid::COUNTRYNAME, "US").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(0x1234_abcd).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(1_731_536_000).unwrap()).unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn key_of(p: &PushKeyAndCsr) -> PKey<Private> {
        use secrecy::ExposeSecret;
        PKey::private_key_from_pem(p.private_key_pem.expose_secret().as_bytes()).unwrap()
    }

    #[test]
    fn csr_is_signed_and_names_the_organisation() {
        let p = generate_key_and_csr("Russet push", "Example Org").unwrap();
        let csr = X509Req::from_pem(p.csr_pem.as_bytes()).unwrap();
        let key = key_of(&p);
        assert!(csr.verify(&csr.public_key().unwrap()).unwrap());
        assert!(csr.public_key().unwrap().public_eq(&public_of(&key).unwrap()));
        assert_eq!(key.bits(), 2048);
        let subject = name_line(csr.subject_name());
        assert_eq!(subject, "CN=Russet push, O=Example Org");
        assert!(!format!("{p:?}").contains("PRIVATE"));
    }

    #[test]
    fn parses_topic_dates_and_serial_and_matches_the_key() {
        let p = generate_key_and_csr("x", "y").unwrap();
        let key = key_of(&p);
        let cert = cert_with_uid(
            &key,
            Some("com.apple.mgmt.External.5e1f3c2a-0000-4000-8000-000000000001"),
        );
        let (info, parsed) = PushCertificate::parse(&cert.to_pem().unwrap()).unwrap();
        assert_eq!(
            info.topic,
            "com.apple.mgmt.External.5e1f3c2a-0000-4000-8000-000000000001"
        );
        assert_eq!(info.serial, "1234ABCD");
        assert_eq!(info.not_before.unix_timestamp(), 1_700_000_000);
        assert_eq!(info.not_after.unix_timestamp(), 1_731_536_000);
        assert!(info.subject.starts_with("UID=com.apple.mgmt.External."));
        assert!(cert_matches_key(&parsed, &key));
        // DER works too, and another key does not match.
        let (der_info, _) = PushCertificate::parse(&cert.to_der().unwrap()).unwrap();
        assert_eq!(der_info, info);
        let other = key_of(&generate_key_and_csr("x", "y").unwrap());
        assert!(!cert_matches_key(&parsed, &other));
    }

    #[test]
    fn der_is_read_as_is_whatever_its_last_byte() {
        // A DER certificate whose last signature byte is 0x0A, 0x20… must not be trimmed like
        // PEM text: sign until one ends that way.
        let key = key_of(&generate_key_and_csr("x", "y").unwrap());
        for i in 0..2000 {
            let topic = format!("com.apple.mgmt.External.{i}");
            let der = cert_with_uid(&key, Some(&topic)).to_der().unwrap();
            if der.last().is_some_and(|b| b.is_ascii_whitespace()) {
                let (info, _) = PushCertificate::parse(&der).unwrap();
                assert_eq!(info.topic, topic);
                return;
            }
        }
        panic!("no signature ended in a whitespace byte in 2000 tries");
    }

    #[test]
    fn refuses_what_is_not_an_mdm_push_certificate() {
        let key = key_of(&generate_key_and_csr("x", "y").unwrap());
        assert_eq!(
            PushCertificate::parse(&cert_with_uid(&key, None).to_pem().unwrap()),
            Err(PushCertError::NoTopic)
        );
        assert_eq!(
            PushCertificate::parse(&cert_with_uid(&key, Some("com.example.app")).to_pem().unwrap()),
            Err(PushCertError::NotMdmTopic("com.example.app".into()))
        );
        assert!(matches!(
            PushCertificate::parse(b"hello"),
            Err(PushCertError::NotACertificate(_))
        ));
        assert!(matches!(
            PushCertificate::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(PushCertError::NotACertificate(_))
        ));
        let one = cert_with_uid(&key, Some("com.apple.mgmt.x")).to_pem().unwrap();
        let two = [one.clone(), one].concat();
        assert_eq!(PushCertificate::parse(&two), Err(PushCertError::SeveralCertificates(2)));
    }

    #[test]
    fn signed_request_carries_csr_chain_and_a_valid_vendor_signature() {
        let vendor_key = key_of(&generate_key_and_csr("v", "v").unwrap());
        let vendor_cert = cert_with_uid(&vendor_key, None);
        let root_key = key_of(&generate_key_and_csr("r", "r").unwrap());
        let root = cert_with_uid(&root_key, None);
        let vendor = VendorIdentity::from_pem(
            &vendor_cert.to_pem().unwrap(),
            &vendor_key.private_key_to_pem_pkcs8().unwrap(),
            Some(&root.to_pem().unwrap()),
        )
        .unwrap();
        let push = generate_key_and_csr("push", "org").unwrap();
        let b64 = signed_push_request(&push.csr_pem, &vendor).unwrap();
        let xml = STANDARD.decode(b64).unwrap();
        let dict = plist::Value::from_reader_xml(&xml[..])
            .unwrap()
            .into_dictionary()
            .unwrap();
        let csr_der = STANDARD
            .decode(dict["PushCertRequestCSR"].as_string().unwrap())
            .unwrap();
        assert_eq!(
            csr_der,
            X509Req::from_pem(push.csr_pem.as_bytes()).unwrap().to_der().unwrap()
        );
        let chain = dict["PushCertCertificateChain"].as_string().unwrap();
        let certs = X509::stack_from_pem(chain.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].to_der().unwrap(), vendor_cert.to_der().unwrap());
        assert!(chain.lines().all(|l| l.len() <= 64));
        let sig = STANDARD.decode(dict["PushCertSignature"].as_string().unwrap()).unwrap();
        let public = vendor_cert.public_key().unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        v.update(&csr_der).unwrap();
        assert!(v.verify(&sig).unwrap());
    }

    #[test]
    fn vendor_key_must_belong_to_the_vendor_certificate() {
        let k1 = key_of(&generate_key_and_csr("a", "a").unwrap());
        let k2 = key_of(&generate_key_and_csr("b", "b").unwrap());
        let cert = cert_with_uid(&k1, None);
        let err = VendorIdentity::from_pem(&cert.to_pem().unwrap(), &k2.private_key_to_pem_pkcs8().unwrap(), None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
