//! The readiness probe's own connection, outside the serving pool: a pool saturated by
//! load must not make the busiest replicas look dead.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::Mutex;

pub(crate) struct Probe {
    url: String,
    conn: Mutex<Option<AsyncPgConnection>>,
}

impl Probe {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            conn: Mutex::new(None),
        }
    }

    /// Whether PostgreSQL answers `SELECT 1` within `timeout`, connecting if need be. A
    /// connection that failed or timed out is dropped and made anew next time.
    pub(crate) async fn ping(&self, timeout: Duration) -> bool {
        let mut held = self.conn.lock().await;
        let answered = tokio::time::timeout(timeout, async {
            if held.is_none() {
                *held = Some(AsyncPgConnection::establish(&self.url).await.ok()?);
            }
            let conn = held.as_mut()?;
            conn.batch_execute("SELECT 1").await.ok()
        })
        .await;
        let ok = matches!(answered, Ok(Some(())));
        if !ok {
            *held = None;
        }
        ok
    }

    /// The one bigint `select` (an expression, without `SELECT`) yields, asked within
    /// `timeout`, connecting if need be; `None` when the server did not answer it.
    pub(crate) async fn scalar(&self, select: &str, timeout: Duration) -> Option<i64> {
        use diesel_async::RunQueryDsl;
        let mut held = self.conn.lock().await;
        let answered = tokio::time::timeout(timeout, async {
            if held.is_none() {
                *held = Some(AsyncPgConnection::establish(&self.url).await.ok()?);
            }
            let conn = held.as_mut()?;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(select))
                .get_result::<i64>(conn)
                .await
                .ok()
        })
        .await;
        let value = answered.ok().flatten();
        if value.is_none() {
            *held = None;
        }
        value
    }
}
