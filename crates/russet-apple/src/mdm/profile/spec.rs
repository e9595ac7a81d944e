//! What goes into an enrollment profile, and the checks made before one is built.
//!
//! The rules come from Apple's profile schemas (`com.apple.mdm`, `com.apple.security.scep`,
//! `TopLevel`) and from account-driven enrollment: every rule that a device would enforce by
//! refusing the profile, with a message that says what to change.

use std::fmt;

use openssl::x509::{X509, X509Ref, X509VerifyResult};
use url::{Host, Url};

use super::ProfileError;
use crate::dn::display_name;

/// Apple's `AccessRights` bits, all of them.
pub const ALL_ACCESS_RIGHTS: u32 = 8191;

/// The `ServerCapabilities` values Apple defines.
pub const SERVER_CAPABILITIES: &[&str] = &[
    "com.apple.mdm.per-user-connections",
    "com.apple.mdm.bootstraptoken",
    "com.apple.mdm.token",
];

/// The `com.apple.security.scep` payload: how the device gets its identity certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct ScepPayloadSpec {
    /// The SCEP URL (`URL`). `https://`; `http://` only to localhost, or when
    /// [`ca_fingerprint`](Self::ca_fingerprint) pins the CA certificate.
    pub url: String,
    /// The SCEP challenge password (`Challenge`). Never shown by `Debug`.
    pub challenge: String,
    /// The requested subject, in order, e.g. `[("O", "Example"), ("CN", "Device")]`. Names are
    /// C, L, ST, O, OU, CN or a dotted OID. Empty leaves the subject to the CA.
    pub subject: Vec<(String, String)>,
    /// RSA key size (`Keysize`): 2048 (default) or 4096.
    pub key_size: u32,
    /// `Key Usage`: 1 (signing) or 5 (signing and encryption, the default).
    pub key_usage: u32,
    /// `Name`, which the device passes to the SCEP server to pick a CA; empty leaves it out.
    pub name: String,
    /// `CAFingerprint`: the MD5 (16 bytes) or SHA-1 (20 bytes) digest of the CA certificate,
    /// which the device checks during SCEP.
    pub ca_fingerprint: Option<Vec<u8>>,
}

impl ScepPayloadSpec {
    /// A SCEP payload with the usual settings: RSA-2048, key usage 5, subject
    /// `CN=Russet device identity`, no name, no fingerprint.
    pub fn new(url: impl Into<String>, challenge: impl Into<String>) -> ScepPayloadSpec {
        ScepPayloadSpec {
            url: url.into(),
            challenge: challenge.into(),
            subject: vec![("CN".to_owned(), "Russet device identity".to_owned())],
            key_size: 2048,
            key_usage: 5,
            name: String::new(),
            ca_fingerprint: None,
        }
    }
}

impl fmt::Debug for ScepPayloadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScepPayloadSpec")
            .field("url", &self.url)
            .field("challenge", &"<redacted>")
            .field("subject", &self.subject)
            .field("key_size", &self.key_size)
            .field("key_usage", &self.key_usage)
            .field("name", &self.name)
            .field("ca_fingerprint", &self.ca_fingerprint.as_ref().map(hex::encode))
            .finish()
    }
}

