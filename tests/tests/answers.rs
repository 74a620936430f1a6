//! Agents that answer (Respond → RunAgent → a model), end to end over real gRPC, with the
//! real local model and with a scripted OpenAI-compatible server over real HTTP.

use std::time::{Duration, Instant};

use agentic_e2e::chat::{
    AnswerSuite, ChatServer, FAKE_PREFIX, Reply, answer_of, collect, finish, respond,
};
use agentic_e2e::{metric_sum, slug};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

const LOCAL: &str = "local/smollm2-135m-instruct";

/// The conversation's messages, oldest first.
async fn messages(
    tenant: &mut agentic_e2e::conversation::Tenant,
    conversation: &str,
) -> Vec<pb::Message> {
    tenant
        .conversations
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.to_owned(),
            page_size: 200,
            ..Default::default()
        })
        .await
        .expect("list messages")
        .into_inner()
        .messages
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_model_answers_a_fixed_question_the_same_way_every_run_and_streams_it() {
    let answers = AnswerSuite::start(None, &[]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("local"), LOCAL, "You are a helpful assistant.")
        .await;
    let mut texts = Vec::new();
    for _ in 0..2 {
        let stream = tenant
            .conversations
            .respond(respond(&conversation, "What is the capital of France?"))
            .await
            .expect("respond")
            .into_inner();
        let answer = collect(stream).await;
        assert!(answer.error.is_none(), "{:?}", answer.error);
        assert!(
            answer.deltas.len() >= 3,
            "streamed in pieces: {:?}",
            answer.deltas
        );
        let done = answer.done.as_ref().expect("done");
        assert_eq!(finish(done), agent_pb::FinishReason::Stop);
        assert!(
            done.prompt_tokens > 0 && done.completion_tokens > 0,
            "{done:?}"
        );
        assert!(done.time_to_first_token.is_some());
        let stored = done.message.as_ref().expect("stored answer");
        assert_eq!(stored.content, answer.text());
        assert_eq!(stored.role, pb::MessageRole::Assistant as i32);
        let started = answer.started.as_ref().expect("started");
        assert_eq!(stored.id, started.answer_id);
        assert_eq!(
            stored.reply_to_id,
            started.user_message.as_ref().expect("user message").id
        );
        texts.push(answer.text());
    }
    assert_eq!(
        texts[0], texts[1],
        "temperature 0 answers the same every run"
    );
    assert!(texts[0].contains("Paris"), "the right fact: {}", texts[0]);
    // Question, answer, question, answer — the second question saw the first exchange.
    let stored = messages(&mut tenant, &conversation).await;
    let roles: Vec<i32> = stored.iter().map(|m| m.role).collect();
    let (user, assistant) = (
        pb::MessageRole::User as i32,
        pb::MessageRole::Assistant as i32,
    );
    assert_eq!(roles, vec![user, assistant, user, assistant]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_gets_the_system_prompt_then_the_history_in_order_then_the_message_and_the_settings()
 {
    let chat = ChatServer::start(vec![Reply::answer(&["Hel", "lo", "!"])]).await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let model = format!("{FAKE_PREFIX}tiny-1");
    let (mut tenant, conversation) = answers
        .tenant(&slug("prov"), &model, "Answer in French.")
        .await;
    let earlier = vec![
        agentic_e2e::conversation::user_message("one"),
        pb::Message {
            role: pb::MessageRole::Assistant as i32,
            ..agentic_e2e::conversation::user_message("two")
        },
    ];
    tenant
        .conversations
        .append_messages(pb::AppendMessagesRequest {
            conversation_id: conversation.clone(),
            messages: earlier,
        })
        .await
        .expect("append");
    let mut request = respond(&conversation, "three");
    request.overrides = Some(agent_pb::GenerationOverrides {
        max_tokens: Some(50),
        temperature: Some(0.25),
        stop: vec!["END".into()],
    });
    let answer = answer_of(&mut tenant.conversations, request).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.deltas, vec!["Hel", "lo", "!"]);
    let done = answer.done.expect("done");
    assert_eq!((done.prompt_tokens, done.completion_tokens), (11, 3));
    assert_eq!(done.message.expect("stored").content, "Hello!");

    // Operators see it.
    let (_, page) = answers.suite.agents.admin_get("/metrics").await;
    let finished = ["model_kind=\"provider\"", "finish=\"stop\""];
    assert_eq!(
        metric_sum(&page, "llm_generations_total", &finished),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric_sum(&page, "llm_time_to_first_token_seconds_count", &[]),
        1.0
    );
    assert_eq!(metric_sum(&page, "llm_overhead_seconds_count", &[]), 1.0);
    assert_eq!(metric_sum(&page, "llm_completion_tokens_total", &[]), 3.0);
    let (_, page) = answers.suite.conversations.admin_get("/metrics").await;
    assert_eq!(
        metric_sum(&page, "respond_answers_total", &["finish=\"stop\""]),
        1.0
    );

    let requests = chat.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(
        sent["model"], "tiny-1",
        "the prefix is the provider's, not the model's"
    );
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["max_tokens"], 50);
    assert!((sent["temperature"].as_f64().unwrap() - 0.25).abs() < 1e-6);
    assert_eq!(sent["stop"], serde_json::json!(["END"]));
    let turns: Vec<(String, String)> = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("system", "Answer in French."),
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
    ];
    assert_eq!(
        turns,
        expected.map(|(r, c)| (r.to_owned(), c.to_owned())).to_vec()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_beyond_the_context_window_loses_its_oldest_turns_first() {
    let chat = ChatServer::start(vec![Reply::answer(&["ok"])]).await;
    let answers = AnswerSuite::start(Some(&chat), &["--chat-context-tokens", "300"]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("window"), &format!("{FAKE_PREFIX}m"), "Be brief.")
        .await;
    let turns: Vec<pb::Message> = (0..30)
        .map(|i| {
            agentic_e2e::conversation::user_message(&format!("turn {i:02} {}", "word ".repeat(15)))
        })
        .collect();
    tenant
        .conversations
        .append_messages(pb::AppendMessagesRequest {
            conversation_id: conversation.clone(),
            messages: turns,
        })
        .await
        .expect("append");
    let mut request = respond(&conversation, "last");
    request.overrides = Some(agent_pb::GenerationOverrides {
        max_tokens: Some(100),
        ..Default::default()
    });
    let answer = answer_of(&mut tenant.conversations, request).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    let sent = &chat.requests()[0]["messages"];
    let contents: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents[0], "Be brief.");
    assert_eq!(*contents.last().unwrap(), "last");
    let kept = &contents[1..contents.len() - 1];
    assert!(
        !kept.is_empty() && kept.len() < 30,
        "some history, not all: {}",
        kept.len()
    );
    // The newest turns, contiguous, in order.
    let first_kept = 30 - kept.len();
    for (offset, content) in kept.iter().enumerate() {
        assert!(
            content.starts_with(&format!("turn {:02} ", first_kept + offset)),
            "{content}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_faults_map_to_codes_and_partial_answers_are_stored_marked() {
    let chat = ChatServer::start(vec![Reply::Status {
        status: 503,
        retry_after: None,
    }])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &["--chat-breaker-threshold", "100"]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("faults"), &format!("{FAKE_PREFIX}m"), "")
        .await;

    // 5xx before the first token: one retry, then UNAVAILABLE; the message is kept.
    let hello = respond(&conversation, "hello");
    let error = tenant
        .conversations
        .respond(hello.clone())
        .await
        .expect_err("unavailable");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert_eq!(chat.requests().len(), 2, "one retry");
    // A retry of the message once the provider is back answers it, in the same place.
    chat.script(vec![Reply::answer(&["hi"])]);
    let retried = answer_of(&mut tenant.conversations, hello).await;
    assert_eq!(retried.text(), "hi");
    let stored = messages(&mut tenant, &conversation).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].content, "hi");
    assert_eq!(chat.requests().len(), 3);

    // 429: RESOURCE_EXHAUSTED with the provider's Retry-After.
    chat.script(vec![Reply::Status {
        status: 429,
        retry_after: Some(7),
    }]);
    let error = tenant
        .conversations
        .respond(respond(&conversation, "hello again"))
        .await
        .expect_err("rate limited");
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    let retry = error.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    assert_eq!(chat.requests().len(), 4, "429 is not retried");

    // A failure mid stream: the text so far, then UNAVAILABLE; stored marked ERROR.
    chat.script(vec![Reply::FailMidStream {
        pieces: vec!["par".into(), "tial".into()],
    }]);
    let answer = answer_of(&mut tenant.conversations, respond(&conversation, "tell me")).await;
    assert_eq!(answer.text(), "partial");
    assert_eq!(
        answer.error.as_ref().map(|e| e.code()),
        Some(Code::Unavailable)
    );
    let stored = messages(&mut tenant, &conversation).await;
    let last = stored.last().expect("the answer");
    assert_eq!(last.content, "partial");
    assert_eq!(last.finish_reason, agent_pb::FinishReason::Error as i32);

    // A stall past the deadline: the answer so far, ended DEADLINE, and the provider's
    // connection closed.
    chat.script(vec![Reply::Stall {
        pieces: vec!["slow".into()],
    }]);
    let mut request = tonic::Request::new(respond(&conversation, "and then?"));
    request.set_timeout(Duration::from_millis(1500));
    let answer = answer_of(&mut tenant.conversations, request).await;
    assert_eq!(answer.text(), "slow");
    let done = answer.done.expect("done before the deadline");
    assert_eq!(finish(&done), agent_pb::FinishReason::Deadline);
    assert_eq!(done.message.expect("stored").content, "slow");
    wait_until(|| chat.dropped().len() >= 2).await;
}

