//! Validation of the conversation service's requests; every error names its field.

use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask;
use agentic_platform::idempotency;
use agentic_platform::json;
use agentic_platform::paging;
use agentic_platform::validate::{self, Violations};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use uuid::Uuid;

use crate::model::{ConversationChanges, ConversationFilter, NewMessage, role_name, status_name};
use crate::store::Direction;

pub(crate) const MAX_TITLE_LEN: usize = 500;
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024;
pub(crate) const MAX_CONTENT_LEN: usize = 100_000;
pub(crate) const MAX_TOOL_NAME_LEN: usize = 200;
pub(crate) const MAX_APPEND: usize = 100;
pub(crate) const DEFAULT_MESSAGE_PAGE: i64 = 50;
pub(crate) const MAX_MESSAGE_PAGE: i64 = 200;
/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &["title", "status", "metadata"];

pub(crate) fn title(field: &str, value: &str) -> Result<String> {
    validate::text(field, value, 0, MAX_TITLE_LEN)
}

pub(crate) fn metadata(
    field: &str,
    value: Option<&prost_types::Struct>,
) -> Result<serde_json::Value> {
    json::from_struct_within(field, value, MAX_METADATA_BYTES)
}

/// A status, if one is given (unspecified is `None`).
fn optional_status(field: &str, value: i32) -> Result<Option<&'static str>> {
    validate::enum_name(field, value, "status", status_name)
}

/// A validated CreateConversationRequest.
pub(crate) struct ConversationInput {
    pub(crate) agent_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) title: String,
    pub(crate) metadata: serde_json::Value,
    pub(crate) request_id: Option<Uuid>,
}

pub(crate) fn new_conversation(
    request: &pb::CreateConversationRequest,
) -> Result<ConversationInput> {
    let (agent_id, user_id, title, metadata, request_id) = validate::all((
        validate::id("agent_id", &request.agent_id),
        validate::id("user_id", &request.user_id),
        title("title", &request.title),
        metadata("metadata", request.metadata.as_ref()),
        idempotency::request_id(&request.request_id),
    ))?;
    Ok(ConversationInput {
        agent_id,
        user_id,
        title,
        metadata,
        request_id,
    })
}

/// A validated ListConversationsRequest.
pub(crate) struct ConversationListing {
    pub(crate) page_size: i64,
    pub(crate) filter: ConversationFilter,
}

pub(crate) fn conversation_listing(
    request: &pb::ListConversationsRequest,
) -> Result<ConversationListing> {
    let (page_size, agent_id, user_id, status) = validate::all((
        paging::page_size(request.page_size),
        optional_id("agent_id", &request.agent_id),
        optional_id("user_id", &request.user_id),
        optional_status("status", request.status),
    ))?;
    Ok(ConversationListing {
        page_size,
        filter: ConversationFilter {
            agent_id,
            user_id,
            status,
        },
    })
}

/// A validated UpdateConversationRequest: the conversation's id and the columns its
/// `update_mask` names (the others are neither checked nor written).
pub(crate) struct ConversationUpdate {
    pub(crate) id: Uuid,
    pub(crate) changes: ConversationChanges,
}

pub(crate) fn conversation_update(
    request: &pb::UpdateConversationRequest,
) -> Result<ConversationUpdate> {
    let conversation = request
        .conversation
        .as_ref()
        .ok_or_else(|| Error::invalid("conversation", "is required"))?;
    let (id, mask) = validate::all((
        validate::id("conversation.id", &conversation.id),
        fieldmask::update_mask(request.update_mask.as_ref(), UPDATABLE_FIELDS),
    ))?;
    let mut violations = Violations::new();
    let mut changes = ConversationChanges::default();
    if mask.includes("title") {
        changes.title = violations.check(title("conversation.title", &conversation.title));
    }
    if mask.includes("status") {
        changes.status = violations
            .check(validate::required(
                "conversation.status",
                optional_status("conversation.status", conversation.status),
            ))
            .map(str::to_owned);
    }
    if mask.includes("metadata") {
        changes.metadata = violations.check(metadata(
            "conversation.metadata",
            conversation.metadata.as_ref(),
        ));
    }
    violations.into_result()?;
    Ok(ConversationUpdate { id, changes })
}

/// An optional id filter: empty means none.
pub(crate) fn optional_id(field: &str, value: &str) -> Result<Option<Uuid>> {
    if value.is_empty() {
        Ok(None)
    } else {
        validate::id(field, value).map(Some)
    }
}

/// The page size of a message listing: 50 when 0, at most 200.
fn message_page_size(requested: i32) -> Result<i64> {
    paging::page_size_within(requested, DEFAULT_MESSAGE_PAGE, MAX_MESSAGE_PAGE)
}

/// A validated ListMessagesRequest (its page token is read against the listing's own
/// fingerprint, by the handler).
pub(crate) struct MessageListing {
    pub(crate) conversation: Uuid,
    pub(crate) page_size: i64,
    pub(crate) direction: Direction,
    /// Where to start when there is no page token: `None` for the first message.
    pub(crate) from_sequence: Option<i64>,
}

