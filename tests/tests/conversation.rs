//! The conversation service end to end, with the real user and agent services behind it:
//! CRUD, paging, appends (idempotent, gap-free under concurrency), the checks it makes
//! with the other services, their failure, deadlines, call counts and isolation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use agentic_e2e::agent::{agent, create_agent, mask};
use agentic_e2e::conversation::{Suite, create_conversation, new_conversation, user_message};
use agentic_e2e::{metric_sum, slug};
use agentic_platform::auth::roles;
use agentic_platform::testsuite::Options;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use agentic_proto::user::v1 as user_pb;
use tonic::Code;
use tonic_types::StatusExt;

fn append(conversation: &str, messages: Vec<pb::Message>) -> pb::AppendMessagesRequest {
    pb::AppendMessagesRequest {
        conversation_id: conversation.to_owned(),
        messages,
    }
}

#[tokio::test]
async fn conversations_are_created_read_listed_updated_and_deleted_with_their_messages() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("conv")).await;
    let first = create_conversation(&mut tenant, "First").await;
    assert_eq!(first.status, pb::ConversationStatus::Active as i32);
    assert_eq!(first.message_count, 0);
    let mut ids = vec![first.id.clone()];
    for i in 0..4 {
        ids.push(create_conversation(&mut tenant, &format!("C{i}")).await.id);
    }

    let got = tenant
        .conversations
        .get_conversation(pb::GetConversationRequest {
            id: first.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .conversation;
    assert_eq!(got, Some(first.clone()));

    // Newest first, two per page, each exactly once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = tenant
            .conversations
            .list_conversations(pb::ListConversationsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.conversations.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every one once");

    let updated = tenant
        .conversations
        .update_conversation(pb::UpdateConversationRequest {
            conversation: Some(pb::Conversation {
                id: first.id.clone(),
                title: "Renamed".into(),
                status: pb::ConversationStatus::Archived as i32,
                ..Default::default()
            }),
            update_mask: mask(&["title", "status"]),
        })
        .await
        .expect("update")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(updated.title, "Renamed");
    let archived = tenant
        .conversations
        .list_conversations(pb::ListConversationsRequest {
            status: pb::ConversationStatus::Archived as i32,
            ..Default::default()
        })
        .await
        .expect("filter")
        .into_inner();
    assert_eq!(archived.conversations.len(), 1);

    tenant
        .conversations
        .append_messages(append(&first.id, vec![user_message("hello")]))
        .await
        .expect("append");
    tenant
        .conversations
        .delete_conversation(pb::DeleteConversationRequest {
            id: first.id.clone(),
        })
        .await
        .expect("delete");
    let gone = tenant
        .conversations
        .list_messages(pb::ListMessagesRequest {
            conversation_id: first.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let left = suite
        .conversation_db
        .query_bytes("SELECT id::text::bytea AS value FROM conversations.messages")
        .await;
    assert!(left.is_empty(), "the messages went with their conversation");
}

#[tokio::test]
async fn appends_are_idempotent_ordered_and_gap_free_under_concurrency() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("append")).await;
    let conversation = create_conversation(&mut tenant, "Busy").await;

    let batch: Vec<pb::Message> = (0..10)
        .map(|i| pb::Message {
            role: if i % 2 == 0 {
                pb::MessageRole::User
            } else {
                pb::MessageRole::Assistant
            } as i32,
            token_count: i,
            ..user_message(&format!("message {i}"))
        })
        .collect();
    let stored = tenant
        .conversations
        .append_messages(append(&conversation.id, batch.clone()))
        .await
        .expect("append")
        .into_inner()
        .messages;
    let sequences: Vec<i64> = stored.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    assert_eq!(stored[3].content, "message 3");

    // A retry with the same ids adds nothing and answers the same.
    let retried = tenant
        .conversations
        .append_messages(append(&conversation.id, batch))
        .await
        .expect("retry")
        .into_inner()
        .messages;
    assert_eq!(retried, stored);

    // 32 appenders at once, 3 messages each.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut client = suite.conversation_client(tenant.id, roles::MEMBER).await;
        let id = conversation.id.clone();
        tasks.push(tokio::spawn(async move {
            let messages = (0..3).map(|i| user_message(&format!("c{i}"))).collect();
            client
                .append_messages(append(&id, messages))
                .await
                .expect("concurrent append")
                .into_inner()
                .messages
        }));
    }
    for task in tasks {
        let appended = task.await.expect("task");
        let s: Vec<i64> = appended.iter().map(|m| m.sequence).collect();
        assert!(
            s.windows(2).all(|w| w[1] == w[0] + 1),
            "one call's messages are contiguous: {s:?}"
        );
    }

    // Every sequence 1..=106 exactly once, both ways.
    let mut forward = Vec::new();
    let mut token = String::new();
    loop {
        let page = tenant
            .conversations
            .list_messages(pb::ListMessagesRequest {
                conversation_id: conversation.id.clone(),
                page_size: 40,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        forward.extend(page.messages.iter().map(|m| m.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(forward, (1..=106).collect::<Vec<_>>());
    let newest = tenant
        .conversations
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            page_size: 5,
            order_by: pb::MessageOrder::NewestFirst as i32,
            from_sequence: 50,
            ..Default::default()
        })
        .await
        .expect("newest")
        .into_inner();
    let s: Vec<i64> = newest.messages.iter().map(|m| m.sequence).collect();
    assert_eq!(s, [50, 49, 48, 47, 46]);
    let got = tenant
        .conversations
        .get_conversation(pb::GetConversationRequest {
            id: conversation.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(
        got.message_count, 106,
        "the cached count was dropped on append"
    );
    assert!(got.last_message_time.is_some());
}

#[tokio::test]
async fn the_agent_and_user_are_checked_with_their_services() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("checks")).await;
    let paused = create_agent(
        &mut tenant.agents,
        agent_pb::Agent {
            status: agent_pb::AgentStatus::Paused as i32,
            ..agent("paused", "m")
        },
    )
    .await;
    let deleted = create_agent(&mut tenant.agents, agent("deleted", "m")).await;
    tenant
        .agents
        .delete_agent(agent_pb::DeleteAgentRequest {
            id: deleted.id.clone(),
            etag: String::new(),
        })
        .await
        .expect("delete agent");
    let inactive = agentic_e2e::create_user(&mut tenant.users, "inactive@example.com").await;
    tenant
        .users
        .update_user(user_pb::UpdateUserRequest {
            user: Some(user_pb::User {
                id: inactive.id.clone(),
                status: user_pb::UserStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
        })
        .await
        .expect("deactivate");
    let missing = uuid::Uuid::now_v7().to_string();

    let base = new_conversation(&tenant, "x");
    for (request, code, what) in [
        (
            pb::CreateConversationRequest {
                agent_id: missing.clone(),
                ..base.clone()
            },
            Code::NotFound,
            "agent",
        ),
        (
            pb::CreateConversationRequest {
                agent_id: deleted.id.clone(),
                ..base.clone()
            },
            Code::NotFound,
            "agent",
        ),
        (
            pb::CreateConversationRequest {
                agent_id: paused.id.clone(),
                ..base.clone()
            },
            Code::FailedPrecondition,
            "agent",
        ),
        (
            pb::CreateConversationRequest {
                user_id: missing.clone(),
                ..base.clone()
            },
            Code::NotFound,
            "user",
        ),
        (
            pb::CreateConversationRequest {
                user_id: inactive.id.clone(),
                ..base.clone()
            },
            Code::FailedPrecondition,
            "user",
        ),
    ] {
        let status = tenant
            .conversations
            .create_conversation(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(what), "{status:?}");
    }

    // Another tenant's agent is as good as missing, through this service too.
    let other = suite.tenant(&slug("other")).await;
    let foreign = tenant
        .conversations
        .create_conversation(pb::CreateConversationRequest {
            agent_id: other.agent_id.clone(),
            ..base.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let listed = tenant
        .conversations
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.conversations.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_page_with_agent_names_is_one_query_and_one_batch_call() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("names")).await;
    let mut agents = vec![tenant.agent_id.clone()];
    for i in 0..3 {
        agents.push(
            create_agent(&mut tenant.agents, agent(&format!("names-{i}"), "m"))
                .await
                .id,
        );
    }
    for i in 0..20 {
        let request = pb::CreateConversationRequest {
            agent_id: agents[i % agents.len()].clone(),
            ..new_conversation(&tenant, &format!("c{i}"))
        };
        tenant
            .conversations
            .create_conversation(request)
            .await
            .expect("create");
    }

    let batch_calls = || async {
        let (_, page) = suite.agents.admin_get("/metrics").await;
        metric_sum(
            &page,
            "grpc_server_handled_total",
            &["grpc_method=\"BatchGetAgents\""],
        )
    };
    let calls_before = batch_calls().await;
    let queries_before = suite.conversations.queries();
    let page = tenant
        .conversations
        .list_conversations(pb::ListConversationsRequest {
            page_size: 20,
            include_agent: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.conversations.len(), 20);
    assert!(
        page.conversations
            .iter()
            .all(|c| c.agent_name.starts_with("Agent "))
    );
    assert_eq!(
        suite.conversations.queries() - queries_before,
        1,
        "one query"
    );
    assert_eq!(
        batch_calls().await - calls_before,
        1.0,
        "one BatchGetAgents call"
    );
}

/// Tests run every service in one process, so series are told apart by their label.
const AGENT: &str = "service=\"agent\"";

#[tokio::test]
async fn a_callers_deadline_reaches_the_agent_service_shortened() {
    let suite = Suite::start().await;
    let tenant = suite.tenant(&slug("deadline")).await;
    let deadlines = || async {
        let (_, page) = suite.agents.admin_get("/metrics").await;
        (
            metric_sum(&page, "grpc_server_caller_deadline_seconds_count", &[AGENT]),
            metric_sum(&page, "grpc_server_caller_deadline_seconds_sum", &[AGENT]),
            metric_sum(
                &page,
                "grpc_server_caller_deadline_seconds_bucket",
                &[AGENT, "le=\"0.5\""],
            ),
        )
    };
    let (count_before, sum_before, within_before) = deadlines().await;
    let mut client = suite.conversation_client(tenant.id, roles::ADMIN).await;
    for _ in 0..5 {
        let mut request = tonic::Request::new(new_conversation(&tenant, "timed"));
        request.set_timeout(Duration::from_millis(300));
        client.create_conversation(request).await.expect("create");
    }
    let (count, sum, within) = deadlines().await;
    let calls = count - count_before;
    assert_eq!(calls, 5.0, "the agent saw every call with a deadline");
    assert_eq!(within - within_before, 5.0, "every one under 0.5 s");
    let mean = (sum - sum_before) / calls;
    assert!(
        mean <= 0.300 && mean > 0.2,
        "the agent saw {mean:.3} s of a 300 ms deadline"
    );
}

#[tokio::test]
async fn a_stopped_agent_service_fails_calls_fast_and_they_recover_when_it_returns() {
    let mut suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("down")).await;
    create_conversation(&mut tenant, "before").await;
    let agent_addr = suite.agents.addr;
    let agents = std::mem::replace(
        &mut suite.agents,
        agentic_e2e::agent::AgentService::start_on(
            &suite.agent_db.url,
            &suite.agent_db.name,
            &Options::default(),
        )
        .await,
    );
    agents.stop().await;

    // Until the breaker opens each call still finds out; after, it fails at once.
    for _ in 0..5 {
        let status = tenant
            .conversations
            .create_conversation(new_conversation(&tenant, "x"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let started = Instant::now();
    let status = tenant
        .conversations
        .create_conversation(new_conversation(&tenant, "x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("dependency").map(String::as_str),
        Some("agent")
    );
    assert!(
        took < Duration::from_millis(100),
        "an open breaker answered in {took:?}"
    );
    assert_eq!(
        suite.conversations.health("").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving,
        "readiness follows only the service's own database"
    );

    // The agent service comes back on its address: a probe closes the breaker.
    let options = Options::default();
    let mut args = options.service_args(&suite.agent_db.url, &suite.agent_db.name);
    args.server.grpc_addr = Some(agent_addr);
    let own = options.own_args::<agentic_agent::AgentApp>();
    let _back = agentic_e2e::agent::AgentService::start_with_args(args, own).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tenant
            .conversations
            .create_conversation(new_conversation(&tenant, "after"))
            .await
        {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), Code::Unavailable);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("no recovery: {status:?}"),
        }
    }
}

#[tokio::test]
async fn another_tenant_reaches_nothing_through_any_rpc() {
    let suite = Suite::start().await;
    let mut a = suite.tenant(&slug("iso-a")).await;
    let mut b = suite.tenant(&slug("iso-b")).await;
    let victim = create_conversation(&mut a, "private").await;
    a.conversations
        .append_messages(append(&victim.id, vec![user_message("secret")]))
        .await
        .expect("append in A");

    let not_found = |result: Result<(), tonic::Status>, rpc: &str| {
        assert_eq!(result.unwrap_err().code(), Code::NotFound, "{rpc}");
    };
    let c = &mut b.conversations;
    not_found(
        c.get_conversation(pb::GetConversationRequest {
            id: victim.id.clone(),
        })
        .await
        .map(|_| ()),
        "GetConversation",
    );
    not_found(
        c.update_conversation(pb::UpdateConversationRequest {
            conversation: Some(pb::Conversation {
                id: victim.id.clone(),
                title: "pwned".into(),
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
        })
        .await
        .map(|_| ()),
        "UpdateConversation",
    );
    not_found(
        c.append_messages(append(&victim.id, vec![user_message("x")]))
            .await
            .map(|_| ()),
        "AppendMessages",
    );
    not_found(
        c.list_messages(pb::ListMessagesRequest {
            conversation_id: victim.id.clone(),
            ..Default::default()
        })
        .await
        .map(|_| ()),
        "ListMessages",
    );
    not_found(
        c.delete_conversation(pb::DeleteConversationRequest {
            id: victim.id.clone(),
        })
        .await
        .map(|_| ()),
        "DeleteConversation",
    );
    let listed = c
        .list_conversations(pb::ListConversationsRequest {
            agent_id: a.agent_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.conversations.is_empty());
    // B cannot start a conversation with A's agent or user.
    let with_a = c
        .create_conversation(pb::CreateConversationRequest {
            request_id: String::new(),
            agent_id: a.agent_id.clone(),
            user_id: a.user_id.clone(),
            title: String::new(),
            metadata: None,
        })
        .await
        .unwrap_err();
    assert_eq!(with_a.code(), Code::NotFound);

    let still = a
        .conversations
        .get_conversation(pb::GetConversationRequest {
            id: victim.id.clone(),
        })
        .await
        .expect("A reads it")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(still.title, "private");
    assert_eq!(still.message_count, 1);

    // Viewers read but do not write.
    let mut viewer = suite.conversation_client(a.id, roles::VIEWER).await;
    viewer
        .get_conversation(pb::GetConversationRequest {
            id: victim.id.clone(),
        })
        .await
        .expect("viewer reads");
    let denied = viewer
        .append_messages(append(&victim.id, vec![user_message("x")]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_messages_are_named_and_nothing_is_appended() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("bad")).await;
    let conversation = create_conversation(&mut tenant, "c").await;
    let twice = user_message("a");
    let cases: Vec<(Vec<pb::Message>, &str)> = vec![
        (vec![], "messages"),
        (vec![user_message("x"); 101], "messages"),
        (
            vec![pb::Message {
                role: 0,
                ..user_message("x")
            }],
            "messages[0].role",
        ),
        (
            vec![pb::Message {
                id: "nope".into(),
                ..user_message("x")
            }],
            "messages[0].id",
        ),
        (
            vec![user_message("ok"), user_message("nul\0")],
            "messages[1].content",
        ),
        (
            vec![user_message(&"x".repeat(100_001))],
            "messages[0].content",
        ),
        (
            vec![pb::Message {
                token_count: -1,
                ..user_message("x")
            }],
            "messages[0].token_count",
        ),
        (
            vec![pb::Message {
                role: pb::MessageRole::Tool as i32,
                ..user_message("x")
            }],
            "messages[0].tool_call",
        ),
        (vec![twice.clone(), twice], "messages[1].id"),
    ];
    for (messages, field) in cases {
        let status = tenant
            .conversations
            .append_messages(append(&conversation.id, messages))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            agentic_e2e::violated_fields(&status)
                .iter()
                .any(|f| f == field),
            "{field}: {status:?}"
        );
    }
    let page = tenant
        .conversations
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(page.messages.is_empty());
    let unique: HashSet<_> = page.messages.iter().map(|m| m.id.clone()).collect();
    assert!(unique.is_empty());
}

#[tokio::test]
async fn calls_are_balanced_per_request_over_every_address_of_a_dependency() {
    let suite = Suite::start().await;
    let tenant = suite.tenant(&slug("balance")).await;
    // Two more agent replicas on the same database, caching nothing, so every GetAgent
    // they answer is a query of their own.
    let uncached = Options {
        cache_enabled: false,
        ..Options::default()
    };
    let replica_a = agentic_e2e::agent::AgentService::start_on(
        &suite.agent_db.url,
        &suite.agent_db.name,
        &uncached,
    )
    .await;
    let replica_b = agentic_e2e::agent::AgentService::start_on(
        &suite.agent_db.url,
        &suite.agent_db.name,
        &uncached,
    )
    .await;
    // One of them by name (resolved through DNS), the other by address.
    let agents = format!(
        "http://localhost:{},http://{}",
        replica_a.addr.port(),
        replica_b.addr
    );
    let balanced = Suite::start_conversations(
        &suite.conversation_db,
        &format!("http://{}", suite.users.addr),
        &agents,
    )
    .await;
    let token = balanced.token(tenant.id, roles::ADMIN);
    let mut client = agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient::new(
        balanced.bearer_channel(Some(&token)).await,
    );
    for i in 0..40 {
        client
            .create_conversation(new_conversation(&tenant, &format!("b{i}")))
            .await
            .expect("create through the balanced channel");
    }
    let (a, b) = (replica_a.queries(), replica_b.queries());
    assert_eq!(a + b, 40, "every check went to one of the two");
    assert!(
        a >= 5 && b >= 5,
        "spread per request over one client connection: {a} / {b}"
    );
}

/// Index entries an append of ten new messages reads, counted by PostgreSQL for this
/// connection's transaction: the function run as the service runs it, on a generic plan.
async fn index_entries_read_by_one_append(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &str,
    conversation: &str,
) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

    #[derive(diesel::QueryableByName)]
    struct Read {
        #[diesel(sql_type = BigInt)]
        entries: i64,
    }
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        conn.batch_execute(&format!(
            "SELECT count(*) FROM conversations.append_new_messages(
                 '{tenant}', '{conversation}',
                 ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 10)),
                 array_fill('user'::text, ARRAY[10]), array_fill('x'::text, ARRAY[10]),
                 array_fill(0, ARRAY[10]), array_fill(NULL::text, ARRAY[10]),
                 array_fill(NULL::jsonb, ARRAY[10]), array_fill(NULL::text, ARRAY[10]),
                 array_fill('{{}}'::jsonb, ARRAY[10]))"
        ))
        .await?;
        let read: Read = diesel::sql_query(
            "SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)::bigint \
             AS entries FROM pg_index WHERE indrelid = 'conversations.messages'::regclass",
        )
        .get_result(conn)
        .await?;
        Ok(read.entries)
    })
    .await
    .expect("append in a transaction of the test's own")
}

#[tokio::test]
async fn an_append_probes_its_ids_whatever_the_statistics_say() {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};

    let suite = Suite::start().await;
    let mut tenant = suite.tenant(&slug("probes")).await;
    let conversation = create_conversation(&mut tenant, "Long").await;
    // 2,000 messages through the service.
    for round in 0..20 {
        let messages = (0..100)
            .map(|i| user_message(&format!("{round}-{i}")))
            .collect();
        tenant
            .conversations
            .append_messages(append(&conversation.id, messages))
            .await
            .expect("append");
    }

    let mut conn = diesel_async::AsyncPgConnection::establish(&suite.conversation_db.url)
        .await
        .expect("connect");
    // Statistics that call every conversation short (as they do after many short ones),
    // and the generic plan a pooled connection settles on after a few calls.
    conn.batch_execute(
        "ALTER TABLE conversations.messages ALTER COLUMN conversation_id SET (n_distinct = -0.5);
         ANALYZE conversations.messages;
         SET plan_cache_mode = force_generic_plan;",
    )
    .await
    .expect("statistics");
    let tenant_id = tenant.id.to_string();
    for _ in 0..3 {
        let read = index_entries_read_by_one_append(&mut conn, &tenant_id, &conversation.id).await;
        // Ten probes for the new ids and ten for the answer (each at most an entry or
        // two), never the conversation's 2,000 entries.
        assert!(
            read <= 60,
            "an append read {read} index entries of a 2,000-message conversation"
        );
    }
}
