//! Agents: create, read (by id, slug, batch, list), update, soft delete and undelete.

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::client::Credentials;
use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask::{self, FieldPaths};
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate;
use agentic_proto::agent::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{AgentService, StaleKey, UNDELETE_RETENTION};
use crate::input;
use crate::model::{self, AGENT_FIELDS, AgentFilter, AgentRow, NewAgent};
use crate::store;

/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &[
    "name",
    "slug",
    "description",
    "model",
    "system_prompt",
    "temperature",
    "max_tokens",
    "config",
    "mcp_server_ids",
    "status",
    "collection_ids",
    "retrieval",
];

impl AgentService {
    pub(super) async fn cached_agent(&self, tenant: Uuid, id: Uuid) -> Result<Option<pb::Agent>> {
        self.cache
            .get_or_load(&self.kinds.agent, ScopedKey(tenant, id), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_agent(conn, tenant, id)
                        .await?
                        .map(pb::Agent::from))
                })
            })
            .await
    }

    async fn cached_agent_by_slug(&self, tenant: Uuid, slug: &str) -> Result<Option<pb::Agent>> {
        self.cache
            .get_or_load(&self.kinds.agent_by_slug, ScopedKey(tenant, slug), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_agent_by_slug(conn, tenant, slug)
                        .await?
                        .map(pb::Agent::from))
                })
            })
            .await
    }

    /// The entries an agent can be read through: by id and by slug.
    fn agent_keys<'k>(&'k self, agent: &AgentRow, keys: &mut Vec<StaleKey<'k>>) {
        keys.push((
            &self.kinds.agent,
            ScopedKey(agent.tenant_id, agent.id.to_string()),
        ));
        self.slug_key(agent, keys);
    }

    /// The slug entry, which may hold a cached "absent" for an agent that now exists.
    fn slug_key<'k>(&'k self, agent: &AgentRow, keys: &mut Vec<StaleKey<'k>>) {
        keys.push((
            &self.kinds.agent_by_slug,
            ScopedKey(agent.tenant_id, agent.slug.clone()),
        ));
    }
}

fn read_mask(mask: Option<&prost_types::FieldMask>) -> Result<FieldPaths> {
    FieldPaths::parse(mask, AGENT_FIELDS, "read_mask")
}

fn masked(mut agent: pb::Agent, mask: &FieldPaths) -> pb::Agent {
    model::apply_agent_mask(&mut agent, mask);
    agent
}

pub(super) async fn create(
    service: &AgentService,
    request: Request<pb::CreateAgentRequest>,
) -> Result<Response<pb::CreateAgentResponse>, Status> {
    let caller = Caller::of(&request)?;
    let tenant = caller.member_tenant()?;
    let message = request.get_ref();
    let agent = message
        .agent
        .as_ref()
        .ok_or_else(|| Error::invalid("agent", "is required"))?;
    let (input, request_id) = validate::all((
        input::new_agent(agent),
        idempotency::request_id(&message.request_id),
    ))?;
    service
        .knowledge
        .require_collections(
            &Credentials::of(&request)?,
            "agent.collection_ids",
            &input.collection_ids,
        )
        .await?;
    let new_agent = NewAgent {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: input.name,
        slug: input.slug,
        description: input.description,
        model: input.model,
        system_prompt: input.system_prompt,
        temperature: input.temperature,
        max_tokens: input.max_tokens,
        config: input.config,
        mcp_server_ids: input.mcp_server_ids,
        status: input.status.to_owned(),
        created_by: caller.subject.clone(),
        collection_ids: input.collection_ids,
        retrieval_top_k: input.retrieval.top_k,
        retrieval_min_score: input.retrieval.min_score,
        retrieval_mode: input.retrieval.mode.to_owned(),
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "CreateAgent",
            message,
            async |conn| {
                let row = store::insert_agent(conn, &new_agent).await?;
                Ok(pb::CreateAgentResponse {
                    agent: Some(row.into()),
                })
            },
        )
        .await?;
    // The slug may hold a cached "absent".
    if let Some(agent) = &response.agent {
        let stale = [(
            &service.kinds.agent_by_slug,
            ScopedKey(tenant, agent.slug.clone()),
        )];
        service.cache.invalidate(&stale).await;
    }
    Ok(Response::new(response))
}

pub(super) async fn get(
    service: &AgentService,
    request: Request<pb::GetAgentRequest>,
) -> Result<Response<pb::GetAgentResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let id = validate::id("id", &message.id)?;
    let mask = read_mask(message.read_mask.as_ref())?;
    let agent = service
        .cached_agent(tenant, id)
        .await?
        .ok_or(Error::NotFound("agent"))?;
    Ok(Response::new(pb::GetAgentResponse {
        agent: Some(masked(agent, &mask)),
    }))
}