/// Everything an enrollment profile says. [`EnrollmentProfileSpec::new`] fills in the usual
/// values; change fields afterwards as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentProfileSpec {
    /// `PayloadOrganization`, shown on the device.
    pub organization: String,
    /// `PayloadDisplayName`, the profile's name on the device.
    pub display_name: String,
    /// `PayloadDescription`; empty leaves it out.
    pub description: String,
    /// The reverse-DNS base of every `PayloadIdentifier` (`com.example.russet.enroll`). A
    /// device replaces an installed profile that has the same identifier.
    pub identifier: String,
    /// The push topic (`Topic`): the UID of the push certificate's subject,
    /// `com.apple.mgmt.External.…`. It must never change for enrolled devices.
    pub topic: String,
    /// `ServerURL`, where the device fetches commands. `https://` (`http://` only to
    /// localhost or 127.0.0.1, as a convenience for tests: devices refuse it).
    pub server_url: String,
    /// `CheckInURL`; `None` makes the device check in at `server_url`. Same rules.
    pub check_in_url: Option<String>,
    /// The identity payload.
    pub scep: ScepPayloadSpec,
    /// `SignMessage`: every request carries `Mdm-Signature` (default true).
    pub sign_message: bool,
    /// `AccessRights`: 1 to 8191 (default 8191, everything); must be `None` for User
    /// Enrollment (`enrollment_mode` BYOD) and set otherwise.
    pub access_rights: Option<u32>,
    /// `CheckOutWhenRemoved`: the device says so when the profile is removed (default true).
    pub check_out_when_removed: bool,
    /// `ServerCapabilities`, from [`SERVER_CAPABILITIES`] (default none).
    pub server_capabilities: Vec<String>,
    /// Certificates (DER) the device must trust before it reaches the server, for a server
    /// certificate that is not publicly trusted. One payload each.
    pub anchor_certs: Vec<Vec<u8>>,
    /// `PayloadRemovalDisallowed` (locked Automated Device Enrollment; supervised devices).
    pub removal_disallowed: bool,
    /// `EnrollmentMode` for account-driven enrollment: `BYOD` (User Enrollment) or `ADDE`
    /// (Device Enrollment); `None` otherwise.
    pub enrollment_mode: Option<String>,
    /// `AssignedManagedAppleID`: the Managed Apple Account; required with `enrollment_mode`.
    pub assigned_managed_apple_id: Option<String>,
    /// `UseDevelopmentAPNS` (only for push certificates of the development environment).
    pub use_development_apns: bool,
}

impl EnrollmentProfileSpec {
    /// A spec with the usual values for a Russet enrollment: display name
    /// "`organization` device management", `SignMessage`, all access rights, check-out on
    /// removal, no check-in URL, capabilities, anchors or account-driven keys.
    pub fn new(
        organization: impl Into<String>,
        identifier: impl Into<String>,
        topic: impl Into<String>,
        server_url: impl Into<String>,
        scep: ScepPayloadSpec,
    ) -> EnrollmentProfileSpec {
        let organization = organization.into();
        EnrollmentProfileSpec {
            display_name: format!("{organization} device management"),
            description: format!("Enrolls this device in {organization}'s device management."),
            organization,
            identifier: identifier.into(),
            topic: topic.into(),
            server_url: server_url.into(),
            check_in_url: None,
            scep,
            sign_message: true,
            access_rights: Some(ALL_ACCESS_RIGHTS),
            check_out_when_removed: true,
            server_capabilities: Vec::new(),
            anchor_certs: Vec::new(),
            removal_disallowed: false,
            enrollment_mode: None,
            assigned_managed_apple_id: None,
            use_development_apns: false,
        }
    }

    /// Checks every rule [`build_enrollment_profile`](super::build_enrollment_profile) checks,
    /// without building anything: for refusing bad settings when they are saved rather than
    /// when a device asks for its profile.
    pub fn validate(&self) -> Result<(), ProfileError> {
        self.check().map(|_| ())
    }

    /// Checks every rule and reads the anchor certificates.
    pub(super) fn check(&self) -> Result<Checked, ProfileError> {
        let mut c = Checker::default();
        self.check_text(&mut c);
        self.check_urls(&mut c);
        self.check_mdm(&mut c);
        check_scep(&self.scep, &mut c);
        let anchors = self.check_anchors(&mut c);
        if c.problems.is_empty() {
            Ok(Checked { anchors })
        } else {
            Err(ProfileError::Invalid { problems: c.problems })
        }
    }

