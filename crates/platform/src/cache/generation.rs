//! Namespace generations: dropping every entry of a scope (a tenant, a collection) in O(1).
//!
//! A kind declared in a namespace names its entries with the namespace's current
//! generation for the scope (`<prefix>:<kind>:g<generation>:<scope>:<key>`).
//! Invalidating the namespace bumps the generation, so every older entry is never named
//! again and simply expires: one Redis script call, no KEYS or SCAN, whatever the number
//! of entries.
//!
//! The generation is the version of the namespace key in Redis, bumped by the same
//! invalidation script as any entry (so it reaches the other replicas' L1 the same way,
//! and is replayed if Redis did not take it). Each replica keeps it in L1 like any other
//! entry. Without a known generation (Redis not answering, or a bump not yet taken)
//! entries of the namespace cannot be named, and reads go to the loader.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::{CompResult, Op};

use super::slot::Slot;
use super::{CacheKey, CacheKind, Inner};

/// The longest TTL of a kind in a namespace: well inside the life of a generation in
/// Redis (its version key expires an hour after its last bump, and counts from 0 again).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(1800);

/// Redis calls about generations are counted under this kind.
const KIND: &str = "generation";

/// A namespace of one scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespace {
    name: &'static str,
    scope: uuid::Uuid,
}

impl Namespace {
    pub(crate) fn new(name: &'static str, scope: uuid::Uuid) -> Self {
        Self { name, scope }
    }
}

impl Inner {
    /// The key whose version is the namespace's generation.
    pub(super) fn namespace_key(&self, namespace: &Namespace) -> String {
        format!("{}:gen:{}:{}", self.prefix, namespace.name, namespace.scope)
    }

    /// The name of an entry of `kind` in `generation`.
    pub(super) fn generation_key(
        &self,
        kind: &CacheKind,
        generation: u64,
        key: impl std::fmt::Display,
    ) -> String {
        format!("{}:{}:g{generation}:{key}", self.prefix, kind.name)
    }

    /// The namespace's current generation, from L1 while it is trusted and fresh, else
    /// from Redis; `None` when it cannot be known.
    pub(super) async fn generation(&self, namespace: &Namespace, ttl: Duration) -> Option<u64> {
        let key = self.namespace_key(namespace);
        let trusted = self.l1_trusted();
        let epoch = self.l1_epoch();
        if trusted
            && let Some(slot) = self.l1.get(&key).await
            && slot.is_fresh_in(epoch)
        {
            return generation_of(&slot);
        }
        // Boxed, as the entries' own miss path is: no part of a hit's future.
        Box::pin(self.load_generation(key, ttl, trusted, epoch)).await
    }

    /// The miss path of [`Inner::generation`]: the generation Redis holds (a random one
    /// without Redis), kept in L1.
    async fn load_generation(
        &self,
        key: String,
        ttl: Duration,
        trusted: bool,
        epoch: u64,
    ) -> Option<u64> {
        // Through the key's compute, so a bump arriving meanwhile removes what this stores.
        let entry = self
            .l1
            .entry(key.clone())
            .and_try_compute_with(|held| async {
                if trusted
                    && let Some(slot) = held.map(|entry| entry.into_value())
                    && slot.is_fresh_in(epoch)
                {
                    return Ok(Op::Nop);
                }
                let generation = match &self.l2 {
                    // Alone, a random generation never names an entry made before it.
                    None => rand::random::<u64>(),
                    // A bump Redis has not taken yet: its old generation must not be used.
                    Some(_) if self.pending.contains(&key) => return Err(()),
                    Some(l2) => {
                        let (_, version) = l2.get(KIND, &key).await.ok_or(())?;
                        version.parse().unwrap_or(0)
                    }
                };
                let slot = Slot::new(
                    Some(Bytes::copy_from_slice(&generation.to_le_bytes())),
                    ttl,
                    Duration::ZERO,
                    Duration::ZERO,
                );
                Ok(Op::Put(Arc::new(slot.in_epoch(epoch))))
            })
            .await
            .ok()?;
        match entry {
            CompResult::Inserted(entry)
            | CompResult::ReplacedWith(entry)
            | CompResult::Unchanged(entry) => generation_of(entry.value()),
            CompResult::StillNone(_) | CompResult::Removed(_) => None,
        }
    }

    /// The names `key` of `kind` may have: in the generation this replica holds and in
    /// the one Redis holds, which other replicas use. When Redis's is unknown, the
    /// namespace key itself, so the whole namespace is bumped instead.
    pub(super) async fn generation_keys(
        &self,
        kind: &CacheKind,
        namespace: &Namespace,
        key: &impl CacheKey,
        out: &mut Vec<String>,
    ) {
        let namespace_key = self.namespace_key(namespace);
        if let Some(slot) = self.l1.get(&namespace_key).await
            && let Some(generation) = generation_of(&slot)
        {
            out.push(self.generation_key(kind, generation, key));
        }
        let Some(l2) = &self.l2 else { return };
        match l2.get(KIND, &namespace_key).await {
            Some((_, version)) => {
                let generation = version.parse().unwrap_or(0);
                out.push(self.generation_key(kind, generation, key));
            }
            None => out.push(namespace_key),
        }
    }
}

fn generation_of(slot: &Slot) -> Option<u64> {
    let bytes = slot.value()?;
    Some(u64::from_le_bytes(bytes.as_ref().try_into().ok()?))
}
