//! MachineInfo: what a device in Setup Assistant sends when it asks for its enrollment
//! profile during Automated Device Enrollment (Apple's `other/machineinfo.yaml`).
//!
//! The device signs a plist (`UDID`, `SERIAL`, `PRODUCT`, `VERSION`, `OS_VERSION`,
//! `LANGUAGE`, …) with its hardware identity, which Apple's device CA issued, as a CMS
//! SignedData with the plist inside. It either `POST`s the DER to the ADE profile's `url`
//! (`Content-Type: application/pkcs7-signature`) or, when the profile has a
//! `configuration_web_url`, sends it base64-encoded in the `x-apple-aspen-deviceinfo`
//! header of the web view's first request.
//!
//! [`verify_machine_info`] checks the signature with OpenSSL's CMS code — and the signer's
//! chain up to one of the trusted device CA roots when the caller has some — and reads the
//! plist.

use base64::Engine as _;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509PurposeId};
use plist::Value;
use time::OffsetDateTime;

/// Content type of a MachineInfo posted to the ADE profile's `url`.
pub const MACHINE_INFO_CONTENT_TYPE: &str = "application/pkcs7-signature";
/// Header that carries the MachineInfo on the `configuration_web_url` request.
pub const DEVICE_INFO_HEADER: &str = "x-apple-aspen-deviceinfo";
/// A MachineInfo is a few kilobytes (a plist and one or two certificates).
pub const MAX_MACHINE_INFO: usize = 64 * 1024;

/// The device a MachineInfo describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineInfo {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT`, the model identifier (`iPhone15,2`).
    pub product: Option<String>,
    /// `VERSION`, the OS build (`22B83`).
    pub version: Option<String>,
    /// `OS_VERSION` (iOS 17, macOS 14 and later).
    pub os_version: Option<String>,
    /// `LANGUAGE`.
    pub language: Option<String>,
    /// `IMEI`.
    pub imei: Option<String>,
    /// `MEID`.
    pub meid: Option<String>,
    /// `MDM_CAN_REQUEST_SOFTWARE_UPDATE`.
    pub can_request_software_update: bool,
    /// Whether the signer's certificate was checked up to a trusted device CA root (false
    /// when no roots were given: only the signature was checked).
    pub chain_verified: bool,
}

/// Why a MachineInfo was refused. The message says what was wrong for the audit log; the
/// device only learns that its information could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum MachineInfoError {
    #[error("the device information is empty")]
    Empty,
    #[error("the device information is {0} bytes, more than the {MAX_MACHINE_INFO} accepted")]
    TooLarge(usize),
    #[error("the x-apple-aspen-deviceinfo header is not base64")]
    NotBase64,
    #[error("the device information is not a CMS signed message: {0}")]
    NotCms(String),
    #[error("the device information's signature does not verify: {0}")]
    BadSignature(String),
    #[error("the device information is not a plist: {0}")]
    NotPlist(String),
    #[error("the device information has no {0}")]
    Missing(&'static str),
}

/// Decodes the `x-apple-aspen-deviceinfo` header: the CMS DER in base64 (standard or URL-safe
/// alphabet, padded or not).
pub fn decode_device_info_header(value: &str) -> Result<Vec<u8>, MachineInfoError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(MachineInfoError::Empty);
    }
    if v.len() > MAX_MACHINE_INFO * 4 / 3 + 4 {
        return Err(MachineInfoError::TooLarge(v.len() * 3 / 4));
    }
    let unpadded = v.trim_end_matches('=');
    let engine = if unpadded.contains(['-', '_']) {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine.decode(unpadded).map_err(|_| MachineInfoError::NotBase64)
}

