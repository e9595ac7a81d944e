//! Apple's side of MDM push certificates: a simulated Apple PKI (a root CA, the WWDR
//! intermediate that issues MDM vendor certificates, and the push CA that issues MDM push
//! certificates), the MDM vendor ("MDM CSR") signing certificates, and the Apple Push
//! Certificates Portal that turns a vendor-signed customer request into a push certificate.
//!
//! The flow, as Apple documents it:
//!
//! 1. The MDM vendor holds an MDM signing certificate issued by Apple's WWDR CA
//!    ([`AppleSim::issue_vendor_certificate`]).
//! 2. A customer makes a key and a CSR. The vendor signs the CSR's DER with SHA256withRSA
//!    and builds the plist `{PushCertRequestCSR, PushCertCertificateChain,
//!    PushCertSignature}`, then base64-encodes the whole plist.
//! 3. The customer uploads that text with their Apple ID
//!    ([`AppleSim::push_portal_create`]) and gets the push certificate. Its subject's UID
//!    is the APNs topic. A year later they renew it with the same Apple ID
//!    ([`AppleSim::push_portal_renew`]), which keeps the topic.
//!
//! The CA keys are RSA 2048 and are made on first use (not in [`AppleSim::new`]), so
//! simulators that never touch push certificates pay nothing for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder, X509NameRef, X509Ref, X509Req, X509StoreContext};
use serde::Serialize;
use time::OffsetDateTime;

use crate::catalog::{hex, os_random};
use crate::sim::{AppleSim, lock};
use crate::types::SimError;

/// RSA key size of the simulated Apple CAs.
const CA_KEY_BITS: u32 = 2048;
/// Smallest RSA key accepted in a customer's push CSR.
const MIN_CSR_KEY_BITS: u32 = 2048;
/// Prefix of every MDM push topic (the certificate subject's UID).
pub const TOPIC_PREFIX: &str = "com.apple.mgmt.External.";

fn crypto(e: openssl::error::ErrorStack) -> SimError {
    SimError::Crypto(e.to_string())
}

fn refused(msg: impl Into<String>) -> SimError {
    SimError::PushCertRequest(msg.into())
}

/// A certificate authority: its certificate and private key.
pub(crate) struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// The simulated Apple PKI behind the push certificate portal.
pub(crate) struct PortalPki {
    /// "Apple Root CA": the trust anchor of the vendor chain and of push certificates.
    pub root: Ca,
    /// "Apple Worldwide Developer Relations Certification Authority": issues vendor certificates.
    pub wwdr: Ca,
    /// "Apple Application Integration 2 Certification Authority": issues push certificates.
    pub push: Ca,
}

/// An RSA key of `bits` bits.
pub(crate) fn rsa_key(bits: u32) -> Result<PKey<Private>, SimError> {
    PKey::from_rsa(Rsa::generate(bits).map_err(crypto)?).map_err(crypto)
}

/// An X.509 name from (NID, value) pairs, in order.
pub(crate) fn x509_name(entries: &[(Nid, &str)]) -> Result<X509Name, SimError> {
    let mut b = X509NameBuilder::new().map_err(crypto)?;
    for (nid, value) in entries {
        b.append_entry_by_nid(*nid, value).map_err(crypto)?;
    }
    Ok(b.build())
}

/// A random positive 128-bit serial number.
pub(crate) fn random_serial() -> Result<BigNum, SimError> {
    let mut bn = BigNum::new().map_err(crypto)?;
    // 127 random bits with the top bit set: positive, and always 16 bytes long.
    bn.rand(127, MsbOption::ONE, false).map_err(crypto)?;
    Ok(bn)
}

/// What a new certificate is for.
pub(crate) enum Profile {
    /// A CA that may issue end-entity certificates (path length 0) or CAs (`None`).
    Ca { path_len: Option<u32> },
    /// An MDM vendor signing certificate.
    VendorSigning,
    /// A push certificate: TLS client authentication to APNs.
    TlsClient,
    /// A TLS server certificate with these DNS names and IP addresses.
    TlsServer { dns: Vec<String>, ips: Vec<String> },
    /// A device's hardware identity (signs MachineInfo): digital signature and key
    /// encipherment, no extended key usage.
    DeviceIdentity,
}

