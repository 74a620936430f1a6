//! A small gRPC load generator: N concurrent clients call one RPC for a fixed time, and
//! the run reports requests/s and latency percentiles as one JSON line.
//!
//! It sets up its own data (a tenant and users; agents for the agent RPCs) through
//! the public API, so it needs the JWT secret the services verify tokens with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentic_platform::auth::Tokens;
use agentic_platform::config::AuthArgs;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use agentic_platform::client::Bearer;

use super::text;
use super::world::LoadTenant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Rpc {
    /// grpc.health.v1.Health/Check: the server's floor.
    Health,
    /// GetUser of the same few users (cache-backed when the service caches).
    GetUser,
    /// ListUsers, 20 per page.
    ListUsers,
    /// CreateUser with a fresh email each call.
    CreateUser,
    /// CreateUser with a fresh email and a password (hashed with argon2) each call.
    CreateUserWithPassword,
    /// GetAgent of the same few agents, on an agent service (`--addr`).
    GetAgent,
    /// BatchGetAgents of 100 agents.
    BatchGetAgents,
    /// ListAgents, 20 per page.
    ListAgents,
    /// GetConversation of one conversation, on a conversation service (`--addr`).
    GetConversation,
    /// AppendMessages of 10 new messages each call.
    AppendMessages,
    /// ListMessages, 50 per page.
    ListMessages,
}

impl Rpc {
    /// Whether the RPC is on the agent service (which then holds the agents).
    fn needs_agents(self) -> bool {
        matches!(
            self,
            Self::GetAgent | Self::BatchGetAgents | Self::ListAgents
        )
    }

    /// Whether the RPC is on the conversation service.
    fn needs_conversation(self) -> bool {
        matches!(
            self,
            Self::GetConversation | Self::AppendMessages | Self::ListMessages
        )
    }
}

/// What a single-RPC run needs (from `agentic load --rpc`).
pub(crate) struct RpcArgs {
    pub(crate) addr: String,
    pub(crate) fixture_addr: Option<String>,
    pub(crate) agent_addr: String,
    pub(crate) rpc: Rpc,
    pub(crate) concurrency: usize,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) h2load_request: Option<std::path::PathBuf>,
    pub(crate) auth: AuthArgs,
}

type UserClient =
    UserServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;
type AgentClient =
    AgentServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;
type ConversationClient =
    ConversationServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

pub(crate) async fn run(args: RpcArgs) -> anyhow::Result<()> {
    let tokens = Tokens::new(&args.auth)?;
    let mut channels = Vec::with_capacity(args.connections.max(1));
    for _ in 0..args.connections.max(1) {
        channels.push(
            Endpoint::from_shared(args.addr.clone())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("cannot connect to {}", args.addr))?,
        );
    }

    let fixture_channel = match &args.fixture_addr {
        Some(addr) => Endpoint::from_shared(addr.clone())?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?,
        None => channels[0].clone(),
    };
    let mut fixture = Fixture::create(&tokens, fixture_channel).await?;
    if args.rpc.needs_agents() {
        fixture.add_agents(channels[0].clone()).await?;
    }
    if args.rpc.needs_conversation() {
        let agents = Endpoint::from_shared(args.agent_addr.clone())?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", args.agent_addr))?;
        fixture
            .add_conversation(agents, channels[0].clone())
            .await?;
    }
    let fixture = Arc::new(fixture);
    if let Some(path) = &args.h2load_request {
        return write_h2load_request(args.rpc, &fixture, path);
    }
    let deadline_warmup = args.duration / 10;
    let started = Instant::now();
    let measure_from = started + deadline_warmup;
    let stop_at = measure_from + args.duration;

    let mut workers = Vec::with_capacity(args.concurrency);
    for worker in 0..args.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let fixture = fixture.clone();
        let rpc = args.rpc;
        workers.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut errors = 0u64;
            let mut caller = Caller::new(channel, &fixture, worker);
            while Instant::now() < stop_at {
                let began = Instant::now();
                let ok = caller.call(rpc, &fixture).await;
                if began >= measure_from {
                    if ok {
                        histogram
                            .record(began.elapsed().as_micros().max(1) as u64)
                            .ok();
                    } else {
                        errors += 1;
                    }
                }
            }
            (histogram, errors)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for worker in workers {
        let (worker_histogram, worker_errors) = worker.await?;
        histogram.add(worker_histogram)?;
        errors += worker_errors;
    }

    let seconds = args.duration.as_secs_f64();
    let report = serde_json::json!({
        "scenario": format!("{:?}", args.rpc),
        "concurrency": args.concurrency,
        "seconds": seconds,
        "requests": histogram.len(),
        "errors": errors,
        "rps": (histogram.len() as f64 / seconds).round(),
        "p50_ms": histogram.value_at_quantile(0.50) as f64 / 1000.0,
        "p95_ms": histogram.value_at_quantile(0.95) as f64 / 1000.0,
        "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
    });
    println!("{report}");
    if histogram.is_empty() {
        anyhow::bail!("no request succeeded ({errors} errors)");
    }
    Ok(())
}

