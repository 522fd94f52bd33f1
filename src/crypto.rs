//! Key material and the primitives built on it.
//!
//! Guarantees: the master key never leaves this module in plaintext form except as a
//! file with mode 0600; the data key is only ever stored wrapped (AEAD) by the master
//! key; every derived key is separated by an HKDF label, so a key for one purpose is
//! never used for another. Sealing binds the caller's associated data, so a value
//! copied to another record fails to open instead of being read as that record.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

const NONCE_LEN: usize = 24;
const WRAP_AAD: &[u8] = b"ihms-connect/data-key/v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("random number generator failed")]
    Random,
    #[error("a sealed value failed to open (wrong key, or the value was altered or moved)")]
    Open,
    #[error("the master key does not open this data directory")]
    WrongMasterKey,
    #[error("master key file {0}: {1}")]
    KeyFile(String, String),
}

/// Fills a fresh buffer from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A random token for humans and cookies: 32 bytes, URL-safe base64 without padding.
pub fn random_token() -> Result<String, CryptoError> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality for secrets.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The 32-byte master key that wraps a data directory's data key.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// Reads a master key file: 64 hex characters (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let shown = path.display().to_string();
        let text = Zeroizing::new(
            fs::read_to_string(path)
                .map_err(|e| CryptoError::KeyFile(shown.clone(), e.to_string()))?,
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut()).map_err(|_| {
            CryptoError::KeyFile(shown, "expected 64 hexadecimal characters".into())
        })?;
        Ok(Self(bytes))
    }

    /// Creates a new random master key file with mode 0600; refuses to overwrite.
    pub fn create(path: &Path) -> Result<Self, CryptoError> {
        let shown = path.display().to_string();
        let key = Zeroizing::new(random_bytes::<32>()?);
        let mut text = hex::encode(&key[..]);
        text.push('\n');
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| CryptoError::KeyFile(shown.clone(), e.to_string()))?;
        let written = file
            .write_all(text.as_bytes())
            .and_then(|_| file.sync_all());
        text.zeroize();
        written.map_err(|e| CryptoError::KeyFile(shown.clone(), e.to_string()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| CryptoError::KeyFile(shown, e.to_string()))?;
        Ok(Self(key))
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Wraps a new random data key; returns (wrapped bytes, keys).
    pub fn new_data_key(&self) -> Result<(Vec<u8>, Keys), CryptoError> {
        let data_key = Zeroizing::new(random_bytes::<32>()?);
        let wrapped = seal_raw(self.0.as_ref(), data_key.as_ref(), WRAP_AAD)?;
        Ok((wrapped, Keys::derive(data_key.as_ref())))
    }

    /// Unwraps a data key made by `new_data_key`.
    pub fn open_data_key(&self, wrapped: &[u8]) -> Result<Keys, CryptoError> {
        let data_key = Zeroizing::new(
            open_raw(self.0.as_ref(), wrapped, WRAP_AAD)
                .map_err(|_| CryptoError::WrongMasterKey)?,
        );
        Ok(Keys::derive(&data_key))
    }
}

/// Keys derived from one data directory's data key, one per purpose.
#[derive(Clone)]
pub struct Keys {
    seal: Zeroizing<[u8; 32]>,
    blind: Zeroizing<[u8; 32]>,
    csrf: Zeroizing<[u8; 32]>,
    audit: Zeroizing<[u8; 32]>,
    checkpoint: Zeroizing<[u8; 32]>,
}

impl Keys {
    fn derive(data_key: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"ihms-connect/v1"), data_key);
        let expand = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
            let _ = hk.expand(label, out.as_mut());
            out
        };
        Self {
            seal: expand(b"seal"),
            blind: expand(b"blind-index"),
            csrf: expand(b"csrf"),
            audit: expand(b"audit"),
            checkpoint: expand(b"audit-checkpoint-signing"),
        }
    }

    /// Encrypts `plain` with the record's associated data bound in.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_raw(self.seal.as_ref(), plain, aad)
    }

    /// Opens a value sealed with the same associated data.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_raw(self.seal.as_ref(), sealed, aad)
    }

    /// Keyed blind index: equal inputs give equal outputs; nothing else is learned.
    pub fn blind_index(&self, domain: &str, value: &str) -> [u8; 32] {
        hmac_sha256(
            self.blind.as_ref(),
            &[domain.as_bytes(), b"\0", value.as_bytes()],
        )
    }

    /// A MAC for anonymous form tokens (double-submit CSRF on sign-in and setup).
    pub fn csrf_mac(&self, value: &[u8]) -> [u8; 32] {
        hmac_sha256(self.csrf.as_ref(), &[value])
    }

    /// The seed of this data directory's Ed25519 key that signs audit checkpoints.
    pub fn checkpoint_seed(&self) -> &[u8; 32] {
        &self.checkpoint
    }

    /// Keyed hash for the audit chain, so a forger without the key cannot rebuild it.
    pub fn audit_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(self.audit.as_ref(), parts)
    }
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // HMAC's `new_from_slice` only fails for fixed-key-size MACs; HMAC has none.
    std::process::abort()
}

fn seal_raw(key: &[u8], plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CryptoError::Open)?;
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let nonce = XNonce::from(nonce_bytes);
    let body = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .map_err(|_| CryptoError::Open)?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&body);
    Ok(out)
}

fn open_raw(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Open);
    }
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CryptoError::Open)?;
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Open)?;
    cipher
        .decrypt(&nonce, Payload { msg: body, aad })
        .map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_its_own_associated_data() {
        let (_, keys) = MasterKey::from_bytes([7; 32]).new_data_key().unwrap();
        let sealed = keys.seal(b"Eugene Okafor", b"orders\0id-1").unwrap();
        assert_eq!(
            keys.open(&sealed, b"orders\0id-1").unwrap(),
            b"Eugene Okafor"
        );
        assert!(keys.open(&sealed, b"orders\0id-2").is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.open(&flipped, b"orders\0id-1").is_err());
    }

    #[test]
    fn a_different_master_key_is_refused() {
        let (wrapped, _) = MasterKey::from_bytes([1; 32]).new_data_key().unwrap();
        assert!(matches!(
            MasterKey::from_bytes([2; 32]).open_data_key(&wrapped),
            Err(CryptoError::WrongMasterKey)
        ));
        assert!(
            MasterKey::from_bytes([1; 32])
                .open_data_key(&wrapped)
                .is_ok()
        );
    }
}