/// Issue a certificate. `issuer` is `None` for a self-signed certificate (then `subject_key`
/// must be the private key that signs it, passed as `self_key`).
pub(crate) fn issue(
    subject: &X509NameRef,
    subject_key: &PKeyRef<Public>,
    issuer: Option<&Ca>,
    self_key: Option<&PKeyRef<Private>>,
    not_before: i64,
    not_after: i64,
    profile: Profile,
) -> Result<(X509, BigNum), SimError> {
    let mut b = X509Builder::new().map_err(crypto)?;
    b.set_version(2).map_err(crypto)?;
    let serial = random_serial()?;
    b.set_serial_number(serial.to_asn1_integer().map_err(crypto)?.as_ref())
        .map_err(crypto)?;
    b.set_subject_name(subject).map_err(crypto)?;
    b.set_issuer_name(issuer.map(|i| i.cert.subject_name()).unwrap_or(subject))
        .map_err(crypto)?;
    b.set_pubkey(subject_key).map_err(crypto)?;
    b.set_not_before(Asn1Time::from_unix(not_before).map_err(crypto)?.as_ref())
        .map_err(crypto)?;
    b.set_not_after(Asn1Time::from_unix(not_after).map_err(crypto)?.as_ref())
        .map_err(crypto)?;
    match &profile {
        Profile::Ca { path_len } => {
            let mut bc = BasicConstraints::new();
            bc.critical().ca();
            if let Some(n) = path_len {
                bc.pathlen(*n);
            }
            b.append_extension(bc.build().map_err(crypto)?).map_err(crypto)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .map_err(crypto)?,
            )
            .map_err(crypto)?;
        }
        Profile::VendorSigning => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(crypto)?)
                .map_err(crypto)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().build().map_err(crypto)?)
                .map_err(crypto)?;
        }
        Profile::TlsClient => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(crypto)?)
                .map_err(crypto)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .map_err(crypto)?,
            )
            .map_err(crypto)?;
            b.append_extension(ExtendedKeyUsage::new().client_auth().build().map_err(crypto)?)
                .map_err(crypto)?;
        }
        Profile::DeviceIdentity => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(crypto)?)
                .map_err(crypto)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .map_err(crypto)?,
            )
            .map_err(crypto)?;
        }
        Profile::TlsServer { .. } => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(crypto)?)
                .map_err(crypto)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().build().map_err(crypto)?)
                .map_err(crypto)?;
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().map_err(crypto)?)
                .map_err(crypto)?;
        }
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
        .map_err(crypto)?;
    b.append_extension(ski).map_err(crypto)?;
    if let Some(i) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&i.cert), None))
            .map_err(crypto)?;
        b.append_extension(aki).map_err(crypto)?;
    }
    if let Profile::TlsServer { dns, ips } = &profile {
        let mut san = openssl::x509::extension::SubjectAlternativeName::new();
        for d in dns {
            san.dns(d);
        }
        for ip in ips {
            san.ip(ip);
        }
        let ext = san
            .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
            .map_err(crypto)?;
        b.append_extension(ext).map_err(crypto)?;
    }
    let signing_key = match (issuer, self_key) {
        (Some(i), _) => &i.key,
        (None, Some(k)) => k,
        (None, None) => return Err(SimError::Crypto("a self-signed certificate needs its own key".into())),
    };
    b.sign(signing_key, MessageDigest::sha256()).map_err(crypto)?;
    Ok((b.build(), serial))
}

/// The public half of a private key.
pub(crate) fn public_of(key: &PKeyRef<Private>) -> Result<PKey<Public>, SimError> {
    PKey::public_key_from_der(&key.public_key_to_der().map_err(crypto)?).map_err(crypto)
}

