//! Configuration profiles as a device reads them: the enrollment profile
//! (`com.apple.security.scep` + `com.apple.mdm`, per Apple's `mdm/profiles/*.yaml`) and any
//! profile installed later (`InstallProfile`), plain or CMS-signed.

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use plist::{Dictionary, Value};

/// A profile a device refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile: {0}")]
pub struct ProfileError(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, ProfileError> {
    Err(ProfileError(m.into()))
}

/// The plist inside a profile: the body itself when it is a plist (XML or binary), else the
/// signed content of a CMS/PKCS#7 SignedData (the signature is checked, the signer is not
/// trusted or chained). Returns (plist bytes, whether it was signed).
pub fn unwrap_signed(body: &[u8]) -> Result<(Vec<u8>, bool), ProfileError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"<?xml") || trimmed.starts_with(b"<plist") || trimmed.starts_with(b"bplist") {
        return Ok((body.to_vec(), false));
    }
    let p7 = Pkcs7::from_der(body).map_err(|_| ProfileError("neither a plist nor a CMS-signed plist".into()))?;
    let store = X509StoreBuilder::new()
        .map_err(|e| ProfileError(e.to_string()))?
        .build();
    let certs = Stack::new().map_err(|e| ProfileError(e.to_string()))?;
    let mut out = Vec::new();
    p7.verify(
        &certs,
        &store,
        None,
        Some(&mut out),
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
    )
    .map_err(|e| ProfileError(format!("the CMS signature does not verify: {e}")))?;
    Ok((out, true))
}

/// Read the top-level dictionary of a profile (plain or signed).
pub fn read_profile(body: &[u8]) -> Result<(Dictionary, bool), ProfileError> {
    let (plist_bytes, signed) = unwrap_signed(body)?;
    let v = Value::from_reader(std::io::Cursor::new(&plist_bytes))
        .map_err(|e| ProfileError(format!("not a property list: {e}")))?;
    match v {
        Value::Dictionary(d) => Ok((d, signed)),
        _ => bad("the top level is not a dictionary"),
    }
}

fn string(d: &Dictionary, k: &str) -> Option<String> {
    d.get(k).and_then(Value::as_string).map(str::to_owned)
}

fn required(d: &Dictionary, k: &str, what: &str) -> Result<String, ProfileError> {
    string(d, k).ok_or_else(|| ProfileError(format!("{what}: {k} is required (a string)")))
}

fn integer(d: &Dictionary, k: &str) -> Option<i64> {
    d.get(k).and_then(|v| {
        v.as_signed_integer()
            .or_else(|| v.as_unsigned_integer().and_then(|u| i64::try_from(u).ok()))
            .or_else(|| v.as_string().and_then(|s| s.trim().parse().ok()))
    })
}

/// The `com.apple.security.scep` payload's `PayloadContent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepPayload {
    /// The payload's `PayloadUUID` (what `IdentityCertificateUUID` names).
    pub payload_uuid: String,
    /// `URL`.
    pub url: String,
    /// `Challenge`.
    pub challenge: Option<String>,
    /// `Keysize` (default 1024 per Apple's schema; 2048 here when absent, as nobody wants 1024).
    pub keysize: u32,
    /// `Key Type` (only `RSA`).
    pub key_type: String,
    /// `Subject` flattened to (type, value) pairs, in order.
    pub subject: Vec<(String, String)>,
    /// `CAFingerprint`.
    pub ca_fingerprint: Option<Vec<u8>>,
    /// `Name`.
    pub name: Option<String>,
}

/// The `com.apple.mdm` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmPayload {
    /// `ServerURL`: where the device connects.
    pub server_url: String,
    /// `CheckInURL`, or `ServerURL` when absent.
    pub check_in_url: String,
    /// `Topic`: the APNs topic.
    pub topic: String,
    /// `SignMessage`.
    pub sign_message: bool,
    /// `IdentityCertificateUUID`.
    pub identity_certificate_uuid: String,
    /// `AccessRights`.
    pub access_rights: Option<i64>,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: bool,
    /// `ServerCapabilities`.
    pub server_capabilities: Vec<String>,
}

