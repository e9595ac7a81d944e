//! The enrollment profile: the `.mobileconfig` a device installs to enroll in Russet.
//!
//! [`build_enrollment_profile`] turns an [`EnrollmentProfileSpec`] into an XML property list
//! of type `Configuration` (Apple's schema `mdm/profiles/TopLevel.yaml`) holding, in order:
//!
//! 1. one `com.apple.security.root` payload per self-signed anchor certificate, and one
//!    `com.apple.security.pkcs1` payload per other certificate, so the device trusts Russet's
//!    TLS certificate before it talks to the server;
//! 2. a `com.apple.security.scep` payload: the device makes its key pair and gets its
//!    identity certificate from Russet's SCEP certificate authority;
//! 3. the `com.apple.mdm` payload, whose `IdentityCertificateUUID` is the SCEP payload's UUID.
//!
//! Every payload gets a fresh random `PayloadUUID`. The spec is checked first and every
//! problem is reported at once ([`ProfileError::Invalid`]), one message per problem.
//!
//! [`sign_profile`] wraps the profile in a CMS SignedData with the content attached, as
//! `openssl smime -sign -nodetach -binary -outform der` does; the server serves it as
//! `application/x-apple-aspen-config`. [`unsign_profile`] opens one again.

mod spec;

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;
use plist::{Dictionary, Value};

use crate::dn::display_name;
use crate::server_token::openssl_reasons;

use super::signature::signed_data::{self, OutlineError};
pub use spec::{ALL_ACCESS_RIGHTS, EnrollmentProfileSpec, SERVER_CAPABILITIES, ScepPayloadSpec, SpecProblem};

/// The media type of a (signed or unsigned) configuration profile in an HTTP response.
pub const PROFILE_CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// Why a profile could not be built, signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The spec has problems; all of them are listed.
    #[error("the enrollment profile settings are not valid: {}", Problems(problems))]
    Invalid { problems: Vec<SpecProblem> },

    /// The system's random number generator failed (UUIDs could not be made).
    #[error("no random numbers for the profile's UUIDs ({detail}); this is a problem of the server's operating system")]
    Random { detail: String },

    /// The property list could not be written (should not happen for a valid spec).
    #[error("the profile could not be written as a property list ({detail}); this is a bug in Russet")]
    Encode { detail: String },

    /// The signing key does not belong to the signing certificate.
    #[error(
        "the profile signing key does not belong to the profile signing certificate ({subject}); \
         configure the matching certificate and key"
    )]
    KeyMismatch { subject: String },

    /// OpenSSL could not sign.
    #[error("the profile could not be signed ({detail}); check the profile signing certificate and key")]
    Sign { detail: String },

    /// A signed profile signed with another digest than SHA-256 (an unusual key type).
    #[error(
        "the profile signing key made a signature with {algorithm}, while Russet signs profiles \
         with SHA-256: use an RSA or ECDSA P-256 key for signing profiles"
    )]
    UnexpectedDigest { algorithm: String },

    /// A signed profile could not be opened.
    #[error("the signed profile cannot be opened ({detail})")]
    BadSignedProfile { detail: String },
}

struct Problems<'a>(&'a [SpecProblem]);