/// Writes one framed request of `rpc` to `path`; prints its method path and the
/// authorization header, one per line.
fn write_h2load_request(rpc: Rpc, fixture: &Fixture, path: &std::path::Path) -> anyhow::Result<()> {
    use prost::Message;
    let (method, message) = match rpc {
        Rpc::Health => (
            "/grpc.health.v1.Health/Check",
            HealthCheckRequest::default().encode_to_vec(),
        ),
        Rpc::GetUser => (
            "/agentic.user.v1.UserService/GetUser",
            pb::GetUserRequest {
                id: fixture.user_ids[0].clone(),
                read_mask: None,
            }
            .encode_to_vec(),
        ),
        Rpc::GetAgent => (
            "/agentic.agent.v1.AgentService/GetAgent",
            agent_pb::GetAgentRequest {
                id: fixture.agent_ids[0].clone(),
                read_mask: None,
            }
            .encode_to_vec(),
        ),
        Rpc::BatchGetAgents => (
            "/agentic.agent.v1.AgentService/BatchGetAgents",
            fixture.batch_get_agents().encode_to_vec(),
        ),
        Rpc::ListAgents => (
            "/agentic.agent.v1.AgentService/ListAgents",
            list_agents().encode_to_vec(),
        ),
        Rpc::GetConversation => (
            "/agentic.conversation.v1.ConversationService/GetConversation",
            conversation_pb::GetConversationRequest {
                id: fixture.conversation_id.clone(),
            }
            .encode_to_vec(),
        ),
        Rpc::ListMessages => (
            "/agentic.conversation.v1.ConversationService/ListMessages",
            fixture.list_messages().encode_to_vec(),
        ),
        other => anyhow::bail!("{other:?} sends a different request each call"),
    };
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    framed.extend_from_slice(&message);
    std::fs::write(path, framed)?;
    println!("{method}");
    println!(
        "authorization: {}",
        fixture.admin.header().unwrap_or_default()
    );
    Ok(())
}

/// A tenant with an admin token, users to read, and agents for the agent RPCs.
struct Fixture {
    admin: Bearer,
    user_ids: Vec<String>,
    agent_ids: Vec<String>,
    conversation_id: String,
    /// Conversations the appends spread over (appends to one conversation take turns).
    append_to: Vec<String>,
    run_id: String,
}

/// Conversations AppendMessages spreads its calls over.
const APPEND_CONVERSATIONS: usize = 16;

/// Agents the agent scenarios create: as many as one BatchGetAgents takes.
const AGENTS: usize = 100;

fn list_agents() -> agent_pb::ListAgentsRequest {
    agent_pb::ListAgentsRequest {
        page_size: 20,
        ..Default::default()
    }
}

impl Fixture {
    async fn create(tokens: &Tokens, channel: Channel) -> anyhow::Result<Self> {
        let LoadTenant { run_id, admin, .. } = LoadTenant::create(tokens, channel.clone()).await?;
        let mut client = UserServiceClient::with_interceptor(channel, admin.clone());
        let requests = (0..200)
            .map(|i| pb::CreateUserRequest {
                email: format!("seed{i}@load.example"),
                display_name: format!("Seed {i}"),
                ..Default::default()
            })
            .collect();
        let users = client
            .batch_create_users(pb::BatchCreateUsersRequest {
                request_id: String::new(),
                requests,
            })
            .await
            .context("seed users")?
            .into_inner()
            .users;
        Ok(Self {
            admin,
            user_ids: users.into_iter().map(|u| u.id).collect(),
            agent_ids: Vec::new(),
            conversation_id: String::new(),
            append_to: Vec::new(),
            run_id,
        })
    }

    /// Creates [`AGENTS`] agents in the tenant on the agent service at `channel`.
    async fn add_agents(&mut self, channel: Channel) -> anyhow::Result<()> {
        let mut client = AgentServiceClient::with_interceptor(channel, self.admin.clone());
        for i in 0..AGENTS {
            let agent = client
                .create_agent(agent_pb::CreateAgentRequest {
                    request_id: String::new(),
                    agent: Some(agent_pb::Agent {
                        name: format!("Load agent {i}"),
                        slug: format!("load-{i}"),
                        model: "llama3.1:8b".into(),
                        system_prompt: "You answer load tests.".into(),
                        ..Default::default()
                    }),
                })
                .await
                .context("seed agents")?
                .into_inner()
                .agent
                .context("agent in response")?;
            self.agent_ids.push(agent.id);
        }
        Ok(())
    }

