//! The SCEP certificate authority: making its self-signed certificate, and issuing device
//! identities from certificate requests.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Extension, X509NameBuilder, X509Req};
use time::OffsetDateTime;

use super::csr::{self, KeyKind};
use super::error::{ScepError, crypto, openssl_reasons};
use super::request::check_ca;

/// RSA key size of a new RSA CA. 3072 bits keeps a CA made today sound past 2030, when
/// 2048-bit keys are due to retire; every SCEP client handles it.
pub(crate) const CA_RSA_BITS: u32 = 3072;

/// The kind of key a new CA gets.
///
/// Devices never encrypt to the CA when an RA is served (GetCACert names the RA first, with
/// the key-usage bits clients choose by), so the CA's key only signs certificates and can be
/// an elliptic-curve key: a P-256 signature costs a few tens of microseconds where an
/// RSA-3072 one costs about two milliseconds, a quarter of the server's work per
/// enrollment. An RSA CA is still there for SCEP clients that insist on encrypting to the CA
/// itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaKeyType {
    /// ECDSA on NIST P-256 with SHA-256 (128-bit security), the default.
    #[default]
    EcP256,
    /// RSA-3072 with SHA-256; also accepts requests encrypted to the CA.
    Rsa3072,
}

impl CaKeyType {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "\"ec-p256\" or \"rsa-3072\"";

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CaKeyType::EcP256 => "ec-p256",
            CaKeyType::Rsa3072 => "rsa-3072",
        }
    }
}

impl std::str::FromStr for CaKeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ec-p256" | "p256" | "p-256" | "ecdsa-p256" => Ok(CaKeyType::EcP256),
            "rsa-3072" | "rsa3072" => Ok(CaKeyType::Rsa3072),
            other => Err(format!("unknown CA key type {other:?}: use {}", CaKeyType::NAMES)),
        }
    }
}

impl std::fmt::Display for CaKeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Random serial numbers are positive 128-bit integers (the top bit set, so always 128 bits).
const SERIAL_BITS: i32 = 128;

/// X.520 upper bound for commonName and organizationName.
const MAX_NAME_CHARS: usize = 64;

/// The longest CA validity accepted.
const MAX_CA_YEARS: u32 = 50;

/// A new CA's certificate starts this long before `now`, for devices whose clock is behind.
const CA_BACKDATE: time::Duration = time::Duration::hours(1);

