//! Workflow runs end to end over real gRPC: stored, streamed, readable afterwards,
//! outliving their caller, cancellable mid step; on the real local model and on a
//! scripted OpenAI-compatible provider.

use std::time::{Duration, Instant};

use agentic_e2e::chat::{AnswerSuite, ChatServer, FAKE_PREFIX, Reply};
use agentic_e2e::conversation::Tenant;
use agentic_e2e::slug;
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::workflow_run_event::Event;
use tonic::Code;

const LOCAL: &str = "local/smollm2-135m-instruct";

/// A workflow of the tenant's agent, one step per template.
async fn workflow(tenant: &mut Tenant, templates: &[&str]) -> pb::Workflow {
    let steps = templates
        .iter()
        .enumerate()
        .map(|(i, template)| pb::WorkflowStep {
            name: format!("step-{i}"),
            agent_id: tenant.agent_id.clone(),
            input_template: (*template).to_owned(),
        })
        .collect();
    tenant
        .agents
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: "chain".into(),
                steps,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create workflow")
        .into_inner()
        .workflow
        .expect("workflow")
}

fn execute(workflow: &pb::Workflow, input: &str, request_id: &str) -> pb::ExecuteWorkflowRequest {
    pb::ExecuteWorkflowRequest {
        workflow_id: workflow.id.clone(),
        input: input.to_owned(),
        request_id: request_id.to_owned(),
        overrides: Some(pb::GenerationOverrides {
            max_tokens: Some(24),
            temperature: Some(0.0),
            stop: Vec::new(),
        }),
    }
}

/// Every event of a run's stream, to its end.
async fn events_of(mut stream: tonic::Streaming<pb::WorkflowRunEvent>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.expect("a run event") {
        events.extend(event.event);
    }
    events
}

fn kind(event: &Event) -> &'static str {
    match event {
        Event::RunStarted(_) => "run_started",
        Event::StepStarted(_) => "step_started",
        Event::Delta(_) => "delta",
        Event::StepFinished(_) => "step_finished",
        Event::RunFinished(_) => "run_finished",
    }
}

fn finished(events: &[Event]) -> pb::WorkflowRun {
    match events.last() {
        Some(Event::RunFinished(run)) => run.clone(),
        other => panic!("the stream ended without run_finished: {other:?}"),
    }
}

async fn get_run(tenant: &mut Tenant, id: &str) -> pb::WorkflowRun {
    tenant
        .agents
        .get_workflow_run(pb::GetWorkflowRunRequest { id: id.to_owned() })
        .await
        .expect("get run")
        .into_inner()
        .run
        .expect("run")
}

