//! Encryption of secrets at rest.
//!
//! Every secret Russet keeps (token credentials, private keys) is sealed with AES-256-GCM
//! under the master key before it reaches the database. The additional authenticated data
//! names the row and field the ciphertext belongs to (`ade_token:7:private_key`), so a
//! ciphertext copied into another row or column does not decrypt.
//!
//! Sealed layout: `[version = 1][12-byte random nonce][ciphertext + 16-byte tag]`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What went wrong with the master key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the master key {origin} is not valid: {detail}. It must be {MASTER_KEY_LEN} random bytes, base64-encoded \
         (create one with `openssl rand -base64 32`)"
    )]
    InvalidMasterKey { origin: String, detail: String },
    #[error("cannot read or create the master key file {path}: {detail}")]
    MasterKeyFile { path: PathBuf, detail: String },
    #[error(
        "a stored secret ({aad}) could not be decrypted: the master key does not match the one it was \
         encrypted with, or the database was altered"
    )]
    Open { aad: String },
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Where the master key came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `RUSSET_MASTER_KEY` (or a configured value).
    Environment,
    /// Read from an existing file.
    File(PathBuf),
    /// Created just now in this file.
    Created(PathBuf),
}

/// The AES-256-GCM master key. Never printed: `Debug` shows only where it came from.
pub struct MasterKey {
    cipher: Aes256Gcm,
    source: MasterKeySource,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The key from its base64 form (what `RUSSET_MASTER_KEY` holds).
    pub fn from_base64(value: &str, source: MasterKeySource) -> Result<Self, CryptoError> {
        let origin = match &source {
            MasterKeySource::Environment => "from RUSSET_MASTER_KEY".to_string(),
            MasterKeySource::File(p) | MasterKeySource::Created(p) => format!("in {}", p.display()),
        };
        let bytes = Zeroizing::new(
            STANDARD
                .decode(value.trim())
                .map_err(|e| CryptoError::InvalidMasterKey {
                    origin: origin.clone(),
                    detail: format!("not base64 ({e})"),
                })?,
        );
        if bytes.len() != MASTER_KEY_LEN {
            return Err(CryptoError::InvalidMasterKey {
                origin,
                detail: format!("it decodes to {} bytes", bytes.len()),
            });
        }
        let key = Key::<Aes256Gcm>::try_from(bytes.as_slice()).map_err(|_| CryptoError::InvalidMasterKey {
            origin,
            detail: "wrong length".into(),
        })?;
        Ok(MasterKey {
            cipher: Aes256Gcm::new(&key),
            source,
        })
    }

    /// Reads `path`, or creates it with a fresh random key (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let file_err = |e: std::io::Error| CryptoError::MasterKeyFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::from_base64(&text, MasterKeySource::File(path.to_path_buf()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                random_bytes(raw.as_mut_slice())?;
                let encoded = Zeroizing::new(STANDARD.encode(raw.as_slice()));
                // create_new: if another process created it meanwhile, use theirs.
                match write_private_file(path, format!("{}\n", encoded.as_str()).as_bytes(), true) {
                    Ok(()) => Self::from_base64(&encoded, MasterKeySource::Created(path.to_path_buf())),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
                    Err(e) => Err(file_err(e)),
                }
            }
            Err(e) => Err(file_err(e)),
        }
    }

    /// Where this key came from.
    pub fn source(&self) -> &MasterKeySource {
        &self.source
    }

    /// Encrypts `plaintext`, binding it to `aad` (the row and field it is stored in).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open { aad: aad.to_string() })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let fail = || CryptoError::Open { aad: aad.to_string() };
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
            return Err(fail());
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().map_err(|_| fail())?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        Ok(Zeroizing::new(plain))
    }

    /// Decrypts a sealed UTF-8 string.
    pub fn open_string(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<String>, CryptoError> {
        let bytes = self.open(aad, sealed)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open { aad: aad.to_string() })
    }
}

/// Fills `buf` from the operating system's random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// Writes a file readable by its owner only (mode 0600 on Unix), atomically: a temporary
/// file in the same directory is written, synced and renamed over `path`. With
/// `create_new`, an existing `path` is left alone and `AlreadyExists` returned.
pub fn write_private_file(path: &Path, contents: &[u8], create_new: bool) -> std::io::Result<()> {
    if create_new && path.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("russet"),
        hex::encode(suffix)
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if create_new {
            // hard_link fails if `path` exists, so two processes racing both keep one file.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)
        } else {
            fs::rename(&tmp, path)
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&STANDARD.encode([7u8; 32]), MasterKeySource::Environment).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let k = key();
        let sealed = k.seal("ade_token:1:private_key", b"secret").unwrap();
        assert_ne!(&sealed[1 + NONCE_LEN..], b"secret");
        assert_eq!(
            k.open("ade_token:1:private_key", &sealed).unwrap().as_slice(),
            b"secret"
        );
        // Bound to its place: another row or field does not open it.
        assert!(k.open("ade_token:2:private_key", &sealed).is_err());
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(sealed, k.seal("ade_token:1:private_key", b"secret").unwrap());
        // Tampering is detected.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open("ade_token:1:private_key", &bad).is_err());
        assert!(k.open("x", &[1, 2, 3]).is_err());
    }

    #[test]
    fn another_key_cannot_open() {
        let other = MasterKey::from_base64(&STANDARD.encode([8u8; 32]), MasterKeySource::Environment).unwrap();
        let sealed = key().seal("a", b"secret").unwrap();
        assert!(matches!(other.open("a", &sealed), Err(CryptoError::Open { .. })));
    }

    #[test]
    fn bad_master_keys_are_explained() {
        let e = MasterKey::from_base64("not base64!", MasterKeySource::Environment).unwrap_err();
        assert!(e.to_string().contains("RUSSET_MASTER_KEY"), "{e}");
        let e = MasterKey::from_base64(&STANDARD.encode([1u8; 16]), MasterKeySource::Environment).unwrap_err();
        assert!(e.to_string().contains("16 bytes"), "{e}");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.source(), &MasterKeySource::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(b.source(), &MasterKeySource::File(path.clone()));
        let sealed = a.seal("x", b"v").unwrap();
        assert_eq!(b.open("x", &sealed).unwrap().as_slice(), b"v");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
