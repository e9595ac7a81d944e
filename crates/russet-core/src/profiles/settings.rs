//! An ADE enrollment profile's settings as administrators write them, their validation
//! (Apple's limits, one message per field, before anything reaches Apple), and their
//! translation into Apple's profile.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russet_apple::dep;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::panes;

/// Apple's limits (define-profile documentation).
pub const MAX_NAME: usize = 125;
pub const MAX_DEPARTMENT: usize = 125;
pub const MAX_SUPPORT_PHONE: usize = 50;
pub const MAX_SUPPORT_EMAIL: usize = 250;
pub const MAX_ORG_MAGIC: usize = 256;
pub const MAX_URL: usize = 2000;
/// Russet's own limits.
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_DEVICE_NAME: usize = 63;
pub const MAX_PAIRING_CERTIFICATES: usize = 10;
pub const MAX_ANCHOR_CERTIFICATES: usize = 10;
pub const MAX_INSTALL_PROFILES: usize = 10;
/// Largest configuration profile installed during Setup Assistant (decoded).
pub const MAX_INSTALL_PROFILE_BYTES: usize = 512 * 1024;
/// Placeholders a device name template may use.
pub const NAME_PLACEHOLDERS: &[&str] = &["{{SERIAL}}", "{{DEVICETYPE}}"];

/// Whether a device may pair with computers (sync with Finder/iTunes, Apple Configurator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    #[default]
    DenyAll,
    Allow,
    /// Only with the computers whose certificates are in `pairing_certificates`.
    AllowWithCertificates,
}

/// Every setting of an ADE enrollment profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// Shown in Setup Assistant; at most 125 characters; unique per token.
    pub name: String,
    /// For administrators only.
    #[serde(default)]
    pub description: Option<String>,
    /// Ask the user to sign in during Setup Assistant and bind the device to them.
    #[serde(default = "yes")]
    pub user_affinity: bool,
    /// Supervise the device (iOS 13+ always supervises ADE devices).
    #[serde(default = "yes")]
    pub supervised: bool,
    /// The management profile cannot be removed on the device. Needs `supervised`.
    #[serde(default)]
    pub locked_enrollment: bool,
    /// Keep the device in Setup Assistant until Russet sends DeviceConfigured.
    #[serde(default)]
    pub await_device_configured: bool,
    #[serde(default)]
    pub pairing: Pairing,
    /// PEM or base64 DER certificates of the computers allowed to pair (up to 10).
    #[serde(default)]
    pub pairing_certificates: Vec<String>,
    /// Shown at "About configuration"; at most 125 characters.
    #[serde(default)]
    pub department: Option<String>,
    /// Shown at "Need help"; at most 50 characters.
    #[serde(default)]
    pub department_phone: Option<String>,
    #[serde(default)]
    pub support_email: Option<String>,
    /// An organisation string Apple passes to the MDM server; at most 256 characters.
    #[serde(default)]
    pub org_magic: Option<String>,
    /// ISO 639 language code for Setup Assistant, e.g. `en`, `fr`.
    #[serde(default)]
    pub language: Option<String>,
    /// ISO 3166-1 alpha-2 region, e.g. `US`, `FR`.
    #[serde(default)]
    pub region: Option<String>,
    /// PEM or base64 DER certificates the device trusts for Russet's enrollment URL.
    #[serde(default)]
    pub anchor_certificates: Vec<String>,
    /// Setup Assistant panes to skip, by friendly name (`location_services`) or Apple key (`Location`).
    #[serde(default)]
    pub skip_setup_panes: Vec<String>,
    /// Device name set after enrollment, e.g. `{{DEVICETYPE}}-{{SERIAL}}`; at most 63 characters.
    #[serde(default)]
    pub device_name_template: Option<String>,
    /// tvOS and macOS 11+: go through Setup Assistant without user input.
    #[serde(default)]
    pub auto_advance_setup: bool,
    /// Configuration profiles (`.mobileconfig`, signed or not, base64) installed while the
    /// device waits in Setup Assistant, before DeviceConfigured; at most 10. Russet only: not
    /// sent to Apple.
    #[serde(default)]
    pub install_profiles: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Per-field problems, keyed by the setting's name.
pub type FieldErrors = BTreeMap<&'static str, String>;

fn too_long(field: &str, len: usize, max: usize) -> String {
    format!("{field} is {len} characters long; Apple accepts at most {max}")
}

