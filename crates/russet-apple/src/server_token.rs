//! Apple Business Manager "server tokens" (`.p7m`) and the key pair they are encrypted for.
//!
//! The flow (Apple: "Authenticating with the Automated Device Enrollment program"):
//!
//! 1. The MDM server makes a key pair with [`generate_key_pair`]; the administrator uploads
//!    [`TokenKeyPair::certificate_pem`] to the MDM server's entry in Apple Business Manager.
//! 2. The administrator downloads the server token: an S/MIME file holding a CMS EnvelopedData
//!    (BER, indefinite lengths, RSA PKCS#1 v1.5 key transport, AES-128-CBC so far) addressed
//!    to that certificate by issuer and serial number.
//! 3. [`EncryptedServerToken::parse`] reads the file in any of the forms people end up with
//!    (S/MIME, PEM, DER, bare base64) and tells who it is for; [`EncryptedServerToken::decrypt`]
//!    gives the [`ServerToken`]: the OAuth 1.0a credentials of the device assignment API.
//!
//! The unencrypted CMS fields are read with the crate's small bounded BER reader; decryption is
//! done by OpenSSL's CMS implementation.

mod envelope;
mod error;
mod file;
mod keypair;
mod message;

use std::fmt;

use openssl::cms::CmsContentInfo;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509Ref;
use secrecy::zeroize::Zeroizing;

pub use error::ServerTokenError;
pub use keypair::{TokenKeyPair, generate_key_pair, load_key_pair, load_private_key};
pub use message::ServerToken;

use envelope::RecipientKey;
pub(crate) use keypair::openssl_reasons;

/// The largest token file accepted. Real ones are about 1.5 KiB.
pub const MAX_FILE_SIZE: usize = 1024 * 1024;

/// The form a token file came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// MIME headers, a blank line and a base64 body: the file exactly as Apple serves it.
    Smime,
    /// `-----BEGIN PKCS7-----` or `-----BEGIN CMS-----`.
    Pem,
    /// Raw DER or BER bytes.
    Der,
    /// The base64 body alone, without headers.
    Base64,
}

impl FileFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            FileFormat::Smime => "smime",
            FileFormat::Pem => "pem",
            FileFormat::Der => "der",
            FileFormat::Base64 => "base64",
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate a token is encrypted for, as named in the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecipientId {
    /// The issuer's distinguished name, most specific attribute first: `CN=russet-ade-3, O=Russet`.
    pub issuer: String,
    /// The serial number in uppercase hex, two digits per byte, without the sign byte DER adds
    /// (`70FEDDC7D5AFA393`). Negative serials (which broken certificates have) start with `-`.
    pub serial: String,
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "issued by {}, serial number {}", self.issuer, self.serial)
    }
}

/// The content-encryption algorithm of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesEde3Cbc,
    /// Any other algorithm, by its dotted OID. Tokens using one are not decrypted.
    Other(String),
}

impl ContentCipher {
    const AES_128_CBC: &'static str = "2.16.840.1.101.3.4.1.2";
    const AES_192_CBC: &'static str = "2.16.840.1.101.3.4.1.22";
    const AES_256_CBC: &'static str = "2.16.840.1.101.3.4.1.42";
    const DES_EDE3_CBC: &'static str = "1.2.840.113549.3.7";

    pub(crate) fn from_oid(oid: &str) -> ContentCipher {
        match oid {
            Self::AES_128_CBC => ContentCipher::Aes128Cbc,
            Self::AES_192_CBC => ContentCipher::Aes192Cbc,
            Self::AES_256_CBC => ContentCipher::Aes256Cbc,
            Self::DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
            other => ContentCipher::Other(other.to_owned()),
        }
    }

    /// The dotted OID.
    pub fn oid(&self) -> &str {
        match self {
            ContentCipher::Aes128Cbc => Self::AES_128_CBC,
            ContentCipher::Aes192Cbc => Self::AES_192_CBC,
            ContentCipher::Aes256Cbc => Self::AES_256_CBC,
            ContentCipher::DesEde3Cbc => Self::DES_EDE3_CBC,
            ContentCipher::Other(oid) => oid,
        }
    }

    /// "AES-128-CBC", "DES-EDE3-CBC", …; well-known unsupported algorithms by name and OID,
    /// others by OID alone.
    pub fn name(&self) -> String {
        match self {
            ContentCipher::Aes128Cbc => "AES-128-CBC".to_owned(),
            ContentCipher::Aes192Cbc => "AES-192-CBC".to_owned(),
            ContentCipher::Aes256Cbc => "AES-256-CBC".to_owned(),
            ContentCipher::DesEde3Cbc => "DES-EDE3-CBC".to_owned(),
            ContentCipher::Other(oid) => {
                let known = match oid.as_str() {
                    "1.3.14.3.2.7" => Some("DES-CBC"),
                    "1.2.840.113549.3.2" => Some("RC2-CBC"),
                    "2.16.840.1.101.3.4.1.6" => Some("AES-128-GCM"),
                    "2.16.840.1.101.3.4.1.26" => Some("AES-192-GCM"),
                    "2.16.840.1.101.3.4.1.46" => Some("AES-256-GCM"),
                    _ => None,
                };
                match known {
                    Some(name) => format!("{name} ({oid})"),
                    None => oid.clone(),
                }
            }
        }
    }
}