    fn check_text(&self, c: &mut Checker) {
        c.text("organization", &self.organization, true, false);
        c.text("display_name", &self.display_name, true, false);
        c.text("description", &self.description, false, true);
        if c.text("identifier", &self.identifier, true, false) && !is_reverse_dns(&self.identifier) {
            c.add(
                "identifier",
                format!(
                    "{:?} is not a reverse-DNS identifier: use dot-separated labels of letters, digits, \
                     '-' and '_', such as com.example.mdm.enroll",
                    self.identifier
                ),
            );
        }
        if c.text("topic", &self.topic, true, false) {
            let rest = self.topic.strip_prefix("com.apple.mgmt.");
            if rest.is_none_or(str::is_empty) || self.topic.chars().any(|ch| ch.is_whitespace()) {
                c.add(
                    "topic",
                    format!(
                        "{:?} is not an MDM push topic: it must start with \"com.apple.mgmt.\" and be the \
                         UID in the push certificate's subject (com.apple.mgmt.External.…)",
                        self.topic
                    ),
                );
            }
        }
    }

    fn check_urls(&self, c: &mut Checker) {
        c.url("server_url", &self.server_url, false);
        if let Some(url) = &self.check_in_url {
            c.url("check_in_url", url, false);
        }
    }

    fn check_mdm(&self, c: &mut Checker) {
        let byod = match self.enrollment_mode.as_deref() {
            None => false,
            Some("BYOD") => true,
            Some("ADDE") => false,
            Some(other) => {
                c.add(
                    "enrollment_mode",
                    format!(
                        "{other:?} is not an enrollment mode: Apple's are \"BYOD\" (User Enrollment) and \
                         \"ADDE\" (account-driven Device Enrollment), or none for other enrollments"
                    ),
                );
                false
            }
        };
        match (byod, self.access_rights) {
            (true, Some(_)) => c.add(
                "access_rights",
                "must be left out for User Enrollment (enrollment mode BYOD): the device refuses a \
                 profile that sets AccessRights there",
            ),
            (false, None) => c.add(
                "access_rights",
                "are missing: set them (8191 grants all) for every enrollment except User Enrollment",
            ),
            (_, Some(rights)) => check_access_rights(rights, c),
            (true, None) => {}
        }
        match (&self.enrollment_mode, &self.assigned_managed_apple_id) {
            (Some(mode), None) => c.add(
                "assigned_managed_apple_id",
                format!(
                    "is missing: account-driven enrollment (mode {mode}) needs the Managed Apple Account \
                     the user signed in with, or the device cancels the enrollment"
                ),
            ),
            (None, Some(_)) => c.add(
                "assigned_managed_apple_id",
                "is only used by account-driven enrollment: set enrollment_mode (BYOD or ADDE), or leave \
                 the Managed Apple Account out",
            ),
            (_, Some(id)) => {
                if c.text("assigned_managed_apple_id", id, true, false) {
                    let valid = id.split_once('@').is_some_and(|(user, domain)| {
                        !user.is_empty() && domain.contains('.') && !domain.contains('@')
                    });
                    if !valid || id.chars().any(char::is_whitespace) {
                        c.add(
                            "assigned_managed_apple_id",
                            format!("{id:?} is not a Managed Apple Account (user@domain)"),
                        );
                    }
                }
            }
            (None, None) => {}
        }
        if byod && self.removal_disallowed {
            c.add(
                "removal_disallowed",
                "cannot be set for User Enrollment (enrollment mode BYOD): the user may always remove \
                 a personal device's enrollment",
            );
        }
        for (i, cap) in self.server_capabilities.iter().enumerate() {
            if !SERVER_CAPABILITIES.contains(&cap.as_str()) {
                c.add(
                    "server_capabilities",
                    format!(
                        "{cap:?} is not a capability Apple defines ({})",
                        SERVER_CAPABILITIES.join(", ")
                    ),
                );
            } else if self.server_capabilities[..i].contains(cap) {
                c.add("server_capabilities", format!("{cap:?} is listed twice"));
            }
        }
    }

    fn check_anchors(&self, c: &mut Checker) -> Vec<Anchor> {
        let mut anchors = Vec::new();
        for (i, der) in self.anchor_certs.iter().enumerate() {
            let n = i + 1;
            match X509::from_der(der) {
                Ok(cert) => {
                    // Re-encode so a certificate with trailing bytes is not passed on as is.
                    match cert.to_der() {
                        Ok(clean) => anchors.push(anchor(&cert, clean, n)),
                        Err(_) => c.add(
                            "anchor_certs",
                            format!("certificate {n} cannot be encoded again; it is damaged"),
                        ),
                    }
                }
                Err(_) => c.add(
                    "anchor_certs",
                    format!("certificate {n} is not a DER X.509 certificate (PEM must be converted to DER first)"),
                ),
            }
        }
        anchors
    }
}