/// A self-signed CA or one issued by `issuer`, valid from 5 years before to 25 years after `now`.
pub(crate) fn make_ca(
    subject: &[(Nid, &str)],
    issuer: Option<&Ca>,
    key: PKey<Private>,
    now: i64,
) -> Result<Ca, SimError> {
    const YEAR: i64 = 365 * 86_400;
    let name = x509_name(subject)?;
    let path_len = if issuer.is_some() { Some(0) } else { None };
    let (cert, _) = issue(
        &name,
        &*public_of(&key)?,
        issuer,
        Some(&key),
        now - 5 * YEAR,
        now + 25 * YEAR,
        Profile::Ca { path_len },
    )?;
    Ok(Ca { cert, key })
}

impl PortalPki {
    /// Three fresh CAs (three RSA key generations: a few hundred milliseconds).
    pub(crate) fn generate(now: i64) -> Result<PortalPki, SimError> {
        const OU: &str = "Apple Certification Authority (simulated by applesim)";
        let root = make_ca(
            &[
                (Nid::COUNTRYNAME, "US"),
                (Nid::ORGANIZATIONNAME, "Apple Inc."),
                (Nid::ORGANIZATIONALUNITNAME, OU),
                (Nid::COMMONNAME, "Apple Root CA"),
            ],
            None,
            rsa_key(CA_KEY_BITS)?,
            now,
        )?;
        let wwdr = make_ca(
            &[
                (
                    Nid::COMMONNAME,
                    "Apple Worldwide Developer Relations Certification Authority",
                ),
                (Nid::ORGANIZATIONALUNITNAME, "G3 (simulated by applesim)"),
                (Nid::ORGANIZATIONNAME, "Apple Inc."),
                (Nid::COUNTRYNAME, "US"),
            ],
            Some(&root),
            rsa_key(CA_KEY_BITS)?,
            now,
        )?;
        let push = make_ca(
            &[
                (
                    Nid::COMMONNAME,
                    "Apple Application Integration 2 Certification Authority",
                ),
                (Nid::ORGANIZATIONALUNITNAME, OU),
                (Nid::ORGANIZATIONNAME, "Apple Inc."),
                (Nid::COUNTRYNAME, "US"),
            ],
            Some(&root),
            rsa_key(CA_KEY_BITS)?,
            now,
        )?;
        Ok(PortalPki { root, wwdr, push })
    }
}

/// One issued push certificate, as the portal and APNs track it.
#[derive(Debug)]
pub(crate) struct CertState {
    pub topic: Arc<str>,
    /// The Apple ID that created the topic (normalised: trimmed, lowercase).
    pub apple_id: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked: AtomicBool,
}

impl CertState {
    /// Why APNs must refuse this certificate at Unix time `now`, if it must.
    pub(crate) fn unusable_at(&self, now: i64) -> Option<&'static str> {
        if self.revoked.load(Ordering::Relaxed) {
            Some("revoked")
        } else if now > self.not_after {
            Some("expired")
        } else if now < self.not_before {
            Some("not yet valid")
        } else {
            None
        }
    }
}

/// All push certificates the portal issued.
#[derive(Default)]
pub(crate) struct PushCerts {
    /// Topic → its certificates, oldest first.
    topics: HashMap<String, Vec<Arc<CertState>>>,
    /// Serial number bytes → certificate.
    by_serial: HashMap<Vec<u8>, Arc<CertState>>,
}

impl PushCerts {
    pub(crate) fn by_serial(&self, serial: &[u8]) -> Option<Arc<CertState>> {
        self.by_serial.get(serial).cloned()
    }
}