impl std::fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Builds the enrollment profile (XML property list, UTF-8) after checking `spec`.
pub fn build_enrollment_profile(spec: &EnrollmentProfileSpec) -> Result<Vec<u8>, ProfileError> {
    let checked = spec.check()?;
    let mut content = Vec::new();

    for (i, anchor) in checked.anchors.iter().enumerate() {
        let n = i + 1;
        let (payload_type, kind) = if anchor.self_signed {
            ("com.apple.security.root", "root")
        } else {
            ("com.apple.security.pkcs1", "cert")
        };
        let mut p = payload_header(
            payload_type,
            &format!("{}.{kind}.{n}", spec.identifier),
            &new_uuid()?,
            &format!("Certificate: {}", anchor.name),
            &spec.organization,
        );
        p.insert(
            "PayloadCertificateFileName".into(),
            Value::String(format!("{}.cer", anchor.file_stem)),
        );
        p.insert("PayloadContent".into(), Value::Data(anchor.der.clone()));
        content.push(Value::Dictionary(p));
    }

    let scep_uuid = new_uuid()?;
    let mut scep = payload_header(
        "com.apple.security.scep",
        &format!("{}.scep", spec.identifier),
        &scep_uuid,
        "Device identity (SCEP)",
        &spec.organization,
    );
    scep.insert("PayloadContent".into(), Value::Dictionary(scep_content(&spec.scep)));
    content.push(Value::Dictionary(scep));

    let mut mdm = payload_header(
        "com.apple.mdm",
        &format!("{}.mdm", spec.identifier),
        &new_uuid()?,
        "Device management",
        &spec.organization,
    );
    mdm.insert("IdentityCertificateUUID".into(), Value::String(scep_uuid));
    mdm.insert("Topic".into(), Value::String(spec.topic.clone()));
    mdm.insert("ServerURL".into(), Value::String(spec.server_url.clone()));
    if let Some(url) = &spec.check_in_url {
        mdm.insert("CheckInURL".into(), Value::String(url.clone()));
    }
    mdm.insert("SignMessage".into(), Value::Boolean(spec.sign_message));
    if let Some(rights) = spec.access_rights {
        mdm.insert("AccessRights".into(), Value::Integer(rights.into()));
    }
    mdm.insert(
        "CheckOutWhenRemoved".into(),
        Value::Boolean(spec.check_out_when_removed),
    );
    if !spec.server_capabilities.is_empty() {
        mdm.insert(
            "ServerCapabilities".into(),
            Value::Array(spec.server_capabilities.iter().cloned().map(Value::String).collect()),
        );
    }
    if spec.use_development_apns {
        mdm.insert("UseDevelopmentAPNS".into(), Value::Boolean(true));
    }
    if let Some(mode) = &spec.enrollment_mode {
        mdm.insert("EnrollmentMode".into(), Value::String(mode.clone()));
    }
    if let Some(id) = &spec.assigned_managed_apple_id {
        mdm.insert("AssignedManagedAppleID".into(), Value::String(id.clone()));
    }
    content.push(Value::Dictionary(mdm));

    let mut top = Dictionary::new();
    top.insert("PayloadType".into(), Value::String("Configuration".into()));
    top.insert("PayloadVersion".into(), Value::Integer(1.into()));
    top.insert("PayloadIdentifier".into(), Value::String(spec.identifier.clone()));
    top.insert("PayloadUUID".into(), Value::String(new_uuid()?));
    top.insert("PayloadDisplayName".into(), Value::String(spec.display_name.clone()));
    top.insert("PayloadOrganization".into(), Value::String(spec.organization.clone()));
    if !spec.description.trim().is_empty() {
        top.insert("PayloadDescription".into(), Value::String(spec.description.clone()));
    }
    if spec.removal_disallowed {
        top.insert("PayloadRemovalDisallowed".into(), Value::Boolean(true));
    }
    top.insert("PayloadContent".into(), Value::Array(content));

    let mut out = Vec::new();
    Value::Dictionary(top)
        .to_writer_xml(&mut out)
        .map_err(|e| ProfileError::Encode { detail: e.to_string() })?;
    out.push(b'\n');
    Ok(out)
}

fn payload_header(payload_type: &str, identifier: &str, uuid: &str, name: &str, organization: &str) -> Dictionary {
    let mut p = Dictionary::new();
    p.insert("PayloadType".into(), Value::String(payload_type.into()));
    p.insert("PayloadVersion".into(), Value::Integer(1.into()));
    p.insert("PayloadIdentifier".into(), Value::String(identifier.into()));
    p.insert("PayloadUUID".into(), Value::String(uuid.into()));
    p.insert("PayloadDisplayName".into(), Value::String(name.into()));
    p.insert("PayloadOrganization".into(), Value::String(organization.into()));
    p
}

fn scep_content(scep: &ScepPayloadSpec) -> Dictionary {
    let mut c = Dictionary::new();
    c.insert("URL".into(), Value::String(scep.url.clone()));
    if !scep.name.trim().is_empty() {
        c.insert("Name".into(), Value::String(scep.name.clone()));
    }
    if !scep.subject.is_empty() {
        // [[["CN", "x"]], [["O", "y"]]]: one relative distinguished name per outer item.
        let rdns = scep
            .subject
            .iter()
            .map(|(k, v)| {
                Value::Array(vec![Value::Array(vec![
                    Value::String(k.clone()),
                    Value::String(v.clone()),
                ])])
            })
            .collect();
        c.insert("Subject".into(), Value::Array(rdns));
    }
    c.insert("Challenge".into(), Value::String(scep.challenge.clone()));
    c.insert("Keysize".into(), Value::Integer(scep.key_size.into()));
    c.insert("Key Type".into(), Value::String("RSA".into()));
    c.insert("Key Usage".into(), Value::Integer(scep.key_usage.into()));
    if let Some(fingerprint) = &scep.ca_fingerprint {
        c.insert("CAFingerprint".into(), Value::Data(fingerprint.clone()));
    }
    c
}

