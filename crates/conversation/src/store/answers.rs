//! Answers stored by Respond: the user's message and a place for its answer appended
//! together, a lease on answering it, and the answer filled in when it ends.

use std::time::Duration;

use agentic_platform::error::{Error, Result};
use diesel::prelude::*;
use diesel::sql_types::{Float8, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::messages::append_raw;
use crate::model::{MessageRow, NewMessage};
use crate::schema::messages;

/// The question and its answer's row, as `open_answer` left them.
pub struct Opened {
    pub question: MessageRow,
    pub answer: MessageRow,
    /// Whether this call holds the lease: it must answer. Otherwise the answer is stored
    /// already, or another call is answering it.
    pub claimed: bool,
}

/// Appends `question` (unless a retry stored it already; a different message under its
/// id is `ALREADY_EXISTS` naming `message.id`) and an empty assistant message `answer`
/// after it, then takes the lease on answering for `lease` unless the answer is finished
/// or another call's lease runs. An answer that failed before saying anything is
/// answered again. One transaction.
pub async fn open_answer(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    question: &NewMessage,
    answer: Uuid,
    lease: Duration,
) -> Result<Opened> {
    let place = NewMessage {
        id: answer,
        role: "assistant",
        content: String::new(),
        token_count: 0,
        tool_name: None,
        tool_arguments: None,
        tool_result: None,
        metadata: serde_json::json!({}),
    };
    conn.transaction::<_, Error, _>(async |conn| {
        let mut rows = append_raw(conn, tenant, conversation, &[question.clone(), place]).await?;
        let (Some(answer_row), Some(question_row)) = (rows.pop(), rows.pop()) else {
            return Err(Error::internal("an append returned fewer rows than asked"));
        };
        if !question.matches(&question_row) {
            return Err(Error::AlreadyExists(
                "message.id: a different message has this id".into(),
            ));
        }
        let claimed: Option<MessageRow> = diesel::sql_query(
            "UPDATE conversations.messages
                SET reply_to = $3, answering_until = now() + make_interval(secs => $4),
                    finish_reason = NULL
              WHERE conversation_id = $1 AND id = $2
                AND ((finish_reason IS NULL
                      AND (answering_until IS NULL OR answering_until < now()))
                     OR (finish_reason = 'error' AND content = ''))
          RETURNING *",
        )
        .bind::<SqlUuid, _>(conversation)
        .bind::<SqlUuid, _>(answer)
        .bind::<SqlUuid, _>(question.id)
        .bind::<Float8, _>(lease.as_secs_f64())
        .get_result(conn)
        .await
        .optional()?;
        Ok(match claimed {
            Some(answer) => Opened {
                question: question_row,
                answer,
                claimed: true,
            },
            None => Opened {
                question: question_row,
                answer: answer_row,
                claimed: false,
            },
        })
    })
    .await
}

/// What an answer ended as.
pub struct Finished<'a> {
    pub content: &'a str,
    pub completion_tokens: i32,
    pub finish_reason: &'static str,
    pub metadata: serde_json::Value,
}

/// Stores the answer and gives up the lease.
pub async fn finish_answer(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    answer: Uuid,
    finished: Finished<'_>,
) -> Result<MessageRow> {
    Ok(diesel::update(messages::table)
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::id.eq(answer))
        .filter(messages::tenant_id.eq(tenant))
        .set((
            messages::content.eq(finished.content),
            messages::token_count.eq(finished.completion_tokens),
            messages::finish_reason.eq(finished.finish_reason),
            messages::metadata.eq(finished.metadata),
            messages::answering_until.eq(None::<chrono::DateTime<chrono::Utc>>),
        ))
        .returning(MessageRow::as_returning())
        .get_result(conn)
        .await?)
}

/// One message by id.
pub async fn find_message(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    id: Uuid,
) -> Result<Option<MessageRow>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::id.eq(id))
        .filter(messages::tenant_id.eq(tenant))
        .select(MessageRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Appends the tool messages of an answer under way (a retry that stored them already
/// adds nothing).
pub async fn append_tool_messages(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    conversation: Uuid,
    messages: &[NewMessage],
) -> Result<Vec<MessageRow>> {
    append_raw(conn, tenant, conversation, messages).await
}
