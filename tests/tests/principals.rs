//! Principals: tenants have a lifecycle, and every service refuses a token whose tenant
//! or user no longer exists or is suspended, within moments of the change, on every
//! replica, while platform tokens pass; an unknown principal with the user service out
//! of reach is UNAVAILABLE, a cached one is served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentic_agent::AgentApp;
use agentic_conversation::ConversationApp;
use agentic_e2e::{UserFixture, UserService, create_user, slug, violated_fields};
use agentic_platform::auth::roles;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{Options, TestDatabase, TestService, free_addr};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_proto::user::v1 as pb;
use agentic_rag::RagApp;
use agentic_user::UserApp;
use tonic::Code;
use uuid::Uuid;

/// Options with the principal check on, calling the user service at `users`.
fn checked(users: Option<SocketAddr>) -> Options {
    Options {
        principal_check: true,
        service_flags: users
            .map(|addr| vec!["--user-service-url".into(), format!("http://{addr}")])
            .unwrap_or_default(),
        ..Options::default()
    }
}

/// A service of type `S` with the principal check on, on a database of its own, sharing
/// `prefix` (and so the principal cache's Redis channel) with the others.
async fn start<S: ServiceType>(prefix: &str, options: &Options) -> (TestDatabase, TestService<S>) {
    let db = TestDatabase::create(S::SPEC.name, S::MIGRATIONS).await;
    let service = TestService::<S>::start_on(&db.url, prefix, options).await;
    (db, service)
}

/// The code of one cheap authenticated call to each kind of service.
async fn user_call<S: ServiceType>(service: &TestService<S>, token: &str) -> Code {
    let mut client = agentic_proto::user::v1::user_service_client::UserServiceClient::new(
        service.bearer_channel(Some(token)).await,
    );
    code(client.list_users(pb::ListUsersRequest::default()).await)
}

async fn agent_call(service: &TestService<AgentApp>, token: &str) -> Code {
    let mut client = AgentServiceClient::new(service.bearer_channel(Some(token)).await);
    code(
        client
            .list_agents(agent_pb::ListAgentsRequest::default())
            .await,
    )
}

async fn conversation_call(service: &TestService<ConversationApp>, token: &str) -> Code {
    let mut client = ConversationServiceClient::new(service.bearer_channel(Some(token)).await);
    code(
        client
            .list_conversations(conversation_pb::ListConversationsRequest::default())
            .await,
    )
}