fn check_name(value: &str, what: &str) -> Result<(), ScepError> {
    if value.trim().is_empty() {
        return Err(ScepError::InvalidArgument {
            detail: format!("the CA's {what} is empty"),
        });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(ScepError::InvalidArgument {
            detail: format!("the CA's {what} is longer than {MAX_NAME_CHARS} characters"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ScepError::InvalidArgument {
            detail: format!("the CA's {what} contains control characters"),
        });
    }
    Ok(())
}

fn asn1_time(t: OffsetDateTime, what: &str) -> Result<Asn1Time, ScepError> {
    Asn1Time::from_unix(t.unix_timestamp()).map_err(|e| ScepError::InvalidArgument {
        detail: format!("{what} {t} cannot be put in a certificate ({})", openssl_reasons(&e)),
    })
}

/// Seconds since the Unix epoch of a certificate time.
fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, ScepError> {
    let epoch = Asn1Time::from_unix(0).map_err(crypto("reading a certificate date"))?;
    let diff = epoch.diff(t).map_err(crypto("reading a certificate date"))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

fn random_serial() -> Result<BigNum, ScepError> {
    let mut serial = BigNum::new().map_err(crypto("making a serial number"))?;
    serial
        .rand(SERIAL_BITS, MsbOption::ONE, false)
        .map_err(crypto("making a serial number"))?;
    Ok(serial)
}

/// Makes a new SCEP CA: a fresh key of `key_type` and a self-signed certificate for it.
///
/// The certificate's subject and issuer are `O=<organization>, CN=<common_name>`; its serial
/// number is a random positive 128-bit integer; it is signed with SHA-256 and valid from an
/// hour before `now` (devices with a slow clock) for `years` years. Extensions:
///
/// * basicConstraints `CA:TRUE, pathlen:0`, critical: it issues device identities only;
/// * keyUsage `keyCertSign, cRLSign, digitalSignature`, critical, and for an RSA CA
///   `keyEncipherment` too: an RSA CA can still be encrypted to and sign SCEP answers
///   itself (RFC 8894 §2.1.2), and some clients (macOS among them) pick the certificate to
///   encrypt to by these bits, so an EC CA must not claim what it cannot do;
/// * subjectKeyIdentifier (the SHA-1 of the public key), which the identities it issues
///   refer to in their authorityKeyIdentifier.
pub fn new_ca(
    common_name: &str,
    organization: &str,
    now: OffsetDateTime,
    years: u32,
    key_type: CaKeyType,
) -> Result<(X509, PKey<Private>), ScepError> {
    check_name(common_name, "common name")?;
    check_name(organization, "organization")?;
    if years == 0 || years > MAX_CA_YEARS {
        return Err(ScepError::InvalidArgument {
            detail: format!("the CA's validity must be 1 to {MAX_CA_YEARS} years, not {years}"),
        });
    }
    let target_year = now.year().saturating_add(i32::try_from(years).unwrap_or(i32::MAX));
    // 29 February plus whole years may not exist: fall back to the day before.
    let not_after = now
        .replace_year(target_year)
        .or_else(|_| (now - time::Duration::days(1)).replace_year(target_year))
        .map_err(|_| ScepError::InvalidArgument {
            detail: format!("{years} years after {now} is out of range"),
        })?;
    let not_before = now - CA_BACKDATE;

    let key = match key_type {
        CaKeyType::Rsa3072 => {
            let rsa = Rsa::generate(CA_RSA_BITS).map_err(crypto("generating the CA's RSA key"))?;
            PKey::from_rsa(rsa).map_err(crypto("wrapping the CA's RSA key"))?
        }
        CaKeyType::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto("loading the P-256 curve"))?;
            let ec = EcKey::generate(&group).map_err(crypto("generating the CA's EC key"))?;
            PKey::from_ec_key(ec).map_err(crypto("wrapping the CA's EC key"))?
        }
    };

    let name = org_name(organization, common_name, "CA")?;
    let serial = random_serial()?
        .to_asn1_integer()
        .map_err(crypto("making a serial number"))?;
    let not_before = asn1_time(not_before, "the start date")?;
    let not_after = asn1_time(not_after, "the end date")?;

    let cert = (|| -> Result<X509, ErrorStack> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().key_cert_sign().crl_sign().digital_signature();
        if key_type == CaKeyType::Rsa3072 {
            usage.key_encipherment();
        }
        b.append_extension(usage.build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(b.build())
    })()
    .map_err(crypto("building the CA certificate"))?;
    Ok((cert, key))
}

/// `O=organization, CN=common_name`, for the certificate of `whose` ("CA", "RA").
fn org_name(organization: &str, common_name: &str, whose: &str) -> Result<openssl::x509::X509Name, ScepError> {
    (|| -> Result<_, ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, organization)?;
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
        Ok(name.build())
    })()
    .map_err(|e| ScepError::InvalidArgument {
        detail: format!(
            "the {whose}'s name cannot be put in a certificate ({})",
            openssl_reasons(&e)
        ),
    })
}

/// The RSA key size of an RA certificate ([`new_ra`]).
const RA_RSA_BITS: u32 = 2048;