/// A push certificate the portal issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssuedPushCert {
    /// The certificate (PEM). The customer pairs it with the key of their CSR.
    pub certificate_pem: String,
    /// The APNs topic: the subject's UID, `com.apple.mgmt.External.<uuid>`.
    pub topic: String,
    /// The serial number, uppercase hex.
    #[serde(rename = "serial")]
    pub serial_hex: String,
    /// End of validity (one year after issue, simulated clock).
    #[serde(serialize_with = "crate::timefmt::ser")]
    pub not_after: OffsetDateTime,
    /// The Apple ID of the upload, as given (trimmed). Apple IDs are compared without case.
    pub apple_id: String,
}

/// A push certificate as listed by [`AppleSim::push_certificates`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushCertInfo {
    /// The APNs topic.
    pub topic: String,
    /// The owning Apple ID (normalised to lowercase).
    pub apple_id: String,
    /// Serial number, uppercase hex.
    pub serial: String,
    /// Start of validity.
    #[serde(serialize_with = "crate::timefmt::ser")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(serialize_with = "crate::timefmt::ser")]
    pub not_after: OffsetDateTime,
    /// Revoked with [`AppleSim::revoke_push_cert`].
    pub revoked: bool,
}

fn unix_to_time(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A random version 4 UUID in canonical form.
pub(crate) fn uuid_v4(upper: bool) -> String {
    let mut b = [0u8; 16];
    os_random(&mut b);
    format_uuid(b, upper)
}

/// Format 16 bytes as a version 4 UUID (the version and variant bits are set here).
pub(crate) fn format_uuid(mut b: [u8; 16], upper: bool) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b, upper);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn normalise_apple_id(apple_id: &str) -> Result<String, SimError> {
    let id = apple_id.trim();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(refused(
            "sign in with an Apple ID: the Apple ID is empty or contains spaces",
        ));
    }
    Ok(id.to_lowercase())
}

/// The text of the first entry of `nid` in a name.
fn name_entry(name: &X509NameRef, nid: Nid) -> Option<String> {
    name.entries_by_nid(nid).next().and_then(|e| e.data().to_string().ok())
}

/// "The Apple ID … on 2025-01-01T00:00:00Z" style date of an ASN.1 time.
fn asn1_to_string(t: &Asn1TimeRef) -> String {
    t.to_string()
}

/// Parse and check a customer CSR: DER, valid self-signature, RSA key of at least 2048 bits.
fn check_csr(der: &[u8]) -> Result<X509Req, SimError> {
    let req = X509Req::from_der(der).map_err(|_| {
        refused("Invalid Certificate Signing Request: PushCertRequestCSR is not a DER-encoded PKCS#10 certificate signing request")
    })?;
    let key = req
        .public_key()
        .map_err(|_| refused("Invalid Certificate Signing Request: its public key cannot be read"))?;
    if !req.verify(&key).unwrap_or(false) {
        return Err(refused(
            "Invalid Certificate Signing Request: the CSR's own signature does not verify (was it altered after it was signed?)",
        ));
    }
    match key.rsa() {
        Ok(rsa) if rsa.size() * 8 >= MIN_CSR_KEY_BITS => Ok(req),
        Ok(rsa) => Err(refused(format!(
            "Invalid Certificate Signing Request: the RSA key has {} bits; use at least {MIN_CSR_KEY_BITS}",
            rsa.size() * 8
        ))),
        Err(_) => Err(refused(
            "Invalid Certificate Signing Request: the key must be RSA (push certificates use RSA 2048)",
        )),
    }
}

