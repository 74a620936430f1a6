//! Idempotent creates (AIP-155): a create that carries a `request_id` (a UUID the client
//! picks) is done once. A retry with the same id and the same request, on any replica,
//! while the first is still running or long after, gets the first response; the same id
//! with another request is `ALREADY_EXISTS` naming `request_id`.
//!
//! Each service keeps its request ids in a table of its own schema (its migration creates
//! `<schema>.request_ids`), written in the same transaction as the resource, so a create
//! that fails leaves no id behind. Concurrent retries wait on the first one's row (its
//! primary key) and then read its response. Ids are kept at least [`RETENTION`].

use std::time::Duration;

use std::sync::Arc;

use diesel::sql_types::{Bytea, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::{Error, Result};
use crate::validate;

/// How long a request id is kept.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How often old request ids are deleted.
const CLEANUP_PERIOD: Duration = Duration::from_secs(3600);

/// The request id a request carries: `None` when empty; `INVALID_ARGUMENT` naming
/// `request_id` when it is not a UUID.
pub fn request_id(value: &str) -> Result<Option<Uuid>> {
    if value.is_empty() {
        return Ok(None);
    }
    validate::id("request_id", value).map(Some)
}

/// One service's request ids.
#[derive(Clone)]
pub struct RequestIds {
    /// `<schema>.request_ids`.
    table: &'static str,
    /// Keys the digest of a request, so a stored digest says nothing of what the request
    /// held (a new user's password, say).
    key: Arc<[u8]>,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Bytea)]
    request_hash: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Bytea>)]
    response: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code)]
    request_id: Uuid,
}

impl RequestIds {
    /// The request ids in `table` (`<schema>.request_ids`), requests digested with `key`.
    pub fn new(table: &'static str, key: &[u8]) -> Self {
        Self {
            table,
            key: key.into(),
        }
    }

    /// The keyed digest of `method` and `request`.
    fn digest(&self, method: &str, request: &impl Message) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(method.as_bytes());
        mac.update(&[0]);
        mac.update(&request.encode_to_vec());
        mac.finalize().into_bytes().to_vec()
    }

    /// Runs `create` in a transaction and returns its response, once per `request_id` in
    /// `scope` (the caller's tenant; nil for platform calls). `method` and `request` tell
    /// a retry from another request that reuses the id. Without a request id, `create`
    /// simply runs, as it would without this.
    pub async fn once<Req, Resp>(
        &self,
        pool: &Pool,
        scope: Uuid,
        request_id: Option<Uuid>,
        method: &str,
        request: &Req,
        create: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<Resp>,
    ) -> Result<Resp>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let Some(request_id) = request_id else {
            return pool.write_in(scope, async |conn| create(conn).await).await;
        };
        let hash = self.digest(method, request);
        pool.write_in(scope, async |conn| {
            let conn: &mut AsyncPgConnection = conn;
            // Begun and ended by hand: the create's own transactions nest inside as
            // savepoints, and no `Send` bound is asked of `create`'s future.
            AnsiTransactionManager::begin_transaction(conn).await?;
            let outcome = self.claimed(conn, scope, request_id, &hash, create).await;
            match outcome {
                Ok(response) => {
                    AnsiTransactionManager::commit_transaction(conn).await?;
                    Ok(response)
                }
                Err(error) => {
                    if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn).await
                    {
                        tracing::warn!(%rollback, "a failed create's transaction did not roll back");
                    }
                    Err(error)
                }
            }
        })
        .await
    }

    /// Inside the transaction: claims `request_id` and creates, or answers as the request
    /// that claimed it did.
    async fn claimed<Resp: Message + Default>(
        &self,
        conn: &mut AsyncPgConnection,
        scope: Uuid,
        request_id: Uuid,
        hash: &[u8],
        create: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<Resp>,
    ) -> Result<Resp> {
        let table = self.table;
        // Waits for a concurrent first attempt to end, then finds its row.
        let claimed: Option<Claimed> = diesel::sql_query(format!(
            "INSERT INTO {table} (scope, request_id, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING RETURNING request_id"
        ))
        .bind::<SqlUuid, _>(scope)
        .bind::<SqlUuid, _>(request_id)
        .bind::<Bytea, _>(hash)
        .get_result(conn)
        .await
        .optional()?;
        if claimed.is_some() {
            let response = create(conn).await?;
            diesel::sql_query(format!(
                "UPDATE {table} SET response = $3 WHERE scope = $1 AND request_id = $2"
            ))
            .bind::<SqlUuid, _>(scope)
            .bind::<SqlUuid, _>(request_id)
            .bind::<Bytea, _>(response.encode_to_vec())
            .execute(conn)
            .await?;
            return Ok(response);
        }
        let stored: Stored = diesel::sql_query(format!(
            "SELECT request_hash, response FROM {table} WHERE scope = $1 AND request_id = $2"
        ))
        .bind::<SqlUuid, _>(scope)
        .bind::<SqlUuid, _>(request_id)
        .get_result(conn)
        .await?;
        match stored.response {
            Some(response) if stored.request_hash == hash => Resp::decode(response.as_slice())
                .map_err(|error| Error::internal(format!("a stored response: {error}"))),
            _ => Err(Error::AlreadyExists(
                "request_id: was used for another request".into(),
            )),
        }
    }

    /// Deletes request ids older than [`RETENTION`] every hour until `stop`.
    pub async fn clean_up(self, pool: Pool, stop: CancellationToken) {
        let table = self.table;
        // The first sweep an hour after start: a fleet restarting at once does not sweep
        // at once, and a fresh process's first queries are its callers'.
        let first = tokio::time::Instant::now() + CLEANUP_PERIOD;
        let mut ticker = tokio::time::interval_at(first, CLEANUP_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let deleted = pool
                .run(async |conn| {
                    Ok(diesel::sql_query(format!(
                        "DELETE FROM {table} WHERE created_at < now() - interval '{} seconds'",
                        RETENTION.as_secs()
                    ))
                    .execute(conn)
                    .await?)
                })
                .await;
            if let Err(error) = deleted {
                tracing::warn!(%error, table, "old request ids were not deleted");
            }
        }
    }
}