/// Makes the SCEP registration authority (RA) certificate of a CA made by [`new_ca`]: the
/// certificate devices encrypt their requests to and that signs the SCEP answers, as
/// Microsoft's NDES does. It takes those two private-key operations per enrollment off the
/// CA's RSA-3072 key (which then only signs certificates) onto an RSA-2048 key, a third of
/// the cost. Subject `O=organization, CN=common_name`, issued by the CA, valid from an hour
/// before `now` for `days` days (cut short to end with the CA), with basicConstraints
/// `CA:FALSE` and keyUsage `digitalSignature, keyEncipherment` (both critical), and key
/// identifiers. RFC 8894 §2.1.2 and §4.2.1.2.
pub fn new_ra(
    ca_cert: &X509,
    ca_key: &PKey<Private>,
    common_name: &str,
    organization: &str,
    now: OffsetDateTime,
    days: u32,
) -> Result<(X509, PKey<Private>), ScepError> {
    check_ca(ca_cert, ca_key)?;
    check_name(common_name, "common name")?;
    check_name(organization, "organization")?;
    if days == 0 {
        return Err(ScepError::InvalidArgument {
            detail: "the RA certificate's validity must be at least a day".into(),
        });
    }
    let ca_end = unix_time(ca_cert.not_after())?;
    let end = (now + time::Duration::days(i64::from(days)))
        .unix_timestamp()
        .min(ca_end);
    if end <= now.unix_timestamp() {
        return Err(ScepError::InvalidArgument {
            detail: format!("the CA certificate expired on {}: make a new CA", ca_cert.not_after()),
        });
    }
    let rsa = Rsa::generate(RA_RSA_BITS).map_err(crypto("generating the RA's RSA key"))?;
    let key = PKey::from_rsa(rsa).map_err(crypto("wrapping the RA's RSA key"))?;
    let name = org_name(organization, common_name, "RA")?;
    let serial = random_serial()?
        .to_asn1_integer()
        .map_err(crypto("making a serial number"))?;
    let not_before = asn1_time(now - CA_BACKDATE, "the start date")?;
    let not_after = Asn1Time::from_unix(end).map_err(crypto("the end date"))?;
    let cert = (|| -> Result<X509, ErrorStack> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(ca_cert.subject_name())?;
        b.set_pubkey(&key)?;
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(aki)?;
        b.sign(ca_key, MessageDigest::sha256())?;
        Ok(b.build())
    })()
    .map_err(crypto("building the RA certificate"))?;
    Ok((cert, key))
}

/// How to issue a device identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueParams {
    /// Start of validity. Pass the current time (or a little before it, for devices whose
    /// clock is behind).
    pub not_before: OffsetDateTime,
    /// How long the identity is valid. It is cut short to end with the CA certificate if that
    /// ends first.
    pub lifetime: time::Duration,
    /// The serial number; a random positive 128-bit number when `None`. Must not be zero.
    pub serial: Option<u128>,
}

impl IssueParams {
    /// Validity from `not_before` for `lifetime`, with a random serial number.
    pub fn new(not_before: OffsetDateTime, lifetime: time::Duration) -> IssueParams {
        IssueParams {
            not_before,
            lifetime,
            serial: None,
        }
    }
}

