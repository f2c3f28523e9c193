//! The key that encrypts client private keys in the store (AES-256-GCM).
//!
//! It lives outside the database, so a copy of `moongate.db` alone yields no usable key: either
//! `<data_dir>/store.key` (generated at first start, mode 0600) or the file named by
//! `MOONGATE_STORE_KEY` (`store_key` in the config file), which lets an operator keep it on
//! another volume or in a secret mount. The file holds 64 hex digits (32 bytes).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

/// The store key file's name in the data directory.
pub const STORE_KEY_FILE: &str = "store.key";

/// Prefix of an encrypted value in the store: `enc1:` + hex(nonce ‖ ciphertext ‖ tag).
pub const ENCRYPTED_PREFIX: &str = "enc1:";

/// Loading the store key failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreKeyError {
    /// Reading or creating the key file failed.
    #[error("store key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits (its content is never shown).
    #[error("store key file {0} is malformed: expected 64 hex digits (32 bytes)")]
    Malformed(PathBuf),
}

/// The 256-bit store key. Never printed: `Debug` is redacted.
#[derive(Clone)]
pub struct StoreKey {
    cipher: Aes256Gcm,
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Decrypting a stored value failed: a wrong key, a value moved to another row, or corruption.
#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt the stored private key (wrong store key, or the value was altered or moved to another row)")]
pub struct DecryptError;

impl StoreKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        StoreKey {
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// A fresh random key (tests, and the first start).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    /// Loads the key from `configured` (which must exist: a named key that is missing is an
    /// operator error, not a reason to silently make a new one), else from
    /// `<data_dir>/store.key`, generating that file (0600) at first start.
    pub fn load_or_generate(
        configured: Option<&Path>,
        data_dir: &Path,
    ) -> Result<(Self, PathBuf), StoreKeyError> {
        if let Some(path) = configured {
            return Ok((Self::load(path)?, path.to_path_buf()));
        }
        let path = data_dir.join(STORE_KEY_FILE);
        if path.exists() {
            return Ok((Self::load(&path)?, path));
        }
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let io = |source| StoreKeyError::Io {
            path: path.clone(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(crate::datadir::FILE_MODE);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(format!("{}\n", hex(&bytes)).as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::info!(path = %path.display(), "generated the store key");
        Ok((Self::from_bytes(&bytes), path))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, StoreKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreKeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes = unhex(text.trim())
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| StoreKeyError::Malformed(path.to_path_buf()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Encrypts `plaintext` with a random 96-bit nonce, bound to `aad` (the row's host and
    /// client id, so the value cannot be copied to another row).
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            // AES-GCM encryption fails only for inputs over 64 GiB; a PEM key is a few KiB.
            .unwrap_or_default();
        let mut out = String::with_capacity(ENCRYPTED_PREFIX.len() + 2 * (12 + ct.len()));
        out.push_str(ENCRYPTED_PREFIX);
        out.push_str(&hex(&nonce));
        out.push_str(&hex(&ct));
        out
    }

    /// Decrypts a value made by [`StoreKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<String, DecryptError> {
        let raw = sealed
            .strip_prefix(ENCRYPTED_PREFIX)
            .and_then(unhex)
            .ok_or(DecryptError)?;
        if raw.len() < 12 + 16 {
            return Err(DecryptError);
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| DecryptError)?;
        String::from_utf8(pt).map_err(|_| DecryptError)
    }
}

/// The associated data binding a sealed key to its row.
pub fn row_aad(host_id: i64, client_id: &str) -> Vec<u8> {
    let mut aad = host_id.to_be_bytes().to_vec();
    aad.extend_from_slice(client_id.as_bytes());
    aad
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let key = StoreKey::generate();
        let aad = row_aad(1, "c1");
        let sealed = key.seal("-----BEGIN PRIVATE KEY-----", &aad);
        assert!(sealed.starts_with(ENCRYPTED_PREFIX));
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            key.open(&sealed, &aad).unwrap(),
            "-----BEGIN PRIVATE KEY-----"
        );
        // Another row, another key, a tampered value: typed errors.
        assert!(key.open(&sealed, &row_aad(2, "c1")).is_err());
        assert!(key.open(&sealed, &row_aad(1, "c2")).is_err());
        assert!(StoreKey::generate().open(&sealed, &aad).is_err());
        assert!(key.open("enc1:zz", &aad).is_err());
        assert!(key.open("enc1:00", &aad).is_err());
        // Fresh nonce per seal.
        assert_ne!(sealed, key.seal("-----BEGIN PRIVATE KEY-----", &aad));
        assert_eq!(format!("{key:?}"), "StoreKey(<redacted>)");
    }

    #[test]
    fn key_file_is_generated_0600_reloaded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, path) = StoreKey::load_or_generate(None, dir.path()).unwrap();
        assert_eq!(path, dir.path().join(STORE_KEY_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, _) = StoreKey::load_or_generate(None, dir.path()).unwrap();
        let aad = row_aad(3, "x");
        assert_eq!(k2.open(&k1.seal("s", &aad), &aad).unwrap(), "s");
        // A named key file must exist and be well-formed.
        let missing = dir.path().join("nope.key");
        assert!(matches!(
            StoreKey::load_or_generate(Some(&missing), dir.path()),
            Err(StoreKeyError::Io { .. })
        ));
        std::fs::write(&missing, "not hex secret-material\n").unwrap();
        let err = StoreKey::load_or_generate(Some(&missing), dir.path()).unwrap_err();
        assert!(matches!(err, StoreKeyError::Malformed(_)));
        assert!(!err.to_string().contains("secret-material"));
    }
}
