//! Messages: appended in one statement, listed by sequence.

use agentic_platform::error::{Error, Result};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{MessageRow, NewMessage};
use crate::schema::messages;

/// The stored function an append goes through.
#[derive(Debug, Clone, Copy)]
enum Append {
    /// `conversations.append_messages`: an id already stored is left as it is, whatever
    /// it holds (the caller compares).
    Lenient,
    /// `conversations.append_new_messages`: the same, then the statement fails with
    /// unique_violation ("messages[i].id: …") unless every stored id holds the requested
    /// message.
    Checked,
}

/// Appends `new` through `conversations.append_messages`: one statement, one round trip.
/// Returns every requested message as stored, in request order. A message whose id is
/// already stored is not written again, and is returned as stored, even if it differs
/// (the caller decides what a difference means).
pub(super) async fn append_raw(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    new: &[NewMessage],
) -> Result<Vec<MessageRow>> {
    append_through(conn, Append::Lenient, tenant, conversation, new).await
}

async fn append_through(
    conn: &mut AsyncPgConnection,
    function: Append,
    tenant: Uuid,
    conversation: Uuid,
    new: &[NewMessage],
) -> Result<Vec<MessageRow>> {
    let ids: Vec<Uuid> = new.iter().map(|m| m.id).collect();
    let roles: Vec<&str> = new.iter().map(|m| m.role).collect();
    let contents: Vec<&str> = new.iter().map(|m| m.content.as_str()).collect();
    let token_counts: Vec<i32> = new.iter().map(|m| m.token_count).collect();
    let tool_names: Vec<Option<&str>> = new.iter().map(|m| m.tool_name.as_deref()).collect();
    let tool_arguments: Vec<Option<&serde_json::Value>> =
        new.iter().map(|m| m.tool_arguments.as_ref()).collect();
    let tool_results: Vec<Option<&str>> = new.iter().map(|m| m.tool_result.as_deref()).collect();
    let metadata: Vec<&serde_json::Value> = new.iter().map(|m| &m.metadata).collect();
    let sql = match function {
        Append::Lenient => {
            "SELECT * FROM conversations.append_messages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        }
        Append::Checked => {
            "SELECT * FROM conversations.append_new_messages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        }
    };
    let loaded: QueryResult<Vec<MessageRow>> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant)
        .bind::<SqlUuid, _>(conversation)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Text>, _>(roles)
        .bind::<Array<Text>, _>(contents)
        .bind::<Array<Int4>, _>(token_counts)
        .bind::<Array<Nullable<Text>>, _>(tool_names)
        .bind::<Array<Nullable<Jsonb>>, _>(tool_arguments)
        .bind::<Array<Nullable<Text>>, _>(tool_results)
        .bind::<Array<Jsonb>, _>(metadata)
        .load(conn)
        .await;
    let rows = match loaded {
        // The check's own answer names the message; every other violation is generic.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        )) if info.message().starts_with("messages[") => {
            return Err(Error::AlreadyExists(info.message().to_owned()));
        }
        loaded => loaded?,
    };
    if rows.is_empty() {
        return Err(Error::NotFound("conversation"));
    }
    Ok(rows)
}

/// Appends `new` in one statement, without a transaction of its own: kept only if every
/// message already stored under a requested id is that same message (a retry), else
/// `ALREADY_EXISTS` naming the first that is not ("messages[i].id").
pub async fn append_messages(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    new: &[NewMessage],
) -> Result<Vec<MessageRow>> {
    append_through(conn, Append::Checked, tenant, conversation, new).await
}

/// Which way a message listing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    OldestFirst,
    NewestFirst,
}

/// One page of a conversation's messages from sequence `from` (inclusive) on, in
/// `direction`, in one query.
pub async fn list_messages(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    direction: Direction,
    from: Option<i64>,
    limit: i64,
) -> Result<Vec<MessageRow>> {
    let mut query = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::tenant_id.eq(tenant))
        .select(MessageRow::as_select())
        .limit(limit)
        .into_boxed();
    query = match direction {
        Direction::OldestFirst => query.order(messages::sequence.asc()),
        Direction::NewestFirst => query.order(messages::sequence.desc()),
    };
    if let Some(from) = from {
        query = match direction {
            Direction::OldestFirst => query.filter(messages::sequence.ge(from)),
            Direction::NewestFirst => query.filter(messages::sequence.le(from)),
        };
    }
    Ok(query.load(conn).await?)
}
