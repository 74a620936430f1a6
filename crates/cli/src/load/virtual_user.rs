//! A virtual user: a member of the load test's tenant with its own token and conversations,
//! making one step's call at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_proto::user::v1 as user_pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use futures::StreamExt;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::scenario::{Call, SearchMode, Step, TokenKind};
use super::stats::Outcome;
use super::text;
use super::world::{Channels, World};
use agentic_platform::client::Bearer;

/// How a call ended, and the rate-limit policy it was answered with.
pub(crate) struct Answer {
    pub(crate) outcome: Outcome,
    pub(crate) policy: Option<String>,
}

/// Answers a chat gets before the virtual user starts another.
const ANSWERS_PER_CHAT: u32 = 3;

/// A conversation of questions and answers.
#[derive(Default)]
struct Chat {
    id: String,
    answers: u32,
}

pub(crate) struct VirtualUser {
    index: usize,
    world: Arc<World>,
    user: Channel,
    agent: Channel,
    conversation: Channel,
    rag: Channel,
    /// The conversation its messages go to (appends, lists).
    thread: String,
    /// The conversation its questions go to (Respond), apart from `thread`; a new one
    /// every [`ANSWERS_PER_CHAT`] answers, as people start new chats, so prompts do not
    /// all grow to the model's whole context window.
    chat: std::sync::Mutex<Chat>,
    /// Calls made so far (fresh emails and document ids count on it).
    sequence: AtomicU64,
    timeout: Duration,
}

impl VirtualUser {
    /// Virtual user `index` (one of the world's members, taken in turn), with its
    /// conversations created (not measured).
    pub(crate) async fn start(
        index: usize,
        world: Arc<World>,
        channels: &Channels,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let pick = |list: &Vec<Channel>| list[index % list.len()].clone();
        let mut user = Self {
            index,
            user: pick(&channels.user),
            agent: pick(&channels.agent),
            conversation: pick(&channels.conversation),
            rag: pick(&channels.rag),
            thread: String::new(),
            chat: std::sync::Mutex::new(Chat::default()),
            sequence: AtomicU64::new(0),
            timeout,
            world,
        };
        let mut rng = StdRng::seed_from_u64(index as u64);
        user.thread = user
            .create_conversation(&mut rng)
            .await
            .context("a virtual user's conversation")?;
        let chat = user
            .create_conversation(&mut rng)
            .await
            .context("a virtual user's conversation")?;
        user.chat = std::sync::Mutex::new(Chat {
            id: chat,
            answers: 0,
        });
        Ok(user)
    }

    fn member(&self) -> &super::world::Member {
        &self.world.members[self.index % self.world.members.len()]
    }

