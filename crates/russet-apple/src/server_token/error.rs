use std::fmt;

use super::{MAX_FILE_SIZE, RecipientId};

const DOWNLOAD_HINT: &str = "in Apple Business Manager, open Preferences, select the MDM server, \
     choose Download Token, and upload the .p7m file it gives you unchanged";

/// Why a server token or its key pair could not be used.
///
/// Every message says what happened and what the administrator can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerTokenError {
    /// The file is larger than [`MAX_FILE_SIZE`].
    #[error(
        "the file is {size} bytes; an ABM server token is a few kilobytes and at most 1 MiB \
         ({MAX_FILE_SIZE} bytes) is accepted: check that you picked the .p7m file downloaded \
         from Apple Business Manager"
    )]
    TooLarge { size: usize },

    /// The file is empty or only whitespace.
    #[error("the file is empty: {DOWNLOAD_HINT}")]
    Empty,

    /// Neither S/MIME nor CMS/PKCS#7. `looks_like` is a guess at what it is instead.
    #[error(
        "the file is not an Apple Business Manager server token{}: {DOWNLOAD_HINT}",
        LooksLike(looks_like.as_deref())
    )]
    NotCms { looks_like: Option<String> },

    /// The base64 text (S/MIME body, PEM block, or a bare base64 file) cannot be decoded.
    #[error(
        "the server token's base64 text is damaged ({detail}), so the file was probably edited \
         or cut short: download the token again from Apple Business Manager and upload it unchanged"
    )]
    BadBase64 { detail: String },

    /// The file is recognisably a CMS/PKCS#7 message, but its structure is broken or truncated.
    #[error(
        "the server token file is damaged or incomplete ({detail}): download the token again \
         from Apple Business Manager and upload it unchanged"
    )]
    Malformed { detail: String },

    /// CMS, but not encrypted (for example a signed message).
    #[error(
        "the file is a CMS/PKCS#7 message but not an encrypted one (it holds {content_type}), \
         while an ABM server token is encrypted for Russet's certificate: {DOWNLOAD_HINT}"
    )]
    NotEnvelopedData { content_type: String },

    /// The content is encrypted with an algorithm this crate does not decrypt.
    #[error(
        "the server token is encrypted with an algorithm Russet does not support (OID {oid}); \
         Apple uses AES-128-CBC: download the token again from Apple Business Manager, and \
         report the problem if the new file gives the same error"
    )]
    UnsupportedCipher { oid: String },

    /// None of the token's recipients is the given certificate.
    #[error(
        "this server token was encrypted for a different public key{} than the certificate \
         Russet holds for this MDM server: in Apple Business Manager, edit the MDM server, upload \
         Russet's current public key certificate, then download a new token and upload that",
        Recipients(recipients)
    )]
    WrongRecipient { recipients: Vec<RecipientId> },

    /// The token names the certificate, but decrypting it failed.
    #[error(
        "the server token is addressed to Russet's certificate but could not be decrypted \
         ({detail}); either the file is damaged or the private key is not the one whose \
         certificate was uploaded to Apple Business Manager: download the token again, and if \
         that fails too, generate a new key pair, upload its certificate to the MDM server in \
         Apple Business Manager and download a new token"
    )]
    DecryptFailed { detail: String },

    /// The decrypted content is not UTF-8 text.
    #[error(
        "the decrypted server token is not UTF-8 text, so it is not the message Apple \
         encrypts: download the token again from Apple Business Manager"
    )]
    NotUtf8,

    /// The decrypted content does not hold the JSON object Apple puts there.
    #[error(
        "the decrypted server token does not hold the expected JSON object ({detail}): \
         download the token again from Apple Business Manager"
    )]
    NotJson { detail: String },

    /// Required fields are absent or empty. Lists all of them.
    #[error(
        "the decrypted server token lacks {}: download a new token from Apple Business Manager",
        Fields(fields)
    )]
    MissingFields { fields: Vec<&'static str> },

    /// `access_token_expiry` is not an RFC 3339 date-time.
    #[error(
        "the server token's expiry date {value:?} is not an RFC 3339 date and time: download a \
         new token from Apple Business Manager"
    )]
    BadExpiry { value: String },

    /// Generating, encoding or loading the key pair failed.
    #[error(
        "the server token key pair cannot be used ({detail}); if a stored key pair is damaged, \
         generate a new one, upload its certificate to the MDM server in Apple Business Manager \
         and download a new token"
    )]
    Key { detail: String },
}

struct LooksLike<'a>(Option<&'a str>);

impl fmt::Display for LooksLike<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(what) => write!(f, " (it looks like {what})"),
            None => Ok(()),
        }
    }
}

struct Recipients<'a>(&'a [RecipientId]);

impl fmt::Display for Recipients<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            [one] => write!(f, " (the certificate {one})"),
            many => {
                f.write_str(" (the certificates ")?;
                for (i, r) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{r}")?;
                }
                f.write_str(")")
            }
        }
    }
}

struct Fields<'a>(&'a [&'static str]);

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("required fields");
        }
        for (i, field) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(field)?;
        }
        Ok(())
    }
}

impl From<crate::ber::BerError> for ServerTokenError {
    fn from(e: crate::ber::BerError) -> Self {
        ServerTokenError::Malformed { detail: e.to_string() }
    }
}