pub(crate) fn message_listing(request: &pb::ListMessagesRequest) -> Result<MessageListing> {
    let direction = match pb::MessageOrder::try_from(request.order_by) {
        Ok(pb::MessageOrder::Unspecified | pb::MessageOrder::OldestFirst) => {
            Ok(Direction::OldestFirst)
        }
        Ok(pb::MessageOrder::NewestFirst) => Ok(Direction::NewestFirst),
        Err(_) => Err(Error::invalid("order_by", "is not a known order")),
    };
    let from_sequence = match request.from_sequence {
        negative if negative < 0 => Err(Error::invalid("from_sequence", "must not be negative")),
        0 => Ok(None),
        from => Ok(Some(from)),
    };
    let (conversation, page_size, direction, from_sequence) = validate::all((
        validate::id("conversation_id", &request.conversation_id),
        message_page_size(request.page_size),
        direction,
        from_sequence,
    ))?;
    Ok(MessageListing {
        conversation,
        page_size,
        direction,
        from_sequence,
    })
}

/// A validated AppendMessagesRequest: the conversation and its new messages.
pub(crate) fn append(request: &pb::AppendMessagesRequest) -> Result<(Uuid, Vec<NewMessage>)> {
    validate::all((
        validate::id("conversation_id", &request.conversation_id),
        messages(&request.messages),
    ))
}

fn message(field: &str, message: &pb::Message, violations: &mut Violations) -> Option<NewMessage> {
    let id = if message.id.is_empty() {
        Some(Uuid::now_v7())
    } else {
        violations.check(validate::id(&format!("{field}.id"), &message.id))
    };
    let role = violations.check(
        pb::MessageRole::try_from(message.role)
            .ok()
            .and_then(role_name)
            .ok_or_else(|| {
                Error::invalid(
                    format!("{field}.role"),
                    "is required: user, assistant, system or tool",
                )
            }),
    );
    let content = violations.check(validate::multiline(
        &format!("{field}.content"),
        &message.content,
        MAX_CONTENT_LEN,
    ));
    if message.token_count < 0 {
        violations.add(format!("{field}.token_count"), "must not be negative");
    }
    let meta = violations.check(metadata(
        &format!("{field}.metadata"),
        message.metadata.as_ref(),
    ));
    let (mut tool_name, mut tool_arguments, mut tool_result) = (None, None, None);
    match &message.tool_call {
        Some(call) => {
            tool_name = violations.check(validate::text(
                &format!("{field}.tool_call.name"),
                &call.name,
                1,
                MAX_TOOL_NAME_LEN,
            ));
            tool_arguments = violations.check(metadata(
                &format!("{field}.tool_call.arguments"),
                call.arguments.as_ref(),
            ));
            tool_result = violations.check(validate::multiline(
                &format!("{field}.tool_call.result"),
                &call.result,
                MAX_CONTENT_LEN,
            ));
        }
        None if role == Some("tool") => {
            violations.add(
                format!("{field}.tool_call"),
                "is required for tool messages",
            );
        }
        None if message.content.trim().is_empty() => {
            violations.add(format!("{field}.content"), "is required");
        }
        None => {}
    }
    Some(NewMessage {
        id: id?,
        role: role?,
        content: content?,
        token_count: message.token_count.max(0),
        tool_name,
        tool_arguments,
        tool_result,
        metadata: meta?,
    })
}

/// The messages of an append: 1 to 100, valid, with distinct ids.
pub(crate) fn messages(values: &[pb::Message]) -> Result<Vec<NewMessage>> {
    if values.is_empty() || values.len() > MAX_APPEND {
        return Err(Error::invalid(
            "messages",
            format!("must hold 1 to {MAX_APPEND} messages"),
        ));
    }
    let mut violations = Violations::new();
    let mut out: Vec<NewMessage> = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let field = format!("messages[{index}]");
        if let Some(message) = message(&field, value, &mut violations) {
            if out.iter().any(|earlier| earlier.id == message.id) {
                violations.add(format!("{field}.id"), "appears twice in one request");
            }
            out.push(message);
        }
    }
    violations.into_result()?;
    Ok(out)
}

/// A checked RespondRequest.
pub(crate) struct RespondInput {
    pub(crate) conversation: Uuid,
    pub(crate) question: NewMessage,
    pub(crate) overrides: agent_pb::GenerationOverrides,
}

pub(crate) fn respond(request: &pb::RespondRequest) -> Result<RespondInput> {
    let overrides = request.overrides.clone().unwrap_or_default();
    let (conversation, question, ()) = validate::all((
        validate::id("conversation_id", &request.conversation_id),
        question(request.message.as_ref()),
        validate::generation_overrides("overrides", &overrides),
    ))?;
    Ok(RespondInput {
        conversation,
        question,
        overrides,
    })
}

/// The user's message of a Respond: a user message with content, no tool call.
fn question(value: Option<&pb::Message>) -> Result<NewMessage> {
    let value = value.ok_or_else(|| Error::invalid("message", "is required"))?;
    let mut violations = Violations::new();
    let role = pb::MessageRole::try_from(value.role).unwrap_or_default();
    if !matches!(role, pb::MessageRole::User | pb::MessageRole::Unspecified) {
        violations.add("message.role", "must be MESSAGE_ROLE_USER (or unset)");
    }
    if value.tool_call.is_some() {
        violations.add(
            "message.tool_call",
            "must be unset: Respond answers a user message",
        );
    }
    let as_user = pb::Message {
        role: pb::MessageRole::User as i32,
        tool_call: None,
        ..value.clone()
    };
    let question = message("message", &as_user, &mut violations);
    violations.into_result()?;
    question.ok_or_else(|| Error::invalid("message", "is not a valid message"))
}
