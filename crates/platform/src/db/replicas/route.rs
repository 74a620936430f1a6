//! Which database serves a routed read: the first usable replica (round robin) that has
//! replayed what the read must see, else the primary, with the reason.

use super::lsn::Lsn;

/// A replica's standing, as the poller last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Standing {
    /// Answering, and within the lag bounds.
    Up = 0,
    /// Not answering (or its last read failed).
    Down = 1,
    /// Answering but past a lag bound: out of reads until it catches up.
    Quarantined = 2,
}

impl Standing {
    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Standing::Up,
            2 => Standing::Quarantined,
            _ => Standing::Down,
        }
    }
}

/// Why a routed read went to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// No replica is configured.
    NoReplica,
    /// The caller asked for strong reads (`x-read-consistency: strong`).
    Strong,
    /// The scope's announced position could not be looked up (Redis did not answer).
    Unknown,
    /// Every usable replica is behind what the read must see.
    Behind,
    /// Every replica is down (or failed the read).
    Down,
    /// No replica is down, but those not behind are past a lag bound.
    Quarantined,
}

impl Fallback {
    /// The `reason` label of `db_replica_fallbacks_total`.
    pub(crate) const ALL: [Fallback; 6] = [
        Fallback::NoReplica,
        Fallback::Strong,
        Fallback::Unknown,
        Fallback::Behind,
        Fallback::Down,
        Fallback::Quarantined,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Fallback::NoReplica => "no_replica",
            Fallback::Strong => "strong",
            Fallback::Unknown => "unknown_position",
            Fallback::Behind => "behind",
            Fallback::Down => "down",
            Fallback::Quarantined => "quarantined",
        }
    }
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Replica(usize),
    Primary(Fallback),
}

/// The replica (by index) to read from, trying them in turn from `start`, given each
/// one's standing and replay position and the position the read must see.
pub(crate) fn choose(replicas: &[(Standing, Lsn)], needed: Lsn, start: usize) -> Route {
    let count = replicas.len();
    if count == 0 {
        return Route::Primary(Fallback::NoReplica);
    }
    let mut why = Fallback::Down;
    for offset in 0..count {
        let index = (start + offset) % count;
        let (standing, replayed) = replicas[index];
        match standing {
            Standing::Up if replayed >= needed => return Route::Replica(index),
            Standing::Up => why = Fallback::Behind,
            Standing::Quarantined if why == Fallback::Down => why = Fallback::Quarantined,
            Standing::Quarantined | Standing::Down => {}
        }
    }
    Route::Primary(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Standing::*;

    #[test]
    fn a_replica_that_replayed_far_enough_serves() {
        let replicas = [(Up, Lsn(100)), (Up, Lsn(300))];
        assert_eq!(choose(&replicas, Lsn(200), 0), Route::Replica(1));
        assert_eq!(choose(&replicas, Lsn(50), 0), Route::Replica(0));
        assert_eq!(choose(&replicas, Lsn(50), 1), Route::Replica(1));
    }

    #[test]
    fn the_primary_serves_with_the_reason_when_none_can() {
        assert_eq!(choose(&[], Lsn(0), 0), Route::Primary(Fallback::NoReplica));
        assert_eq!(
            choose(&[(Up, Lsn(100)), (Down, Lsn(900))], Lsn(200), 0),
            Route::Primary(Fallback::Behind)
        );
        assert_eq!(
            choose(&[(Down, Lsn(900)), (Down, Lsn(900))], Lsn(0), 1),
            Route::Primary(Fallback::Down)
        );
        assert_eq!(
            choose(&[(Down, Lsn(900)), (Quarantined, Lsn(900))], Lsn(0), 0),
            Route::Primary(Fallback::Quarantined)
        );
        // Behind is the more telling reason: that replica would serve other scopes.
        assert_eq!(
            choose(&[(Quarantined, Lsn(900)), (Up, Lsn(10))], Lsn(500), 0),
            Route::Primary(Fallback::Behind)
        );
    }
}
