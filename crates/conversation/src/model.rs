//! Rows, domain enums, and their mapping to and from protobuf.

use agentic_platform::json;
use agentic_platform::time::to_timestamp;
use agentic_proto::agent::v1::FinishReason;
use agentic_proto::conversation::v1 as pb;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{conversations, messages};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
pub struct ConversationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub status: String,
    pub metadata: serde_json::Value,
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = conversations)]
pub struct NewConversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub status: String,
    pub metadata: serde_json::Value,
}

/// The columns an update writes; `None` leaves a column as it is (the store sets
/// `updated_at`).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = conversations)]
pub struct ConversationChanges {
    pub title: Option<String>,
    pub status: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Filters of a conversation listing.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub status: Option<&'static str>,
}

impl ConversationFilter {
    /// What a page token is bound to, so it cannot be replayed with other filters.
    pub fn fingerprint(&self, tenant: Uuid) -> String {
        let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        format!(
            "conversations|{tenant}|{}|{}|{}",
            id(self.agent_id),
            id(self.user_id),
            self.status.unwrap_or("")
        )
    }
}

/// The stored status of an open conversation, and every new one's.
pub const ACTIVE: &str = "active";

pub fn status_name(status: pb::ConversationStatus) -> Option<&'static str> {
    match status {
        pb::ConversationStatus::Active => Some(ACTIVE),
        pb::ConversationStatus::Archived => Some("archived"),
        pb::ConversationStatus::Unspecified => None,
    }
}

fn status_from_name(name: &str) -> pb::ConversationStatus {
    match name {
        ACTIVE => pb::ConversationStatus::Active,
        "archived" => pb::ConversationStatus::Archived,
        _ => pb::ConversationStatus::Unspecified,
    }
}

impl From<ConversationRow> for pb::Conversation {
    fn from(row: ConversationRow) -> Self {
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            agent_id: row.agent_id.to_string(),
            user_id: row.user_id.to_string(),
            title: row.title,
            status: status_from_name(&row.status) as i32,
            metadata: Some(json::to_struct(&row.metadata)),
            message_count: row.message_count,
            last_message_time: row.last_message_at.map(to_timestamp),
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
            agent_name: String::new(),
        }
    }
}

/// A stored message, as the queries and `append_messages` return it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub conversation_id: Uuid,
    pub sequence: i64,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub role: String,
    pub content: String,
    pub token_count: i32,
    pub tool_name: Option<String>,
    pub tool_arguments: Option<serde_json::Value>,
    pub tool_result: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// For answers stored by Respond: the user message answered.
    pub reply_to: Option<Uuid>,
    /// For answers stored by Respond: why it ended; `None` while being answered.
    pub finish_reason: Option<String>,
    /// The lease of the call answering it.
    pub answering_until: Option<DateTime<Utc>>,
}

impl NewMessage {
    /// Whether `stored` is this message as it was stored (a retry of the same append).
    pub fn matches(&self, stored: &MessageRow) -> bool {
        stored.id == self.id
            && stored.role == self.role
            && stored.content == self.content
            && stored.token_count == self.token_count
            && stored.tool_name == self.tool_name
            && stored.tool_arguments == self.tool_arguments
            && stored.tool_result == self.tool_result
            && stored.metadata == self.metadata
    }
}

/// A validated message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub role: &'static str,
    pub content: String,
    pub token_count: i32,
    pub tool_name: Option<String>,
    pub tool_arguments: Option<serde_json::Value>,
    pub tool_result: Option<String>,
    pub metadata: serde_json::Value,
}

pub fn role_name(role: pb::MessageRole) -> Option<&'static str> {
    match role {
        pb::MessageRole::User => Some("user"),
        pb::MessageRole::Assistant => Some("assistant"),
        pb::MessageRole::System => Some("system"),
        pb::MessageRole::Tool => Some("tool"),
        pb::MessageRole::Unspecified => None,
    }
}

fn role_from_name(name: &str) -> pb::MessageRole {
    match name {
        "user" => pb::MessageRole::User,
        "assistant" => pb::MessageRole::Assistant,
        "system" => pb::MessageRole::System,
        "tool" => pb::MessageRole::Tool,
        _ => pb::MessageRole::Unspecified,
    }
}

impl From<MessageRow> for pb::Message {
    fn from(row: MessageRow) -> Self {
        let tool_call = row.tool_name.map(|name| pb::ToolCall {
            name,
            arguments: row.tool_arguments.as_ref().map(json::to_struct),
            result: row.tool_result.unwrap_or_default(),
        });
        Self {
            id: row.id.to_string(),
            conversation_id: row.conversation_id.to_string(),
            sequence: row.sequence,
            role: role_from_name(&row.role) as i32,
            content: row.content,
            token_count: row.token_count,
            tool_call,
            metadata: Some(json::to_struct(&row.metadata)),
            create_time: Some(to_timestamp(row.created_at)),
            finish_reason: row
                .finish_reason
                .as_deref()
                .map_or(FinishReason::Unspecified, finish_reason_from_name)
                as i32,
            reply_to_id: row.reply_to.map(|id| id.to_string()).unwrap_or_default(),
        }
    }
}

/// A finish reason as the database spells it.
pub fn finish_reason_name(reason: FinishReason) -> Option<&'static str> {
    Some(match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
        FinishReason::Deadline => "deadline",
        FinishReason::Error => "error",
        FinishReason::Unspecified => return None,
    })
}

fn finish_reason_from_name(name: &str) -> FinishReason {
    match name {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "cancelled" => FinishReason::Cancelled,
        "deadline" => FinishReason::Deadline,
        "error" => FinishReason::Error,
        _ => FinishReason::Unspecified,
    }
}