/// Issues a device identity for `csr`, signed by the CA (`ca_cert`, `ca_key`) with SHA-256.
///
/// The request's signature and key are checked first (RSA of 2048 to 8192 bits, or EC on
/// P-256, P-384 or P-521; anything else is [`ScepError::BadCsr`]), so this is safe to call
/// with any request, not only one from [`decode_request`](super::decode_request).
///
/// The certificate has the request's subject and public key, the CA's subject as issuer, and:
/// keyUsage `digitalSignature` (plus `keyEncipherment` for RSA keys), critical;
/// extendedKeyUsage `clientAuth` (the MDM identity authenticates the device to the server);
/// basicConstraints `CA:FALSE`, critical; subjectKeyIdentifier; authorityKeyIdentifier (the
/// CA's key identifier); and the request's subjectAltName, copied as requested, if it asks for
/// one. A request with neither subject nor subjectAltName is refused.
pub fn issue_identity(
    csr: &X509Req,
    ca_cert: &X509,
    ca_key: &PKey<Private>,
    p: &IssueParams,
) -> Result<X509, ScepError> {
    check_ca(ca_cert, ca_key)?;
    let bad_csr = |detail: String| ScepError::BadCsr { detail, reply_to: None };
    let kind = csr::check(csr).map_err(bad_csr)?;
    let csr_der = csr.to_der().map_err(crypto("encoding the certificate request"))?;
    let attributes = csr::attributes(&csr_der).map_err(bad_csr)?;
    if csr.subject_name().entries().next().is_none() && attributes.san.is_none() {
        return Err(bad_csr(
            "it has neither a subject nor a subjectAltName, so the certificate would name no one".into(),
        ));
    }

    if p.lifetime <= time::Duration::ZERO {
        return Err(ScepError::InvalidArgument {
            detail: format!("an identity's lifetime must be positive, not {}", p.lifetime),
        });
    }
    let ca_not_after = ca_cert.not_after();
    let ca_end = unix_time(ca_not_after)?;
    let start = p.not_before.unix_timestamp();
    if start >= ca_end {
        return Err(ScepError::InvalidArgument {
            detail: format!(
                "the CA certificate expired on {ca_not_after}, before {}: make a new CA and \
                 re-enroll the devices",
                p.not_before
            ),
        });
    }
    let end = start
        .checked_add(p.lifetime.whole_seconds())
        .ok_or_else(|| ScepError::InvalidArgument {
            detail: format!("{} after {} is out of range", p.lifetime, p.not_before),
        })?
        .min(ca_end);
    let not_before = asn1_time(p.not_before, "the start date")?;
    let not_after = Asn1Time::from_unix(end).map_err(|e| ScepError::InvalidArgument {
        detail: format!("the end date cannot be put in a certificate ({})", openssl_reasons(&e)),
    })?;

    let serial = match p.serial {
        Some(0) => {
            return Err(ScepError::InvalidArgument {
                detail: "a certificate serial number must be positive, not 0".into(),
            });
        }
        Some(n) => BigNum::from_slice(&n.to_be_bytes()).map_err(crypto("making the serial number"))?,
        None => random_serial()?,
    };
    let serial = serial.to_asn1_integer().map_err(crypto("making the serial number"))?;
    let public_key = csr.public_key().map_err(crypto("reading the request's public key"))?;
    let san = match &attributes.san {
        Some(san) => Some(
            (|| -> Result<X509Extension, ErrorStack> {
                let oid = openssl::asn1::Asn1Object::from_str(super::oid::SUBJECT_ALT_NAME)?;
                let value = openssl::asn1::Asn1OctetString::new_from_bytes(&san.value)?;
                X509Extension::new_from_der(&oid, san.critical, &value)
            })()
            .map_err(crypto("copying the requested subjectAltName"))?,
        ),
        None => None,
    };

    let cert = (|| -> Result<X509, ErrorStack> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(csr.subject_name())?;
        b.set_issuer_name(ca_cert.subject_name())?;
        b.set_pubkey(&public_key)?;
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if kind == KeyKind::Rsa {
            usage.key_encipherment();
        }
        b.append_extension(usage.build()?)?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(aki)?;
        if let Some(san) = san {
            b.append_extension(san)?;
        }
        b.sign(ca_key, MessageDigest::sha256())?;
        Ok(b.build())
    })()
    .map_err(|e| ScepError::Crypto {
        detail: format!(
            "building the device certificate failed ({}); a CA certificate without a subject key \
             identifier cannot issue: make the CA with new_ca",
            openssl_reasons(&e)
        ),
    })?;
    if attributes.san.is_some() && cert.subject_alt_names().is_none() {
        return Err(bad_csr(
            "its subjectAltName cannot be read (it is not a valid list of names)".into(),
        ));
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use openssl::nid::Nid;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509KeyUsage, X509StoreContext};

    use super::*;
    use crate::scep::testutil::*;

    fn unix(t: &openssl::asn1::Asn1TimeRef) -> i64 {
        unix_time(t).unwrap()
    }

    #[test]
    fn a_new_ca_is_a_scep_ca() {
        let (cert, key) = ca();
        assert_eq!(key.bits(), CA_RSA_BITS);
        assert!(cert.verify(key).unwrap());
        assert_eq!(cert.issued(cert), openssl::x509::X509VerifyResult::OK);
        let usage = cert.key_usage().unwrap();
        for bit in [
            X509KeyUsage::KEY_CERT_SIGN,
            X509KeyUsage::CRL_SIGN,
            X509KeyUsage::DIGITAL_SIGNATURE,
            X509KeyUsage::KEY_ENCIPHERMENT,
        ] {
            assert!(usage.contains(bit), "{bit:?} missing from {usage:?}");
        }
        assert!(cert.subject_key_id().is_some());
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("X509v3 Basic Constraints: critical"), "{text}");
        assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
        assert!(text.contains("Signature Algorithm: sha256WithRSAEncryption"), "{text}");
        let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "Russet Test CA");
        // Valid from an hour before `now` for ten calendar years.
        assert_eq!(unix(cert.not_before()), now().unix_timestamp() - 3600);
        let ten_years = now().replace_year(now().year() + 10).unwrap();
        assert_eq!(unix(cert.not_after()), ten_years.unix_timestamp());
        // 128-bit random serials.
        assert_eq!(cert.serial_number().to_bn().unwrap().num_bits(), 128);
        assert_ne!(
            cert.serial_number().to_bn().unwrap(),
            other_ca().0.serial_number().to_bn().unwrap()
        );
    }

    #[test]
    fn new_ca_refuses_bad_arguments() {
        for (cn, org, years) in [
            ("", "Org", 1),
            ("CN", " ", 1),
            ("CN\n", "Org", 1),
            (&"x".repeat(65)[..], "Org", 1),
            ("CN", "Org", 0),
            ("CN", "Org", 51),
        ] {
            assert!(
                matches!(
                    new_ca(cn, org, now(), years, CaKeyType::EcP256),
                    Err(ScepError::InvalidArgument { .. })
                ),
                "{cn:?} {org:?} {years}"
            );
        }
        // 29 February plus a year is the 28th.
        let leap = time::macros::datetime!(2028-02-29 12:00 UTC);
        let (cert, _) = new_ca("Leap", "Org", leap, 1, CaKeyType::EcP256).unwrap();
        assert_eq!(
            unix(cert.not_after()),
            time::macros::datetime!(2029-02-28 12:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn an_ec_ca_signs_only_and_its_identities_chain_to_it() {
        let (ca_cert, ca_key) = new_ca("EC CA", "Russet Tests", now(), 20, CaKeyType::EcP256).unwrap();
        assert!(ca_key.ec_key().is_ok(), "a P-256 key");
        assert!(ca_cert.verify(&ca_key).unwrap());
        let usage = ca_cert.key_usage().unwrap();
        assert!(usage.contains(X509KeyUsage::KEY_CERT_SIGN | X509KeyUsage::CRL_SIGN | X509KeyUsage::DIGITAL_SIGNATURE));
        assert!(
            !usage.contains(X509KeyUsage::KEY_ENCIPHERMENT),
            "nobody can encrypt to an EC key: it must not say so"
        );
        let text = String::from_utf8(ca_cert.to_text().unwrap()).unwrap();
        assert!(text.contains("Signature Algorithm: ecdsa-with-SHA256"), "{text}");

        // The RSA device key is certified by the EC CA, and the chain verifies for a TLS client.
        let csr = CsrSpec::new(device_key()).challenge("pw").build();
        let cert = issue_identity(
            &csr,
            &ca_cert,
            &ca_key,
            &IssueParams::new(now(), time::Duration::days(365)),
        )
        .unwrap();
        assert!(cert.verify(&ca_key).unwrap());
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca_cert.clone()).unwrap();
        store.set_purpose(openssl::x509::X509PurposeId::SSL_CLIENT).unwrap();
        let mut at = openssl::x509::verify::X509VerifyParam::new().unwrap();
        at.set_time(now().unix_timestamp() + 60);
        store.set_param(&at).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        assert!(ctx.init(&store, &cert, &chain, |c| c.verify_cert()).unwrap());

        // The RA it issues is RSA, for devices to encrypt to.
        let (ra, ra_key) = new_ra(&ca_cert, &ca_key, "RA", "Russet Tests", now(), 730).unwrap();
        assert!(ra_key.rsa().is_ok());
        assert!(ra.verify(&ca_key).unwrap());

        for (name, kind) in [("ec-p256", CaKeyType::EcP256), ("RSA-3072", CaKeyType::Rsa3072)] {
            assert_eq!(name.parse::<CaKeyType>().unwrap(), kind);
        }
        assert!("rsa-1024".parse::<CaKeyType>().unwrap_err().contains("ec-p256"));
    }

    #[test]
    fn an_identity_has_the_device_extensions_and_chains_to_the_ca() {
        let (ca_cert, ca_key) = ca();
        let key = device_key();
        let csr = CsrSpec::new(key).challenge("pw").build();
        let params = IssueParams::new(now(), time::Duration::days(365));
        let cert = issue_identity(&csr, ca_cert, ca_key, &params).unwrap();

        assert!(cert.public_key().unwrap().public_eq(key));
        assert_eq!(cert.subject_name().to_der().unwrap(), name("device").to_der().unwrap());
        assert_eq!(
            cert.issuer_name().to_der().unwrap(),
            ca_cert.subject_name().to_der().unwrap()
        );
        assert_eq!(unix(cert.not_before()), now().unix_timestamp());
        assert_eq!(unix(cert.not_after()) - unix(cert.not_before()), 365 * 86_400);
        let usage = cert.key_usage().unwrap();
        assert!(usage.contains(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::KEY_ENCIPHERMENT));
        assert!(!usage.contains(X509KeyUsage::KEY_CERT_SIGN));
        let eku = cert.extended_key_usage().unwrap();
        assert!(eku.contains(openssl::x509::X509ExtendedKeyUsage::SSL_CLIENT));
        assert_eq!(
            cert.authority_key_id().unwrap().as_slice(),
            ca_cert.subject_key_id().unwrap().as_slice()
        );
        assert!(cert.subject_key_id().is_some());
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(!text.contains("Subject Alternative Name"), "{text}");
        assert_eq!(cert.serial_number().to_bn().unwrap().num_bits(), 128);

        // OpenSSL's own chain verification, for a TLS client.
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca_cert.clone()).unwrap();
        store.set_purpose(openssl::x509::X509PurposeId::SSL_CLIENT).unwrap();
        let at = openssl::x509::verify::X509VerifyParam::new().unwrap();
        let mut at = at;
        at.set_time(now().unix_timestamp() + 60);
        store.set_param(&at).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        let ok = ctx
            .init(&store, &cert, &chain, |c| {
                let ok = c.verify_cert()?;
                assert_eq!(c.error(), openssl::x509::X509VerifyResult::OK, "{}", c.error());
                Ok(ok)
            })
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn serials_lifetimes_and_the_ca_end() {
        let (ca_cert, ca_key) = ca();
        let csr = CsrSpec::new(device_key()).build();
        let mut params = IssueParams::new(now(), time::Duration::hours(5));
        params.serial = Some(0x1234_5678_9abc);
        let cert = issue_identity(&csr, ca_cert, ca_key, &params).unwrap();
        assert_eq!(
            cert.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string(),
            "123456789ABC"
        );
        assert_eq!(unix(cert.not_after()) - unix(cert.not_before()), 5 * 3600);

        params.serial = Some(u128::MAX);
        let cert = issue_identity(&csr, ca_cert, ca_key, &params).unwrap();
        assert_eq!(cert.serial_number().to_bn().unwrap().num_bits(), 128);
        assert!(!cert.serial_number().to_bn().unwrap().is_negative());

        params.serial = Some(0);
        assert!(matches!(
            issue_identity(&csr, ca_cert, ca_key, &params),
            Err(ScepError::InvalidArgument { .. })
        ));
        params.serial = None;

        // Ends with the CA when asked to outlive it.
        params.lifetime = time::Duration::days(365 * 20);
        let cert = issue_identity(&csr, ca_cert, ca_key, &params).unwrap();
        assert_eq!(unix(cert.not_after()), unix(ca_cert.not_after()));

        // Zero or negative lifetimes, and an expired CA, are the caller's mistakes.
        params.lifetime = time::Duration::ZERO;
        assert!(matches!(
            issue_identity(&csr, ca_cert, ca_key, &params),
            Err(ScepError::InvalidArgument { .. })
        ));
        let late = IssueParams::new(now() + time::Duration::days(365 * 11), time::Duration::days(1));
        let err = issue_identity(&csr, ca_cert, ca_key, &late).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");

        // A key that is not the CA's.
        let err = issue_identity(
            &csr,
            ca_cert,
            &other_ca().1,
            &IssueParams::new(now(), time::Duration::days(1)),
        )
        .unwrap_err();
        assert!(matches!(err, ScepError::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn small_keys_bad_signatures_and_odd_key_types_are_refused() {
        let (ca_cert, ca_key) = ca();
        let params = IssueParams::new(now(), time::Duration::days(1));

        let small = rsa_key(1024);
        let err = issue_identity(&CsrSpec::new(&small).build(), ca_cert, ca_key, &params).unwrap_err();
        assert!(matches!(err, ScepError::BadCsr { reply_to: None, .. }), "{err}");
        assert!(err.to_string().contains("1024 bits"), "{err}");
        assert_eq!(err.fail_info(), Some(crate::scep::FailInfo::BadRequest));

        let key = device_key();
        let other = rsa_key(2048);
        let mut spec = CsrSpec::new(key);
        spec.signing_key = Some(&other);
        let err = issue_identity(&spec.build(), ca_cert, ca_key, &params).unwrap_err();
        assert!(err.to_string().contains("signature does not verify"), "{err}");

        let ed = PKey::generate_ed25519().unwrap();
        let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
        b.set_subject_name(&name("ed")).unwrap();
        b.set_pubkey(&ed).unwrap();
        b.sign(&ed, MessageDigest::null()).unwrap();
        let err = issue_identity(&b.build(), ca_cert, ca_key, &params).unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");

        let k1 = ec_key(Nid::SECP256K1);
        let err = issue_identity(&CsrSpec::new(&k1).build(), ca_cert, ca_key, &params).unwrap_err();
        assert!(err.to_string().contains("secp256k1"), "{err}");

        let mut nobody = CsrSpec::new(key);
        nobody.subject = None;
        let err = issue_identity(&nobody.build(), ca_cert, ca_key, &params).unwrap_err();
        assert!(err.to_string().contains("neither a subject"), "{err}");
    }

    #[test]
    fn ec_keys_get_a_signing_only_identity() {
        let (ca_cert, ca_key) = ca();
        for curve in [Nid::X9_62_PRIME256V1, Nid::SECP384R1] {
            let key = ec_key(curve);
            let cert = issue_identity(
                &CsrSpec::new(&key).build(),
                ca_cert,
                ca_key,
                &IssueParams::new(now(), time::Duration::days(1)),
            )
            .unwrap();
            let usage = cert.key_usage().unwrap();
            assert!(usage.contains(X509KeyUsage::DIGITAL_SIGNATURE));
            assert!(!usage.contains(X509KeyUsage::KEY_ENCIPHERMENT));
        }
    }

    #[test]
    fn requested_subject_alt_names_are_copied() {
        let (ca_cert, ca_key) = ca();
        let mut spec = CsrSpec::new(device_key());
        spec.san = Some((san_names("device.example", "it@example.com"), false));
        let cert = issue_identity(
            &spec.build(),
            ca_cert,
            ca_key,
            &IssueParams::new(now(), time::Duration::days(1)),
        )
        .unwrap();
        let names = cert.subject_alt_names().unwrap();
        let dns: Vec<&str> = names.iter().filter_map(|n| n.dnsname()).collect();
        let email: Vec<&str> = names.iter().filter_map(|n| n.email()).collect();
        assert_eq!(dns, ["device.example"]);
        assert_eq!(email, ["it@example.com"]);

        // With an empty subject the name is only in the SAN, which the request marks critical.
        spec.subject = None;
        spec.san = Some((san_names("only.example", "x@example.com"), true));
        let cert = issue_identity(
            &spec.build(),
            ca_cert,
            ca_key,
            &IssueParams::new(now(), time::Duration::days(1)),
        )
        .unwrap();
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(text.contains("X509v3 Subject Alternative Name: critical"), "{text}");

        // A SAN that is not a list of names is refused.
        spec.san = Some((vec![0x04, 0x01, 0x00], false));
        let err = issue_identity(
            &spec.build(),
            ca_cert,
            ca_key,
            &IssueParams::new(now(), time::Duration::days(1)),
        )
        .unwrap_err();
        assert!(matches!(err, ScepError::BadCsr { .. }), "{err}");
    }
}
