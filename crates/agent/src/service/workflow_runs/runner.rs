//! Drives one run in this process: its steps in order, each an answer of its agent to its
//! rendered input, every step's start and end stored. The run's lease is renewed while it
//! runs; a cancel (here, or seen at a renewal) stops the step's generation at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentic_platform::auth::roles;
use agentic_platform::client::Credentials;
use agentic_platform::error::Error;
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::workflow_run_event::Event;
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::LiveRun;
use crate::input::RunInput;
use crate::model::{
    RUN_CANCELLED, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED, StepRecord, WorkflowRunRow,
};
use crate::run::chat::{ChatMessage, Role};
use crate::service::AgentService;
use crate::store::{self, Progress};
use crate::workflow::template;

impl AgentService {
    /// Drives `row` on a task of its own, which the caller's going away does not stop.
    pub(super) fn spawn_runner(&self, row: WorkflowRunRow, live: LiveRun) {
        let Some(service) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let id = row.id;
            let lease_kept = CancellationToken::new();
            tokio::spawn(keep_lease(
                service.clone(),
                id,
                live.cancel.clone(),
                lease_kept.clone(),
            ));
            let runner = Runner {
                service: service.clone(),
                row,
                live,
            };
            runner.run().await;
            lease_kept.cancel();
            service.live.runs.remove(id);
        });
    }
}

/// Renews the run's lease every third of it until `done`; stops the run (`cancel`) when
/// it was cancelled elsewhere or another process took it up.
async fn keep_lease(
    service: Arc<AgentService>,
    id: uuid::Uuid,
    cancel: CancellationToken,
    done: CancellationToken,
) {
    let lease = service.workflow_runs.workflow_run_lease;
    let owner = service.live.owner;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(lease / 3) => {}
        }
        let renewed = service
            .pool
            .run(async |conn| store::renew_lease(conn, id, owner, lease).await)
            .await;
        match renewed {
            Ok(Some(status)) if status != RUN_CANCELLED => {}
            Ok(_) => {
                cancel.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, run = %id, "a workflow run's lease was not renewed")
            }
        }
    }
}

struct Runner {
    service: Arc<AgentService>,
    row: WorkflowRunRow,
    live: LiveRun,
}

/// Why a step did not finish.
enum Stop {
    Failed(String),
    /// Cancelled, or the run is no longer this process's.
    Stopped,
}

impl Runner {
    fn emit(&self, event: Event) {
        let _ = self
            .live
            .events
            .send(pb::WorkflowRunEvent { event: Some(event) });
    }

    /// Stores the run's progress; None when the run is no longer this process's to write
    /// (cancelled, or taken up elsewhere).
    async fn save(
        &self,
        status: &'static str,
        steps: &[StepRecord],
        output: &str,
        error: &str,
    ) -> Option<WorkflowRunRow> {
        let steps = serde_json::to_value(steps).ok()?;
        let progress = Progress {
            status,
            steps,
            output,
            error,
            finished: status != RUN_RUNNING,
        };
        let (id, owner) = (self.row.id, self.service.live.owner);
        match self
            .service
            .pool
            .run(async |conn| store::save_progress(conn, id, owner, progress).await)
            .await
        {
            Ok(saved) => saved,
            Err(error) => {
                tracing::warn!(%error, run = %id, "a workflow run's progress was not stored");
                None
            }
        }
    }

