//! The object identifiers SCEP messages use, in dotted form (as the BER reader decodes them
//! and the DER writer encodes them).

// CMS content types (RFC 5652).
pub(crate) const DATA: &str = "1.2.840.113549.1.7.1";
pub(crate) const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub(crate) const ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";

// CMS and PKCS#9 attributes.
pub(crate) const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
pub(crate) const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
pub(crate) const CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";
pub(crate) const EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";

// SCEP signed attributes (RFC 8894 §3.2.1, under Verisign's arc).
pub(crate) const SCEP_MESSAGE_TYPE: &str = "2.16.840.1.113733.1.9.2";
pub(crate) const SCEP_PKI_STATUS: &str = "2.16.840.1.113733.1.9.3";
pub(crate) const SCEP_FAIL_INFO: &str = "2.16.840.1.113733.1.9.4";
pub(crate) const SCEP_SENDER_NONCE: &str = "2.16.840.1.113733.1.9.5";
pub(crate) const SCEP_RECIPIENT_NONCE: &str = "2.16.840.1.113733.1.9.6";
pub(crate) const SCEP_TRANSACTION_ID: &str = "2.16.840.1.113733.1.9.7";

// Digests.
pub(crate) const MD5: &str = "1.2.840.113549.2.5";
pub(crate) const SHA1: &str = "1.3.14.3.2.26";
pub(crate) const SHA224: &str = "2.16.840.1.101.3.4.2.4";
pub(crate) const SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub(crate) const SHA384: &str = "2.16.840.1.101.3.4.2.2";
pub(crate) const SHA512: &str = "2.16.840.1.101.3.4.2.3";

// Signature algorithms.
pub(crate) const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

// Content ciphers.
pub(crate) const DES_CBC: &str = "1.3.14.3.2.7";
pub(crate) const DES_EDE3_CBC: &str = "1.2.840.113549.3.7";
pub(crate) const AES_128_CBC: &str = "2.16.840.1.101.3.4.1.2";
pub(crate) const AES_192_CBC: &str = "2.16.840.1.101.3.4.1.22";
pub(crate) const AES_256_CBC: &str = "2.16.840.1.101.3.4.1.42";

// Certificate extensions.
pub(crate) const SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// A readable name for the algorithms that show up in error messages.
pub(crate) fn name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        MD5 => "MD5",
        SHA1 => "SHA-1",
        SHA224 => "SHA-224",
        SHA256 => "SHA-256",
        SHA384 => "SHA-384",
        SHA512 => "SHA-512",
        DES_CBC => "DES-CBC",
        DES_EDE3_CBC => "DES-EDE3-CBC",
        AES_128_CBC => "AES-128-CBC",
        AES_192_CBC => "AES-192-CBC",
        AES_256_CBC => "AES-256-CBC",
        "1.2.840.113549.3.2" => "RC2-CBC",
        "2.16.840.1.101.3.4.1.6" => "AES-128-GCM",
        "2.16.840.1.101.3.4.1.46" => "AES-256-GCM",
        "1.2.840.113549.1.7.1" => "data",
        "1.2.840.113549.1.7.2" => "signed data",
        "1.2.840.113549.1.7.3" => "enveloped (encrypted) data",
        "1.2.840.113549.1.7.4" => "signed and enveloped data",
        "1.2.840.113549.1.7.5" => "digested data",
        "1.2.840.113549.1.7.6" => "encrypted data",
        _ => return None,
    })
}

/// "AES-128-CBC (2.16.840.1.101.3.4.1.2)", or the bare OID when it has no known name.
pub(crate) fn describe(oid: &str) -> String {
    match name(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_owned(),
    }
}