    fn bearer(&self, kind: TokenKind) -> Bearer {
        match kind {
            TokenKind::User => self.member().token.clone(),
            TokenKind::Admin => self.world.admin.clone(),
            TokenKind::None => Bearer::none(),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    fn agent_id(&self, rng: &mut StdRng) -> String {
        let agents = &self.world.agent_ids;
        agents[rng.random_range(0..agents.len())].clone()
    }

    /// A conversation of this user's with one of the world's agents.
    fn new_conversation(&self, rng: &mut StdRng) -> conversation_pb::CreateConversationRequest {
        conversation_pb::CreateConversationRequest {
            request_id: String::new(),
            agent_id: self.agent_id(rng),
            user_id: self.member().id.clone(),
            title: "Load test".into(),
            metadata: None,
        }
    }

    async fn create_conversation(&self, rng: &mut StdRng) -> anyhow::Result<String> {
        let request = self.request(self.new_conversation(rng));
        let mut client = ConversationServiceClient::with_interceptor(
            self.conversation.clone(),
            self.bearer(TokenKind::User),
        );
        Ok(client
            .create_conversation(request)
            .await?
            .into_inner()
            .conversation
            .context("no conversation in CreateConversation's response")?
            .id)
    }

    /// What `step` needs before its call, not measured: a new chat when the current one
    /// has had its answers. A failure keeps the old chat.
    pub(crate) async fn prepare(&self, step: &Step, rng: &mut StdRng) {
        let due = step.call == Call::Respond
            && self.chat.lock().expect("chat lock").answers >= ANSWERS_PER_CHAT;
        if due && let Ok(id) = self.create_conversation(rng).await {
            *self.chat.lock().expect("chat lock") = Chat { id, answers: 0 };
        }
    }

    /// The chat the next question goes to, counting the answer.
    fn take_chat(&self) -> String {
        let mut chat = self.chat.lock().expect("chat lock");
        chat.answers += 1;
        chat.id.clone()
    }

    /// Makes `step`'s call once; the deadline is the run's `--timeout`.
    pub(crate) async fn call(&self, step: &Step, want_policy: bool, rng: &mut StdRng) -> Answer {
        match tokio::time::timeout(self.timeout, self.dispatch(step, rng)).await {
            Ok(Ok(metadata)) => Answer {
                outcome: Outcome::Ok,
                policy: want_policy.then(|| policy(&metadata)).flatten(),
            },
            Ok(Err(status)) => Answer {
                outcome: Outcome::Failed(status.code()),
                policy: want_policy.then(|| policy(status.metadata())).flatten(),
            },
            Err(_) => Answer {
                outcome: Outcome::Failed(Code::DeadlineExceeded),
                policy: None,
            },
        }
    }

    /// The call itself; its answer's metadata on success.
    async fn dispatch(&self, step: &Step, rng: &mut StdRng) -> Result<MetadataMap, Status> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let bearer = self.bearer(step.token);
        let user = || UserServiceClient::with_interceptor(self.user.clone(), bearer.clone());
        let agent = || AgentServiceClient::with_interceptor(self.agent.clone(), bearer.clone());
        let conversation = || {
            ConversationServiceClient::with_interceptor(self.conversation.clone(), bearer.clone())
        };
        let rag = || RagServiceClient::with_interceptor(self.rag.clone(), bearer.clone());
        match step.call {
            Call::Health => {
                let request = self.request(HealthCheckRequest::default());
                Ok(HealthClient::new(self.user.clone())
                    .check(request)
                    .await?
                    .metadata()
                    .clone())
            }
            Call::Authenticate => {
                let member = self.member();
                let request = self.request(user_pb::AuthenticateRequest {
                    tenant_slug: self.world.tenant_slug.clone(),
                    email: member.email.clone(),
                    password: member.password.clone(),
                });
                Ok(user().authenticate(request).await?.metadata().clone())
            }
            Call::GetUser => {
                let request = self.request(user_pb::GetUserRequest {
                    id: self.member().id.clone(),
                    read_mask: None,
                });
                Ok(user().get_user(request).await?.metadata().clone())
            }
            Call::ListUsers => {
                let request = self.request(user_pb::ListUsersRequest {
                    page_size: step.page_size,
                    ..Default::default()
                });
                Ok(user().list_users(request).await?.metadata().clone())
            }
            Call::CreateUser => {
                let password = if step.password {
                    format!("load-password-{sequence}")
                } else {
                    String::new()
                };
                let request = self.request(user_pb::CreateUserRequest {
                    email: format!(
                        "new{}-{}@{}.load.example",
                        self.index,
                        sequence,
                        &self.world.run_id[..12]
                    ),
                    display_name: "Signed up".into(),
                    password,
                    ..Default::default()
                });
                Ok(user().create_user(request).await?.metadata().clone())
            }
            Call::GetAgent => {
                let request = self.request(agent_pb::GetAgentRequest {
                    id: self.agent_id(rng),
                    read_mask: None,
                });
                Ok(agent().get_agent(request).await?.metadata().clone())
            }
            Call::ListAgents => {
                let request = self.request(agent_pb::ListAgentsRequest {
                    page_size: step.page_size,
                    ..Default::default()
                });
                Ok(agent().list_agents(request).await?.metadata().clone())
            }
            Call::CreateConversation => {
                let request = self.request(self.new_conversation(rng));
                Ok(conversation()
                    .create_conversation(request)
                    .await?
                    .metadata()
                    .clone())
            }
            Call::AppendMessages => {
                let messages = (0..step.messages)
                    .map(|i| text::turn(i, self.world.text.message(rng)))
                    .collect();
                let request = self.request(conversation_pb::AppendMessagesRequest {
                    conversation_id: self.thread.clone(),
                    messages,
                });
                Ok(conversation()
                    .append_messages(request)
                    .await?
                    .metadata()
                    .clone())
            }
            Call::ListMessages => {
                let request = self.request(conversation_pb::ListMessagesRequest {
                    conversation_id: self.thread.clone(),
                    page_size: step.page_size,
                    ..Default::default()
                });
                Ok(conversation()
                    .list_messages(request)
                    .await?
                    .metadata()
                    .clone())
            }
            Call::IngestDocument => {
                let tag = format!("vu{}-{}", self.index, sequence);
                let document = self.world.text.document(rng, &tag);
                let request = self.request(rag_pb::IngestDocumentsRequest {
                    collection_id: self.world.collection_id.clone(),
                    documents: vec![document],
                    wait: true,
                    request_id: String::new(),
                });
                Ok(rag().ingest_documents(request).await?.metadata().clone())
            }
            Call::Search => {
                let query = self.world.text.query(rng, self.world.documents);
                let request = self.request(rag_pb::SearchRequest {
                    collection_id: self.world.collection_id.clone(),
                    query,
                    top_k: Some(step.top_k),
                    mode: match step.mode {
                        SearchMode::Dense => rag_pb::SearchMode::Dense,
                        SearchMode::Lexical => rag_pb::SearchMode::Lexical,
                        SearchMode::Hybrid => rag_pb::SearchMode::Hybrid,
                    } as i32,
                    ..Default::default()
                });
                Ok(rag().search(request).await?.metadata().clone())
            }
            Call::Respond => {
                let request = self.request(conversation_pb::RespondRequest {
                    conversation_id: self.take_chat(),
                    message: Some(conversation_pb::Message {
                        content: self.world.text.question(rng),
                        ..Default::default()
                    }),
                    overrides: Some(agent_pb::GenerationOverrides {
                        max_tokens: Some(step.max_tokens),
                        temperature: Some(0.0),
                        stop: Vec::new(),
                    }),
                });
                let response = conversation().respond(request).await?;
                let metadata = response.metadata().clone();
                let mut events = response.into_inner();
                let mut done = false;
                while let Some(event) = events.next().await {
                    if let Some(conversation_pb::respond_event::Event::Done(_)) = event?.event {
                        done = true;
                    }
                }
                if !done {
                    return Err(Status::unknown("Respond's stream ended without `done`"));
                }
                Ok(metadata)
            }
        }
    }
}

fn policy(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("ratelimit-policy")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
