//! One cached value (or a cached "absent") with its freshness.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;

use crate::error::{Error, Result};

/// Leading byte of an L2 entry: a value follows, or the key is known to be absent.
const PRESENT: u8 = 1;
const ABSENT: u8 = 0;

/// Values up to this size keep a decoded copy: for them parsing is a large part of a hit,
/// and the copy's memory is small and bounded by the weight below. Larger ones (search
/// results, documents) are parsed on every hit, so L1's memory stays what it weighs.
const DECODED_COPY_MAX: usize = 4096;

/// What a cache may hold: a protobuf message it can also keep decoded, so that a hit
/// clones the message instead of parsing its bytes again.
pub trait CachedMessage: prost::Message + Default + Clone + Send + Sync + 'static {}
impl<M: prost::Message + Default + Clone + Send + Sync + 'static> CachedMessage for M {}

#[derive(Debug)]
pub(crate) struct Slot {
    value: Option<Bytes>,
    fresh_until: Instant,
    /// How long L1 keeps the slot: fresh time plus the stale grace.
    retain_for: Duration,
    /// The L1 epoch it was loaded in: a slot from an earlier epoch may have missed an
    /// invalidation, so it is never fresh, though still a fail-safe fallback.
    epoch: u64,
    /// The value decoded, once some reader needed it (or the loader gave it).
    decoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Slot {
    pub(crate) fn new(
        value: Option<Bytes>,
        ttl: Duration,
        negative_ttl: Duration,
        stale_ttl: Duration,
    ) -> Self {
        let (fresh_for, grace) = match value {
            Some(_) => (jittered(ttl), stale_ttl),
            // Serving a stale "absent" would hide a row that now exists.
            None => (negative_ttl, Duration::ZERO),
        };
        Self {
            value,
            fresh_until: Instant::now() + fresh_for,
            retain_for: fresh_for + grace,
            epoch: 0,
            decoded: OnceLock::new(),
        }
    }

    /// The same slot, loaded in L1 epoch `epoch`.
    pub(crate) fn in_epoch(self, epoch: u64) -> Self {
        Self { epoch, ..self }
    }

    pub(crate) fn from_l2(
        encoded: &[u8],
        ttl: Duration,
        negative_ttl: Duration,
        stale_ttl: Duration,
    ) -> Option<Self> {
        let value = match encoded.split_first()? {
            (&PRESENT, rest) => Some(Bytes::copy_from_slice(rest)),
            (&ABSENT, []) => None,
            _ => return None,
        };
        Some(Self::new(value, ttl, negative_ttl, stale_ttl))
    }

    pub(crate) fn to_l2(&self) -> Bytes {
        match &self.value {
            Some(value) => {
                let mut out = BytesMut::with_capacity(1 + value.len());
                out.put_u8(PRESENT);
                out.put_slice(value);
                out.freeze()
            }
            None => Bytes::from_static(&[ABSENT]),
        }
    }

    /// Fresh, whatever the epoch: for values that never change once written.
    pub(crate) fn is_fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }

    /// Fresh, and loaded in the current L1 epoch.
    pub(crate) fn is_fresh_in(&self, epoch: u64) -> bool {
        self.epoch == epoch && Instant::now() < self.fresh_until
    }

    pub(crate) fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    pub(crate) fn fresh_for(&self) -> Duration {
        self.fresh_until.saturating_duration_since(Instant::now())
    }

    /// The same slot, holding `message` (the value it was encoded from) decoded already.
    pub(crate) fn with_decoded<M: CachedMessage>(self, message: M) -> Self {
        if self.keeps_decoded_copy() {
            self.keep_decoded(message);
        }
        self
    }

    /// Keeps `message` as the decoded copy; a kind holds one message type, and should two
    /// ever share a slot, the first stays.
    fn keep_decoded<M: CachedMessage>(&self, message: M) {
        let _ = self.decoded.set(Box::new(message));
    }

    fn keeps_decoded_copy(&self) -> bool {
        self.value
            .as_ref()
            .is_some_and(|value| value.len() <= DECODED_COPY_MAX)
    }