    async fn run(self) {
        let plan = self.row.plan();
        // A resumed run keeps the steps that finished; the one under way when its process
        // died runs again.
        let mut steps: Vec<StepRecord> = self
            .row
            .steps()
            .into_iter()
            .take_while(|step| step.status == RUN_SUCCEEDED)
            .collect();
        let Some(started) = self.save(RUN_RUNNING, &steps, "", "").await else {
            return self.stopped(&steps).await;
        };
        self.emit(Event::RunStarted((&started).into()));
        let credentials = match Credentials::service(
            &self.service.tokens,
            &self.row.created_by,
            Some(self.row.tenant_id),
            roles::MEMBER,
        ) {
            Ok(credentials) => credentials,
            Err(error) => return self.fail(&steps, &error.to_string()).await,
        };
        let left = (self.row.deadline - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + left;
        for (index, step) in plan.iter().enumerate().skip(steps.len()) {
            let label = if step.name.is_empty() {
                format!("step {index}")
            } else {
                format!("step {index} ({})", step.name)
            };
            if Instant::now() >= deadline {
                return self
                    .fail(&steps, &format!("{label}: the run's deadline passed"))
                    .await;
            }
            let outputs: Vec<String> = steps.iter().map(|s| s.output.clone()).collect();
            let input = template::render(&step.input_template, &self.row.input, &outputs);
            steps.push(StepRecord {
                index: index as i32,
                name: step.name.clone(),
                agent_id: step.agent_id,
                status: RUN_RUNNING.to_owned(),
                input: input.clone(),
                started_at: Utc::now(),
                ..Default::default()
            });
            if self.save(RUN_RUNNING, &steps, "", "").await.is_none() {
                return self.stopped(&steps).await;
            }
            self.emit(Event::StepStarted(pb::WorkflowStepStarted {
                step: index as i32,
                name: step.name.clone(),
                agent_id: step.agent_id.to_string(),
                input: input.clone(),
            }));
            let record = steps.last_mut().expect("the step just pushed");
            let outcome = self
                .run_step(&credentials, step.agent_id, input, record, deadline)
                .await;
            record.finished_at = Some(Utc::now());
            match outcome {
                Ok(()) => {
                    record.status = RUN_SUCCEEDED.to_owned();
                    metrics::counter!("workflow_steps_total", "outcome" => "succeeded")
                        .increment(1);
                    let finished = pb::WorkflowRunStep::from(&*record);
                    if self.save(RUN_RUNNING, &steps, "", "").await.is_none() {
                        return self.stopped(&steps).await;
                    }
                    self.emit(Event::StepFinished(finished));
                }
                Err(Stop::Failed(reason)) => {
                    record.status = RUN_FAILED.to_owned();
                    record.error = reason.clone();
                    metrics::counter!("workflow_steps_total", "outcome" => "failed").increment(1);
                    let finished = pb::WorkflowRunStep::from(&*record);
                    self.emit(Event::StepFinished(finished));
                    return self.fail(&steps, &format!("{label}: {reason}")).await;
                }
                Err(Stop::Stopped) => {
                    record.status = RUN_CANCELLED.to_owned();
                    return self.stopped(&steps).await;
                }
            }
        }
        let output = steps.last().map(|s| s.output.clone()).unwrap_or_default();
        match self.save(RUN_SUCCEEDED, &steps, &output, "").await {
            Some(row) => {
                metrics::counter!("workflow_runs_finished_total", "status" => RUN_SUCCEEDED)
                    .increment(1);
                self.emit(Event::RunFinished((&row).into()));
            }
            None => self.stopped(&steps).await,
        }
    }

    /// One step: its agent's answer to `input`, relayed as deltas into `record`.
    async fn run_step(
        &self,
        credentials: &Credentials,
        agent: uuid::Uuid,
        input: String,
        record: &mut StepRecord,
        deadline: Instant,
    ) -> Result<(), Stop> {
        let overrides = self.row.overrides();
        let run = RunInput {
            agent,
            history: Vec::new(),
            message: ChatMessage::new(Role::User, input),
            max_tokens: overrides.max_tokens,
            temperature: overrides.temperature,
            stop: overrides.stop,
        };
        let answering = self.service.answer(
            self.row.tenant_id,
            credentials,
            run,
            Instant::now(),
            Some(deadline),
        );
        let mut events = tokio::select! {
            _ = self.live.cancel.cancelled() => return Err(Stop::Stopped),
            started = answering => started.map_err(|e| Stop::Failed(message(e)))?,
        };
        loop {
            let event = tokio::select! {
                // Dropping the events stops the generation.
                _ = self.live.cancel.cancelled() => return Err(Stop::Stopped),
                event = events.recv() => event,
            };
            match event.map(|e| e.map(|e| e.event)) {
                Some(Ok(Some(pb::run_agent_event::Event::Delta(text)))) => {
                    record.output.push_str(&text);
                    self.emit(Event::Delta(pb::WorkflowStepDelta {
                        step: record.index,
                        text,
                    }));
                }
                Some(Ok(Some(pb::run_agent_event::Event::Done(done)))) => {
                    record.prompt_tokens = done.prompt_tokens;
                    record.completion_tokens = done.completion_tokens;
                    record.finish_reason = done.finish_reason;
                    if done.finish_reason == pb::FinishReason::Deadline as i32 {
                        return Err(Stop::Failed("the run's deadline passed".into()));
                    }
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(status)) => return Err(Stop::Failed(status.message().to_owned())),
                None => {
                    return Err(Stop::Failed(
                        "the agent's answer ended without its ending".into(),
                    ));
                }
            }
        }
    }

    async fn fail(&self, steps: &[StepRecord], reason: &str) {
        match self.save(RUN_FAILED, steps, "", reason).await {
            Some(row) => {
                metrics::counter!("workflow_runs_finished_total", "status" => RUN_FAILED)
                    .increment(1);
                self.emit(Event::RunFinished((&row).into()));
            }
            None => self.stopped(steps).await,
        }
    }

    /// The run stopped being this process's to drive: cancelled (then the steps as they
    /// stood are stored on it), or taken up by another process (nothing is written).
    async fn stopped(&self, steps: &[StepRecord]) {
        let (id, owner) = (self.row.id, self.service.live.owner);
        let steps = serde_json::to_value(steps).unwrap_or_default();
        let stored = self
            .service
            .pool
            .run(async |conn| store::store_cancelled_steps(conn, id, owner, steps).await)
            .await;
        match stored {
            Ok(Some(row)) => {
                metrics::counter!("workflow_runs_finished_total", "status" => RUN_CANCELLED)
                    .increment(1);
                if let Some(step) = row.steps().last() {
                    self.emit(Event::StepFinished(step.into()));
                }
                self.emit(Event::RunFinished((&row).into()));
            }
            Ok(None) => tracing::info!(run = %id, "a workflow run was taken up elsewhere"),
            Err(error) => {
                tracing::warn!(%error, run = %id, "a cancelled run's steps were not stored")
            }
        }
    }
}

fn message(error: Error) -> String {
    Status::from(error).message().to_owned()
}