fn trimmed(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A certificate given as PEM or base64 DER, as base64 DER; None when it is not an X.509 certificate.
fn certificate_der_base64(input: &str) -> Option<String> {
    let input = input.trim();
    let der = if input.starts_with("-----BEGIN") {
        openssl::x509::X509::from_pem(input.as_bytes()).ok()?.to_der().ok()?
    } else {
        let raw = STANDARD.decode(input.split_whitespace().collect::<String>()).ok()?;
        openssl::x509::X509::from_der(&raw).ok()?.to_der().ok()?
    };
    Some(STANDARD.encode(der))
}

fn email_ok(e: &str) -> bool {
    !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
}

impl ProfileSettings {
    /// Checks every setting, and returns them normalised (trimmed, empty strings dropped,
    /// panes as Apple keys, certificates as base64 DER, region upper-case) or every problem
    /// found, by field.
    pub fn validated(&self) -> Result<ProfileSettings, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut out = self.clone();
        out.name = self.name.trim().to_string();
        let name_len = out.name.chars().count();
        if out.name.is_empty() {
            errors.insert(
                "name",
                "the profile needs a name; devices show it in Setup Assistant".into(),
            );
        } else if name_len > MAX_NAME {
            errors.insert("name", too_long("the name", name_len, MAX_NAME));
        } else if out.name.chars().any(char::is_control) {
            errors.insert("name", "the name must not contain control characters".into());
        }
        out.description = trimmed(&self.description);
        if let Some(d) = &out.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            errors.insert(
                "description",
                format!("the description is longer than {MAX_DESCRIPTION} characters"),
            );
        }
        out.department = trimmed(&self.department);
        if let Some(d) = &out.department
            && d.chars().count() > MAX_DEPARTMENT
        {
            errors.insert(
                "department",
                too_long("the department", d.chars().count(), MAX_DEPARTMENT),
            );
        }
        out.department_phone = trimmed(&self.department_phone);
        if let Some(p) = &out.department_phone {
            if p.chars().count() > MAX_SUPPORT_PHONE {
                errors.insert(
                    "department_phone",
                    too_long("the phone number", p.chars().count(), MAX_SUPPORT_PHONE),
                );
            } else if !p.chars().all(|c| c.is_ascii_digit() || " +-().x/".contains(c))
                || !p.chars().any(|c| c.is_ascii_digit())
            {
                errors.insert(
                    "department_phone",
                    format!("\"{p}\" is not a phone number (digits, spaces and + - ( ) . x /)"),
                );
            }
        }
        out.support_email = trimmed(&self.support_email);
        if let Some(e) = &out.support_email {
            if e.chars().count() > MAX_SUPPORT_EMAIL {
                errors.insert(
                    "support_email",
                    too_long("the support email", e.chars().count(), MAX_SUPPORT_EMAIL),
                );
            } else if !email_ok(e) {
                errors.insert("support_email", format!("\"{e}\" is not an email address"));
            }
        }
        out.org_magic = trimmed(&self.org_magic);
        if let Some(m) = &out.org_magic
            && m.chars().count() > MAX_ORG_MAGIC
        {
            errors.insert("org_magic", too_long("org_magic", m.chars().count(), MAX_ORG_MAGIC));
        }
        out.language = trimmed(&self.language).map(|l| l.to_ascii_lowercase());
        if let Some(l) = &out.language
            && !(2..=3).contains(&l.len())
        {
            errors.insert(
                "language",
                format!("\"{l}\" is not an ISO 639 language code (2 or 3 letters, e.g. en, fr, deu)"),
            );
        } else if let Some(l) = &out.language
            && !l.chars().all(|c| c.is_ascii_lowercase())
        {
            errors.insert(
                "language",
                format!("\"{l}\" is not an ISO 639 language code (letters only)"),
            );
        }
        out.region = trimmed(&self.region).map(|r| r.to_ascii_uppercase());
        if let Some(r) = &out.region
            && !(r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
        {
            errors.insert(
                "region",
                format!("\"{r}\" is not an ISO 3166-1 region code (2 letters, e.g. US, FR)"),
            );
        }
        if self.locked_enrollment && !self.supervised {
            errors.insert(
                "locked_enrollment",
                "locked enrollment needs supervised devices: set supervised to true or locked_enrollment to false"
                    .into(),
            );
        }
        match self.pairing {
            Pairing::AllowWithCertificates if self.pairing_certificates.is_empty() => {
                errors.insert(
                    "pairing_certificates",
                    "pairing allow_with_certificates needs at least one certificate of a computer allowed to pair"
                        .into(),
                );
            }
            Pairing::AllowWithCertificates => {}
            _ if !self.pairing_certificates.is_empty() => {
                errors.insert(
                    "pairing_certificates",
                    "certificates are only used with pairing allow_with_certificates".into(),
                );
            }
            _ => {}
        }
        for (field, list, max) in [
            (
                "pairing_certificates",
                &self.pairing_certificates,
                MAX_PAIRING_CERTIFICATES,
            ),
            (
                "anchor_certificates",
                &self.anchor_certificates,
                MAX_ANCHOR_CERTIFICATES,
            ),
        ] {
            if list.len() > max {
                errors.insert(
                    field,
                    format!("{} certificates given; at most {max} are allowed", list.len()),
                );
                continue;
            }
            let mut converted = Vec::new();
            for (i, c) in list.iter().enumerate() {
                match certificate_der_base64(c) {
                    Some(b64) => converted.push(b64),
                    None => {
                        errors.insert(
                            field,
                            format!("certificate {} is not a PEM or base64 DER X.509 certificate", i + 1),
                        );
                    }
                }
            }
            if field == "pairing_certificates" {
                out.pairing_certificates = converted;
            } else {
                out.anchor_certificates = converted;
            }
        }
        if self.install_profiles.len() > MAX_INSTALL_PROFILES {
            errors.insert(
                "install_profiles",
                format!(
                    "{} profiles given; at most {MAX_INSTALL_PROFILES} are installed during Setup Assistant",
                    self.install_profiles.len()
                ),
            );
        } else {
            for (i, p) in self.install_profiles.iter().enumerate() {
                if let Err(why) = check_install_profile(p) {
                    errors.insert("install_profiles", format!("profile {}: {why}", i + 1));
                    break;
                }
            }
        }
        let mut keys = Vec::new();
        let mut unknown = Vec::new();
        for pane in &self.skip_setup_panes {
            match panes::find(pane) {
                Some(p) if !keys.contains(&p.key.to_string()) => keys.push(p.key.to_string()),
                Some(_) => {}
                None => unknown.push(pane.clone()),
            }
        }
        if !unknown.is_empty() {
            errors.insert(
                "skip_setup_panes",
                format!(
                    "unknown Setup Assistant pane{} {}; known panes: {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    unknown
                        .iter()
                        .map(|u| format!("\"{u}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    panes::PANES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        out.skip_setup_panes = keys;
        out.device_name_template = trimmed(&self.device_name_template);
        if let Some(t) = &out.device_name_template {
            let len = t.chars().count();
            let mut rest = t.as_str();
            let mut bad = Vec::new();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start..];
                match after.find("}}") {
                    Some(end) => {
                        let placeholder = &after[..end + 2];
                        if !NAME_PLACEHOLDERS.contains(&placeholder) {
                            bad.push(placeholder.to_string());
                        }
                        rest = &after[end + 2..];
                    }
                    None => {
                        bad.push(after.to_string());
                        break;
                    }
                }
            }
            if len > MAX_DEVICE_NAME {
                errors.insert(
                    "device_name_template",
                    format!("the template is {len} characters; at most {MAX_DEVICE_NAME}"),
                );
            } else if !bad.is_empty() {
                errors.insert(
                    "device_name_template",
                    format!(
                        "unknown placeholder {}; use {}",
                        bad.join(", "),
                        NAME_PLACEHOLDERS.join(" or ")
                    ),
                );
            } else if t.chars().any(char::is_control) {
                errors.insert(
                    "device_name_template",
                    "the template must not contain control characters".into(),
                );
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }

    /// Apple's profile for these (validated) settings, with Russet's enrollment URLs.
    pub fn to_apple(&self, enroll_url: &str, sign_in_url: &str) -> dep::Profile {
        let opt = |v: &Option<String>| v.clone();
        dep::Profile {
            profile_name: Some(self.name.clone()),
            url: Some(enroll_url.to_string()),
            configuration_web_url: self.user_affinity.then(|| sign_in_url.to_string()),
            allow_pairing: Some(self.pairing != Pairing::DenyAll),
            is_supervised: Some(self.supervised),
            is_mandatory: Some(true),
            is_mdm_removable: Some(!self.locked_enrollment),
            await_device_configured: Some(self.await_device_configured),
            auto_advance_setup: Some(self.auto_advance_setup),
            anchor_certs: (!self.anchor_certificates.is_empty()).then(|| self.anchor_certificates.clone()),
            supervising_host_certs: (!self.pairing_certificates.is_empty()).then(|| self.pairing_certificates.clone()),
            department: opt(&self.department),
            support_phone_number: opt(&self.department_phone),
            support_email_address: opt(&self.support_email),
            org_magic: opt(&self.org_magic),
            language: opt(&self.language),
            region: opt(&self.region),
            skip_setup_items: Some(self.skip_setup_panes.clone()),
            ..dep::Profile::default()
        }
    }
}

/// A configuration profile to install: base64 of a `.mobileconfig` whose top level is a
/// `Configuration` payload with an identifier (unsigned, or CMS-signed around one).
fn check_install_profile(b64: &str) -> Result<(), String> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| "not base64 (give the .mobileconfig file's bytes in base64)".to_string())?;
    if bytes.len() > MAX_INSTALL_PROFILE_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_INSTALL_PROFILE_BYTES} accepted",
            bytes.len()
        ));
    }
    russet_apple::mdm::profile::check_configuration_profile(&bytes)
}