    /// The value as a message: a clone of the decoded copy, which the first reader makes.
    pub(crate) fn decode<M: CachedMessage>(&self) -> Result<Option<M>> {
        let Some(bytes) = &self.value else {
            return Ok(None);
        };
        if let Some(message) = self.decoded.get().and_then(|held| held.downcast_ref::<M>()) {
            return Ok(Some(message.clone()));
        }
        let message = M::decode(bytes.clone())
            .map_err(|e| Error::internal(format!("undecodable cached value: {e}")))?;
        if self.keeps_decoded_copy() {
            self.keep_decoded(message.clone());
        }
        Ok(Some(message))
    }
}

/// ±10% so entries written together do not expire together.
fn jittered(ttl: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    ttl.mul_f64(factor)
}

/// Bytes an L1 entry is counted as: its key and value, a small value's decoded copy (as
/// four times its encoded size: strings and maps take more memory decoded than on the
/// wire), plus what the map and the slot take besides.
pub(crate) fn weight(key: &str, slot: &Slot) -> u32 {
    const OVERHEAD: usize = 192;
    let value = slot.value().map_or(0, Bytes::len);
    let decoded = if slot.keeps_decoded_copy() {
        4 * value
    } else {
        0
    };
    let bytes = key.len() + value + decoded + OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Tells moka how long to keep each slot.
pub(crate) struct SlotExpiry;

impl moka::Expiry<String, Arc<Slot>> for SlotExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        slot: &Arc<Slot>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(slot.retain_for)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        slot: &Arc<Slot>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.retain_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(100);
    const NEG: Duration = Duration::from_secs(5);
    const STALE: Duration = Duration::from_secs(300);

    #[test]
    fn l2_encoding_round_trips_values_and_absence() {
        let present = Slot::new(Some(Bytes::from_static(b"abc")), TTL, NEG, STALE);
        let decoded = Slot::from_l2(&present.to_l2(), TTL, NEG, STALE).expect("decodes");
        assert_eq!(decoded.value.as_deref(), Some(&b"abc"[..]));

        let absent = Slot::new(None, TTL, NEG, STALE);
        let decoded = Slot::from_l2(&absent.to_l2(), TTL, NEG, STALE).expect("decodes");
        assert_eq!(decoded.value, None);

        assert!(Slot::from_l2(&[], TTL, NEG, STALE).is_none());
        assert!(Slot::from_l2(&[7, 1], TTL, NEG, STALE).is_none());
        assert!(Slot::from_l2(&[ABSENT, 1], TTL, NEG, STALE).is_none());
    }

    #[test]
    fn a_decoded_value_is_kept_and_cloned_and_equals_the_encoded_one() {
        use prost::Message;
        let message = String::from("cached");
        let bytes = Bytes::from(message.encode_to_vec());
        let parsed = Slot::new(Some(bytes.clone()), TTL, NEG, STALE);
        assert!(parsed.decoded.get().is_none());
        assert_eq!(
            parsed.decode::<String>().unwrap().as_deref(),
            Some("cached")
        );
        assert!(
            parsed.decoded.get().is_some(),
            "the first read keeps its decoded copy"
        );
        assert_eq!(
            parsed.decode::<String>().unwrap().as_deref(),
            Some("cached")
        );

        let given = Slot::new(Some(bytes), TTL, NEG, STALE).with_decoded(message);
        assert_eq!(given.decode::<String>().unwrap().as_deref(), Some("cached"));
        assert_eq!(
            Slot::new(None, TTL, NEG, STALE).decode::<String>().unwrap(),
            None
        );

        // A large value is parsed on every hit: no copy outside what L1 weighs.
        let large = "x".repeat(DECODED_COPY_MAX + 1);
        let bytes = Bytes::from(large.encode_to_vec());
        let slot = Slot::new(Some(bytes), TTL, NEG, STALE).with_decoded(large.clone());
        assert_eq!(slot.decode::<String>().unwrap(), Some(large));
        assert!(slot.decoded.get().is_none());
    }

    #[test]
    fn ttl_is_jittered_within_ten_percent_and_absence_is_short_lived() {
        for _ in 0..100 {
            let slot = Slot::new(Some(Bytes::new()), TTL, NEG, STALE);
            let fresh = slot.fresh_for();
            assert!(fresh <= Duration::from_secs(110) && fresh >= Duration::from_secs(89));
            assert!(slot.retain_for >= fresh + STALE);
        }
        let absent = Slot::new(None, TTL, NEG, STALE);
        assert!(absent.fresh_for() <= NEG);
        assert!(absent.retain_for <= NEG);
    }
}