impl fmt::Display for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A parsed but still encrypted server token file.
#[derive(Clone)]
pub struct EncryptedServerToken {
    format: FileFormat,
    /// The CMS ContentInfo, BER or DER, exactly as found in the file.
    der: Vec<u8>,
    recipients: Vec<RecipientId>,
    keys: Vec<RecipientKey>,
    cipher: ContentCipher,
}

impl fmt::Debug for EncryptedServerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedServerToken")
            .field("format", &self.format)
            .field("cms_len", &self.der.len())
            .field("recipients", &self.recipients)
            .field("content_cipher", &self.cipher)
            .finish()
    }
}

impl EncryptedServerToken {
    /// Reads a token file: the S/MIME file exactly as Apple serves it (MIME header lines in any
    /// order, a blank line, a base64 body; CRLF or LF; `application/pkcs7-mime` or
    /// `application/x-pkcs7-mime`), PEM (`-----BEGIN PKCS7-----` or `-----BEGIN CMS-----`),
    /// raw DER/BER, or the base64 body alone. Files over [`MAX_FILE_SIZE`] are refused before
    /// anything else is looked at.
    pub fn parse(file: &[u8]) -> Result<Self, ServerTokenError> {
        if file.len() > MAX_FILE_SIZE {
            return Err(ServerTokenError::TooLarge { size: file.len() });
        }
        let file::Unwrapped { format, der } = file::unwrap(file)?;
        if der.is_empty() {
            return Err(ServerTokenError::Malformed {
                detail: "there is no encoded content".into(),
            });
        }
        let envelope = envelope::read(&der)?;
        // Decryption is OpenSSL's job: make sure it can read what we read.
        CmsContentInfo::from_der(&der).map_err(|e| ServerTokenError::Malformed {
            detail: format!("OpenSSL cannot read the CMS structure ({})", openssl_reasons(&e)),
        })?;
        Ok(EncryptedServerToken {
            format,
            der,
            recipients: envelope.recipients,
            keys: envelope.keys,
            cipher: envelope.cipher,
        })
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The certificates (issuer and serial number) the token is encrypted for. Apple's tokens
    /// have exactly one. Recipients identified otherwise (by subject key identifier, or by key
    /// agreement, KEK or password) are not listed.
    pub fn recipients(&self) -> &[RecipientId] {
        &self.recipients
    }

    pub fn content_cipher(&self) -> &ContentCipher {
        &self.cipher
    }

    /// Whether some recipient has `cert`'s issuer and serial number.
    pub fn is_for(&self, cert: &X509Ref) -> bool {
        self.keys.iter().any(|k| k.matches(cert))
    }

    /// Decrypts the token with the key pair whose certificate was uploaded to ABM.
    ///
    /// Fails with [`ServerTokenError::WrongRecipient`] without trying if the token is not
    /// addressed to `cert`, with [`ServerTokenError::UnsupportedCipher`] unless the content
    /// cipher is AES-128/192/256-CBC or DES-EDE3-CBC, and with
    /// [`ServerTokenError::DecryptFailed`] if `key` is not `cert`'s key or decryption fails.
    pub fn decrypt(&self, key: &PKeyRef<Private>, cert: &X509Ref) -> Result<ServerToken, ServerTokenError> {
        if !self.is_for(cert) {
            return Err(ServerTokenError::WrongRecipient {
                recipients: self.recipients.clone(),
            });
        }
        if let ContentCipher::Other(oid) = &self.cipher {
            return Err(ServerTokenError::UnsupportedCipher { oid: oid.clone() });
        }
        let public = cert.public_key().map_err(|e| ServerTokenError::DecryptFailed {
            detail: format!("the certificate's public key cannot be read: {}", openssl_reasons(&e)),
        })?;
        if !public.public_eq(key) {
            return Err(ServerTokenError::DecryptFailed {
                detail: "the private key does not belong to the certificate".into(),
            });
        }
        let cert = cert.to_owned();
        self.open(|cms| cms.decrypt(key, &cert))
    }

    /// Decrypts the token with the private key alone, for when the certificate uploaded to ABM
    /// is not at hand (offline inspection). There is then no recipient check: a key that is not
    /// the recipient's fails with [`ServerTokenError::DecryptFailed`].
    pub fn decrypt_with_key(&self, key: &PKeyRef<Private>) -> Result<ServerToken, ServerTokenError> {
        if let ContentCipher::Other(oid) = &self.cipher {
            return Err(ServerTokenError::UnsupportedCipher { oid: oid.clone() });
        }
        self.open(|cms| cms.decrypt_without_cert_check(key))
    }

    /// Runs OpenSSL's decryption and reads the message it gives.
    fn open(
        &self,
        decrypt: impl FnOnce(&CmsContentInfo) -> Result<Vec<u8>, openssl::error::ErrorStack>,
    ) -> Result<ServerToken, ServerTokenError> {
        let cms = CmsContentInfo::from_der(&self.der).map_err(|e| ServerTokenError::Malformed {
            detail: format!("OpenSSL cannot read the CMS structure ({})", openssl_reasons(&e)),
        })?;
        let plaintext = Zeroizing::new(decrypt(&cms).map_err(|e| ServerTokenError::DecryptFailed {
            detail: openssl_reasons(&e),
        })?);
        match ServerToken::from_message(&plaintext) {
            // When the RSA step fails, OpenSSL goes on with a random content key (a defence
            // against padding oracles); now and then the padding check passes and the result is
            // noise. Text that is not UTF-8 means exactly that.
            Err(ServerTokenError::NotUtf8) => Err(ServerTokenError::DecryptFailed {
                detail: "the decrypted content is not text".into(),
            }),
            other => other,
        }
    }
}