/// Waits up to 5 s for `condition`.
async fn wait_until(condition: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < until, "condition not met within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_answer_stops_the_provider_and_is_stored_as_far_as_it_went() {
    let pieces: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let chat = ChatServer::start(vec![Reply::Answer {
        pieces,
        gap: Duration::from_millis(50),
    }])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("cancel"), &format!("{FAKE_PREFIX}m"), "")
        .await;
    let mut stream = tenant
        .conversations
        .respond(respond(&conversation, "talk"))
        .await
        .expect("respond")
        .into_inner();
    let mut deltas = 0;
    while deltas < 3 {
        if let Some(pb::respond_event::Event::Delta(_)) =
            stream.message().await.expect("event").expect("more").event
        {
            deltas += 1;
        }
    }
    let cancelled = Instant::now();
    drop(stream);
    wait_until(|| !chat.dropped().is_empty()).await;
    let stopped = chat.dropped()[0].saturating_duration_since(cancelled);
    eprintln!("the provider's stream was dropped {stopped:?} after the cancel");
    // The whole answer would take 5 s; it was stopped long before.
    assert!(stopped < Duration::from_secs(4), "{stopped:?}");
    let until = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        let stored = messages(&mut tenant, &conversation).await;
        let answer = stored.last().cloned().expect("answer");
        if answer.finish_reason != agent_pb::FinishReason::Unspecified as i32
            || Instant::now() > until
        {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        answer.finish_reason,
        agent_pb::FinishReason::Cancelled as i32
    );
    assert!(
        answer.content.starts_with("w0 w1 w2 "),
        "{}",
        answer.content
    );
    assert!(
        answer.content.len() < 100 * 3,
        "not the whole answer: {}",
        answer.content
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_message_gets_its_stored_answer_and_concurrent_retries_make_one_answer() {
    let chat = ChatServer::start(vec![Reply::Answer {
        pieces: vec!["the ".into(), "answer".into()],
        gap: Duration::from_millis(200),
    }])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("retry"), &format!("{FAKE_PREFIX}m"), "")
        .await;
    let request = respond(&conversation, "question");
    let first = answer_of(&mut tenant.conversations, request.clone()).await;
    let again = answer_of(&mut tenant.conversations, request.clone()).await;
    assert_eq!(first.text(), "the answer");
    assert_eq!(
        again.deltas,
        vec!["the answer"],
        "the stored answer as one delta"
    );
    assert_eq!(
        first.done.as_ref().and_then(|d| d.message.clone()),
        again.done.as_ref().and_then(|d| d.message.clone())
    );
    assert_eq!(chat.requests().len(), 1, "the model was called once");

    // Two at once with one new id: one answer, one model call.
    let request = respond(&conversation, "another");
    let mut other = tenant.conversations.clone();
    let (a, b) = tokio::join!(
        async { answer_of(&mut tenant.conversations, request.clone()).await },
        async { answer_of(&mut other, request.clone()).await },
    );
    assert_eq!(a.text(), "the answer");
    assert_eq!(b.text(), "the answer");
    assert_eq!(chat.requests().len(), 2);
    let stored = messages(&mut tenant, &conversation).await;
    assert_eq!(stored.len(), 4, "two questions, two answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_and_unknown_models_are_refused_naming_the_field_and_store_nothing() {
    let answers = AnswerSuite::start(None, &[]).await;
    let (mut tenant, conversation) = answers.tenant(&slug("bad"), "nowhere/model-x", "").await;
    let error = tenant
        .conversations
        .respond(respond(&conversation, "hi"))
        .await
        .expect_err("no provider");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("agent.model"),
        "{}",
        error.message()
    );
    // The message is kept, and the failed answer marked, so the history shows it.
    let stored = messages(&mut tenant, &conversation).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[1].content.as_str(), stored[1].finish_reason),
        ("", agent_pb::FinishReason::Error as i32)
    );

    let before = messages(&mut tenant, &conversation).await.len();
    let mut empty = respond(&conversation, "");
    empty.message.as_mut().unwrap().content = "   ".into();
    let mut hot = respond(&conversation, "hi");
    hot.overrides = Some(agent_pb::GenerationOverrides {
        temperature: Some(3.0),
        ..Default::default()
    });
    let mut tool = respond(&conversation, "hi");
    tool.message.as_mut().unwrap().role = pb::MessageRole::Assistant as i32;
    for (request, field) in [
        (empty, "message.content"),
        (hot, "overrides.temperature"),
        (tool, "message.role"),
    ] {
        let error = tenant
            .conversations
            .respond(request)
            .await
            .expect_err(field);
        assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
        assert!(
            error.message().contains(field),
            "{field}: {}",
            error.message()
        );
    }
    let error = tenant
        .conversations
        .respond(respond(&uuid::Uuid::now_v7().to_string(), "hi"))
        .await
        .expect_err("no such conversation");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(
        messages(&mut tenant, &conversation).await.len(),
        before,
        "bad input stores nothing"
    );

    // Another tenant's conversation is invisible.
    let (mut other, _) = answers.tenant(&slug("other"), "nowhere/model-x", "").await;
    let error = other
        .conversations
        .respond(respond(&conversation, "hi"))
        .await
        .expect_err("invisible");
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_model_beyond_its_capacity_refuses_with_retry_info() {
    let answers = AnswerSuite::start(
        None,
        &["--local-model-concurrency", "1", "--local-model-queue", "0"],
    )
    .await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("busy"), LOCAL, "You are a storyteller.")
        .await;
    let mut long = respond(
        &conversation,
        "Write a long story about a dragon and a knight.",
    );
    long.overrides = Some(agent_pb::GenerationOverrides {
        max_tokens: Some(400),
        ..Default::default()
    });
    let mut first = tenant
        .conversations
        .respond(long)
        .await
        .expect("first")
        .into_inner();
    // Generating now.
    loop {
        if let Some(pb::respond_event::Event::Delta(_)) =
            first.message().await.expect("event").expect("more").event
        {
            break;
        }
    }
    let error = tenant
        .conversations
        .respond(respond(&conversation, "And a short one?"))
        .await
        .expect_err("busy");
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    assert!(error.get_details_retry_info().is_some(), "RetryInfo");
    drop(first);
}

