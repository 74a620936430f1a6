//! Connections shared by point reads. Requests' queries travel down one connection
//! together and tokio-postgres pipelines them, so a read holds no connection of its own
//! while PostgreSQL answers, and one socket write and one server wake-up carry many
//! queries. Under load this is what makes a read by key cost about what the round trip
//! costs, instead of waiting its turn for one of a few exclusive connections.
//!
//! Only single statements outside a transaction belong here: anything queued behind a
//! slow statement waits for it, and session state would be shared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use diesel_async::AsyncPgConnection;

use super::connection::{Manager, PgConn};
use crate::error::{Error, Result};

/// The shared connections, opened on first use and replaced when they fail.
pub(crate) struct Lanes {
    manager: Manager,
    lanes: Box<[Lane]>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Lane {
    current: Mutex<Option<Arc<PgConn>>>,
    /// Held while a replacement connects, so one connect serves every waiting read.
    opening: tokio::sync::Mutex<()>,
}

/// A lane's connection, lent to one read.
pub(crate) struct Lent<'a> {
    lane: &'a Lane,
    conn: Arc<PgConn>,
}

impl Lent<'_> {
    /// The connection, as diesel-async runs pipelined queries: through `&`.
    pub(crate) fn connection(&self) -> &AsyncPgConnection {
        &self.conn
    }

    /// Takes the connection out of service (it failed or stopped answering); reads that
    /// hold it finish or fail on their own, and the next read opens a new one.
    pub(crate) fn discard(self) {
        let mut current = self.lane.current.lock().expect("lane lock");
        if current
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(held, &self.conn))
        {
            *current = None;
        }
    }
}

impl Lanes {
    pub(crate) fn new(manager: Manager, count: usize) -> Self {
        Self {
            manager,
            lanes: (0..count).map(|_| Lane::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next lane's connection, round-robin; connects it first if it has none.
    pub(crate) async fn lend(&self) -> Result<Lent<'_>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let lane = &self.lanes[turn];
        if let Some(conn) = lane.held() {
            return Ok(Lent { lane, conn });
        }
        let _opening = lane.opening.lock().await;
        if let Some(conn) = lane.held() {
            return Ok(Lent { lane, conn });
        }
        let conn = Arc::new(
            bb8::ManageConnection::connect(&self.manager)
                .await
                .map_err(|error| {
                    Error::Unavailable(format!("database connection failed: {error}"))
                })?,
        );
        *lane.current.lock().expect("lane lock") = Some(conn.clone());
        Ok(Lent { lane, conn })
    }

    /// Drops every lane's connection (the database went away); reads reconnect.
    pub(crate) fn close_all(&self) {
        for lane in &self.lanes {
            *lane.current.lock().expect("lane lock") = None;
        }
    }
}

impl Lane {
    fn held(&self) -> Option<Arc<PgConn>> {
        self.current.lock().expect("lane lock").clone()
    }
}
