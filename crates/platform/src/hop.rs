//! Calls one service makes to another on a caller's behalf are counted once, at the edge.
//!
//! The edge's limiter puts a [`Counted`] proof in the request's extensions; the platform's
//! client sends it with the caller's own token as `x-agentic-counted`: an HMAC of that
//! token under a key every service derives from the shared JWT secret. A callee that finds
//! a valid proof for the token it was sent does not count the call again. Clients never
//! see the proof and cannot make one, so they cannot skip a limit with it. Calls a service
//! makes with a token of its own (principal checks, background work) carry a proof of
//! that token, made with the same key ([`crate::auth::Tokens`] holds it).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The metadata key of the proof.
pub const COUNTED_HEADER: &str = "x-agentic-counted";

/// The key proofs are made with: every replica of every service derives the same one.
#[derive(Clone)]
pub struct HopKey(std::sync::Arc<Hmac<Sha256>>);

impl HopKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        derive.update(b"agentic rate limit hops");
        let key = derive.finalize().into_bytes();
        Self(std::sync::Arc::new(
            Hmac::new_from_slice(&key).expect("HMAC takes any key"),
        ))
    }

    /// The proof for the bearer credentials `authorization`, in hex.
    pub(crate) fn prove(&self, authorization: &[u8]) -> String {
        let mut mac = (*self.0).clone();
        mac.update(authorization);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `proof` was made for `authorization` with this key.
    pub(crate) fn verify(&self, authorization: &[u8], proof: &[u8]) -> bool {
        let Some(bytes) = from_hex(proof) else {
            return false;
        };
        let mut mac = (*self.0).clone();
        mac.update(authorization);
        mac.verify_slice(&bytes).is_ok()
    }
}

fn from_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// In a request's extensions once the limiter counted it: outgoing calls made for it
/// carry the proof (see [`crate::client::Credentials::of`]).
#[derive(Clone)]
pub struct Counted(pub(crate) HopKey);

impl Counted {
    /// The proof for `authorization`.
    pub fn proof(&self, authorization: &[u8]) -> String {
        self.0.prove(authorization)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_only_for_its_token_and_key() {
        let key = HopKey::new(b"a secret of at least thirty-two bytes!");
        let proof = key.prove(b"Bearer a");
        assert!(key.verify(b"Bearer a", proof.as_bytes()));
        assert!(!key.verify(b"Bearer b", proof.as_bytes()));
        let other = HopKey::new(b"another secret of thirty-two bytes!!");
        assert!(!other.verify(b"Bearer a", proof.as_bytes()));
        assert!(!key.verify(b"Bearer a", b"not hex"));
    }
}