/// An enrollment profile, read.
#[derive(Debug, Clone)]
pub struct EnrollmentProfile {
    /// The identity payload.
    pub scep: ScepPayload,
    /// The MDM payload.
    pub mdm: MdmPayload,
    /// What ProfileList reports for it.
    pub summary: InstalledProfile,
}

fn payloads(top: &Dictionary) -> Result<Vec<&Dictionary>, ProfileError> {
    match top.get("PayloadContent") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                p.as_dictionary()
                    .ok_or_else(|| ProfileError("a PayloadContent entry is not a dictionary".into()))
            })
            .collect(),
        Some(_) => bad("PayloadContent is not an array"),
        None => bad("PayloadContent is missing"),
    }
}

fn subject(v: Option<&Value>) -> Result<Vec<(String, String)>, ProfileError> {
    let mut out = Vec::new();
    let Some(v) = v else { return Ok(out) };
    let rdns = v
        .as_array()
        .ok_or_else(|| ProfileError("SCEP Subject is not an array".into()))?;
    for rdn in rdns {
        let pairs = rdn
            .as_array()
            .ok_or_else(|| ProfileError("a SCEP Subject entry is not an array".into()))?;
        for pair in pairs {
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), Value::String(v)]) => out.push((k.clone(), v.clone())),
                _ => return bad("a SCEP Subject pair is not [type, value]"),
            }
        }
    }
    Ok(out)
}

/// Read an enrollment profile: it must hold a `com.apple.security.scep` identity and a
/// `com.apple.mdm` payload naming it.
pub fn parse_enrollment_profile(body: &[u8]) -> Result<EnrollmentProfile, ProfileError> {
    let (top, signed) = read_profile(body)?;
    let summary = summarize(&top, signed, true)?;
    let list = payloads(&top)?;
    let mdm = list
        .iter()
        .find(|p| string(p, "PayloadType").as_deref() == Some("com.apple.mdm"))
        .ok_or_else(|| ProfileError("no com.apple.mdm payload: not an enrollment profile".into()))?;
    let server_url = required(mdm, "ServerURL", "com.apple.mdm")?;
    let identity_uuid = required(mdm, "IdentityCertificateUUID", "com.apple.mdm")?;
    let topic = required(mdm, "Topic", "com.apple.mdm")?;
    let mdm_payload = MdmPayload {
        check_in_url: string(mdm, "CheckInURL").unwrap_or_else(|| server_url.clone()),
        server_url,
        topic,
        sign_message: mdm.get("SignMessage").and_then(Value::as_boolean).unwrap_or(false),
        identity_certificate_uuid: identity_uuid.clone(),
        access_rights: integer(mdm, "AccessRights"),
        check_out_when_removed: mdm
            .get("CheckOutWhenRemoved")
            .and_then(Value::as_boolean)
            .unwrap_or(false),
        server_capabilities: mdm
            .get("ServerCapabilities")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_string).map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let sceps: Vec<&&Dictionary> = list
        .iter()
        .filter(|p| string(p, "PayloadType").as_deref() == Some("com.apple.security.scep"))
        .collect();
    if sceps.is_empty() {
        return bad("no com.apple.security.scep payload: the device has no way to get its identity");
    }
    let scep = sceps
        .iter()
        .find(|p| string(p, "PayloadUUID").as_deref() == Some(identity_uuid.as_str()))
        .ok_or_else(|| {
            ProfileError(format!(
                "IdentityCertificateUUID {identity_uuid} names no com.apple.security.scep payload"
            ))
        })?;
    let content = scep
        .get("PayloadContent")
        .and_then(Value::as_dictionary)
        .ok_or_else(|| ProfileError("com.apple.security.scep: PayloadContent is not a dictionary".into()))?;
    let key_type = string(content, "Key Type").unwrap_or_else(|| "RSA".into());
    if key_type != "RSA" {
        return bad(format!("com.apple.security.scep: Key Type {key_type} (only RSA)"));
    }
    let keysize = integer(content, "Keysize").unwrap_or(2048);
    if !(1024..=8192).contains(&keysize) {
        return bad(format!("com.apple.security.scep: Keysize {keysize}"));
    }
    let scep_payload = ScepPayload {
        payload_uuid: identity_uuid,
        url: required(content, "URL", "com.apple.security.scep")?,
        challenge: string(content, "Challenge"),
        keysize: keysize as u32,
        key_type,
        subject: subject(content.get("Subject"))?,
        ca_fingerprint: content
            .get("CAFingerprint")
            .and_then(Value::as_data)
            .map(<[u8]>::to_vec),
        name: string(content, "Name"),
    };
    Ok(EnrollmentProfile {
        scep: scep_payload,
        mdm: mdm_payload,
        summary,
    })
}

