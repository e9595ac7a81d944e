//! The key pair whose certificate the administrator uploads to Apple Business Manager.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;
use time::OffsetDateTime;

use super::ServerTokenError;
use super::message::into_secret;

/// RSA key size. Apple encrypts the token key with RSA PKCS#1 v1.5; 2048 bits is what every
/// MDM server uses.
const RSA_BITS: u32 = 2048;

/// Serial numbers are random positive 128-bit integers (the top bit is always set, so every
/// serial has exactly 128 bits).
const SERIAL_BITS: i32 = 128;

/// X.520 upper bound for commonName.
const MAX_COMMON_NAME: usize = 64;

/// A fresh key pair for a server token, ready to be stored.
pub struct TokenKeyPair {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: SecretString,
    /// The self-signed certificate to upload to Apple Business Manager (`-----BEGIN CERTIFICATE-----`).
    pub certificate_pem: String,
}

impl std::fmt::Debug for TokenKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeyPair")
            .field("private_key_pem", &"[REDACTED]")
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

/// The reasons OpenSSL gives, without file and line noise.
pub(crate) fn openssl_reasons(e: &ErrorStack) -> String {
    let reasons: Vec<&str> = e.errors().iter().filter_map(|e| e.reason()).collect();
    if reasons.is_empty() {
        "OpenSSL gave no reason".to_owned()
    } else {
        format!("OpenSSL reports: {}", reasons.join("; "))
    }
}

fn key_error(what: &str) -> impl FnOnce(ErrorStack) -> ServerTokenError + '_ {
    move |e| ServerTokenError::Key {
        detail: format!("{what}: {}", openssl_reasons(&e)),
    }
}

fn asn1_time(t: OffsetDateTime, what: &str) -> Result<Asn1Time, ServerTokenError> {
    Asn1Time::from_unix(t.unix_timestamp()).map_err(|e| ServerTokenError::Key {
        detail: format!("{what} {t} cannot be put in a certificate: {}", openssl_reasons(&e)),
    })
}

/// Generates a fresh RSA-2048 key pair and a self-signed certificate for Apple Business
/// Manager's "upload public key" step.
///
/// The certificate's subject and issuer are `CN=<common_name>, O=Russet`; its serial number
/// is a random positive 128-bit integer; it is signed with SHA-256; it is valid from
/// `not_before` for `validity_days` days (Apple does not check the dates, so pick a long
/// validity); it has KeyUsage keyEncipherment and digitalSignature and BasicConstraints
/// CA:FALSE, both critical.
pub fn generate_key_pair(
    common_name: &str,
    not_before: OffsetDateTime,
    validity_days: u32,
) -> Result<TokenKeyPair, ServerTokenError> {
    if common_name.trim().is_empty() {
        return Err(ServerTokenError::Key {
            detail: "the certificate's common name is empty".into(),
        });
    }
    if common_name.chars().count() > MAX_COMMON_NAME {
        return Err(ServerTokenError::Key {
            detail: format!("the certificate's common name is longer than {MAX_COMMON_NAME} characters"),
        });
    }
    if common_name.chars().any(char::is_control) {
        return Err(ServerTokenError::Key {
            detail: "the certificate's common name contains control characters".into(),
        });
    }
    if validity_days == 0 {
        return Err(ServerTokenError::Key {
            detail: "the certificate must be valid for at least one day".into(),
        });
    }
    let not_after = not_before
        .checked_add(time::Duration::days(i64::from(validity_days)))
        .ok_or_else(|| ServerTokenError::Key {
            detail: format!("{validity_days} days after {not_before} is out of range"),
        })?;

    let rsa = Rsa::generate(RSA_BITS).map_err(key_error("generating the RSA key failed"))?;
    let key = PKey::from_rsa(rsa).map_err(key_error("wrapping the RSA key failed"))?;

    let mut name = X509NameBuilder::new().map_err(key_error("building the name failed"))?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Russet")
        .map_err(key_error("setting the organisation name failed"))?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(key_error("setting the common name failed"))?;
    let name = name.build();

    let mut serial = BigNum::new().map_err(key_error("making the serial number failed"))?;
    serial
        .rand(SERIAL_BITS, MsbOption::ONE, false)
        .map_err(key_error("making the serial number failed"))?;
    let serial = serial
        .to_asn1_integer()
        .map_err(key_error("making the serial number failed"))?;

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
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(b.build())
    })()
    .map_err(key_error("building the certificate failed"))?;

    let private_key_pem = Zeroizing::new(
        key.private_key_to_pem_pkcs8()
            .map_err(key_error("encoding the private key failed"))?,
    );
    let private_key_pem = std::str::from_utf8(&private_key_pem).map_err(|_| ServerTokenError::Key {
        detail: "the encoded private key is not text".into(),
    })?;
    let certificate_pem = cert.to_pem().map_err(key_error("encoding the certificate failed"))?;
    let certificate_pem = String::from_utf8(certificate_pem).map_err(|_| ServerTokenError::Key {
        detail: "the encoded certificate is not text".into(),
    })?;
    Ok(TokenKeyPair {
        private_key_pem: into_secret(private_key_pem),
        certificate_pem,
    })
}

/// Loads a private key: PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY` PEM, without a
/// passphrase, RSA only.
pub fn load_private_key(private_key_pem: &str) -> Result<PKey<Private>, ServerTokenError> {
    if private_key_pem.contains("ENCRYPTED") {
        return Err(ServerTokenError::Key {
            detail: "the private key is protected by a passphrase, which Russet does not use; \
                     store the key without one"
                .into(),
        });
    }
    // The callback refuses to supply a passphrase: without it, OpenSSL would ask for one on
    // the terminal.
    let key = PKey::private_key_from_pem_callback(private_key_pem.as_bytes(), |_| Ok(0))
        .map_err(key_error("the private key PEM cannot be read"))?;
    if key.id() != Id::RSA {
        return Err(ServerTokenError::Key {
            detail: "the private key is not an RSA key, and Apple encrypts server tokens for \
                     RSA keys only"
                .into(),
        });
    }
    Ok(key)
}

/// Loads a stored key pair: the private key (as [`load_private_key`]) and its certificate
/// (PEM). Checks that the key belongs to the certificate.
pub fn load_key_pair(private_key_pem: &str, certificate_pem: &str) -> Result<(PKey<Private>, X509), ServerTokenError> {
    let key = load_private_key(private_key_pem)?;
    let cert = X509::from_pem(certificate_pem.as_bytes()).map_err(key_error("the certificate PEM cannot be read"))?;
    let public = cert
        .public_key()
        .map_err(key_error("the certificate's public key cannot be read"))?;
    if !public.public_eq(&key) {
        return Err(ServerTokenError::Key {
            detail: "the private key does not belong to the certificate".into(),
        });
    }
    Ok((key, cert))
}
