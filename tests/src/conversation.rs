//! Fixtures for the conversation service's tests: the user, agent and conversation
//! services in-process, each on a database of its own, talking real gRPC.

use agentic_agent::AgentApp;
use agentic_conversation::ConversationApp;
use agentic_platform::auth::roles;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{BearerChannel, Options, TestDatabase, TestService};
use agentic_proto::conversation::v1 as pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_user::UserApp;
use uuid::Uuid;

use crate::agent::{AgentClient, AgentFixture, AgentService, agent, create_agent};
use crate::{UserClient, UserFixture, UserService, create_user};

pub type ConversationClient = ConversationServiceClient<BearerChannel>;
pub type ConversationService = TestService<ConversationApp>;

/// The three services, the conversation service calling the other two.
pub struct Suite {
    pub user_db: TestDatabase,
    pub agent_db: TestDatabase,
    pub conversation_db: TestDatabase,
    pub users: UserService,
    pub agents: AgentService,
    pub conversations: ConversationService,
}

/// A tenant with an active user and an active agent, and admin clients of each service.
pub struct Tenant {
    pub id: Uuid,
    pub users: UserClient,
    pub agents: AgentClient,
    pub conversations: ConversationClient,
    pub user_id: String,
    pub agent_id: String,
}

impl Suite {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// The three services with `options` (the conversation service's URLs added).
    pub async fn start_with(options: Options) -> Self {
        Self::start_with_agents(options.clone(), options).await
    }

    /// [`Suite::start_with`], the agent service with `agent_options` of its own.
    pub async fn start_with_agents(options: Options, agent_options: Options) -> Self {
        let user_db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
        let agent_db = TestDatabase::create(AgentApp::SPEC.name, AgentApp::MIGRATIONS).await;
        let conversation_db =
            TestDatabase::create(ConversationApp::SPEC.name, ConversationApp::MIGRATIONS).await;
        let users = UserService::start_on(&user_db.url, &user_db.name, &options).await;
        let agents = AgentService::start_on(&agent_db.url, &agent_db.name, &agent_options).await;
        let conversations = Self::start_conversations_with(
            &conversation_db,
            &format!("http://{}", users.addr),
            &format!("http://{}", agents.addr),
            options,
        )
        .await;
        Self {
            user_db,
            agent_db,
            conversation_db,
            users,
            agents,
            conversations,
        }
    }

    /// A conversation service on `db` calling the services at those URLs, with a short
    /// breaker cooldown so tests see it half-open.
    pub async fn start_conversations(
        db: &TestDatabase,
        user_url: &str,
        agent_url: &str,
    ) -> ConversationService {
        Self::start_conversations_with(db, user_url, agent_url, Options::default()).await
    }

    /// [`Suite::start_conversations`] on top of `base`.
    pub async fn start_conversations_with(
        db: &TestDatabase,
        user_url: &str,
        agent_url: &str,
        base: Options,
    ) -> ConversationService {
        let options = Options {
            service_flags: [
                "--user-service-url",
                user_url,
                "--agent-service-url",
                agent_url,
                "--client-breaker-cooldown",
                "500ms",
            ]
            .map(String::from)
            .to_vec(),
            ..base
        };
        ConversationService::start_on(&db.url, &db.name, &options).await
    }

    /// A conversation client acting in `tenant` with `role`.
    pub async fn conversation_client(&self, tenant: Uuid, role: &str) -> ConversationClient {
        let token = self.conversations.token(tenant, role);
        ConversationServiceClient::new(self.conversations.bearer_channel(Some(&token)).await)
    }

    /// A new tenant (in the user service) with an active user and an active agent.
    pub async fn tenant(&self, slug: &str) -> Tenant {
        let (id, mut users) = self.users.tenant(slug).await;
        let user = create_user(&mut users, &format!("{slug}@example.com")).await;
        let mut agents = self.agents.client_as(id, roles::ADMIN).await;
        let agent = create_agent(&mut agents, agent(&format!("{slug}-agent"), "m")).await;
        Tenant {
            id,
            users,
            agents,
            conversations: self.conversation_client(id, roles::ADMIN).await,
            user_id: user.id,
            agent_id: agent.id,
        }
    }
}

/// A create request for the tenant's user and agent.
pub fn new_conversation(tenant: &Tenant, title: &str) -> pb::CreateConversationRequest {
    pb::CreateConversationRequest {
        request_id: String::new(),
        agent_id: tenant.agent_id.clone(),
        user_id: tenant.user_id.clone(),
        title: title.to_owned(),
        metadata: None,
    }
}

/// Creates a conversation of the tenant's user with its agent.
pub async fn create_conversation(tenant: &mut Tenant, title: &str) -> pb::Conversation {
    let request = new_conversation(tenant, title);
    tenant
        .conversations
        .create_conversation(request)
        .await
        .expect("create conversation")
        .into_inner()
        .conversation
        .expect("conversation")
}

/// A user message with a fresh id.
pub fn user_message(content: &str) -> pb::Message {
    pb::Message {
        id: Uuid::now_v7().to_string(),
        role: pb::MessageRole::User as i32,
        content: content.to_owned(),
        ..Default::default()
    }
}