/// All checks of an uploaded request; returns the customer's CSR.
fn check_request(pki: &PortalPki, request_b64: &str, now: i64) -> Result<X509Req, SimError> {
    let compact: Vec<u8> = request_b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(refused(
            "the uploaded request is empty; upload the base64 text the MDM vendor gave you",
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
    let plist_bytes = b64.decode(&compact).map_err(|e| {
        refused(format!(
            "the uploaded request is not base64 ({e}); upload the vendor's base64-encoded plist as is"
        ))
    })?;
    let value = plist::Value::from_reader(std::io::Cursor::new(&plist_bytes)).map_err(|e| {
        refused(format!(
            "the uploaded request decodes from base64 but is not a property list ({e})"
        ))
    })?;
    let dict = value
        .as_dictionary()
        .ok_or_else(|| refused("the uploaded property list is not a dictionary"))?;
    let field = |key: &str| -> Result<&str, SimError> {
        match dict.get(key) {
            None => Err(refused(format!(
                "the request has no {key}; it needs PushCertRequestCSR, PushCertCertificateChain and PushCertSignature"
            ))),
            Some(v) => v
                .as_string()
                .ok_or_else(|| refused(format!("{key} must be a <string>"))),
        }
    };
    let csr_b64 = field("PushCertRequestCSR")?;
    let chain_pem = field("PushCertCertificateChain")?;
    let sig_b64 = field("PushCertSignature")?;
    let csr_der = b64
        .decode(
            csr_b64
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        )
        .map_err(|e| refused(format!("PushCertRequestCSR is not base64 ({e})")))?;
    let signature = b64
        .decode(
            sig_b64
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        )
        .map_err(|e| refused(format!("PushCertSignature is not base64 ({e})")))?;

    // The vendor's certificate chain.
    let chain = X509::stack_from_pem(chain_pem.as_bytes())
        .map_err(|_| refused("PushCertCertificateChain is not a list of PEM certificates"))?;
    let Some(vendor) = chain.first() else {
        return Err(refused(
            "PushCertCertificateChain holds no certificate; it must be the vendor's MDM signing certificate, the Apple WWDR CA and the Apple Root CA, in that order",
        ));
    };
    verify_vendor(pki, vendor, &chain[1..], now)?;

    // The vendor's signature over the CSR's DER.
    let vendor_key = vendor
        .public_key()
        .map_err(|_| refused("the vendor certificate's public key cannot be read"))?;
    let signature_ok = Verifier::new(MessageDigest::sha256(), &vendor_key)
        .and_then(|mut v| {
            v.update(&csr_der)?;
            v.verify(&signature)
        })
        .unwrap_or(false);
    if !signature_ok {
        return Err(refused(
            "Certificate Signature Verification failed: PushCertSignature is not a SHA256withRSA signature of PushCertRequestCSR's DER by the key of the vendor certificate",
        ));
    }
    check_csr(&csr_der)
}

/// The vendor certificate must be a leaf issued by this simulator's WWDR CA, valid at
/// `now`, and the chain must also carry the WWDR CA and the root.
fn verify_vendor(pki: &PortalPki, vendor: &X509Ref, rest: &[X509], now: i64) -> Result<(), SimError> {
    let untrusted_fail = || {
        refused(
            "Certificate Signature Verification failed: the vendor certificate was not issued by Apple's WWDR CA. PushCertCertificateChain must be the MDM signing certificate Apple issued to the vendor, then the Apple WWDR CA, then the Apple Root CA",
        )
    };
    let der = |c: &X509Ref| c.to_der().unwrap_or_default();
    let wwdr_der = der(&pki.wwdr.cert);
    let root_der = der(&pki.root.cert);
    let mut store = X509StoreBuilder::new().map_err(crypto)?;
    store.add_cert(pki.root.cert.clone()).map_err(crypto)?;
    // Validity is checked below against the simulated clock, with a clearer message.
    store.set_flags(X509VerifyFlags::NO_CHECK_TIME).map_err(crypto)?;
    let store = store.build();
    let mut untrusted = Stack::new().map_err(crypto)?;
    for c in rest {
        untrusted.push(c.clone()).map_err(crypto)?;
    }
    let mut ctx = X509StoreContext::new().map_err(crypto)?;
    let issued_by_wwdr = ctx
        .init(&store, vendor, &untrusted, |c| {
            if !c.verify_cert()? {
                return Ok(false);
            }
            Ok(c.chain()
                .and_then(|chain| chain.get(1).map(|issuer| der(issuer) == wwdr_der))
                .unwrap_or(false))
        })
        .map_err(crypto)?;
    if !issued_by_wwdr {
        return Err(untrusted_fail());
    }
    if !rest.iter().any(|c| der(c) == root_der) {
        return Err(refused(
            "PushCertCertificateChain lacks the Apple Root CA; it must be the vendor certificate, the Apple WWDR CA and the Apple Root CA, in that order",
        ));
    }
    let now_asn = Asn1Time::from_unix(now).map_err(crypto)?;
    if vendor.not_after() < now_asn {
        return Err(refused(format!(
            "Certificate Signature Verification failed because the vendor's MDM signing certificate expired ({}); the vendor must get a new one from Apple",
            asn1_to_string(vendor.not_after())
        )));
    }
    if vendor.not_before() > now_asn {
        return Err(refused(format!(
            "Certificate Signature Verification failed because the vendor's MDM signing certificate is not valid before {}",
            asn1_to_string(vendor.not_before())
        )));
    }
    Ok(())
}

impl AppleSim {
    fn push_certs_read(&self) -> RwLockReadGuard<'_, PushCerts> {
        self.inner.push_certs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn push_certs_write(&self) -> RwLockWriteGuard<'_, PushCerts> {
        self.inner.push_certs.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulated Apple PKI, made on first use.
    pub(crate) fn portal_pki(&self) -> Result<Arc<PortalPki>, SimError> {
        let mut slot = lock(&self.inner.portal);
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let pki = Arc::new(PortalPki::generate(self.inner.clock.now().unix_timestamp())?);
        *slot = Some(pki.clone());
        Ok(pki)
    }

    /// The MDM vendor's "MDM CSR" signing certificate (PEM), issued by the simulated Apple
    /// WWDR CA for the key in `csr_pem` (a PEM PKCS#10 request with a valid signature and
    /// an RSA key of at least 2048 bits). Valid for one year of simulated time. The subject
    /// is `CN=MDM Vendor: <organisation>`, with the organisation taken from the CSR's `O`
    /// (or `CN`), a random 10-character team ID as `OU`, and the CSR's country (default `US`).
    pub fn issue_vendor_certificate(&self, csr_pem: &str) -> Result<String, SimError> {
        let req = X509Req::from_pem(csr_pem.as_bytes()).map_err(|_| {
            SimError::InvalidCsr("not a PEM certificate signing request (BEGIN CERTIFICATE REQUEST)".into())
        })?;
        let key = req
            .public_key()
            .map_err(|e| SimError::InvalidCsr(format!("its public key cannot be read: {e}")))?;
        if !req.verify(&key).unwrap_or(false) {
            return Err(SimError::InvalidCsr("its signature does not verify".into()));
        }
        match key.rsa() {
            Ok(rsa) if rsa.size() * 8 >= MIN_CSR_KEY_BITS => {}
            _ => {
                return Err(SimError::InvalidCsr(format!(
                    "the key must be RSA with at least {MIN_CSR_KEY_BITS} bits (the vendor signs push requests with SHA256withRSA)"
                )));
            }
        }
        let subject = req.subject_name();
        // X.520 limits O and CN to 64 characters ("MDM Vendor: " takes 12).
        let org: String = name_entry(subject, Nid::ORGANIZATIONNAME)
            .or_else(|| name_entry(subject, Nid::COMMONNAME))
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "Unnamed Vendor".to_owned())
            .chars()
            .take(52)
            .collect();
        let country = name_entry(subject, Nid::COUNTRYNAME)
            .filter(|c| c.len() == 2)
            .unwrap_or_else(|| "US".to_owned());
        let mut team = [0u8; 10];
        os_random(&mut team);
        const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let team: String = team.iter().map(|b| ALNUM[*b as usize % 36] as char).collect();
        let cn = format!("MDM Vendor: {org}");
        let name = x509_name(&[
            (Nid::COMMONNAME, &cn),
            (Nid::ORGANIZATIONALUNITNAME, &team),
            (Nid::ORGANIZATIONNAME, &org),
            (Nid::COUNTRYNAME, &country),
        ])?;
        let pki = self.portal_pki()?;
        let now = self.inner.clock.now();
        let not_after = crate::token::one_year_after(now).unix_timestamp();
        let (cert, _) = issue(
            &name,
            &key,
            Some(&pki.wwdr),
            None,
            now.unix_timestamp(),
            not_after,
            Profile::VendorSigning,
        )?;
        pem_string(&cert)
    }

    /// The chain a vendor appends after its own certificate: the WWDR CA's PEM, then the
    /// root CA's PEM. Empty (with an error logged) only if OpenSSL failed to make the keys.
    pub fn vendor_chain_pem(&self) -> String {
        let chain = self
            .portal_pki()
            .and_then(|p| Ok(format!("{}{}", pem_string(&p.wwdr.cert)?, pem_string(&p.root.cert)?)));
        chain.unwrap_or_else(|e| {
            tracing::error!("vendor_chain_pem: {e}");
            String::new()
        })
    }

    /// The CA that issues push certificates (PEM), for tests that check certificates. APNs
    /// accepts client certificates issued by it only.
    pub fn push_ca_pem(&self) -> String {
        self.portal_pki()
            .and_then(|p| pem_string(&p.push.cert))
            .unwrap_or_else(|e| {
                tracing::error!("push_ca_pem: {e}");
                String::new()
            })
    }

    /// The Apple Push Certificates Portal's "Create a Certificate": check the uploaded
    /// request (base64 of the vendor's plist) and issue a push certificate with a new topic,
    /// recorded under `apple_id`. The checks: base64, a plist dictionary with the three
    /// keys, a vendor certificate issued by the simulated WWDR CA and valid now (simulated
    /// clock), the chain carrying the root, the vendor's SHA256withRSA signature over the
    /// CSR's DER, and the CSR's own signature and RSA key (at least 2048 bits).
    pub fn push_portal_create(&self, apple_id: &str, request_b64: &str) -> Result<IssuedPushCert, SimError> {
        let owner = normalise_apple_id(apple_id)?;
        let pki = self.portal_pki()?;
        let now = self.inner.clock.now();
        let csr = check_request(&pki, request_b64, now.unix_timestamp())?;
        let uuid = uuid_v4(false);
        let topic = format!("{TOPIC_PREFIX}{uuid}");
        let cn = format!("APSP:{uuid}");
        let mut out = self.issue_push(&pki, &csr, &topic, &cn, &owner, now)?;
        out.apple_id = apple_id.trim().to_owned();
        Ok(out)
    }

    /// The portal's "Renew": like [`AppleSim::push_portal_create`], but the new certificate
    /// keeps the topic (subject UID and CN) of the existing one. Refused for an unknown
    /// topic and for another Apple ID than the one that created it. The earlier
    /// certificates stay valid until they expire (Apple does not revoke on renewal).
    pub fn push_portal_renew(
        &self,
        apple_id: &str,
        topic: &str,
        request_b64: &str,
    ) -> Result<IssuedPushCert, SimError> {
        let owner = normalise_apple_id(apple_id)?;
        let cn = {
            let certs = self.push_certs_read();
            let list = certs
                .topics
                .get(topic)
                .ok_or_else(|| SimError::UnknownTopic(topic.to_owned()))?;
            if list.first().map(|c| c.apple_id.as_str()) != Some(owner.as_str()) {
                return Err(SimError::AppleIdMismatch(topic.to_owned()));
            }
            format!("APSP:{}", topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic))
        };
        let pki = self.portal_pki()?;
        let now = self.inner.clock.now();
        let csr = check_request(&pki, request_b64, now.unix_timestamp())?;
        let mut out = self.issue_push(&pki, &csr, topic, &cn, &owner, now)?;
        out.apple_id = apple_id.trim().to_owned();
        Ok(out)
    }

    fn issue_push(
        &self,
        pki: &PortalPki,
        csr: &X509Req,
        topic: &str,
        cn: &str,
        owner: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedPushCert, SimError> {
        let name = x509_name(&[(Nid::USERID, topic), (Nid::COMMONNAME, cn), (Nid::COUNTRYNAME, "US")])?;
        let key = csr.public_key().map_err(crypto)?;
        let not_before = now.unix_timestamp();
        let not_after_t = crate::token::one_year_after(now.replace_nanosecond(0).unwrap_or(now));
        let not_after = not_after_t.unix_timestamp();
        let (cert, serial) = issue(
            &name,
            &key,
            Some(&pki.push),
            None,
            not_before,
            not_after,
            Profile::TlsClient,
        )?;
        let serial_hex = serial.to_hex_str().map_err(crypto)?.to_string();
        let state = Arc::new(CertState {
            topic: Arc::from(topic),
            apple_id: owner.to_owned(),
            serial_hex: serial_hex.clone(),
            not_before,
            not_after,
            revoked: AtomicBool::new(false),
        });
        {
            let mut certs = self.push_certs_write();
            certs.by_serial.insert(serial.to_vec(), state.clone());
            certs.topics.entry(topic.to_owned()).or_default().push(state);
        }
        Ok(IssuedPushCert {
            certificate_pem: pem_string(&cert)?,
            topic: topic.to_owned(),
            serial_hex,
            not_after: not_after_t,
            apple_id: owner.to_owned(),
        })
    }

    /// Revoke every certificate of the topic (for tests: APNs then refuses them, at the
    /// TLS handshake for new connections and with 403 `BadCertificate` on open ones).
    pub fn revoke_push_cert(&self, topic: &str) -> Result<(), SimError> {
        let certs = self.push_certs_read();
        let list = certs
            .topics
            .get(topic)
            .ok_or_else(|| SimError::UnknownTopic(topic.to_owned()))?;
        for c in list {
            c.revoked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every push certificate issued, grouped by topic (topics sorted), oldest first.
    pub fn push_certificates(&self) -> Vec<PushCertInfo> {
        let certs = self.push_certs_read();
        let mut topics: Vec<&String> = certs.topics.keys().collect();
        topics.sort();
        topics
            .into_iter()
            .flat_map(|t| certs.topics[t].iter())
            .map(|c| PushCertInfo {
                topic: c.topic.to_string(),
                apple_id: c.apple_id.clone(),
                serial: c.serial_hex.clone(),
                not_before: unix_to_time(c.not_before),
                not_after: unix_to_time(c.not_after),
                revoked: c.revoked.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The certificate with this serial number (bytes), if the portal issued it.
    pub(crate) fn push_cert_by_serial(&self, serial: &[u8]) -> Option<Arc<CertState>> {
        self.push_certs_read().by_serial(serial)
    }
}

/// A certificate as a PEM string.
pub(crate) fn pem_string(cert: &X509Ref) -> Result<String, SimError> {
    let pem = cert.to_pem().map_err(crypto)?;
    String::from_utf8(pem).map_err(|e| SimError::Crypto(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = format_uuid([0xff; 16], false);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = uuid_v4(true);
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(
            u.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn cert_state_usability() {
        let c = CertState {
            topic: Arc::from("t"),
            apple_id: "a".into(),
            serial_hex: "01".into(),
            not_before: 100,
            not_after: 200,
            revoked: AtomicBool::new(false),
        };
        assert_eq!(c.unusable_at(50), Some("not yet valid"));
        assert_eq!(c.unusable_at(150), None);
        assert_eq!(c.unusable_at(200), None);
        assert_eq!(c.unusable_at(201), Some("expired"));
        c.revoked.store(true, Ordering::Relaxed);
        assert_eq!(c.unusable_at(150), Some("revoked"));
    }

    #[test]
    fn apple_ids_are_normalised() {
        assert_eq!(normalise_apple_id(" Admin@Example.com ").unwrap(), "admin@example.com");
        assert!(normalise_apple_id("  ").is_err());
        assert!(normalise_apple_id("a b@c").is_err());
    }
}
