//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes) on the
//! platform's cpu-bound workers, at most one hash per core at a time.
//!
//! Each worker thread keeps one argon2 memory buffer and reuses it: allocating 19 MiB
//! per hash makes the allocator keep hundreds of MiB around under load. Hashes are the
//! standard PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`).

use std::cell::RefCell;
use std::sync::OnceLock;

use agentic_platform::blocking::cpu_bound;
use agentic_platform::error::{Error, Result};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

thread_local! {
    /// This thread's argon2 memory, grown to the largest cost it has met.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 over `password` and `salt` into `out`, in this thread's reused memory.
fn argon2_into(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon2.params().block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|e| Error::internal(format!("argon2: {e}")))
    })
}

pub(crate) async fn hash(password: String) -> Result<String> {
    cpu_bound(move || hash_now(&password)).await?
}

fn hash_now(password: &str) -> Result<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2_into(&argon2, password.as_bytes(), salt_raw, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| Error::internal(format!("cannot hash password: {e}")))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())
            .map_err(|e| Error::internal(format!("argon2 params: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`.
fn matches(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2_into(&argon2, password.as_bytes(), salt_raw, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    });
    // `Output` compares in constant time.
    computed.is_ok_and(|computed| computed == expected)
}

/// Whether `password` matches `stored`. With no stored hash it still spends the time of
/// a real check, so unknown emails cannot be told apart by timing.
pub(crate) async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    cpu_bound(move || {
        let target = stored.as_deref().unwrap_or_else(|| dummy_hash());
        matches(&password, target) && stored.is_some()
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now("not a password anyone has").expect("hashing a constant works"))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(
            verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(stored)).await.unwrap());
        assert!(!verify("correct horse".into(), None).await.unwrap());
        assert!(!verify("x".into(), Some("not a hash".into())).await.unwrap());
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_api() {
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"tr0ub4dor", &salt)
            .unwrap()
            .to_string();
        assert!(matches("tr0ub4dor", &theirs));
        assert!(!matches("tr0ub4dor!", &theirs));

        let ours = hash_now("tr0ub4dor").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        use argon2::PasswordVerifier;
        assert!(
            Argon2::default()
                .verify_password(b"tr0ub4dor", &parsed)
                .is_ok()
        );

        // Other costs than the default still verify (memory grows to fit).
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 3, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(matches("pw", &cheap));
    }
}