async fn rag_call(service: &TestService<RagApp>, token: &str) -> Code {
    let mut client = RagServiceClient::new(service.bearer_channel(Some(token)).await);
    code(
        client
            .list_collections(rag_pb::ListCollectionsRequest::default())
            .await,
    )
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Every service of the suite, the agent service twice, checking principals.
struct Suite {
    _dbs: Vec<TestDatabase>,
    users: UserService,
    agents: [TestService<AgentApp>; 2],
    conversations: TestService<ConversationApp>,
    rag: TestService<RagApp>,
}

impl Suite {
    async fn start() -> Self {
        let prefix = slug("principals");
        let (user_db, users) = start::<UserApp>(&prefix, &checked(None)).await;
        let options = checked(Some(users.addr));
        let (agent_db, agent_a) = start::<AgentApp>(&prefix, &options).await;
        let agent_b = TestService::<AgentApp>::start_on(&agent_db.url, &prefix, &options).await;
        let mut conversation_options = options.clone();
        conversation_options.service_flags.extend([
            "--agent-service-url".to_owned(),
            format!("http://{}", agent_a.addr),
        ]);
        let (conversation_db, conversations) =
            start::<ConversationApp>(&prefix, &conversation_options).await;
        let (rag_db, rag) = start::<RagApp>(&prefix, &options).await;
        Self {
            _dbs: vec![user_db, agent_db, conversation_db, rag_db],
            users,
            agents: [agent_a, agent_b],
            conversations,
            rag,
        }
    }

    /// The code of a call with `token` to each service (both agent replicas).
    async fn codes(&self, token: &str) -> [Code; 5] {
        [
            user_call(&self.users, token).await,
            agent_call(&self.agents[0], token).await,
            agent_call(&self.agents[1], token).await,
            conversation_call(&self.conversations, token).await,
            rag_call(&self.rag, token).await,
        ]
    }

    /// How long until every service answers `wanted` to `token` (at most 10 s).
    async fn time_until(&self, token: &str, wanted: Code) -> Duration {
        let started = Instant::now();
        loop {
            let codes = self.codes(token).await;
            if codes.iter().all(|code| *code == wanted) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still {codes:?}, not {wanted:?}, after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn platform_users(&self) -> agentic_e2e::UserClient {
        self.users.client(Some(&self.users.platform_token())).await
    }
}

fn suspend(tenant: Uuid, status: pb::TenantStatus) -> pb::UpdateTenantRequest {
    pb::UpdateTenantRequest {
        tenant: Some(pb::Tenant {
            id: tenant.to_string(),
            status: status as i32,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["status".into()],
        }),
    }
}

#[tokio::test]
async fn a_suspension_locks_the_tenant_out_of_every_service_and_replica_at_once() {
    let suite = Suite::start().await;
    let (tenant, mut admin) = suite.users.tenant(&slug("locked")).await;
    let user = create_user(&mut admin, "ada@example.com").await;
    let token = suite.users.user_token(&user.id, tenant, roles::ADMIN);
    // Every service has the tenant and user cached as active.
    assert_eq!(suite.codes(&token).await, [Code::Ok; 5]);

    let mut platform = suite.platform_users().await;
    platform
        .update_tenant(suspend(tenant, pb::TenantStatus::Suspended))
        .await
        .expect("suspend");
    let lockout = suite.time_until(&token, Code::PermissionDenied).await;
    // Polled for 10 s at most, against a 60 s cache: the change was announced to every
    // replica, not waited out.
    println!("time to lockout in every service and replica: {lockout:?}");

    let denied = AgentServiceClient::new(suite.agents[1].bearer_channel(Some(&token)).await)
        .list_agents(agent_pb::ListAgentsRequest::default())
        .await
        .unwrap_err();
    assert!(
        denied.message().contains("suspended"),
        "the message says why: {denied:?}"
    );
    // Platform tokens are not tenants' principals: the platform still reads the tenant.
    assert_eq!(
        code(
            platform
                .get_tenant(pb::GetTenantRequest {
                    id: tenant.to_string()
                })
                .await
        ),
        Code::Ok
    );

    platform
        .update_tenant(suspend(tenant, pb::TenantStatus::Active))
        .await
        .expect("reactivate");
    let back = suite.time_until(&token, Code::Ok).await;
    println!("time to reinstatement: {back:?}");
}

#[tokio::test]
async fn deleted_and_inactive_users_and_unknown_tenants_are_refused_everywhere() {
    let suite = Suite::start().await;
    let (tenant, mut admin) = suite.users.tenant(&slug("people")).await;
    let gone = create_user(&mut admin, "gone@example.com").await;
    let idle = create_user(&mut admin, "idle@example.com").await;
    let gone_token = suite.users.user_token(&gone.id, tenant, roles::MEMBER);
    let idle_token = suite.users.user_token(&idle.id, tenant, roles::MEMBER);
    assert_eq!(suite.codes(&gone_token).await, [Code::Ok; 5]);
    assert_eq!(suite.codes(&idle_token).await, [Code::Ok; 5]);

    admin
        .delete_user(pb::DeleteUserRequest {
            id: gone.id.clone(),
        })
        .await
        .expect("delete");
    suite.time_until(&gone_token, Code::Unauthenticated).await;

    admin
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User {
                id: idle.id.clone(),
                status: pb::UserStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("deactivate");
    suite.time_until(&idle_token, Code::PermissionDenied).await;

    // A tenant that never existed: nothing can be created in it anywhere.
    let stranger = suite.users.token(Uuid::now_v7(), roles::ADMIN);
    assert_eq!(suite.codes(&stranger).await, [Code::Unauthenticated; 5]);
    let created = AgentServiceClient::new(suite.agents[0].bearer_channel(Some(&stranger)).await)
        .create_agent(agent_pb::CreateAgentRequest {
            request_id: String::new(),
            agent: Some(agentic_e2e::agent::agent("ghost", "m")),
        })
        .await
        .unwrap_err();
    assert_eq!(created.code(), Code::Unauthenticated);
    assert!(created.message().contains("tenant"), "{created:?}");
}

#[tokio::test]
async fn without_the_user_service_an_unknown_principal_is_unavailable_and_a_cached_one_served() {
    let prefix = slug("closed");
    let (_user_db, users) = start::<UserApp>(&prefix, &checked(None)).await;
    let (tenant, _) = users.tenant(&slug("closed")).await;
    let known = users.token(tenant, roles::ADMIN);
    let options = checked(Some(users.addr));
    let (_agent_db, agents) = start::<AgentApp>(&prefix, &options).await;
    assert_eq!(agent_call(&agents, &known).await, Code::Ok);

    users.stop().await;
    assert_eq!(
        agent_call(&agents, &known).await,
        Code::Ok,
        "a cached standing is served"
    );
    let unknown = agents.token(Uuid::now_v7(), roles::ADMIN);
    assert_eq!(agent_call(&agents, &unknown).await, Code::Unavailable);

    // No user service at all: nothing unknown gets through.
    let nowhere = checked(Some(free_addr().await));
    let (_rag_db, rag) = start::<RagApp>(&prefix, &nowhere).await;
    assert_eq!(
        rag_call(&rag, &rag.token(Uuid::now_v7(), roles::ADMIN)).await,
        Code::Unavailable
    );
}

#[tokio::test]
async fn tenants_are_updated_and_listed_with_a_platform_token_only() {
    let (_db, users) = start::<UserApp>(&slug("lifecycle"), &checked(None)).await;
    let mut platform = users.client(Some(&users.platform_token())).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, _) = users.tenant(&slug(name)).await;
        ids.push(id);
    }
    let renamed = platform
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                id: ids[0].to_string(),
                name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        })
        .await
        .expect("rename")
        .into_inner()
        .tenant
        .expect("tenant");
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(renamed.status, pb::TenantStatus::Active as i32);
    platform
        .update_tenant(suspend(ids[1], pb::TenantStatus::Suspended))
        .await
        .expect("suspend");
    let read = platform
        .get_tenant(pb::GetTenantRequest {
            id: ids[1].to_string(),
        })
        .await
        .expect("get")
        .into_inner()
        .tenant
        .expect("tenant");
    assert_eq!(
        read.status,
        pb::TenantStatus::Suspended as i32,
        "the cache was dropped"
    );

    // Paged by id, and filtered by status.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = platform
            .list_tenants(pb::ListTenantsRequest {
                page_size: 2,
                page_token: page_token.clone(),
                status: 0,
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.tenants.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let wanted: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, wanted);
    let suspended = platform
        .list_tenants(pb::ListTenantsRequest {
            status: pb::TenantStatus::Suspended as i32,
            ..Default::default()
        })
        .await
        .expect("list suspended")
        .into_inner()
        .tenants;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].id, ids[1].to_string());

    // Bad input names its fields; a tenant admin may do neither.
    let bad = platform
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                id: "nope".into(),
                status: 9,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into(), "slug".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields = violated_fields(&bad);
    assert!(fields.iter().any(|f| f == "tenant.id"), "{fields:?}");
    assert!(fields.iter().any(|f| f == "update_mask"), "{fields:?}");
    let missing = platform
        .update_tenant(suspend(Uuid::now_v7(), pb::TenantStatus::Suspended))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let mut admin = users.client(Some(&users.token(ids[0], roles::ADMIN))).await;
    let refused = admin
        .update_tenant(suspend(ids[0], pb::TenantStatus::Suspended))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = admin
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// The principal checks a service makes (with a token of its own) are the suite's own
/// calls: with per-user limits of 3 a minute on every service, more new users than that
/// each make their first call to the conversation service, every one of which makes it
/// ask the user service for a standing, and all pass. Counted against the conversation
/// service's own subject, the fourth check would have been refused (and the call with it).
#[tokio::test]
async fn principal_checks_spend_no_rate_limit_budget() {
    let limited = |users: Option<SocketAddr>| Options {
        rate_limits: agentic_platform::config::from_flags(&["--rate-limit-per-minute", "3"]),
        ..checked(users)
    };
    let prefix = slug("checked-limits");
    let (_user_db, users) = start::<UserApp>(&prefix, &limited(None)).await;
    let (_conversation_db, conversations) =
        start::<ConversationApp>(&prefix, &limited(Some(users.addr))).await;
    let (tenant, mut admin) = users.tenant(&slug("budget")).await;
    // One call creates them all: the admin's own budget is 3 calls.
    let created = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            requests: (0..8)
                .map(|n| agentic_e2e::new_user(&format!("u{n}@example.com")))
                .collect(),
            request_id: String::new(),
        })
        .await
        .expect("batch create")
        .into_inner()
        .users;
    for (n, user) in created.iter().enumerate() {
        let token = users.user_token(&user.id, tenant, roles::MEMBER);
        assert_eq!(
            conversation_call(&conversations, &token).await,
            Code::Ok,
            "user {n}'s first call"
        );
    }
}
