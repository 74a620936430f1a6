//! Conversations: created once the agent and user services vouch for their agent and
//! user; read from the cache; listed newest first with agent names fetched per page.

use agentic_platform::auth::Caller;
use agentic_platform::client::Credentials;
use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask;
use agentic_platform::paging;
use agentic_platform::validate::{self, Violations};
use agentic_proto::conversation::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ConversationService;
use crate::input;
use crate::model::{ConversationChanges, ConversationFilter, ConversationRow, NewConversation};
use crate::store;

/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &["title", "status", "metadata"];

pub(super) async fn create(
    service: &ConversationService,
    request: Request<pb::CreateConversationRequest>,
) -> Result<Response<pb::CreateConversationResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let credentials = Credentials::of(&request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let agent_id = v.check(validate::id("agent_id", &message.agent_id));
    let user_id = v.check(validate::id("user_id", &message.user_id));
    let title = v.check(input::title("title", &message.title));
    let metadata = v.check(input::metadata("metadata", message.metadata.as_ref()));
    v.into_result()?;
    let (Some(agent_id), Some(user_id), Some(title), Some(metadata)) =
        (agent_id, user_id, title, metadata)
    else {
        return Err(Error::internal("conversation validation lost a field").into());
    };

    // Both checks at once: the slower service sets the wait, not the sum of both.
    let (agent, user) = futures::join!(
        service
            .dependencies
            .require_active_agent(&credentials, agent_id),
        service
            .dependencies
            .require_active_user(&credentials, user_id),
    );
    agent?;
    user?;

    let new = NewConversation {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        agent_id,
        user_id,
        title,
        status: "active".into(),
        metadata,
    };
    let row = service
        .pool
        .run(async |conn| store::insert_conversation(conn, &new).await)
        .await?;
    Ok(Response::new(pb::CreateConversationResponse {
        conversation: Some(row.into()),
    }))
}

pub(super) async fn get(
    service: &ConversationService,
    request: Request<pb::GetConversationRequest>,
) -> Result<Response<pb::GetConversationResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let conversation = service.cached_conversation(tenant, id).await?;
    Ok(Response::new(pb::GetConversationResponse {
        conversation: Some(conversation),
    }))
}

pub(super) async fn list(
    service: &ConversationService,
    request: Request<pb::ListConversationsRequest>,
) -> Result<Response<pb::ListConversationsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let page_size = v
        .check(paging::page_size(message.page_size))
        .unwrap_or_default();
    let agent_id = v
        .check(input::optional_id("agent_id", &message.agent_id))
        .flatten();
    let user_id = v
        .check(input::optional_id("user_id", &message.user_id))
        .flatten();
    let status = v
        .check(input::status("status", message.status, Some("")))
        .unwrap_or_default();
    v.into_result()?;
    let filter = ConversationFilter {
        agent_id,
        user_id,
        status: (!status.is_empty()).then_some(status),
    };
    let fingerprint = filter.fingerprint(tenant);
    let filter = &filter;
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &ConversationRow| row.id,
            |before, limit| {
                service.pool.run(async move |conn| {
                    store::list_conversations(conn, tenant, filter, before, limit).await
                })
            },
        )
        .await?;
    let mut conversations: Vec<pb::Conversation> =
        rows.into_iter().map(pb::Conversation::from).collect();

    if message.include_agent {
        // One call for the whole page, whatever its size.
        let mut ids: Vec<String> = conversations.iter().map(|c| c.agent_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let credentials = Credentials::of(&request)?;
        let names = service.dependencies.agent_names(&credentials, ids).await?;
        for conversation in &mut conversations {
            if let Some(name) = names.get(&conversation.agent_id) {
                conversation.agent_name = name.clone();
            }
        }
    }
    Ok(Response::new(pb::ListConversationsResponse {
        conversations,
        next_page_token,
    }))
}

pub(super) async fn update(
    service: &ConversationService,
    request: Request<pb::UpdateConversationRequest>,
) -> Result<Response<pb::UpdateConversationResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let conversation = message
        .conversation
        .as_ref()
        .ok_or_else(|| Error::invalid("conversation", "is required"))?;
    let id = validate::id("conversation.id", &conversation.id)?;
    let mask = fieldmask::update_mask(message.update_mask.as_ref(), UPDATABLE_FIELDS)?;
    let mut v = Violations::new();
    let mut changes = ConversationChanges::default();
    if mask.includes("title") {
        changes.title = v.check(input::title("conversation.title", &conversation.title));
    }
    if mask.includes("status") {
        changes.status = v
            .check(input::status(
                "conversation.status",
                conversation.status,
                None,
            ))
            .map(str::to_owned);
    }
    if mask.includes("metadata") {
        changes.metadata = v.check(input::metadata(
            "conversation.metadata",
            conversation.metadata.as_ref(),
        ));
    }
    v.into_result()?;
    let row = service
        .pool
        .run(async |conn| store::update_conversation(conn, tenant, id, &changes).await)
        .await?;
    service.forget_conversation(tenant, id).await;
    Ok(Response::new(pb::UpdateConversationResponse {
        conversation: Some(row.into()),
    }))
}

pub(super) async fn delete(
    service: &ConversationService,
    request: Request<pb::DeleteConversationRequest>,
) -> Result<Response<pb::DeleteConversationResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    service
        .pool
        .run(async |conn| store::delete_conversation(conn, tenant, id).await)
        .await?;
    service.forget_conversation(tenant, id).await;
    Ok(Response::new(pb::DeleteConversationResponse {}))
}
