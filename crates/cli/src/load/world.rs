//! What a scenario runs against, set up through the public API before the load starts: a
//! tenant of its own, one member per virtual user (with a password and a token), agents
//! on the local model bound to a collection, and documents in it.

use std::sync::Arc;

use agentic_platform::auth::{Tokens, roles};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_proto::user::v1 as user_pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use super::text::Text;
use agentic_platform::client::Bearer;

/// The model the scenario's agents answer with: the one inside the suite.
const AGENT_MODEL: &str = "local/smollm2-135m-instruct";

/// Users one BatchCreateUsers call creates (each costs the service a password hash).
const USERS_PER_BATCH: usize = 100;

/// The services' addresses.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Addresses {
    /// The user service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub(crate) user_addr: String,
    /// The agent service.
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub(crate) agent_addr: String,
    /// The conversation service.
    #[arg(long, default_value = "http://127.0.0.1:50053")]
    pub(crate) conversation_addr: String,
    /// The RAG service.
    #[arg(long, default_value = "http://127.0.0.1:50054")]
    pub(crate) rag_addr: String,
}

/// Connections to each service; virtual users take them in turn.
#[derive(Clone)]
pub(crate) struct Channels {
    pub(crate) user: Vec<Channel>,
    pub(crate) agent: Vec<Channel>,
    pub(crate) conversation: Vec<Channel>,
    pub(crate) rag: Vec<Channel>,
}

impl Channels {
    pub(crate) async fn connect(addresses: &Addresses, per_service: usize) -> anyhow::Result<Self> {
        async fn open(addr: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
            let mut channels = Vec::with_capacity(count);
            for _ in 0..count.max(1) {
                channels.push(
                    Endpoint::from_shared(addr.to_owned())?
                        .tcp_nodelay(true)
                        .connect_timeout(std::time::Duration::from_secs(5))
                        .connect()
                        .await
                        .with_context(|| format!("cannot connect to {addr}"))?,
                );
            }
            Ok(channels)
        }
        Ok(Self {
            user: open(&addresses.user_addr, per_service).await?,
            agent: open(&addresses.agent_addr, per_service).await?,
            conversation: open(&addresses.conversation_addr, per_service).await?,
            rag: open(&addresses.rag_addr, per_service).await?,
        })
    }
}

/// A tenant of the load test's own, made with a platform token, and its admin's token.
pub(crate) struct LoadTenant {
    /// Unique per run: names, emails and slugs made from it do not collide with others'.
    pub(crate) run_id: String,
    pub(crate) slug: String,
    pub(crate) id: Uuid,
    pub(crate) admin: Bearer,
}

impl LoadTenant {
    /// Creates the tenant through the user service at `users`.
    pub(crate) async fn create(tokens: &Tokens, users: Channel) -> anyhow::Result<Self> {
        let run_id = Uuid::now_v7().simple().to_string();
        let slug = format!("load-{}", &run_id[..20]);
        let (platform_token, _) = tokens.issue("agentic-load", None, roles::PLATFORM, None)?;
        let mut platform =
            UserServiceClient::with_interceptor(users, Bearer::token(&platform_token)?);
        let tenant = platform
            .create_tenant(user_pb::CreateTenantRequest {
                request_id: String::new(),
                name: "load test".into(),
                slug: slug.clone(),
            })
            .await
            .context("create the load test's tenant")?
            .into_inner()
            .tenant
            .context("no tenant in CreateTenant's response")?;
        let id: Uuid = tenant.id.parse()?;
        let (admin_token, _) = tokens.issue("agentic-load", Some(id), roles::ADMIN, None)?;
        Ok(Self {
            run_id,
            slug,
            id,
            admin: Bearer::token(&admin_token)?,
        })
    }
}

/// One virtual user's identity.
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) token: Bearer,
}

/// Everything the steps share.
pub(crate) struct World {
    pub(crate) run_id: String,
    pub(crate) tenant_slug: String,
    pub(crate) admin: Bearer,
    pub(crate) members: Vec<Member>,
    pub(crate) agent_ids: Vec<String>,
    pub(crate) collection_id: String,
    /// Documents ingested before the load (queries are drawn from them).
    pub(crate) documents: usize,
    pub(crate) text: Text,
}

