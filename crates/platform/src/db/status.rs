//! A snapshot of the pool, for metrics and for operators.

/// Connections by state. `overflow` counts those above the base size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub size: u32,
    /// Connections open and free.
    pub idle: u32,
    /// Connections handed out.
    pub in_use: u32,
    /// Connections open beyond `DB_POOL_SIZE`.
    pub overflow: u32,
    /// Callers waiting for a connection.
    pub waiting: u64,
}

impl PoolStatus {
    pub(crate) fn new(size: u32, idle: u32, base_size: u32, waiting: u64) -> Self {
        Self {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            overflow: size.saturating_sub(base_size),
            waiting,
        }
    }

    pub(crate) fn publish(&self, pool: &'static str) {
        let gauge = |state: &'static str, value: f64| {
            metrics::gauge!("db_pool_connections", "pool" => pool, "state" => state).set(value);
        };
        gauge("total", f64::from(self.size));
        gauge("idle", f64::from(self.idle));
        gauge("in_use", f64::from(self.in_use));
        gauge("overflow", f64::from(self.overflow));
        metrics::gauge!("db_pool_waiting", "pool" => pool).set(self.waiting as f64);
        // The seeds' name for the same.
        metrics::gauge!("db_connection_pool_overflow", "pool" => pool)
            .set(f64::from(self.overflow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_counts_connections_above_the_base_size() {
        let status = PoolStatus::new(25, 3, 20, 2);
        assert_eq!(status.in_use, 22);
        assert_eq!(status.overflow, 5);
        let status = PoolStatus::new(4, 4, 20, 0);
        assert_eq!((status.in_use, status.overflow), (0, 0));
    }
}
