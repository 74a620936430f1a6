//! The `agentic.conversation.v1.ConversationService` implementation: conversations
//! (`conversations.rs`, which calls the agent and user services) and their messages
//! (`messages.rs`); this file holds what they share and the tonic trait.

mod conversations;
mod dependencies;
mod messages;
mod respond;

use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::error::{Error, Result};
use agentic_platform::idempotency::RequestIds;
use agentic_platform::paging::PageTokens;
use agentic_platform::service::Context;
use agentic_platform::turns::Turns;
use agentic_proto::conversation::v1 as pb;
use agentic_proto::conversation::v1::conversation_service_server::ConversationService as Api;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use self::dependencies::Dependencies;
use crate::args::ConversationArgs;
use crate::kinds;
use crate::store;

pub struct ConversationService {
    pool: Pool,
    cache: Cache,
    pages: PageTokens,
    kinds: Kinds,
    dependencies: Dependencies,
    /// Idempotent creates' request ids.
    request_ids: RequestIds,
    /// Appends to one conversation take turns here rather than in its row lock.
    appends: Turns,
}

/// Conversations whose appends take turns at once (the least recently appended to drop
/// out of the queue first).
const APPENDING_CONVERSATIONS: u64 = 100_000;

/// Where the service keeps idempotent creates' request ids.
pub const REQUEST_IDS: &str = "conversations.request_ids";

/// Cached kinds: conversations by id.
struct Kinds {
    conversation: CacheKind,
}

impl ConversationService {
    pub fn new(context: &Context, args: &ConversationArgs) -> Result<Self> {
        Ok(Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            pages: context.pages.clone(),
            kinds: Kinds {
                conversation: context.cache.kind(&kinds::CONVERSATION),
            },
            dependencies: Dependencies::new(args)?,
            request_ids: context.request_ids(REQUEST_IDS),
            appends: Turns::new(APPENDING_CONVERSATIONS),
        })
    }

    /// The conversation, from the cache; NOT_FOUND if the tenant has no such one.
    async fn cached_conversation(&self, tenant: Uuid, id: Uuid) -> Result<pb::Conversation> {
        self.cache
            .get_or_load(&self.kinds.conversation, ScopedKey(tenant, id), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_conversation(conn, tenant, id)
                        .await?
                        .map(pb::Conversation::from))
                })
            })
            .await?
            .ok_or(Error::NotFound("conversation"))
    }

    async fn forget_conversation(&self, tenant: Uuid, id: Uuid) {
        forget_conversation(&self.cache, &self.kinds.conversation, tenant, id).await;
    }
}

/// Drops conversation `id` of `tenant` from the cache (of `kind`, the conversation kind),
/// for work that holds the cache but not the service (Respond's relay).
async fn forget_conversation(cache: &Cache, kind: &CacheKind, tenant: Uuid, id: Uuid) {
    cache
        .invalidate(&[(kind, ScopedKey(tenant, id.to_string()))])
        .await;
}

#[tonic::async_trait]
impl Api for ConversationService {
    type RespondStream = respond::RespondStream;

    async fn respond(
        &self,
        request: Request<pb::RespondRequest>,
    ) -> Result<Response<Self::RespondStream>, Status> {
        respond::respond(self, request).await
    }

    async fn create_conversation(
        &self,
        request: Request<pb::CreateConversationRequest>,
    ) -> Result<Response<pb::CreateConversationResponse>, Status> {
        conversations::create(self, request).await
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        conversations::get(self, request).await
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        conversations::list(self, request).await
    }

    async fn update_conversation(
        &self,
        request: Request<pb::UpdateConversationRequest>,
    ) -> Result<Response<pb::UpdateConversationResponse>, Status> {
        conversations::update(self, request).await
    }

    async fn delete_conversation(
        &self,
        request: Request<pb::DeleteConversationRequest>,
    ) -> Result<Response<pb::DeleteConversationResponse>, Status> {
        conversations::delete(self, request).await
    }

    async fn append_messages(
        &self,
        request: Request<pb::AppendMessagesRequest>,
    ) -> Result<Response<pb::AppendMessagesResponse>, Status> {
        messages::append(self, request).await
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        messages::list(self, request).await
    }
}