/// Reads the run until it is finished, for up to `within`.
async fn wait_finished(tenant: &mut Tenant, id: &str, within: Duration) -> pb::WorkflowRun {
    let until = Instant::now() + within;
    loop {
        let run = get_run(tenant, id).await;
        let status = pb::WorkflowRunStatus::try_from(run.status).unwrap();
        if !matches!(
            status,
            pb::WorkflowRunStatus::Queued | pb::WorkflowRunStatus::Running
        ) {
            return run;
        }
        assert!(Instant::now() < until, "the run is still {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_step_workflow_on_the_local_model_gives_the_same_outputs_every_run() {
    let answers = AnswerSuite::start(None, &[]).await;
    let (mut tenant, _) = answers
        .tenant(
            &slug("flow"),
            LOCAL,
            "You are a helpful assistant. Answer briefly.",
        )
        .await;
    let flow = workflow(
        &mut tenant,
        &[
            "What is the capital of {{input}}?",
            "Say this again in other words: {{steps.0.output}}",
            "Name one famous building in the city named here: {{steps.0.output}}",
        ],
    )
    .await;
    let mut outputs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let stream = tenant
            .agents
            .execute_workflow(execute(&flow, "France", ""))
            .await
            .expect("execute")
            .into_inner();
        let events = events_of(stream).await;
        // run_started, then per step: step_started, deltas, step_finished; run_finished.
        let mut order: Vec<&str> = events.iter().map(kind).collect();
        order.dedup();
        assert_eq!(
            order,
            [
                "run_started",
                "step_started",
                "delta",
                "step_finished",
                "step_started",
                "delta",
                "step_finished",
                "step_started",
                "delta",
                "step_finished",
                "run_finished"
            ]
        );
        let run = finished(&events);
        assert_eq!(
            run.status,
            pb::WorkflowRunStatus::Succeeded as i32,
            "{}",
            run.error
        );
        assert_eq!(run.steps.len(), 3);
        // Each step's deltas add up to its stored output.
        for step in &run.steps {
            let streamed: String = events
                .iter()
                .filter_map(|e| match e {
                    Event::Delta(d) if d.step == step.index => Some(d.text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(streamed, step.output);
            assert!(
                step.prompt_tokens > 0 && step.completion_tokens > 0,
                "{step:?}"
            );
            assert!(step.end_time.is_some());
        }
        assert_eq!(run.steps[0].input, "What is the capital of France?");
        assert!(run.steps[1].input.ends_with(&run.steps[0].output));
        assert_eq!(run.output, run.steps[2].output);
        outputs.push(
            run.steps
                .iter()
                .map(|s| s.output.clone())
                .collect::<Vec<_>>(),
        );
        ids.push(run.id.clone());
        // Readable afterwards, as streamed.
        let stored = get_run(&mut tenant, &run.id).await;
        assert_eq!(stored.steps, run.steps);
        assert_eq!(stored.attempts, 1);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "temperature 0: the same outputs every run"
    );
    assert!(outputs[0][0].contains("Paris"), "{:?}", outputs[0]);

    // Listed newest first, by status, a page at a time.
    let page = tenant
        .agents
        .list_workflow_runs(pb::ListWorkflowRunsRequest {
            workflow_id: flow.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].id, ids[1]);
    let next = tenant
        .agents
        .list_workflow_runs(pb::ListWorkflowRunsRequest {
            workflow_id: flow.id.clone(),
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.runs[0].id, ids[0]);
    assert!(next.next_page_token.is_empty());
    let failed = tenant
        .agents
        .list_workflow_runs(pb::ListWorkflowRunsRequest {
            workflow_id: flow.id.clone(),
            status: pb::WorkflowRunStatus::Failed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(failed.runs.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_starts_one_run_and_a_repeat_follows_it() {
    let chat = ChatServer::start(vec![Reply::Answer {
        pieces: vec!["one".into(), " two".into()],
        gap: Duration::from_millis(100),
    }])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, _) = answers
        .tenant(&slug("once"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let flow = workflow(&mut tenant, &["{{input}}", "{{steps.0.output}}!"]).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = tenant
        .agents
        .execute_workflow(execute(&flow, "go", &request_id))
        .await
        .expect("first")
        .into_inner();
    let second = tenant
        .agents
        .execute_workflow(execute(&flow, "go", &request_id))
        .await
        .expect("second")
        .into_inner();
    let (a, b) = tokio::join!(events_of(first), events_of(second));
    let (a, b) = (finished(&a), finished(&b));
    assert_eq!(a.id, b.id, "one run");
    assert_eq!(b.status, pb::WorkflowRunStatus::Succeeded as i32);
    assert_eq!(b.steps, a.steps);
    assert_eq!(a.request_id, request_id);
    assert_eq!(chat.requests().len(), 2, "two steps, run once");
    let listed = tenant
        .agents
        .list_workflow_runs(pb::ListWorkflowRunsRequest {
            workflow_id: flow.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.runs.len(), 1);
    // The same request id with another input is refused, naming it.
    let reused = tenant
        .agents
        .execute_workflow(execute(&flow, "something else", &request_id))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert!(
        reused.message().contains("request_id"),
        "{}",
        reused.message()
    );
    // Runs of a workflow that is not the tenant's are not found.
    let missing = tenant
        .agents
        .list_workflow_runs(pb::ListWorkflowRunsRequest {
            workflow_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_outlives_its_caller_and_cancel_stops_it_mid_step() {
    let chat = ChatServer::start(vec![Reply::Answer {
        pieces: (0..20).map(|i| format!("w{i} ")).collect(),
        gap: Duration::from_millis(50),
    }])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, _) = answers
        .tenant(&slug("outlive"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let flow = workflow(&mut tenant, &["{{input}}", "again: {{steps.0.output}}"]).await;

    // The caller leaves after the run started: the run finishes anyway.
    let mut stream = tenant
        .agents
        .execute_workflow(execute(&flow, "go", ""))
        .await
        .expect("execute")
        .into_inner();
    let Some(Event::RunStarted(run)) = stream.message().await.unwrap().and_then(|e| e.event) else {
        panic!("run_started first");
    };
    drop(stream);
    let run = wait_finished(&mut tenant, &run.id, Duration::from_secs(20)).await;
    assert_eq!(
        run.status,
        pb::WorkflowRunStatus::Succeeded as i32,
        "{}",
        run.error
    );
    assert!(!run.request_id.is_empty(), "every run has a request id");
    assert_eq!(run.steps.len(), 2);
    assert!(run.steps[1].output.starts_with("w0 w1"));

    // Cancel mid step: the provider's stream is dropped at once, the run ends CANCELLED.
    let before = chat.dropped().len();
    let mut stream = tenant
        .agents
        .execute_workflow(execute(&flow, "go", ""))
        .await
        .expect("execute")
        .into_inner();
    let mut run_id = String::new();
    loop {
        match stream.message().await.unwrap().and_then(|e| e.event) {
            Some(Event::RunStarted(run)) => run_id = run.id,
            Some(Event::Delta(_)) => break,
            Some(_) => {}
            None => panic!("the run ended before its first delta"),
        }
    }
    let cancelled_at = Instant::now();
    let cancelled = tenant
        .agents
        .cancel_workflow_run(pb::CancelWorkflowRunRequest { id: run_id.clone() })
        .await
        .expect("cancel")
        .into_inner()
        .run
        .unwrap();
    assert_eq!(cancelled.status, pb::WorkflowRunStatus::Cancelled as i32);
    let mut rest = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        rest.extend(event.event);
    }
    let end = finished(&rest);
    assert_eq!(end.status, pb::WorkflowRunStatus::Cancelled as i32);
    let step = end.steps.last().expect("the step under way");
    assert_eq!(step.status, pb::WorkflowRunStatus::Cancelled as i32);
    let until = Instant::now() + Duration::from_secs(5);
    while chat.dropped().len() <= before {
        assert!(
            Instant::now() < until,
            "the provider's stream was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = chat.dropped()[before].saturating_duration_since(cancelled_at);
    eprintln!("generation stopped {stopped:?} after the cancel");
    // The step would take a second more; it stopped long before.
    assert!(stopped < Duration::from_millis(900), "{stopped:?}");
    // A finished run cannot be cancelled; another tenant's is not found.
    let again = tenant
        .agents
        .cancel_workflow_run(pb::CancelWorkflowRunRequest { id: run_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let (mut other, _) = answers
        .tenant(&slug("outlive-other"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let hidden = other
        .agents
        .get_workflow_run(pb::GetWorkflowRunRequest { id: run_id })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_runs_are_refused_naming_the_field_and_a_failing_step_fails_the_run() {
    let chat = ChatServer::start(vec![
        Reply::answer(&["fine"]),
        Reply::Status {
            status: 400,
            retry_after: None,
        },
    ])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, _) = answers
        .tenant(&slug("badrun"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let flow = workflow(&mut tenant, &["{{input}}", "{{steps.0.output}}"]).await;
    let run = events_of(
        tenant
            .agents
            .execute_workflow(execute(&flow, "go", ""))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    let run = finished(&run);
    assert_eq!(run.status, pb::WorkflowRunStatus::Failed as i32);
    assert!(run.error.starts_with("step 1 (step-1):"), "{}", run.error);
    assert_eq!(run.steps[0].status, pb::WorkflowRunStatus::Succeeded as i32);
    assert_eq!(run.steps[1].status, pb::WorkflowRunStatus::Failed as i32);

    let field = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().to_owned()
    };
    let mut bad = execute(&flow, "go", "");
    bad.workflow_id = "nope".into();
    let error = tenant.agents.execute_workflow(bad).await.unwrap_err();
    assert!(field(error).contains("workflow_id"));
    let mut bad = execute(&flow, "go", "not-a-uuid");
    bad.request_id = "not-a-uuid".into();
    let error = tenant.agents.execute_workflow(bad).await.unwrap_err();
    assert!(field(error).contains("request_id"));
    let mut bad = execute(&flow, "go", "");
    bad.overrides.as_mut().unwrap().temperature = Some(3.0);
    let error = tenant.agents.execute_workflow(bad).await.unwrap_err();
    assert!(field(error).contains("overrides.temperature"));
    let missing = tenant
        .agents
        .execute_workflow(pb::ExecuteWorkflowRequest {
            workflow_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A template naming a later step cannot run; Validate says so too.
    let forward = workflow(&mut tenant, &["{{steps.1.output}}", "{{input}}"]).await;
    let refused = tenant
        .agents
        .execute_workflow(execute(&forward, "go", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("steps[0]"),
        "{}",
        refused.message()
    );
    let checked = tenant
        .agents
        .validate_workflow(pb::ValidateWorkflowRequest { id: forward.id })
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.valid);
    assert!(checked.problems[0].reason.contains("input_template"));
}