impl World {
    /// Creates the tenant and what the scenario needs, with `members` virtual users.
    pub(crate) async fn create(
        tokens: Tokens,
        channels: &Channels,
        members: usize,
        agents: usize,
        documents: usize,
    ) -> anyhow::Result<Arc<Self>> {
        let LoadTenant {
            run_id,
            slug: tenant_slug,
            id: tenant_id,
            admin,
        } = LoadTenant::create(&tokens, channels.user[0].clone()).await?;

        let members =
            create_members(&tokens, channels, &admin, tenant_id, &run_id, members).await?;
        let text = Text::new(&run_id);
        let collection_id = create_collection(channels, &admin, &run_id).await?;
        ingest(channels, &admin, &collection_id, &text, documents).await?;
        let agent_ids = create_agents(channels, &admin, &run_id, &collection_id, agents).await?;
        Ok(Arc::new(Self {
            run_id,
            tenant_slug,
            admin,
            members,
            agent_ids,
            collection_id,
            documents,
            text,
        }))
    }
}

async fn create_members(
    tokens: &Tokens,
    channels: &Channels,
    admin: &Bearer,
    tenant: Uuid,
    run_id: &str,
    count: usize,
) -> anyhow::Result<Vec<Member>> {
    let mut users = UserServiceClient::with_interceptor(channels.user[0].clone(), admin.clone());
    let mut members = Vec::with_capacity(count);
    for first in (0..count).step_by(USERS_PER_BATCH) {
        let batch: Vec<(String, String)> = (first..count.min(first + USERS_PER_BATCH))
            .map(|i| {
                (
                    format!("vu{i}@{}.load.example", &run_id[..12]),
                    format!("load-{}-{i}", &run_id[20..]),
                )
            })
            .collect();
        let created = users
            .batch_create_users(user_pb::BatchCreateUsersRequest {
                request_id: String::new(),
                requests: batch
                    .iter()
                    .map(|(email, password)| user_pb::CreateUserRequest {
                        email: email.clone(),
                        display_name: "Load user".into(),
                        role: user_pb::Role::Member as i32,
                        password: password.clone(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .await
            .context("create the virtual users")?
            .into_inner()
            .users;
        for (user, (email, password)) in created.into_iter().zip(batch) {
            let (token, _) = tokens.issue(&user.id, Some(tenant), roles::MEMBER, None)?;
            members.push(Member {
                id: user.id,
                email,
                password,
                token: Bearer::token(&token)?,
            });
        }
    }
    Ok(members)
}

async fn create_collection(
    channels: &Channels,
    admin: &Bearer,
    run_id: &str,
) -> anyhow::Result<String> {
    let mut rag = RagServiceClient::with_interceptor(channels.rag[0].clone(), admin.clone());
    let collection = rag
        .create_collection(rag_pb::CreateCollectionRequest {
            collection: Some(rag_pb::Collection {
                name: "Load test knowledge".into(),
                slug: format!("load-{}", &run_id[..20]),
                chunk_size: 128,
                chunk_overlap: 16,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .context("create the collection")?
        .into_inner()
        .collection
        .context("no collection in CreateCollection's response")?;
    Ok(collection.id)
}

async fn ingest(
    channels: &Channels,
    admin: &Bearer,
    collection_id: &str,
    text: &Text,
    documents: usize,
) -> anyhow::Result<()> {
    let mut rag = RagServiceClient::with_interceptor(channels.rag[0].clone(), admin.clone());
    for first in (0..documents).step_by(100) {
        rag.ingest_documents(rag_pb::IngestDocumentsRequest {
            collection_id: collection_id.to_owned(),
            documents: (first..documents.min(first + 100))
                .map(|i| text.seeded_document(i))
                .collect(),
            wait: true,
            request_id: String::new(),
        })
        .await
        .context("ingest the documents")?;
    }
    Ok(())
}

async fn create_agents(
    channels: &Channels,
    admin: &Bearer,
    run_id: &str,
    collection_id: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut agents = AgentServiceClient::with_interceptor(channels.agent[0].clone(), admin.clone());
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let agent = agents
            .create_agent(agent_pb::CreateAgentRequest {
                request_id: String::new(),
                agent: Some(agent_pb::Agent {
                    name: format!("Load agent {i}"),
                    slug: format!("load-{}-{i}", &run_id[..12]),
                    model: AGENT_MODEL.into(),
                    system_prompt: "You answer in one short sentence.".into(),
                    collection_ids: vec![collection_id.to_owned()],
                    retrieval: Some(agent_pb::Retrieval {
                        top_k: Some(2),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })
            .await
            .context("create the agents")?
            .into_inner()
            .agent
            .context("no agent in CreateAgent's response")?;
        ids.push(agent.id);
    }
    Ok(ids)
}
