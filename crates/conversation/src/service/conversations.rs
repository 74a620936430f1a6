//! Conversations: created once the agent and user services vouch for their agent and
//! user; read from the cache; listed newest first with agent names fetched per page.

use agentic_platform::auth::Caller;
use agentic_platform::client::Credentials;
use agentic_platform::error::Result;
use agentic_platform::validate::{self};
use agentic_proto::conversation::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ConversationService;
use crate::input;
use crate::model::{ACTIVE, ConversationRow, NewConversation};
use crate::store;

pub(super) async fn create(
    service: &ConversationService,
    request: Request<pb::CreateConversationRequest>,
) -> Result<Response<pb::CreateConversationResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let credentials = Credentials::of(&request)?;
    let message = request.get_ref();
    let input = input::new_conversation(message)?;
    let (agent_id, user_id) = (input.agent_id, input.user_id);

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
        title: input.title,
        status: ACTIVE.into(),
        metadata: input.metadata,
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            input.request_id,
            "CreateConversation",
            message,
            async |conn| {
                let row = store::insert_conversation(conn, &new).await?;
                Ok(pb::CreateConversationResponse {
                    conversation: Some(row.into()),
                })
            },
        )
        .await?;
    Ok(Response::new(response))
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
    let listing = input::conversation_listing(message)?;
    let fingerprint = listing.filter.fingerprint(tenant);
    let filter = &listing.filter;
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            listing.page_size,
            |row: &ConversationRow| row.id,
            |before, limit| {
                service.pool.query_in(tenant, async move |conn| {
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
    let update = input::conversation_update(request.get_ref())?;
    let (id, changes) = (update.id, update.changes);
    let row = service
        .pool
        .write_in(tenant, async |conn| {
            store::update_conversation(conn, tenant, id, &changes).await
        })
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
        .write_in(tenant, async |conn| {
            store::delete_conversation(conn, tenant, id).await
        })
        .await?;
    service.forget_conversation(tenant, id).await;
    Ok(Response::new(pb::DeleteConversationResponse {}))
}
