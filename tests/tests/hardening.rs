//! Inputs and contracts clients hit from outside: each port lists only its own service,
//! `Struct` fields nested too deep are refused naming the field in every service, and a
//! `min_score` equal to a returned score keeps that result.

use agentic_e2e::agent::{AgentFixture, AgentHarness, agent, create_agent};
use agentic_e2e::conversation::{Suite, create_conversation, new_conversation, user_message};
use agentic_e2e::rag::{RagHarness, create_collection, document, ingest_ready, rag_admin};
use agentic_e2e::{Harness, violated_fields};
use agentic_platform::json::MAX_STRUCT_DEPTH;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::TestService;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::rag::v1 as rag_pb;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use tonic::Code;

/// A `Struct` `depth` levels deep (its own object is level 1, each object or list inside
/// one more): objects and lists taking turns.
fn nested(depth: usize) -> Struct {
    let mut inner = Value {
        kind: Some(Kind::StructValue(Struct::default())),
    };
    for level in (2..depth).rev() {
        let kind = if level % 2 == 0 {
            Kind::ListValue(ListValue {
                values: vec![inner],
            })
        } else {
            Kind::StructValue(Struct {
                fields: [("k".to_owned(), inner)].into(),
            })
        };
        inner = Value { kind: Some(kind) };
    }
    Struct {
        fields: [("k".to_owned(), inner)].into(),
    }
}

/// Objects only, `depth` deep: what reaches prost's recursion limit soonest.
fn objects(depth: usize) -> Struct {
    (1..depth).fold(Struct::default(), |inner, _| Struct {
        fields: [(
            "k".to_owned(),
            Value {
                kind: Some(Kind::StructValue(inner)),
            },
        )]
        .into(),
    })
}

/// The depths every `Struct` field is tried at: one past the stated limit (objects and
/// lists, which still decode), 33 objects, and far past what protobuf decoding takes.
fn too_deep() -> [Struct; 4] {
    [
        nested(MAX_STRUCT_DEPTH + 1),
        objects(MAX_STRUCT_DEPTH + 1),
        objects(40),
        objects(120),
    ]
}

fn assert_too_deep<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        violated_fields(&status).iter().any(|f| f.ends_with(field)),
        "{field}: {status:?}"
    );
    assert!(
        status
            .message()
            .contains(&format!("at most {MAX_STRUCT_DEPTH} levels")),
        "the limit is stated: {status:?}"
    );
    assert!(status.message().len() < 200, "a short message: {status:?}");
}

