//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes), off the async
//! threads.

use std::sync::OnceLock;

use agentic_platform::error::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub(crate) async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| Error::internal(format!("hashing task failed: {e}")))?
}

fn hash_now(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(format!("cannot hash password: {e}")))
}

/// Whether `password` matches `stored`. With no stored hash it still spends the time of
/// a real check, so unknown emails cannot be told apart by timing.
pub(crate) async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let target = stored.as_deref().unwrap_or_else(|| dummy_hash());
        let matches = PasswordHash::new(target)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        matches && stored.is_some()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now("not a password anyone has").expect("hashing a constant works"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(stored.clone())).await);
        assert!(!verify("wrong horse".into(), Some(stored)).await);
        assert!(!verify("correct horse".into(), None).await);
    }
}
