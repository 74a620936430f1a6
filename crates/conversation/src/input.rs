//! Validation of the conversation service's requests; every error names its field.

use agentic_platform::error::{Error, Result};
use agentic_platform::json;
use agentic_platform::paging;
use agentic_platform::validate::{self, Violations};
use agentic_proto::conversation::v1 as pb;
use uuid::Uuid;

use crate::model::{NewMessage, role_name, status_name};

pub(crate) const MAX_TITLE_LEN: usize = 500;
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024;
pub(crate) const MAX_CONTENT_LEN: usize = 100_000;
pub(crate) const MAX_TOOL_NAME_LEN: usize = 200;
pub(crate) const MAX_APPEND: usize = 100;
pub(crate) const DEFAULT_MESSAGE_PAGE: i64 = 50;
pub(crate) const MAX_MESSAGE_PAGE: i64 = 200;

pub(crate) fn title(field: &str, value: &str) -> Result<String> {
    validate::text(field, value, 0, MAX_TITLE_LEN)
}

pub(crate) fn metadata(
    field: &str,
    value: Option<&prost_types::Struct>,
) -> Result<serde_json::Value> {
    json::from_struct_within(field, value, MAX_METADATA_BYTES)
}

pub(crate) fn status(
    field: &str,
    value: i32,
    default: Option<&'static str>,
) -> Result<&'static str> {
    let status = pb::ConversationStatus::try_from(value)
        .map_err(|_| Error::invalid(field, "is not a known status"))?;
    status_name(status)
        .or(default)
        .ok_or_else(|| Error::invalid(field, "is required"))
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
pub(crate) fn message_page_size(requested: i32) -> Result<i64> {
    paging::page_size_within(requested, DEFAULT_MESSAGE_PAGE, MAX_MESSAGE_PAGE)
}

fn message(field: &str, message: &pb::Message, v: &mut Violations) -> Option<NewMessage> {
    let id = if message.id.is_empty() {
        Some(Uuid::now_v7())
    } else {
        v.check(validate::id(&format!("{field}.id"), &message.id))
    };
    let role = v.check(
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
    let content = v.check(validate::multiline(
        &format!("{field}.content"),
        &message.content,
        MAX_CONTENT_LEN,
    ));
    if message.token_count < 0 {
        v.add(format!("{field}.token_count"), "must not be negative");
    }
    let meta = v.check(metadata(
        &format!("{field}.metadata"),
        message.metadata.as_ref(),
    ));
    let (mut tool_name, mut tool_arguments, mut tool_result) = (None, None, None);
    match &message.tool_call {
        Some(call) => {
            tool_name = v.check(validate::text(
                &format!("{field}.tool_call.name"),
                &call.name,
                1,
                MAX_TOOL_NAME_LEN,
            ));
            tool_arguments = v.check(metadata(
                &format!("{field}.tool_call.arguments"),
                call.arguments.as_ref(),
            ));
            tool_result = v.check(validate::multiline(
                &format!("{field}.tool_call.result"),
                &call.result,
                MAX_CONTENT_LEN,
            ));
        }
        None if role == Some("tool") => {
            v.add(
                format!("{field}.tool_call"),
                "is required for tool messages",
            );
        }
        None if message.content.trim().is_empty() => {
            v.add(format!("{field}.content"), "is required");
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
    let mut v = Violations::new();
    let mut out: Vec<NewMessage> = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let field = format!("messages[{index}]");
        if let Some(message) = message(&field, value, &mut v) {
            if out.iter().any(|earlier| earlier.id == message.id) {
                v.add(format!("{field}.id"), "appears twice in one request");
            }
            out.push(message);
        }
    }
    v.into_result()?;
    Ok(out)
}
