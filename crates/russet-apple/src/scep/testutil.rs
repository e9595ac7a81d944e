//! Test helpers: a test CA, device keys, certificate requests and SCEP requests built the way
//! clients build them, and a DER-to-BER rewriter (indefinite lengths, strings in pieces).

use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509, X509Name, X509NameBuilder, X509Req};
use time::OffsetDateTime;

use super::der;
use super::oid;
use super::request::DigestAlgorithm;
use super::signed;
use crate::ber::{Reader, Tag};

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

/// One CA for the whole test run (RSA key generation is the slow part).
pub(crate) fn ca() -> &'static (X509, PKey<Private>) {
    static CA: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
    CA.get_or_init(|| super::new_ca("Russet Test CA", "Russet Tests", now(), 10, super::CaKeyType::Rsa3072).unwrap())
}

/// A second, unrelated CA.
pub(crate) fn other_ca() -> &'static (X509, PKey<Private>) {
    static CA: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
    CA.get_or_init(|| super::new_ca("Someone Else's CA", "Elsewhere", now(), 10, super::CaKeyType::Rsa3072).unwrap())
}

pub(crate) fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

/// A 2048-bit device key shared by tests that do not care which key they get.
pub(crate) fn device_key() -> &'static PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| rsa_key(2048))
}

pub(crate) fn ec_key(curve: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(curve).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

pub(crate) fn name(cn: &str) -> X509Name {
    let mut b = X509NameBuilder::new().unwrap();
    b.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Test Devices").unwrap();
    b.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    b.build()
}

/// How the challenge password is encoded in a test request.
#[derive(Clone, Copy)]
pub(crate) enum ChallengeForm {
    Printable,
    Utf8,
    Bmp,
    /// An OCTET STRING holding UTF-8, as an old client sent it.
    OctetString,
}

/// Builds a PKCS#10 request by hand (OpenSSL's binding cannot add attributes).
pub(crate) struct CsrSpec<'a> {
    pub key: &'a PKey<Private>,
    pub subject: Option<X509Name>,
    pub challenge: Option<(&'a str, ChallengeForm)>,
    /// GeneralNames DER and criticality.
    pub san: Option<(Vec<u8>, bool)>,
    /// Sign with this key instead (a request whose signature does not verify).
    pub signing_key: Option<&'a PKey<Private>>,
}

impl<'a> CsrSpec<'a> {
    pub fn new(key: &'a PKey<Private>) -> Self {
        CsrSpec {
            key,
            subject: Some(name("device")),
            challenge: None,
            san: None,
            signing_key: None,
        }
    }

    pub fn challenge(mut self, challenge: &'a str) -> Self {
        self.challenge = Some((challenge, ChallengeForm::Printable));
        self
    }

    pub fn der(&self) -> Vec<u8> {
        let subject = match &self.subject {
            Some(n) => n.to_der().unwrap(),
            None => der::sequence(&[]),
        };
        let spki = self.key.public_key_to_der().unwrap();
        let mut attrs = Vec::new();
        if let Some((text, form)) = self.challenge {
            attrs.push(match form {
                ChallengeForm::Printable => der::attribute(oid::CHALLENGE_PASSWORD, der::printable(text)),
                ChallengeForm::Utf8 => {
                    der::attribute(oid::CHALLENGE_PASSWORD, der::tlv(der::UTF8_STRING, text.as_bytes()))
                }
                ChallengeForm::Bmp => {
                    let units: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
                    der::attribute(oid::CHALLENGE_PASSWORD, der::tlv(0x1e, &units))
                }
                ChallengeForm::OctetString => {
                    der::attribute(oid::CHALLENGE_PASSWORD, der::octet_string(text.as_bytes()))
                }
            });
        }
        if let Some((names, critical)) = &self.san {
            let mut ext = vec![der::oid(oid::SUBJECT_ALT_NAME)];
            if *critical {
                ext.push(der::tlv(0x01, &[0xff]));
            }
            ext.push(der::octet_string(names));
            let ext_refs: Vec<&[u8]> = ext.iter().map(Vec::as_slice).collect();
            let extensions = der::sequence(&[&der::sequence(&ext_refs)]);
            attrs.push(der::attribute(oid::EXTENSION_REQUEST, extensions));
        }
        let info = der::sequence(&[
            &der::unsigned_integer(0),
            &subject,
            &spki,
            &der::context(0, &attrs.concat()),
        ]);
        let signing_key = self.signing_key.unwrap_or(self.key);
        let mut signer = Signer::new(MessageDigest::sha256(), signing_key).unwrap();
        signer.update(&info).unwrap();
        let signature = signer.sign_to_vec().unwrap();
        let algorithm = if signing_key.id() == openssl::pkey::Id::EC {
            der::sequence(&[&der::oid("1.2.840.10045.4.3.2")])
        } else {
            der::algorithm("1.2.840.113549.1.1.11")
        };
        let mut bits = vec![0u8];
        bits.extend_from_slice(&signature);
        der::sequence(&[&info, &algorithm, &der::tlv(0x03, &bits)])
    }

    pub fn build(&self) -> X509Req {
        X509Req::from_der(&self.der()).unwrap()
    }
}

/// GeneralNames with one dNSName and one rfc822Name.
pub(crate) fn san_names(dns: &str, email: &str) -> Vec<u8> {
    der::sequence(&[&der::tlv(0x82, dns.as_bytes()), &der::tlv(0x81, email.as_bytes())])
}

/// A self-signed certificate for `key`, as clients make to sign their first request.
pub(crate) fn self_signed(key: &PKey<Private>, cn: &str) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(0x5ce9).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    let n = name(cn);
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now().unix_timestamp() - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now().unix_timestamp() + 3600).unwrap())
        .unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A SCEP request as a client makes it.