fn check_access_rights(rights: u32, c: &mut Checker) {
    if rights == 0 || rights > ALL_ACCESS_RIGHTS {
        c.add(
            "access_rights",
            format!("{rights} is out of range: Apple's access rights are 1 to 8191 (8191 grants all)"),
        );
        return;
    }
    if rights & 2 != 0 && rights & 1 == 0 {
        c.add(
            "access_rights",
            format!(
                "{rights} allows installing profiles (2) but not inspecting them (1), which Apple requires \
                 with it: add 1"
            ),
        );
    }
    if rights & 128 != 0 && rights & 64 == 0 {
        c.add(
            "access_rights",
            format!(
                "{rights} allows installing provisioning profiles (128) but not inspecting them (64), which \
                 Apple requires with it: add 64"
            ),
        );
    }
}

fn check_scep(scep: &ScepPayloadSpec, c: &mut Checker) {
    let bad_fingerprint = scep.ca_fingerprint.as_ref().filter(|f| !matches!(f.len(), 16 | 20));
    if let Some(fingerprint) = bad_fingerprint {
        c.add(
            "scep.ca_fingerprint",
            format!(
                "is {} bytes long: Apple devices take the MD5 (16 bytes) or SHA-1 (20 bytes) digest of the \
                 CA certificate",
                fingerprint.len()
            ),
        );
    }
    c.url("scep.url", &scep.url, scep.ca_fingerprint.is_some());
    if c.text("scep.challenge", &scep.challenge, true, false) && scep.challenge.trim() != scep.challenge {
        c.add(
            "scep.challenge",
            "starts or ends with spaces, which are easy to lose when the challenge is configured elsewhere: \
             remove them",
        );
    }
    c.text("scep.name", &scep.name, false, false);
    for (key, value) in &scep.subject {
        let known = matches!(key.as_str(), "C" | "L" | "ST" | "O" | "OU" | "CN") || is_dotted_oid(key);
        if !known {
            c.add(
                "scep.subject",
                format!("{key:?} is not a subject attribute: use C, L, ST, O, OU, CN or a dotted OID"),
            );
        }
        if c.text("scep.subject", value, true, false)
            && key == "C"
            && !(value.len() == 2 && value.chars().all(|ch| ch.is_ascii_alphabetic()))
        {
            c.add(
                "scep.subject",
                format!("the country (C) {value:?} must be a two-letter code such as US"),
            );
        }
    }
    match scep.key_size {
        2048 | 4096 => {}
        1024 => c.add(
            "scep.key_size",
            "1024-bit RSA keys are too weak for a device identity (Apple allows them, Russet does not): \
             use 2048 or 4096",
        ),
        other => c.add(
            "scep.key_size",
            format!("{other} is not a key size Apple devices make: use 2048 or 4096"),
        ),
    }
    match scep.key_usage {
        1 | 5 => {}
        4 => c.add(
            "scep.key_usage",
            "4 (encryption only) leaves the device unable to sign with its identity, which MDM needs for \
             Mdm-Signature and TLS client authentication: use 5 (signing and encryption) or 1 (signing)",
        ),
        other => c.add(
            "scep.key_usage",
            format!("{other} is not one of Apple's key usages: 1 (signing), 4 (encryption) or 5 (both); use 5"),
        ),
    }
}

/// The result of the checks that the builder needs.
pub(super) struct Checked {
    pub anchors: Vec<Anchor>,
}

/// An anchor certificate ready for its payload.
pub(super) struct Anchor {
    pub der: Vec<u8>,
    pub self_signed: bool,
    /// For `PayloadDisplayName`: the common name, or the whole subject.
    pub name: String,
    /// For `PayloadCertificateFileName`, without the extension.
    pub file_stem: String,
}