/// A collection of `tenant` in the suite's RAG service holding the fact and two others.
async fn knowledge(answers: &AnswerSuite, tenant: uuid::Uuid, slug: &str) -> (String, String) {
    use agentic_e2e::rag::{create_collection, document, ingest_ready, rag_client};
    let mut rag = rag_client(
        &answers.rag.service,
        tenant,
        agentic_platform::auth::roles::ADMIN,
    )
    .await;
    let collection = create_collection(&mut rag, slug, 200, 0).await;
    let documents = ingest_ready(
        &mut rag,
        &collection.id,
        vec![
            agentic_e2e::rag::document(
                "Zorblax reactor",
                "The Zorblax reactor is cooled by liquid neon at 27 kelvin.",
            ),
            document(
                "Gardening",
                "Tomatoes grow best in full sun with regular watering.",
            ),
            document("Trains", "The night train leaves the station at eleven."),
        ],
    )
    .await;
    (collection.id, documents[0].id.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn retrieval_puts_the_agents_knowledge_in_the_prompt_and_the_context_event() {
    let chat = ChatServer::start(vec![Reply::answer(&["Liquid neon."])]).await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let tenant_slug = slug("know");
    let (probe, _) = answers.tenant(&tenant_slug, "fake/m", "").await;
    let (collection, fact) = knowledge(&answers, probe.id, "facts").await;
    let mut agents = probe.agents.clone();
    let mut bound = agentic_e2e::agent::agent(&format!("{tenant_slug}-knows"), "fake/m");
    bound.system_prompt = "You answer questions about reactors.".into();
    bound.collection_ids = vec![collection.clone()];
    let bound = agentic_e2e::agent::create_agent(&mut agents, bound).await;
    assert_eq!(bound.collection_ids, vec![collection.clone()]);
    let retrieval = bound.retrieval.expect("retrieval settings");
    assert_eq!(
        (retrieval.top_k, retrieval.mode),
        (Some(5), agent_pb::RetrievalMode::Hybrid as i32)
    );
    let mut tenant = probe;
    tenant.agent_id = bound.id.clone();
    let conversation = agentic_e2e::conversation::create_conversation(&mut tenant, "knowledge")
        .await
        .id;

    let got = answer_of(
        &mut tenant.conversations,
        respond(&conversation, "How is the Zorblax reactor cooled?"),
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let context = got.context.expect("a context event");
    assert_eq!(context.chunks[0].document_id, fact, "the fact ranks first");
    assert_eq!(context.chunks[0].title, "Zorblax reactor");
    assert!(context.chunks[0].text.contains("liquid neon"));
    let sent = &chat.requests()[0]["messages"];
    let system = sent[0]["content"].as_str().expect("a system message");
    assert!(
        system.starts_with("You answer questions about reactors."),
        "{system}"
    );
    assert!(
        system.contains("Context from the knowledge base"),
        "marked as context: {system}"
    );
    assert!(system.contains("cooled by liquid neon"), "{system}");
    let stored = got.done.expect("done").message.expect("stored");
    let sources = stored
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("sources"))
        .expect("sources");
    assert!(format!("{sources:?}").contains(&fact), "{sources:?}");

    // Another tenant cannot bind this tenant's collection, on create or on update.
    let (mut other, _) = answers.tenant(&slug("thief"), "fake/m", "").await;
    let mut stolen = agentic_e2e::agent::agent(&slug("stolen"), "fake/m");
    stolen.collection_ids = vec![collection.clone()];
    let error = other
        .agents
        .create_agent(agent_pb::CreateAgentRequest {
            agent: Some(stolen),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant's collection");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(
        error.message().contains("agent.collection_ids[0]"),
        "{}",
        error.message()
    );
    let error = other
        .agents
        .update_agent(agent_pb::UpdateAgentRequest {
            agent: Some(agent_pb::Agent {
                id: other.agent_id.clone(),
                collection_ids: vec![collection.clone()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["collection_ids".into()],
            }),
        })
        .await
        .expect_err("another tenant's collection");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    // Bad settings name their field.
    let mut bad = agentic_e2e::agent::agent(&slug("bad"), "fake/m");
    bad.retrieval = Some(agent_pb::Retrieval {
        top_k: Some(0),
        ..Default::default()
    });
    bad.collection_ids = vec!["not-a-uuid".into()];
    let error = other
        .agents
        .create_agent(agent_pb::CreateAgentRequest {
            agent: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("bad settings");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("agent.retrieval.top_k"),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains("agent.collection_ids[0]"),
        "{}",
        error.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_model_answers_from_the_agents_knowledge() {
    let answers = AnswerSuite::start(None, &[]).await;
    let tenant_slug = slug("localknow");
    let (mut tenant, _) = answers.tenant(&tenant_slug, LOCAL, "").await;
    let (collection, _) = knowledge(&answers, tenant.id, "facts").await;
    let mut bound = agentic_e2e::agent::agent(&format!("{tenant_slug}-knows"), LOCAL);
    bound.system_prompt = "You are a helpful assistant.".into();
    bound.temperature = Some(0.0);
    bound.max_tokens = Some(64);
    bound.collection_ids = vec![collection];
    tenant.agent_id = agentic_e2e::agent::create_agent(&mut tenant.agents, bound)
        .await
        .id;
    let conversation = agentic_e2e::conversation::create_conversation(&mut tenant, "knowledge")
        .await
        .id;
    let got = answer_of(
        &mut tenant.conversations,
        respond(&conversation, "What is the Zorblax reactor cooled by?"),
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert!(
        got.text().to_lowercase().contains("neon"),
        "the fact from the knowledge: {}",
        got.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_keeps_failing_opens_its_breaker_and_calls_fail_fast() {
    let chat = ChatServer::start(vec![Reply::Status {
        status: 500,
        retry_after: None,
    }])
    .await;
    let answers = AnswerSuite::start(
        Some(&chat),
        &[
            "--chat-breaker-threshold",
            "2",
            "--chat-breaker-cooldown",
            "60s",
        ],
    )
    .await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("breaker"), &format!("{FAKE_PREFIX}m"), "")
        .await;
    // Two failed tries (the first and its retry) open the breaker.
    let error = tenant
        .conversations
        .respond(respond(&conversation, "one"))
        .await
        .expect_err("unavailable");
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(chat.requests().len(), 2);
    for message in ["two", "three"] {
        let error = tenant
            .conversations
            .respond(respond(&conversation, message))
            .await
            .expect_err("fails fast");
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    }
    assert_eq!(chat.requests().len(), 2, "the open breaker sends nothing");
    // The conversation service still calls the agent service: its own breaker stays shut.
    let (_, page) = answers.suite.conversations.admin_get("/metrics").await;
    assert_eq!(
        metric_sum(&page, "client_breaker_opened_total", &[]),
        0.0,
        "{page}"
    );
}