pub(crate) struct RequestSpec<'a> {
    pub csr_der: Vec<u8>,
    pub signer_cert: &'a X509,
    pub signer_key: &'a PKey<Private>,
    /// The certificate the envelope is encrypted to.
    pub recipient: &'a X509,
    pub message_type: &'a str,
    pub transaction_id: &'a str,
    pub sender_nonce: Vec<u8>,
    pub cipher: Cipher,
    pub digest: DigestAlgorithm,
    /// Encode the envelope as BER with indefinite lengths and strings in pieces.
    pub ber_envelope: bool,
}

impl<'a> RequestSpec<'a> {
    pub fn new(csr_der: Vec<u8>, signer_cert: &'a X509, signer_key: &'a PKey<Private>) -> Self {
        RequestSpec {
            csr_der,
            signer_cert,
            signer_key,
            recipient: &ca().0,
            message_type: "19",
            transaction_id: "7A3B9C0D1E2F",
            sender_nonce: (1..=16).collect(),
            cipher: Cipher::aes_128_cbc(),
            digest: DigestAlgorithm::Sha256,
            ber_envelope: false,
        }
    }

    pub fn der(&self) -> Vec<u8> {
        let mut recipients = Stack::new().unwrap();
        recipients.push(self.recipient.clone()).unwrap();
        let envelope = CmsContentInfo::encrypt(&recipients, &self.csr_der, self.cipher, CMSOptions::BINARY)
            .unwrap()
            .to_der()
            .unwrap();
        let envelope = if self.ber_envelope {
            to_ber(&envelope, &[])
        } else {
            envelope
        };
        let attrs = vec![
            der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable(self.message_type)),
            der::attribute(oid::SCEP_TRANSACTION_ID, der::printable(self.transaction_id)),
            der::attribute(oid::SCEP_SENDER_NONCE, der::octet_string(&self.sender_nonce)),
        ];
        signed::sign(
            Some(&envelope),
            attrs,
            self.digest,
            &[],
            self.signer_cert,
            self.signer_key,
        )
        .unwrap()
    }
}

/// Rewrites DER as BER the way some encoders write it: every constructed element with an
/// indefinite length, and OCTET STRINGs longer than 8 bytes as constructed strings in 8-byte
/// pieces. Elements whose encoding is one of `verbatim` (certificates, whose signatures cover
/// their DER) are copied unchanged.
pub(crate) fn to_ber(der_bytes: &[u8], verbatim: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reader::new(der_bytes);
    while !r.is_empty() {
        let e = r.read().unwrap();
        rewrite(&e, verbatim, &mut out);
    }
    out
}

fn rewrite(e: &crate::ber::Element<'_>, verbatim: &[Vec<u8>], out: &mut Vec<u8>) {
    if verbatim.iter().any(|v| v.as_slice() == e.encoded) {
        out.extend_from_slice(e.encoded);
        return;
    }
    let identifier = e.encoded[0];
    if e.tag.constructed {
        out.push(identifier);
        out.push(0x80);
        let mut children = e.children().unwrap();
        while !children.is_empty() {
            rewrite(&children.read().unwrap(), verbatim, out);
        }
        out.extend_from_slice(&[0, 0]);
    } else if e.tag == Tag::OCTET_STRING && e.contents.len() > 8 {
        out.push(0x24);
        out.push(0x80);
        for chunk in e.contents.chunks(8) {
            out.extend_from_slice(&der::octet_string(chunk));
        }
        out.extend_from_slice(&[0, 0]);
    } else {
        out.extend_from_slice(e.encoded);
    }
}