/// Checks a MachineInfo's signature (and, with `roots`, the signer's chain at `now`) and
/// reads it.
pub fn verify_machine_info(der: &[u8], roots: &[X509], now: OffsetDateTime) -> Result<MachineInfo, MachineInfoError> {
    if der.is_empty() {
        return Err(MachineInfoError::Empty);
    }
    if der.len() > MAX_MACHINE_INFO {
        return Err(MachineInfoError::TooLarge(der.len()));
    }
    let mut cms = CmsContentInfo::from_der(der).map_err(|e| MachineInfoError::NotCms(reasons(&e)))?;
    let mut content = Vec::new();
    if roots.is_empty() {
        cms.verify(
            None,
            None,
            None,
            Some(&mut content),
            CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
        )
        .map_err(|e| MachineInfoError::BadSignature(reasons(&e)))?;
    } else {
        let store = (|| {
            let mut b = X509StoreBuilder::new()?;
            for root in roots {
                b.add_cert(root.clone())?;
            }
            // Hardware identities carry no extended key usage of their own.
            b.set_purpose(X509PurposeId::ANY)?;
            let mut param = X509VerifyParam::new()?;
            param.set_time(now.unix_timestamp());
            b.set_param(&param)?;
            Ok::<_, openssl::error::ErrorStack>(b.build())
        })()
        .map_err(|e| MachineInfoError::BadSignature(format!("cannot load the device CA roots: {}", reasons(&e))))?;
        cms.verify(None, Some(&store), None, Some(&mut content), CMSOptions::BINARY)
            .map_err(|e| MachineInfoError::BadSignature(reasons(&e)))?;
    }
    let mut info = parse_plist(&content)?;
    info.chain_verified = !roots.is_empty();
    Ok(info)
}

