//! A workflow run survives the process running it: two `agentic serve agent` processes
//! on one database; the one running a run is killed (SIGKILL) mid step, and the other
//! takes the run up when its lease lapses and resumes it after its last finished step.

use std::time::{Duration, Instant};

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{ServiceProcess, TestDatabase, auth_args, grpc_channel};
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::agent::v1::workflow_run_event::Event;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_agentic");
const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../.local/models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn client(process: &ServiceProcess) -> AgentServiceClient<Channel> {
    AgentServiceClient::new(grpc_channel(process.addr).await.expect("channel"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_process_is_killed_is_resumed_by_another_replica() {
    let db = TestDatabase::create("agent", agentic_agent::AgentApp::MIGRATIONS).await;
    let env = [
        ("SECRETS_KEY", "a-secrets-key-of-at-least-thirty-two-bytes"),
        ("LOCAL_MODEL_PATH", MODEL),
        ("WORKFLOW_RUN_LEASE", "2s"),
        ("RAYON_NUM_THREADS", "1"),
    ];
    let mut first = ServiceProcess::start_command(BIN, &["serve", "agent"], &db.url, &env).await;
    let second = ServiceProcess::start_command(BIN, &["serve", "agent"], &db.url, &env).await;
    let tokens = Tokens::new(&auth_args()).expect("tokens");
    let (token, _) = tokens
        .issue("resume-admin", Some(Uuid::new_v4()), roles::ADMIN, None)
        .expect("token");

    let mut agents = client(&first).await;
    let agent = agents
        .create_agent(bearer(
            pb::CreateAgentRequest {
                agent: Some(pb::Agent {
                    name: "resumer".into(),
                    slug: "resumer".into(),
                    model: "local/smollm2-135m-instruct".into(),
                    system_prompt: "You are a helpful assistant.".into(),
                    temperature: Some(0.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("create agent")
        .into_inner()
        .agent
        .expect("agent");
    let steps = [
        "Name the capital of {{input}}.",
        "Repeat: {{steps.0.output}}",
        "Shorten: {{steps.1.output}}",
    ]
    .iter()
    .map(|template| pb::WorkflowStep {
        name: String::new(),
        agent_id: agent.id.clone(),
        input_template: (*template).into(),
    })
    .collect();
    let flow = agents
        .create_workflow(bearer(
            pb::CreateWorkflowRequest {
                workflow: Some(pb::Workflow {
                    name: "survivor".into(),
                    steps,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("create workflow")
        .into_inner()
        .workflow
        .expect("workflow");

    // Start the run on the first process; kill it once the second step is under way.
    let mut stream = agents
        .execute_workflow(bearer(
            pb::ExecuteWorkflowRequest {
                workflow_id: flow.id.clone(),
                input: "France".into(),
                request_id: String::new(),
                overrides: Some(pb::GenerationOverrides {
                    max_tokens: Some(32),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("execute")
        .into_inner();
    let mut run_id = String::new();
    let mut first_output = String::new();
    loop {
        match stream.message().await.expect("event").and_then(|e| e.event) {
            Some(Event::RunStarted(run)) => run_id = run.id,
            Some(Event::StepFinished(step)) if step.index == 0 => first_output = step.output,
            Some(Event::Delta(delta)) if delta.step == 1 => break,
            Some(_) => {}
            None => panic!("the run ended before its second step"),
        }
    }
    first.kill().await;
    let killed = Instant::now();

    // The second process takes it up within about the lease, and finishes it.
    let mut agents = client(&second).await;
    let until = Instant::now() + Duration::from_secs(90);
    let run = loop {
        let run = agents
            .get_workflow_run(bearer(
                pb::GetWorkflowRunRequest { id: run_id.clone() },
                &token,
            ))
            .await
            .expect("get run")
            .into_inner()
            .run
            .expect("run");
        if run.status != pb::WorkflowRunStatus::Running as i32
            && run.status != pb::WorkflowRunStatus::Queued as i32
        {
            break run;
        }
        assert!(Instant::now() < until, "the run was left {:?}", run.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("resumed and finished {:?} after the kill", killed.elapsed());
    assert_eq!(
        run.status,
        pb::WorkflowRunStatus::Succeeded as i32,
        "{}",
        run.error
    );
    assert_eq!(run.attempts, 2, "taken up once more");
    assert_eq!(run.steps.len(), 3);
    assert_eq!(
        run.steps[0].output, first_output,
        "the finished step was kept, not run again"
    );
    assert!(
        run.steps
            .iter()
            .all(|s| s.status == pb::WorkflowRunStatus::Succeeded as i32)
    );
    drop(db);
}