fn anchor(cert: &X509Ref, der: Vec<u8>, n: usize) -> Anchor {
    let self_signed = cert.issued(cert) == X509VerifyResult::OK
        && cert
            .public_key()
            .ok()
            .and_then(|key| cert.verify(&key).ok())
            .unwrap_or(false);
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok());
    let name = cn.clone().unwrap_or_else(|| display_name(cert.subject_name()));
    let stem: String = cn
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                ch
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-').to_owned();
    Anchor {
        der,
        self_signed,
        name,
        file_stem: if stem.is_empty() {
            format!("certificate-{n}")
        } else {
            stem
        },
    }
}

/// One problem with a spec: the field (as named in [`EnrollmentProfileSpec`], nested fields
/// with a dot: `scep.key_size`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<SpecProblem>,
}

impl Checker {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.problems.push(SpecProblem {
            field,
            message: message.into(),
        });
    }

    /// Checks a text value: present when `required`, and free of characters an XML property
    /// list cannot hold (control characters; tabs and line breaks only where `multiline`).
    /// True when the value is present and clean, so that further checks make sense.
    fn text(&mut self, field: &'static str, value: &str, required: bool, multiline: bool) -> bool {
        if value.trim().is_empty() {
            if required {
                self.add(field, "is empty");
            }
            return false;
        }
        let bad = value.chars().any(|ch| {
            let allowed_space = multiline && matches!(ch, '\t' | '\n' | '\r');
            (ch.is_control() && !allowed_space) || matches!(ch, '\u{FFFE}' | '\u{FFFF}')
        });
        if bad {
            self.add(
                field,
                if multiline {
                    "contains control characters, which a profile cannot hold: remove them"
                } else {
                    "contains control characters or line breaks, which it cannot hold: remove them"
                },
            );
            return false;
        }
        true
    }

    /// Checks a URL the device will contact: `https://`, or `http://` to the local machine
    /// (tests), or plain `http://` anywhere when `http_allowed` (SCEP with a pinned CA).
    fn url(&mut self, field: &'static str, value: &str, http_allowed: bool) {
        if !self.text(field, value, true, false) {
            return;
        }
        let url = match Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.add(field, format!("{value:?} is not a URL ({e})"));
                return;
            }
        };
        let local = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => {
                self.add(field, format!("{value:?} has no host name"));
                return;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if local || http_allowed => {}
            "http" => self.add(
                field,
                if field == "scep.url" {
                    format!(
                        "{value:?} uses http://: use https://, or pin the CA with scep.ca_fingerprint (http:// to \
                         localhost and 127.0.0.1 is also accepted, for tests)"
                    )
                } else {
                    format!(
                        "{value:?} uses http://, which Apple devices refuse: use https:// (http:// is accepted \
                         only for localhost and 127.0.0.1, as a convenience for tests)"
                    )
                },
            ),
            other => self.add(field, format!("{value:?} is a {other}: URL; it must be https://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.add(field, format!("{value:?} contains a user name or password: remove it"));
        }
        if url.fragment().is_some() {
            self.add(
                field,
                format!("{value:?} has a #fragment, which devices do not send: remove it"),
            );
        }
    }
}

fn is_reverse_dns(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
}

fn is_dotted_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.chars().all(|ch| ch.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_oids() {
        assert!(is_reverse_dns("com.example.mdm"));
        assert!(is_reverse_dns("org.example-1.a_b"));
        assert!(!is_reverse_dns("example"));
        assert!(!is_reverse_dns("com..example"));
        assert!(!is_reverse_dns("com.example."));
        assert!(!is_reverse_dns("com.exa mple"));
        assert!(is_dotted_oid("2.5.4.3"));
        assert!(!is_dotted_oid("2.5.x"));
        assert!(!is_dotted_oid("25"));
    }

    #[test]
    fn debug_hides_the_challenge() {
        let scep = ScepPayloadSpec::new("https://mdm.example.com/scep", "s3cret-challenge");
        assert!(!format!("{scep:?}").contains("s3cret"));
    }
}