/// The settings field an Apple define-profile error code is about.
pub fn field_of_apple_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "CONFIG_NAME_REQUIRED" | "CONFIG_NAME_INVALID" => "name",
        "CONFIG_URL_REQUIRED" | "CONFIG_URL_INVALID" => "url",
        "DEPARTMENT_INVALID" | "DEPARTMENT_REQUIRED" => "department",
        "SUPPORT_PHONE_INVALID" | "SUPPORT_PHONE_REQUIRED" => "department_phone",
        "SUPPORT_EMAIL_INVALID" => "support_email",
        "MAGIC_INVALID" => "org_magic",
        "LOCALE_INVALID" => "language",
        "FLAGS_INVALID" => "locked_enrollment",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ProfileSettings {
        serde_json::from_value(serde_json::json!({ "name": "Corporate iPads" })).unwrap()
    }

    #[test]
    fn defaults_are_the_safe_corporate_ones() {
        let s = base().validated().unwrap();
        assert!(s.user_affinity && s.supervised && !s.locked_enrollment && !s.await_device_configured);
        assert_eq!(s.pairing, Pairing::DenyAll);
        let a = s.to_apple("https://mdm.example.com/e", "https://mdm.example.com/s");
        assert_eq!(a.allow_pairing, Some(false));
        assert_eq!(a.is_mdm_removable, Some(true));
        assert_eq!(a.configuration_web_url.as_deref(), Some("https://mdm.example.com/s"));
    }

    #[test]
    fn every_field_error_is_reported_at_once() {
        let mut s = base();
        s.name = "x".repeat(126);
        s.department = Some("d".repeat(126));
        s.department_phone = Some("call me".into());
        s.support_email = Some("nobody".into());
        s.org_magic = Some("m".repeat(257));
        s.language = Some("english".into());
        s.region = Some("USA".into());
        s.supervised = false;
        s.locked_enrollment = true;
        s.pairing = Pairing::AllowWithCertificates;
        s.anchor_certificates = vec!["not a cert".into()];
        s.skip_setup_panes = vec!["passcode".into(), "teleport".into()];
        s.device_name_template = Some("{{SERIAL}}-{{USER}}".into());
        let e = s.validated().unwrap_err();
        for field in [
            "name",
            "department",
            "department_phone",
            "support_email",
            "org_magic",
            "language",
            "region",
            "locked_enrollment",
            "pairing_certificates",
            "anchor_certificates",
            "skip_setup_panes",
            "device_name_template",
        ] {
            assert!(e.contains_key(field), "{field} not reported: {e:?}");
        }
        assert!(e["skip_setup_panes"].contains("teleport") && e["skip_setup_panes"].contains("location_services"));
        assert!(e["device_name_template"].contains("{{USER}}"));
    }

    #[test]
    fn normalises_panes_certificates_and_codes() {
        let pem = {
            let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
            let mut b = openssl::x509::X509::builder().unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
                .unwrap();
            b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
            String::from_utf8(b.build().to_pem().unwrap()).unwrap()
        };
        let mut s = base();
        s.skip_setup_panes = vec![
            "Location Services".into(),
            "TOS".into(),
            "location".into(),
            "touch_id_face_id".into(),
        ];
        s.anchor_certificates = vec![pem.clone()];
        s.pairing = Pairing::AllowWithCertificates;
        s.pairing_certificates = vec![pem];
        s.language = Some(" FR ".into());
        s.region = Some("fr".into());
        s.device_name_template = Some("{{DEVICETYPE}}-{{SERIAL}}".into());
        let v = s.validated().unwrap();
        assert_eq!(v.skip_setup_panes, ["Location", "TOS", "Biometric"]);
        assert!(!v.anchor_certificates[0].starts_with("-----"));
        assert_eq!((v.language.as_deref(), v.region.as_deref()), (Some("fr"), Some("FR")));
        let a = v.to_apple("u", "w");
        assert_eq!(a.allow_pairing, Some(true));
        assert_eq!(a.supervising_host_certs.as_ref().map(Vec::len), Some(1));
        // Validation is idempotent: validated settings validate to themselves.
        assert_eq!(v.validated().unwrap(), v);
    }

    #[test]
    fn unknown_keys_are_refused_by_serde() {
        let r: Result<ProfileSettings, _> =
            serde_json::from_value(serde_json::json!({ "name": "x", "superviced": true }));
        assert!(r.unwrap_err().to_string().contains("superviced"));
    }
}
