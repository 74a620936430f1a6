//! Idempotent creates (AIP-155): a create retried with its request_id, on the same
//! replica or another, alone or eight at once, makes one resource and answers as the
//! first did; the same id with another request is ALREADY_EXISTS naming request_id; and
//! AppendMessages refuses a known message id with other content, keeping nothing.

use agentic_e2e::agent::{AgentFixture, AgentHarness, agent, mcp_server};
use agentic_e2e::conversation::{Suite, create_conversation, new_conversation, user_message};
use agentic_e2e::rag::{RagHarness, create_collection, document, rag_admin};
use agentic_e2e::{Harness, UserFixture, UserService, new_user, slug, violated_fields};
use agentic_platform::testsuite::Options;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::user::v1 as pb;
use tonic::Code;
use uuid::Uuid;

fn assert_reused(status: tonic::Status) {
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("request_id"), "{status:?}");
}

#[tokio::test]
async fn a_retried_create_tenant_makes_one_tenant_on_any_replica_even_eight_at_once() {
    let harness = Harness::start().await;
    let replica =
        UserService::start_on(&harness.db.url, &harness.db.name, &Options::default()).await;
    let mut a = harness
        .service
        .client(Some(&harness.service.platform_token()))
        .await;
    let mut b = replica.client(Some(&replica.platform_token())).await;
    let request = pb::CreateTenantRequest {
        name: "Acme".into(),
        slug: slug("acme"),
        request_id: Uuid::new_v4().to_string(),
    };
    let first = a.create_tenant(request.clone()).await.expect("create");
    let again = b.create_tenant(request.clone()).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());

    let other = a
        .create_tenant(pb::CreateTenantRequest {
            slug: slug("other"),
            ..request.clone()
        })
        .await
        .unwrap_err();
    assert_reused(other);

    // Eight retries of a new request at once, over both replicas: one tenant.
    let request = pb::CreateTenantRequest {
        name: "Burst".into(),
        slug: slug("burst"),
        request_id: Uuid::new_v4().to_string(),
    };
    let calls = (0..8).map(|i| {
        let mut client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let request = request.clone();
        async move { client.create_tenant(request).await }
    });
    let answers = futures::future::join_all(calls).await;
    let ids: Vec<String> = answers
        .into_iter()
        .map(|answer| {
            answer
                .expect("every retry succeeds")
                .into_inner()
                .tenant
                .unwrap()
                .id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let listed = a
        .list_tenants(pb::ListTenantsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .tenants;
    assert_eq!(
        listed.iter().filter(|t| t.slug == request.slug).count(),
        1,
        "one tenant"
    );

    let bad = a
        .create_tenant(pb::CreateTenantRequest {
            request_id: "not-a-uuid".into(),
            ..request
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(violated_fields(&bad).contains(&"request_id".to_owned()));
}

#[tokio::test]
async fn retried_user_creates_make_each_user_once() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("users")).await;
    let request = pb::CreateUserRequest {
        request_id: Uuid::new_v4().to_string(),
        password: "correct horse".into(),
        ..new_user("ada@example.com")
    };
    let first = admin.create_user(request.clone()).await.expect("create");
    let again = admin.create_user(request.clone()).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());
    let other = admin
        .create_user(pb::CreateUserRequest {
            password: "another password".into(),
            ..request
        })
        .await
        .unwrap_err();
    assert_reused(other);

    let batch = pb::BatchCreateUsersRequest {
        requests: vec![new_user("b1@example.com"), new_user("b2@example.com")],
        request_id: Uuid::new_v4().to_string(),
    };
    let first = admin
        .batch_create_users(batch.clone())
        .await
        .expect("batch");
    let again = admin.batch_create_users(batch).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());

    let inner = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            requests: vec![pb::CreateUserRequest {
                request_id: Uuid::new_v4().to_string(),
                ..new_user("b3@example.com")
            }],
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(inner.code(), Code::InvalidArgument);
    assert!(
        violated_fields(&inner).contains(&"requests[0].request_id".to_owned()),
        "{inner:?}"
    );
    let users = admin
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .users;
    assert_eq!(users.len(), 3, "ada, b1 and b2, once each");
}

