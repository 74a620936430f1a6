//! Messages: appended in batches with gap-free sequence numbers, idempotent per message
//! id, and listed by sequence in either direction.

use agentic_platform::auth::Caller;
use agentic_platform::error::{Error, Result};
use agentic_proto::conversation::v1 as pb;
use tonic::{Request, Response, Status};

use super::ConversationService;
use crate::input;
use crate::store::{self};

pub(super) async fn append(
    service: &ConversationService,
    request: Request<pb::AppendMessagesRequest>,
) -> Result<Response<pb::AppendMessagesResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let (conversation, new) = input::append(request.get_ref())?;
    let turn = service.appends.take(conversation).await;
    let rows = service
        .pool
        .write_in(tenant, async |conn| {
            store::append_messages(conn, tenant, conversation, &new).await
        })
        .await?;
    drop(turn);
    // Its message count and last message time changed.
    service.forget_conversation(tenant, conversation).await;
    Ok(Response::new(pb::AppendMessagesResponse {
        messages: rows.into_iter().map(pb::Message::from).collect(),
    }))
}

pub(super) async fn list(
    service: &ConversationService,
    request: Request<pb::ListMessagesRequest>,
) -> Result<Response<pb::ListMessagesResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let listing = input::message_listing(message)?;
    let (conversation, page_size, direction) =
        (listing.conversation, listing.page_size, listing.direction);
    let fingerprint = format!("messages|{tenant}|{conversation}|{direction:?}");
    let from = match service.pages.decode(&message.page_token, &fingerprint)? {
        Some(bytes) => Some(i64::from_be_bytes(bytes.try_into().map_err(|_| {
            Error::invalid("page_token", "is not a token from this list query")
        })?)),
        None => listing.from_sequence,
    };
    // Another tenant's conversation, or none: NOT_FOUND, not an empty list.
    service.cached_conversation(tenant, conversation).await?;
    let mut rows = service
        .pool
        .query_in(tenant, async |conn| {
            store::list_messages(conn, tenant, conversation, direction, from, page_size + 1).await
        })
        .await?;
    // The row past the page is where the next page starts.
    let next_page_token = if rows.len() as i64 > page_size {
        let next = rows.pop().map_or(0, |row| row.sequence);
        service.pages.encode(&next.to_be_bytes(), &fingerprint)
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListMessagesResponse {
        messages: rows.into_iter().map(pb::Message::from).collect(),
        next_page_token,
    }))
}