pub(super) async fn get_by_slug(
    service: &AgentService,
    request: Request<pb::GetAgentBySlugRequest>,
) -> Result<Response<pb::GetAgentBySlugResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let slug = input::slug("slug", &message.slug)?;
    let mask = read_mask(message.read_mask.as_ref())?;
    let agent = service
        .cached_agent_by_slug(tenant, &slug)
        .await?
        .ok_or(Error::NotFound("agent"))?;
    Ok(Response::new(pb::GetAgentBySlugResponse {
        agent: Some(masked(agent, &mask)),
    }))
}

pub(super) async fn batch_get(
    service: &AgentService,
    request: Request<pb::BatchGetAgentsRequest>,
) -> Result<Response<pb::BatchGetAgentsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let (ids, mask) = validate::all((
        input::batch_get_ids(&message.ids),
        read_mask(message.read_mask.as_ref()),
    ))?;

    let mut rows = service
        .pool
        .query_in(tenant, async |conn| {
            store::find_agents(conn, tenant, &ids).await
        })
        .await?;
    // In the order asked for; what is not found is named.
    let mut agents = Vec::with_capacity(rows.len());
    let mut missing_ids = Vec::new();
    for id in ids {
        match rows.iter().position(|row| row.id == id) {
            Some(at) => agents.push(masked(rows.swap_remove(at).into(), &mask)),
            None => missing_ids.push(id.to_string()),
        }
    }
    Ok(Response::new(pb::BatchGetAgentsResponse {
        agents,
        missing_ids,
    }))
}

pub(super) async fn list(
    service: &AgentService,
    request: Request<pb::ListAgentsRequest>,
) -> Result<Response<pb::ListAgentsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let (page_size, status, model, mask) = validate::all((
        paging::page_size(message.page_size),
        input::optional_agent_status("status", message.status),
        input::optional_model("model", &message.model),
        read_mask(message.read_mask.as_ref()),
    ))?;
    let filter = AgentFilter { status, model };
    let fingerprint = filter.fingerprint(tenant);
    let filter = &filter;
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &AgentRow| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_agents(conn, tenant, filter, after, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListAgentsResponse {
        agents: rows
            .into_iter()
            .map(|row| masked(row.into(), &mask))
            .collect(),
        next_page_token,
    }))
}

pub(super) async fn update(
    service: &AgentService,
    request: Request<pb::UpdateAgentRequest>,
) -> Result<Response<pb::UpdateAgentResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let agent = message
        .agent
        .as_ref()
        .ok_or_else(|| Error::invalid("agent", "is required"))?;
    let id = validate::id("agent.id", &agent.id)?;
    let expected = input::etag("agent.etag", &agent.etag)?;
    let mask = fieldmask::update_mask(message.update_mask.as_ref(), UPDATABLE_FIELDS)?;
    let changes = input::agent_changes(agent, &mask)?;
    if let Some(ids) = &changes.collection_ids {
        service
            .knowledge
            .require_collections(&Credentials::of(&request)?, "agent.collection_ids", ids)
            .await?;
    }

    let (before, after) = service
        .pool
        .write_in(tenant, async |conn| {
            store::update_agent(conn, tenant, id, expected, &changes).await
        })
        .await?;
    // The old slug and the new one (which may hold a cached "absent").
    let mut stale = Vec::new();
    service.agent_keys(&before, &mut stale);
    service.slug_key(&after, &mut stale);
    service.cache.invalidate(&stale).await;
    Ok(Response::new(pb::UpdateAgentResponse {
        agent: Some(after.into()),
    }))
}

pub(super) async fn delete(
    service: &AgentService,
    request: Request<pb::DeleteAgentRequest>,
) -> Result<Response<pb::DeleteAgentResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let id = validate::id("id", &message.id)?;
    let expected = input::etag("etag", &message.etag)?;
    let deleted = service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_agent(conn, tenant, id, expected).await
        })
        .await?;
    let mut stale = Vec::new();
    service.agent_keys(&deleted, &mut stale);
    service.cache.invalidate(&stale).await;
    Ok(Response::new(pb::DeleteAgentResponse {}))
}

pub(super) async fn undelete(
    service: &AgentService,
    request: Request<pb::UndeleteAgentRequest>,
) -> Result<Response<pb::UndeleteAgentResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let restored = service
        .pool
        .write_in(tenant, async |conn| {
            store::undelete_agent(conn, tenant, id, UNDELETE_RETENTION).await
        })
        .await?;
    let mut stale = Vec::new();
    service.agent_keys(&restored, &mut stale);
    service.cache.invalidate(&stale).await;
    Ok(Response::new(pb::UndeleteAgentResponse {
        agent: Some(restored.into()),
    }))
}