async fn assert_lists_only<S: ServiceType>(service: &TestService<S>, own: &str) {
    let mut names = service.reflected_services().await;
    names.sort();
    assert_eq!(
        names,
        [
            own,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
}

#[tokio::test]
async fn each_port_lists_its_own_service_health_and_reflection_only() {
    let users = Harness::start().await;
    assert_lists_only(&users.service, "agentic.user.v1.UserService").await;
    let agents = AgentHarness::start().await;
    assert_lists_only(&agents.service, "agentic.agent.v1.AgentService").await;
    let rag = RagHarness::start().await;
    assert_lists_only(&rag.service, "agentic.rag.v1.RagService").await;
}

#[tokio::test]
async fn struct_fields_nested_too_deep_name_their_field_in_the_agent_service() {
    let harness = AgentHarness::start().await;
    let (_, mut client) = harness.service.tenant().await;
    // At the limit it is stored.
    for (slug, config) in [
        ("deep-ok", nested(MAX_STRUCT_DEPTH)),
        ("objects-ok", objects(MAX_STRUCT_DEPTH)),
    ] {
        let mut fits = agent(slug, "m");
        fits.config = Some(config);
        create_agent(&mut client, fits).await;
    }

    for (index, config) in too_deep().into_iter().enumerate() {
        let mut deep = agent(&format!("deep-{index}"), "m");
        deep.config = Some(config);
        let created = client
            .create_agent(agent_pb::CreateAgentRequest {
                request_id: String::new(),
                agent: Some(deep),
            })
            .await;
        assert_too_deep(created, "agent.config");
    }
    let listed = client
        .list_agents(agent_pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(listed.len(), 2, "nothing too deep was stored");
}

#[tokio::test]
async fn struct_fields_nested_too_deep_name_their_field_in_the_conversation_service() {
    let suite = Suite::start().await;
    let mut tenant = suite.tenant("deep").await;
    let conversation = create_conversation(&mut tenant, "deep").await;
    for metadata in too_deep() {
        let mut request = new_conversation(&tenant, "too deep");
        request.metadata = Some(metadata.clone());
        let created = tenant.conversations.create_conversation(request).await;
        assert_too_deep(created, "metadata");

        let mut message = user_message("hello");
        message.metadata = Some(metadata.clone());
        let appended = tenant
            .conversations
            .append_messages(conversation_pb::AppendMessagesRequest {
                conversation_id: conversation.id.clone(),
                messages: vec![message],
            })
            .await;
        assert_too_deep(appended, "metadata");

        let mut tool = user_message("");
        tool.role = conversation_pb::MessageRole::Tool as i32;
        tool.tool_call = Some(conversation_pb::ToolCall {
            name: "lookup".into(),
            arguments: Some(metadata),
            result: "ok".into(),
        });
        let appended = tenant
            .conversations
            .append_messages(conversation_pb::AppendMessagesRequest {
                conversation_id: conversation.id.clone(),
                messages: vec![tool],
            })
            .await;
        assert_too_deep(appended, "arguments");
    }
    let messages = tenant
        .conversations
        .list_messages(conversation_pb::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .messages;
    assert!(messages.is_empty(), "nothing too deep was stored");
}

#[tokio::test]
async fn struct_fields_nested_too_deep_name_their_field_in_the_rag_service() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "deep", 256, 32).await;
    for metadata in too_deep() {
        let mut input = document("deep", "some text");
        input.metadata = Some(metadata.clone());
        let ingested = client
            .ingest_documents(rag_pb::IngestDocumentsRequest {
                request_id: String::new(),
                collection_id: collection.id.clone(),
                documents: vec![input],
                wait: false,
            })
            .await;
        assert_too_deep(ingested, "metadata");

        let searched = client
            .search(rag_pb::SearchRequest {
                collection_id: collection.id.clone(),
                query: "text".into(),
                metadata_filter: Some(metadata),
                ..Default::default()
            })
            .await;
        assert_too_deep(searched, "metadata_filter");
    }
}

#[tokio::test]
async fn a_min_score_equal_to_a_returned_score_keeps_that_result() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "edge", 256, 32).await;
    let documents = [
        "Refunds are paid within five working days of the return.",
        "The warehouse ships parcels every weekday morning.",
        "Support answers questions about invoices and payments.",
        "A return label comes with every parcel we send.",
        "Prices include tax unless the invoice says otherwise.",
        "Payment cards are charged when the parcel leaves.",
    ];
    ingest_ready(
        &mut client,
        &collection.id,
        documents
            .iter()
            .enumerate()
            .map(|(i, text)| document(&format!("doc {i}"), text))
            .collect(),
    )
    .await;
    for mode in [rag_pb::SearchMode::Dense, rag_pb::SearchMode::Hybrid] {
        for query in ["when are refunds paid", "parcel shipping", "invoice tax"] {
            let request = |min_score: Option<f32>| rag_pb::SearchRequest {
                collection_id: collection.id.clone(),
                query: query.into(),
                mode: mode as i32,
                min_score,
                ..Default::default()
            };
            let results = client
                .search(request(None))
                .await
                .expect("search")
                .into_inner()
                .results;
            assert!(!results.is_empty(), "{mode:?} {query:?} finds something");
            for result in &results {
                let kept = client
                    .search(request(Some(result.score)))
                    .await
                    .expect("search with min_score")
                    .into_inner()
                    .results;
                assert!(
                    kept.iter().any(|r| r.chunk_id == result.chunk_id),
                    "{mode:?} {query:?}: min_score {} dropped the result that scored it",
                    result.score
                );
                assert!(kept.iter().all(|r| r.score >= result.score));
            }
        }
    }
}