fn parse_plist(content: &[u8]) -> Result<MachineInfo, MachineInfoError> {
    let value =
        Value::from_reader(std::io::Cursor::new(content)).map_err(|e| MachineInfoError::NotPlist(e.to_string()))?;
    let dict = value
        .as_dictionary()
        .ok_or_else(|| MachineInfoError::NotPlist("its top level is not a dictionary".into()))?;
    let text = |k: &str| {
        dict.get(k)
            .and_then(Value::as_string)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let udid = text("UDID").ok_or(MachineInfoError::Missing("UDID"))?;
    let serial = text("SERIAL").ok_or(MachineInfoError::Missing("SERIAL"))?;
    Ok(MachineInfo {
        udid,
        serial,
        product: text("PRODUCT"),
        version: text("VERSION"),
        os_version: text("OS_VERSION"),
        language: text("LANGUAGE"),
        imei: text("IMEI"),
        meid: text("MEID"),
        can_request_software_update: dict
            .get("MDM_CAN_REQUEST_SOFTWARE_UPDATE")
            .and_then(Value::as_boolean)
            .unwrap_or(false),
        chain_verified: false,
    })
}

fn reasons(e: &openssl::error::ErrorStack) -> String {
    let mut out: Vec<String> = e
        .errors()
        .iter()
        .filter_map(|e| e.reason().map(str::to_string))
        .collect();
    out.dedup();
    if out.is_empty() {
        "OpenSSL gave no reason".into()
    } else {
        out.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};

    use super::*;

    fn cert(cn: &str, issuer: Option<(&X509, &PKey<Private>)>, key: &PKey<Private>, ca: bool) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(1_600_000_000).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(2_500_000_000).unwrap()).unwrap();
        if ca {
            b.append_extension(
                openssl::x509::extension::BasicConstraints::new()
                    .critical()
                    .ca()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn plist(entries: &[(&str, Value)]) -> Vec<u8> {
        let mut d = plist::Dictionary::new();
        for (k, v) in entries {
            d.insert((*k).to_string(), v.clone());
        }
        let mut out = Vec::new();
        Value::Dictionary(d).to_writer_xml(&mut out).unwrap();
        out
    }

    fn sign(content: &[u8], cert: &X509, key: &PKey<Private>) -> Vec<u8> {
        CmsContentInfo::sign(Some(cert), Some(key), None, Some(content), CMSOptions::BINARY)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_signed_machine_info_is_read_and_its_chain_checked() {
        let (root_key, device_key) = (key(), key());
        let root = cert("Device CA", None, &root_key, true);
        let device = cert("00008110-000A", Some((&root, &root_key)), &device_key, false);
        let body = plist(&[
            ("UDID", Value::String("00008110-000A".into())),
            ("SERIAL", Value::String("C02XYZ".into())),
            ("PRODUCT", Value::String("iPhone15,2".into())),
            ("VERSION", Value::String("22B83".into())),
            ("OS_VERSION", Value::String("18.1".into())),
            ("LANGUAGE", Value::String("fr".into())),
            ("MDM_CAN_REQUEST_SOFTWARE_UPDATE", Value::Boolean(true)),
        ]);
        let der = sign(&body, &device, &device_key);
        let info = verify_machine_info(&der, std::slice::from_ref(&root), now()).unwrap();
        assert_eq!(info.udid, "00008110-000A");
        assert_eq!(info.serial, "C02XYZ");
        assert_eq!(info.product.as_deref(), Some("iPhone15,2"));
        assert_eq!(info.os_version.as_deref(), Some("18.1"));
        assert_eq!(info.language.as_deref(), Some("fr"));
        assert!(info.can_request_software_update && info.chain_verified);

        // Without roots only the signature is checked.
        let info = verify_machine_info(&der, &[], now()).unwrap();
        assert!(!info.chain_verified);

        // Another CA's root: refused.
        let other_key = key();
        let other = cert("Other CA", None, &other_key, true);
        let e = verify_machine_info(&der, &[other], now()).unwrap_err();
        assert!(matches!(e, MachineInfoError::BadSignature(_)), "{e}");

        // After the roots' end: refused.
        let late = OffsetDateTime::from_unix_timestamp(2_600_000_000).unwrap();
        assert!(verify_machine_info(&der, std::slice::from_ref(&root), late).is_err());

        // The header form: standard and URL-safe base64, with or without padding.
        for encoded in [
            base64::engine::general_purpose::STANDARD.encode(&der),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der),
        ] {
            assert_eq!(decode_device_info_header(&encoded).unwrap(), der);
        }
    }

    #[test]
    fn bad_machine_infos_are_refused_with_the_reason() {
        let k = key();
        let c = cert("device", None, &k, false);
        assert!(matches!(
            verify_machine_info(&[], &[], now()),
            Err(MachineInfoError::Empty)
        ));
        assert!(matches!(
            verify_machine_info(&vec![0x30; MAX_MACHINE_INFO + 1], &[], now()),
            Err(MachineInfoError::TooLarge(_))
        ));
        assert!(matches!(
            verify_machine_info(b"<plist/>", &[], now()),
            Err(MachineInfoError::NotCms(_))
        ));
        // A changed byte of the content breaks the signature.
        let body = plist(&[
            ("UDID", Value::String("U".into())),
            ("SERIAL", Value::String("S".into())),
        ]);
        let mut der = sign(&body, &c, &k);
        let at = der.windows(6).position(|w| w == b"SERIAL").unwrap();
        der[at] = b'Z';
        assert!(matches!(
            verify_machine_info(&der, &[], now()),
            Err(MachineInfoError::BadSignature(_))
        ));
        // Missing keys and a signed non-plist.
        let der = sign(&plist(&[("UDID", Value::String("U".into()))]), &c, &k);
        assert!(matches!(
            verify_machine_info(&der, &[], now()),
            Err(MachineInfoError::Missing("SERIAL"))
        ));
        let der = sign(b"hello", &c, &k);
        assert!(matches!(
            verify_machine_info(&der, &[], now()),
            Err(MachineInfoError::NotPlist(_))
        ));
        assert!(matches!(
            decode_device_info_header("not base64 at all!"),
            Err(MachineInfoError::NotBase64)
        ));
        assert!(matches!(decode_device_info_header("  "), Err(MachineInfoError::Empty)));
    }
}
