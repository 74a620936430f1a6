//! Sealing secrets a service stores (such as MCP server headers): XChaCha20-Poly1305
//! with a key from `SECRETS_KEY`, a fresh random nonce per value, and the row's identity
//! as associated data, so a sealed value copied onto another row does not open.
//!
//! The key is separate from `JWT_SECRET` on purpose: rotating the token secret must not
//! make stored secrets unreadable.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Nonce bytes stored in front of each sealed value.
const NONCE_LEN: usize = 24;
/// Shortest `SECRETS_KEY` accepted.
pub const MIN_KEY_LEN: usize = 32;

/// Seals and opens values with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer keyed by `secret` (at least [`MIN_KEY_LEN`] bytes, e.g. 32 random bytes
    /// in hex); the cipher key is its SHA-256.
    pub fn new(secret: &str) -> Result<Self> {
        if secret.len() < MIN_KEY_LEN {
            return Err(Error::internal(format!(
                "SECRETS_KEY must be at least {MIN_KEY_LEN} bytes"
            )));
        }
        let key = Sha256::digest(secret.as_bytes());
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&key),
        })
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain`, bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| Error::internal("sealing a secret failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain value of `sealed`, if this key sealed it for `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let broken = || Error::internal("a stored secret does not open with SECRETS_KEY");
        if sealed.len() < NONCE_LEN {
            return Err(broken());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| broken())?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| broken())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let sealer = Sealer::new(KEY).unwrap();
        let sealed = sealer.seal(b"Bearer s3cret", b"row-1").unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "not in the clear"
        );
        assert_eq!(sealer.open(&sealed, b"row-1").unwrap(), b"Bearer s3cret");
        assert!(sealer.open(&sealed, b"row-2").is_err(), "bound to its row");
        let other = Sealer::new("another key that is long enough!!").unwrap();
        assert!(other.open(&sealed, b"row-1").is_err(), "bound to its key");
        assert_ne!(sealed, sealer.seal(b"Bearer s3cret", b"row-1").unwrap());
        assert!(Sealer::new("short").is_err());
    }
}