/// One payload of an installed profile, as ProfileList reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSummary {
    /// `PayloadType`.
    pub payload_type: String,
    /// `PayloadVersion`.
    pub version: i64,
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
}

/// An installed profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledProfile {
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion`.
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: bool,
    /// Installed by MDM (or the enrollment profile itself).
    pub is_managed: bool,
    /// Whether it came CMS-signed.
    pub signed: bool,
    /// Its payloads.
    pub payloads: Vec<PayloadSummary>,
}

/// Summarise a profile's top level for ProfileList. It must carry Apple's required
/// top-level keys (`PayloadIdentifier`, `PayloadUUID`, `PayloadType` `Configuration`,
/// `PayloadVersion`, `PayloadContent`), and each payload its four common keys.
pub fn summarize(top: &Dictionary, signed: bool, managed: bool) -> Result<InstalledProfile, ProfileError> {
    if string(top, "PayloadType").as_deref() != Some("Configuration") {
        return bad("PayloadType must be Configuration");
    }
    let mut payloads_out = Vec::new();
    for p in payloads(top)? {
        payloads_out.push(PayloadSummary {
            payload_type: required(p, "PayloadType", "payload")?,
            version: integer(p, "PayloadVersion").unwrap_or(1),
            identifier: required(p, "PayloadIdentifier", "payload")?,
            uuid: required(p, "PayloadUUID", "payload")?,
            display_name: string(p, "PayloadDisplayName"),
            description: string(p, "PayloadDescription"),
            organization: string(p, "PayloadOrganization"),
        });
    }
    Ok(InstalledProfile {
        identifier: required(top, "PayloadIdentifier", "profile")?,
        uuid: required(top, "PayloadUUID", "profile")?,
        version: integer(top, "PayloadVersion")
            .ok_or_else(|| ProfileError("profile: PayloadVersion is required".into()))?,
        display_name: string(top, "PayloadDisplayName"),
        organization: string(top, "PayloadOrganization"),
        description: string(top, "PayloadDescription"),
        removal_disallowed: top
            .get("PayloadRemovalDisallowed")
            .and_then(Value::as_boolean)
            .unwrap_or(false),
        is_managed: managed,
        signed,
        payloads: payloads_out,
    })
}

impl InstalledProfile {
    /// The ProfileList entry (keys per `profile.list.yaml`).
    pub fn to_plist(&self) -> Value {
        let mut d = Dictionary::new();
        d.insert("PayloadIdentifier".into(), self.identifier.clone().into());
        d.insert("PayloadUUID".into(), self.uuid.clone().into());
        d.insert("PayloadVersion".into(), Value::Integer(self.version.into()));
        if let Some(v) = &self.display_name {
            d.insert("PayloadDisplayName".into(), v.clone().into());
        }
        if let Some(v) = &self.organization {
            d.insert("PayloadOrganization".into(), v.clone().into());
        }
        if let Some(v) = &self.description {
            d.insert("PayloadDescription".into(), v.clone().into());
        }
        d.insert("PayloadRemovalDisallowed".into(), self.removal_disallowed.into());
        d.insert("HasRemovalPasscode".into(), false.into());
        d.insert("IsEncrypted".into(), false.into());
        d.insert("IsManaged".into(), self.is_managed.into());
        let items: Vec<Value> = self
            .payloads
            .iter()
            .map(|p| {
                let mut i = Dictionary::new();
                i.insert("PayloadType".into(), p.payload_type.clone().into());
                i.insert("PayloadVersion".into(), Value::Integer(p.version.into()));
                i.insert("PayloadIdentifier".into(), p.identifier.clone().into());
                i.insert("PayloadUUID".into(), p.uuid.clone().into());
                if let Some(v) = &p.display_name {
                    i.insert("PayloadDisplayName".into(), v.clone().into());
                }
                if let Some(v) = &p.description {
                    i.insert("PayloadDescription".into(), v.clone().into());
                }
                if let Some(v) = &p.organization {
                    i.insert("PayloadOrganization".into(), v.clone().into());
                }
                Value::Dictionary(i)
            })
            .collect();
        d.insert("PayloadContent".into(), Value::Array(items));
        Value::Dictionary(d)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn enrollment_xml(with_scep: bool, with_mdm: bool) -> Vec<u8> {
        let scep = r#"<dict>
<key>PayloadType</key><string>com.apple.security.scep</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.scep</string>
<key>PayloadUUID</key><string>11111111-2222-4333-8444-555555555555</string>
<key>PayloadContent</key><dict>
  <key>URL</key><string>https://mdm.example.com/scep</string>
  <key>Challenge</key><string>c</string>
  <key>Keysize</key><integer>2048</integer>
  <key>Key Type</key><string>RSA</string>
  <key>Name</key><string>Example identity</string>
  <key>CAFingerprint</key><data>AAECAwQFBgcICQoLDA0ODxAREhM=</data>
  <key>Subject</key><array><array><array><string>O</string><string>Example</string></array></array>
    <array><array><string>CN</string><string>Device</string></array></array></array>
</dict></dict>"#;
        let mdm = r#"<dict>
<key>PayloadType</key><string>com.apple.mdm</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.mdm</string>
<key>PayloadUUID</key><string>66666666-2222-4333-8444-555555555555</string>
<key>ServerURL</key><string>https://mdm.example.com/mdm/connect</string>
<key>Topic</key><string>com.apple.mgmt.External.x</string>
<key>SignMessage</key><true/>
<key>AccessRights</key><integer>8191</integer>
<key>CheckOutWhenRemoved</key><true/>
<key>IdentityCertificateUUID</key><string>11111111-2222-4333-8444-555555555555</string>
<key>ServerCapabilities</key><array><string>com.apple.mdm.per-user-connections</string></array>
</dict>"#;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.enroll</string>
<key>PayloadUUID</key><string>77777777-2222-4333-8444-555555555555</string>
<key>PayloadDisplayName</key><string>Example MDM</string>
<key>PayloadContent</key><array>{}{}</array>
</dict></plist>"#,
            if with_scep { scep } else { "" },
            if with_mdm { mdm } else { "" }
        )
        .into_bytes()
    }

    #[test]
    fn reads_an_enrollment_profile() {
        let p = parse_enrollment_profile(&enrollment_xml(true, true)).unwrap();
        assert_eq!(
            p.mdm.check_in_url, "https://mdm.example.com/mdm/connect",
            "defaults to ServerURL"
        );
        assert!(p.mdm.sign_message && p.mdm.check_out_when_removed);
        assert_eq!(p.mdm.access_rights, Some(8191));
        assert_eq!(p.scep.keysize, 2048);
        assert_eq!(
            p.scep.subject,
            vec![("O".into(), "Example".into()), ("CN".into(), "Device".into())]
        );
        assert_eq!(p.scep.ca_fingerprint.as_ref().map(Vec::len), Some(20));
        assert_eq!(p.summary.payloads.len(), 2);
        assert!(parse_enrollment_profile(&enrollment_xml(false, true)).is_err());
        assert!(parse_enrollment_profile(&enrollment_xml(true, false)).is_err());
        assert!(parse_enrollment_profile(b"garbage").is_err());
    }

    #[test]
    fn reads_a_signed_profile() {
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509, X509NameBuilder};
        let k = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", "Profile signer").unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&k).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&k, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let xml = enrollment_xml(true, true);
        let p7 = Pkcs7::sign(&cert, &k, &Stack::new().unwrap(), &xml, Pkcs7Flags::BINARY).unwrap();
        let p = parse_enrollment_profile(&p7.to_der().unwrap()).unwrap();
        assert!(p.summary.signed);
        assert_eq!(p.mdm.topic, "com.apple.mgmt.External.x");
    }
}