/// A random (version 4) UUID in Apple's uppercase form.
fn new_uuid() -> Result<String, ProfileError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ProfileError::Random { detail: e.to_string() })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Signs a profile: a CMS SignedData (DER) with the profile attached byte for byte, one signer
/// (`signer_cert`, SHA-256, with the usual signed attributes), and `signer_cert` plus `chain`
/// embedded so that the device can show who signed it.
pub fn sign_profile(
    profile: &[u8],
    signer_cert: &X509,
    signer_key: &PKey<Private>,
    chain: &[X509],
) -> Result<Vec<u8>, ProfileError> {
    let subject = display_name(signer_cert.subject_name());
    let public = signer_cert.public_key().map_err(|e| ProfileError::Sign {
        detail: format!("the certificate's public key cannot be read: {}", openssl_reasons(&e)),
    })?;
    if !public.public_eq(signer_key) {
        return Err(ProfileError::KeyMismatch { subject });
    }
    let sign_error = |e: openssl::error::ErrorStack| ProfileError::Sign {
        detail: openssl_reasons(&e),
    };
    let mut certs = Stack::new().map_err(sign_error)?;
    for c in chain {
        certs.push(c.clone()).map_err(sign_error)?;
    }
    let cms = CmsContentInfo::sign(
        Some(signer_cert),
        Some(signer_key),
        Some(&certs),
        Some(profile),
        CMSOptions::BINARY,
    )
    .map_err(sign_error)?;
    let der = cms.to_der().map_err(sign_error)?;

    // OpenSSL picks the key's default digest; for RSA and ECDSA keys that is SHA-256.
    let outline = signed_data::read(&der).map_err(|e| ProfileError::Sign {
        detail: format!("OpenSSL made a signature Russet cannot read back: {e}"),
    })?;
    for signer in &outline.signers {
        if signer.digest_oid != "2.16.840.1.101.3.4.2.1" {
            return Err(ProfileError::UnexpectedDigest {
                algorithm: signed_data::digest_display(&signer.digest_oid),
            });
        }
    }
    Ok(der)
}

/// Opens a signed profile: checks the signature over the attached content (not the signer's
/// chain) and returns the content and the signer's certificate. For tests and inspection.
pub fn unsign_profile(der: &[u8]) -> Result<(Vec<u8>, X509), ProfileError> {
    let bad = |detail: String| ProfileError::BadSignedProfile { detail };
    let outline = signed_data::read(der).map_err(|e| match e {
        OutlineError::NotCms(d) => bad(format!("it is not a CMS signature: {d}")),
        OutlineError::NotSignedData(t) => bad(format!("it holds {t}, not signed data")),
        OutlineError::Malformed(d) => bad(format!("the signature is damaged: {d}")),
    })?;
    let signer = match outline.signers.as_slice() {
        [one] => one,
        other => return Err(bad(format!("it has {} signers, not one", other.len()))),
    };
    if !outline.content_attached {
        return Err(bad("the profile itself is not inside the signature".into()));
    }
    let cert = outline
        .certificate_of(signer)
        .ok_or_else(|| bad("the signer's certificate is not included".into()))?
        .clone();
    let mut cms = CmsContentInfo::from_der(der).map_err(|e| bad(openssl_reasons(&e)))?;
    let mut signer_only = Stack::new().map_err(|e| bad(openssl_reasons(&e)))?;
    signer_only.push(cert.clone()).map_err(|e| bad(openssl_reasons(&e)))?;
    let mut content = Vec::new();
    cms.verify(
        Some(&signer_only),
        None,
        None,
        Some(&mut content),
        CMSOptions::BINARY | CMSOptions::NOVERIFY | CMSOptions::NOINTERN,
    )
    .map_err(|e| bad(format!("the signature does not verify: {}", openssl_reasons(&e))))?;
    Ok((content, cert))
}

/// Checks that `bytes` are a whole configuration profile (`.mobileconfig`), unsigned or
/// CMS-signed around one: a dictionary whose `PayloadType` is `Configuration` with a
/// `PayloadIdentifier`. The error says what is wrong, for an administrator.
pub fn check_configuration_profile(bytes: &[u8]) -> Result<(), String> {
    let plist = if bytes.first() == Some(&0x30) {
        unsign_profile(bytes)
            .map_err(|e| format!("a signed profile whose signature cannot be read ({e})"))?
            .0
    } else {
        bytes.to_vec()
    };
    let value = Value::from_reader(std::io::Cursor::new(&plist)).map_err(|_| {
        "not a property list: a .mobileconfig is an XML or binary plist, or one signed with CMS".to_string()
    })?;
    let dict = value
        .as_dictionary()
        .ok_or_else(|| "its top level is not a dictionary".to_string())?;
    if dict.get("PayloadType").and_then(Value::as_string) != Some("Configuration") {
        return Err("its PayloadType is not Configuration: give a whole .mobileconfig".into());
    }
    if dict
        .get("PayloadIdentifier")
        .and_then(Value::as_string)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err("it has no PayloadIdentifier".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_fresh() {
        let (Ok(a), Ok(b)) = (new_uuid(), new_uuid()) else {
            panic!("no random numbers");
        };
        assert_ne!(a, b);
        let re = |u: &str| {
            u.len() == 36
                && u.chars().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_digit() || ('A'..='F').contains(&c),
                })
        };
        assert!(re(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "A" | "B"), "{a}");
    }
}
