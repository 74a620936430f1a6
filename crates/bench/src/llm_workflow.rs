//! The suite's own cost per workflow step: five-step runs over the instant provider,
//! each run's time beside five full answers of the provider called directly at the same
//! concurrency. Overhead per step = (run time − five provider answers) / 5, per
//! percentile.

use std::time::Instant;

use agentic_platform::auth::Tokens;
use agentic_platform::config::AuthArgs;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::agent::v1::workflow_run_event::Event;
use anyhow::Context;
use futures::StreamExt;

use crate::llm_overhead::{SETTLE, channel, measure, tenant};

/// Steps of the benchmarked workflow.
const STEPS: usize = 5;

#[derive(clap::Args)]
pub(crate) struct WorkflowArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    user_url: String,
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    agent_url: String,
    /// The instant provider, called directly for the baseline.
    #[arg(long, default_value = "http://127.0.0.1:27080")]
    provider_url: String,
    #[arg(long, default_value = "bench/instant")]
    model: String,
    /// Concurrent runs, comma-separated.
    #[arg(long, default_value = "1,64")]
    concurrency: String,
    /// Runs per concurrency.
    #[arg(long, default_value_t = 300)]
    runs: usize,
    #[command(flatten)]
    auth: AuthArgs,
}

pub(crate) async fn workflow(args: WorkflowArgs) -> anyhow::Result<()> {
    let tokens = Tokens::new(&args.auth)?;
    let tenant = tenant(&tokens, &args.user_url, &args.agent_url, &args.model).await?;
    let mut agents =
        AgentServiceClient::with_interceptor(channel(&args.agent_url).await?, tenant.admin.clone());
    let steps = (0..STEPS)
        .map(|i| agent_pb::WorkflowStep {
            name: format!("step {i}"),
            agent_id: tenant.agent_id.clone(),
            input_template: if i == 0 {
                "{{input}}".into()
            } else {
                format!("Go on from: {{{{steps.{}.output}}}}", i - 1)
            },
        })
        .collect();
    let flow = agents
        .create_workflow(agent_pb::CreateWorkflowRequest {
            workflow: Some(agent_pb::Workflow {
                name: "bench".into(),
                steps,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .context("create the workflow")?
        .into_inner()
        .workflow
        .context("workflow")?;
    let http = reqwest::Client::new();
    let endpoint = format!(
        "{}/v1/chat/completions",
        args.provider_url.trim_end_matches('/')
    );
    let body = serde_json::json!({
        "model": "instant", "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string();
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .context("--concurrency is numbers, comma-separated")?;
    tokio::time::sleep(SETTLE).await;
    for concurrency in levels {
        // The provider alone: five whole answers in a row, as one run asks for them.
        let provider = measure(args.runs, concurrency, |_| {
            let (http, endpoint, body) = (http.clone(), endpoint.clone(), body.clone());
            async move {
                let started = Instant::now();
                for _ in 0..STEPS {
                    let response = http
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let mut stream = response.bytes_stream();
                    while let Some(chunk) = stream.next().await {
                        chunk?;
                    }
                }
                Ok(started.elapsed())
            }
        })
        .await?;
        let runs = measure(args.runs, concurrency, |_| {
            let mut agents = agents.clone();
            let request = agent_pb::ExecuteWorkflowRequest {
                workflow_id: flow.id.clone(),
                input: "Tell me a story.".into(),
                request_id: String::new(),
                overrides: None,
            };
            async move {
                let started = Instant::now();
                let mut stream = agents.execute_workflow(request).await?.into_inner();
                let mut status = None;
                while let Some(event) = stream.message().await? {
                    if let Some(Event::RunFinished(run)) = event.event {
                        status = Some(run.status);
                    }
                }
                anyhow::ensure!(
                    status == Some(agent_pb::WorkflowRunStatus::Succeeded as i32),
                    "a run did not succeed: {status:?}"
                );
                Ok(started.elapsed())
            }
        })
        .await?;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let per_step = |q: f64| {
            (ms(runs.value_at_quantile(q)) - ms(provider.value_at_quantile(q))) / STEPS as f64
        };
        let line = serde_json::json!({
            "target": "workflow",
            "steps": STEPS,
            "concurrency": concurrency,
            "runs": runs.len(),
            "run_p50_ms": ms(runs.value_at_quantile(0.5)),
            "run_p99_ms": ms(runs.value_at_quantile(0.99)),
            "provider_p50_ms": ms(provider.value_at_quantile(0.5)),
            "provider_p99_ms": ms(provider.value_at_quantile(0.99)),
            "overhead_per_step_p50_ms": per_step(0.5),
            "overhead_per_step_p99_ms": per_step(0.99),
        });
        println!("{line}");
    }
    Ok(())
}