    /// Creates an agent (at `agents`) and a conversation of the first user with it, with
    /// 100 messages, on the conversation service at `conversations`.
    async fn add_conversation(
        &mut self,
        agents: Channel,
        conversations: Channel,
    ) -> anyhow::Result<()> {
        let mut agent_client = AgentServiceClient::with_interceptor(agents, self.admin.clone());
        let agent = agent_client
            .create_agent(agent_pb::CreateAgentRequest {
                request_id: String::new(),
                agent: Some(agent_pb::Agent {
                    name: "Load agent".into(),
                    slug: format!("load-{}", &self.run_id[..12]),
                    model: "llama3.1:8b".into(),
                    ..Default::default()
                }),
            })
            .await
            .context("seed the agent")?
            .into_inner()
            .agent
            .context("agent in response")?;
        let mut client =
            ConversationServiceClient::with_interceptor(conversations, self.admin.clone());
        for _ in 0..APPEND_CONVERSATIONS {
            let conversation = client
                .create_conversation(conversation_pb::CreateConversationRequest {
                    request_id: String::new(),
                    agent_id: agent.id.clone(),
                    user_id: self.user_ids[0].clone(),
                    title: "Load".into(),
                    metadata: None,
                })
                .await
                .context("seed the conversation")?
                .into_inner()
                .conversation
                .context("conversation in response")?;
            self.append_to.push(conversation.id);
        }
        self.conversation_id = self.append_to[0].clone();
        for _ in 0..10 {
            client
                .append_messages(self.append_messages(0))
                .await
                .context("seed messages")?;
        }
        Ok(())
    }

    /// Ten new messages for the conversation of `worker`.
    fn append_messages(&self, worker: usize) -> conversation_pb::AppendMessagesRequest {
        conversation_pb::AppendMessagesRequest {
            conversation_id: self.append_to[worker % self.append_to.len()].clone(),
            messages: (0..10)
                .map(|i| conversation_pb::Message {
                    token_count: 12,
                    ..text::turn(
                        i,
                        format!("Message {i} of a load test, long enough to be typical."),
                    )
                })
                .collect(),
        }
    }

    fn list_messages(&self) -> conversation_pb::ListMessagesRequest {
        conversation_pb::ListMessagesRequest {
            conversation_id: self.conversation_id.clone(),
            page_size: 50,
            ..Default::default()
        }
    }

    fn batch_get_agents(&self) -> agent_pb::BatchGetAgentsRequest {
        agent_pb::BatchGetAgentsRequest {
            ids: self.agent_ids.clone(),
            read_mask: None,
        }
    }
}

/// One worker's clients and counters.
struct Caller {
    users: UserClient,
    agents: AgentClient,
    conversations: ConversationClient,
    health: HealthClient<Channel>,
    worker: usize,
    sequence: usize,
}

impl Caller {
    fn new(channel: Channel, fixture: &Fixture, worker: usize) -> Self {
        Self {
            users: UserServiceClient::with_interceptor(channel.clone(), fixture.admin.clone()),
            agents: AgentServiceClient::with_interceptor(channel.clone(), fixture.admin.clone()),
            conversations: ConversationServiceClient::with_interceptor(
                channel.clone(),
                fixture.admin.clone(),
            ),
            health: HealthClient::new(channel),
            worker,
            sequence: 0,
        }
    }

    async fn call(&mut self, rpc: Rpc, fixture: &Fixture) -> bool {
        self.sequence += 1;
        match rpc {
            Rpc::Health => self
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok(),
            Rpc::GetUser => {
                let id =
                    &fixture.user_ids[(self.worker * 7 + self.sequence) % fixture.user_ids.len()];
                self.users
                    .get_user(pb::GetUserRequest {
                        id: id.clone(),
                        read_mask: None,
                    })
                    .await
                    .is_ok()
            }
            Rpc::ListUsers => self
                .users
                .list_users(pb::ListUsersRequest {
                    page_size: 20,
                    ..Default::default()
                })
                .await
                .is_ok(),
            Rpc::CreateUser | Rpc::CreateUserWithPassword => self
                .users
                .create_user(pb::CreateUserRequest {
                    email: format!(
                        "w{}-{}-{}@load.example",
                        self.worker, self.sequence, fixture.run_id
                    ),
                    display_name: "Load".into(),
                    password: if rpc == Rpc::CreateUserWithPassword {
                        format!("password-{}", self.sequence)
                    } else {
                        String::new()
                    },
                    ..Default::default()
                })
                .await
                .is_ok(),
            Rpc::GetAgent => {
                let id =
                    &fixture.agent_ids[(self.worker * 7 + self.sequence) % fixture.agent_ids.len()];
                self.agents
                    .get_agent(agent_pb::GetAgentRequest {
                        id: id.clone(),
                        read_mask: None,
                    })
                    .await
                    .is_ok()
            }
            Rpc::BatchGetAgents => self
                .agents
                .batch_get_agents(fixture.batch_get_agents())
                .await
                .is_ok(),
            Rpc::ListAgents => self.agents.list_agents(list_agents()).await.is_ok(),
            Rpc::GetConversation => self
                .conversations
                .get_conversation(conversation_pb::GetConversationRequest {
                    id: fixture.conversation_id.clone(),
                })
                .await
                .is_ok(),
            Rpc::AppendMessages => self
                .conversations
                .append_messages(fixture.append_messages(self.worker))
                .await
                .is_ok(),
            Rpc::ListMessages => self
                .conversations
                .list_messages(fixture.list_messages())
                .await
                .is_ok(),
        }
    }
}