#[tokio::test]
async fn retried_agent_service_creates_make_each_resource_once() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;

    let request = agent_pb::CreateAgentRequest {
        agent: Some(agent("retried", "m")),
        request_id: Uuid::new_v4().to_string(),
    };
    let calls = (0..8).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { client.create_agent(request).await }
    });
    let ids: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|answer| {
            answer
                .expect("every retry succeeds")
                .into_inner()
                .agent
                .unwrap()
                .id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let agents = admin
        .list_agents(agent_pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(agents.len(), 1);
    let mut renamed = request.clone();
    renamed.agent.as_mut().unwrap().name = "Another".into();
    assert_reused(admin.create_agent(renamed).await.unwrap_err());

    let server = agent_pb::CreateMcpServerRequest {
        mcp_server: Some(mcp_server("tools", "s3cret")),
        request_id: Uuid::new_v4().to_string(),
    };
    let first = admin
        .create_mcp_server(server.clone())
        .await
        .expect("server");
    let again = admin.create_mcp_server(server).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());

    let workflow = agent_pb::CreateWorkflowRequest {
        workflow: Some(agent_pb::Workflow {
            name: "Flow".into(),
            steps: vec![agent_pb::WorkflowStep {
                name: String::new(),
                agent_id: ids[0].clone(),
                input_template: "{{input}}".into(),
            }],
            ..Default::default()
        }),
        request_id: Uuid::new_v4().to_string(),
    };
    let first = admin
        .create_workflow(workflow.clone())
        .await
        .expect("workflow");
    let again = admin.create_workflow(workflow).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());
}

#[tokio::test]
async fn retried_conversation_creates_and_appends_keep_one_copy_and_refuse_changed_messages() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant("retries").await;
    let request = conversation_pb::CreateConversationRequest {
        request_id: Uuid::new_v4().to_string(),
        ..new_conversation(&tenant, "retried")
    };
    let first = tenant
        .conversations
        .create_conversation(request.clone())
        .await
        .expect("create");
    let again = tenant
        .conversations
        .create_conversation(request)
        .await
        .expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());

    let conversation = create_conversation(&mut tenant, "messages").await;
    let hello = user_message("hello");
    let append = |messages: Vec<conversation_pb::Message>| conversation_pb::AppendMessagesRequest {
        conversation_id: conversation.id.clone(),
        messages,
    };
    let stored = tenant
        .conversations
        .append_messages(append(vec![hello.clone()]))
        .await
        .expect("append")
        .into_inner()
        .messages;
    let retried = tenant
        .conversations
        .append_messages(append(vec![hello.clone()]))
        .await
        .expect("retry")
        .into_inner()
        .messages;
    assert_eq!(stored, retried);

    // The same id with other content, beside a new message: nothing is kept.
    let changed = conversation_pb::Message {
        content: "something else".into(),
        ..hello.clone()
    };
    let refused = tenant
        .conversations
        .append_messages(append(vec![user_message("new"), changed]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    assert!(refused.message().contains("messages[1].id"), "{refused:?}");
    let listed = tenant
        .conversations
        .list_messages(conversation_pb::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .messages;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].content, "hello");
}

#[tokio::test]
async fn retried_rag_creates_and_ingests_store_once() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let request = rag_pb::CreateCollectionRequest {
        collection: Some(rag_pb::Collection {
            name: "Retried".into(),
            slug: "retried".into(),
            ..Default::default()
        }),
        request_id: Uuid::new_v4().to_string(),
    };
    let first = client
        .create_collection(request.clone())
        .await
        .expect("create");
    let again = client.create_collection(request).await.expect("retry");
    assert_eq!(first.into_inner(), again.into_inner());

    let collection = create_collection(&mut client, "ingest", 256, 32).await;
    let ingest = rag_pb::IngestDocumentsRequest {
        collection_id: collection.id.clone(),
        documents: vec![
            document("one", "first text"),
            document("two", "second text"),
        ],
        wait: false,
        request_id: Uuid::new_v4().to_string(),
    };
    let first = client
        .ingest_documents(ingest.clone())
        .await
        .expect("ingest")
        .into_inner()
        .documents;
    let again = client
        .ingest_documents(ingest.clone())
        .await
        .expect("retry")
        .into_inner()
        .documents;
    let ids = |docs: &[rag_pb::Document]| docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    let listed = client
        .list_documents(rag_pb::ListDocumentsRequest {
            collection_id: collection.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .documents;
    assert_eq!(listed.len(), 2, "stored once");
    let other = client
        .ingest_documents(rag_pb::IngestDocumentsRequest {
            documents: vec![document("three", "third text")],
            ..ingest
        })
        .await
        .unwrap_err();
    assert_reused(other);
}
