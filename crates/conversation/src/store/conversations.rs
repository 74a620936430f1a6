//! Conversations.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{ConversationChanges, ConversationFilter, ConversationRow, NewConversation};
use crate::schema::conversations;

pub async fn insert_conversation(
    conn: &mut AsyncPgConnection,
    conversation: &NewConversation,
) -> Result<ConversationRow> {
    Ok(diesel::insert_into(conversations::table)
        .values(conversation)
        .returning(ConversationRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find_conversation(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<ConversationRow>> {
    Ok(conversations::table
        .filter(
            conversations::tenant_id
                .eq(tenant)
                .and(conversations::id.eq(id)),
        )
        .select(ConversationRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One page of conversations, newest first (by id, UUIDv7), before `before`.
pub async fn list_conversations(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    filter: &ConversationFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ConversationRow>> {
    let mut query = conversations::table
        .filter(conversations::tenant_id.eq(tenant))
        .select(ConversationRow::as_select())
        .order(conversations::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(agent) = filter.agent_id {
        query = query.filter(conversations::agent_id.eq(agent));
    }
    if let Some(user) = filter.user_id {
        query = query.filter(conversations::user_id.eq(user));
    }
    if let Some(status) = filter.status {
        query = query.filter(conversations::status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(conversations::id.lt(before));
    }
    Ok(query.load(conn).await?)
}

pub async fn update_conversation(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    changes: &ConversationChanges,
) -> Result<ConversationRow> {
    diesel::update(
        conversations::table.filter(
            conversations::tenant_id
                .eq(tenant)
                .and(conversations::id.eq(id)),
        ),
    )
    .set((changes, conversations::updated_at.eq(Utc::now())))
    .returning(ConversationRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound("conversation"))
}

/// Deletes the conversation and, in the same statement (ON DELETE CASCADE), its messages.
pub async fn delete_conversation(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<()> {
    let deleted = diesel::delete(
        conversations::table.filter(
            conversations::tenant_id
                .eq(tenant)
                .and(conversations::id.eq(id)),
        ),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(Error::NotFound("conversation"));
    }
    Ok(())
}
