//! Workflow runs: ExecuteWorkflow, GetWorkflowRun, ListWorkflowRuns, CancelWorkflowRun.
//!
//! A run is stored first, then driven by a task of the process holding its lease
//! (`runner.rs`), which outlives the call that started it. The caller that started the
//! run hears the runner's events live; a repeated request id follows the stored run
//! (`follow.rs`). Every replica looks for runs whose lease lapsed (their process died) and
//! resumes them after their last finished step.

mod follow;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentic_platform::auth::Caller;
use agentic_platform::error::{Error, Result};
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate;
use agentic_proto::agent::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::AgentService;
use crate::model::{
    ACTIVE, NewWorkflowRun, OverridesJson, RUN_QUEUED, StepJson, WorkflowRunRow, run_status_name,
};
use crate::store;
use crate::workflow::template;

/// The stream ExecuteWorkflow answers with.
pub(super) type RunEvents = ReceiverStream<Result<pb::WorkflowRunEvent, Status>>;

/// The run's {{input}} at most, in characters.
const MAX_INPUT_LEN: usize = 100_000;

/// Events a live run keeps for a slow listener; one that falls further behind misses
/// deltas (each step's output is whole in its `step_finished`).
const LIVE_EVENTS: usize = 1024;

/// Events buffered for the caller's stream.
const EVENTS_AHEAD: usize = 64;

/// The runs this process drives, by id: their live events and their stop switch.
#[derive(Default)]
pub(crate) struct LiveRuns {
    runs: Mutex<HashMap<Uuid, LiveRun>>,
}

#[derive(Clone)]
struct LiveRun {
    events: broadcast::Sender<pb::WorkflowRunEvent>,
    cancel: CancellationToken,
}

impl LiveRuns {
    fn add(&self, id: Uuid) -> LiveRun {
        let (events, _) = broadcast::channel(LIVE_EVENTS);
        let run = LiveRun {
            events,
            cancel: CancellationToken::new(),
        };
        self.runs.lock().unwrap().insert(id, run.clone());
        run
    }

    fn remove(&self, id: Uuid) {
        self.runs.lock().unwrap().remove(&id);
    }

    fn cancel(&self, id: Uuid) {
        if let Some(run) = self.runs.lock().unwrap().get(&id) {
            run.cancel.cancel();
        }
    }
}

/// What an ExecuteWorkflow asks for, checked.
struct ExecuteInput {
    workflow: Uuid,
    input: String,
    request_id: Option<Uuid>,
    overrides: OverridesJson,
}

fn execute_input(request: &pb::ExecuteWorkflowRequest) -> Result<ExecuteInput> {
    let overrides = request.overrides.clone().unwrap_or_default();
    let (workflow, input, request_id, ()) = validate::all((
        validate::id("workflow_id", &request.workflow_id),
        validate::multiline("input", &request.input, MAX_INPUT_LEN),
        idempotency::request_id(&request.request_id),
        validate::generation_overrides("overrides", &overrides),
    ))?;
    Ok(ExecuteInput {
        workflow,
        input,
        request_id,
        overrides: OverridesJson {
            max_tokens: overrides.max_tokens,
            temperature: overrides.temperature,
            stop: overrides.stop,
        },
    })
}

impl AgentService {
    /// Why the steps cannot run now, one problem per step at most: its agent missing or
    /// not active, or its template referring to what it cannot.
    pub(super) async fn step_problems(
        &self,
        tenant: Uuid,
        steps: &[StepJson],
    ) -> Result<Vec<pb::WorkflowProblem>> {
        let ids: Vec<Uuid> = steps.iter().map(|step| step.agent_id).collect();
        // One query for every step's agent, whatever the number of steps.
        let statuses = self
            .pool
            .run(async |conn| store::agent_statuses(conn, tenant, &ids).await)
            .await?;
        Ok(steps
            .iter()
            .enumerate()
            .filter_map(|(index, step)| {
                let status = statuses
                    .iter()
                    .find(|(found, _)| *found == step.agent_id)
                    .map(|(_, status)| status.as_str());
                let reason = match (status, template::check(&step.input_template, index)) {
                    (None, _) => "agent not found".to_owned(),
                    (Some(ACTIVE), Ok(())) => return None,
                    (Some(ACTIVE), Err(problem)) => format!("input_template: {problem}"),
                    (Some(other), _) => format!("agent is {other}"),
                };
                Some(pb::WorkflowProblem {
                    step: index as i32,
                    agent_id: step.agent_id.to_string(),
                    reason,
                })
            })
            .collect())
    }
}

pub(super) async fn execute(
    service: &AgentService,
    request: Request<pb::ExecuteWorkflowRequest>,
) -> Result<Response<RunEvents>, Status> {
    let caller = Caller::of(&request)?;
    let tenant = caller.member_tenant()?;
    let created_by = caller.subject.clone();
    let input = execute_input(request.get_ref())?;
    let workflow = service
        .pool
        .read(async |conn| store::find_workflow(conn, tenant, input.workflow).await)
        .await?
        .ok_or(Error::NotFound("workflow"))?;
    let plan = workflow.steps();
    if let Some(problem) = service.step_problems(tenant, &plan).await?.first() {
        return Err(Error::FailedPrecondition(format!(
            "workflow_id: steps[{}] cannot run: {}",
            problem.step, problem.reason
        ))
        .into());
    }
    let settings = &service.workflow_runs;
    let now = chrono::Utc::now();
    let new_run = NewWorkflowRun {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        workflow_id: input.workflow,
        // Every run has a request id: the caller's, or one of its own.
        request_id: Some(input.request_id.unwrap_or_else(Uuid::new_v4)),
        status: RUN_QUEUED,
        input: input.input,
        overrides: serde_json::to_value(&input.overrides).map_err(Error::internal)?,
        plan: workflow.steps,
        created_by,
        attempts: 1,
        lease_owner: Some(service.live.owner),
        lease_until: Some(now + chrono_duration(settings.workflow_run_lease)),
        deadline: now + chrono_duration(settings.workflow_run_timeout),
    };
    let (row, created) = service
        .pool
        .write_in(tenant, async |conn| store::insert_run(conn, &new_run).await)
        .await?;
    let (sender, stream) = mpsc::channel(EVENTS_AHEAD);
    if !created && (row.input != new_run.input || row.overrides != new_run.overrides) {
        return Err(Error::AlreadyExists(
            "request_id: already started a run of this workflow with another input".into(),
        )
        .into());
    }
    if created {
        metrics::counter!("workflow_runs_started_total").increment(1);
        let live = service.live.runs.add(row.id);
        let listener = live.events.subscribe();
        tokio::spawn(forward(listener, sender));
        service.spawn_runner(row, live);
    } else {
        tokio::spawn(follow::follow(service.pool.clone(), row, sender));
    }
    Ok(Response::new(ReceiverStream::new(stream)))
}

/// Passes a live run's events to one caller until the run ends or the caller goes away
/// (the run goes on).
async fn forward(
    mut listener: broadcast::Receiver<pb::WorkflowRunEvent>,
    sender: mpsc::Sender<Result<pb::WorkflowRunEvent, Status>>,
) {
    loop {
        let event = tokio::select! {
            _ = sender.closed() => return,
            event = listener.recv() => event,
        };
        match event {
            Ok(event) => {
                let last = matches!(
                    event.event,
                    Some(pb::workflow_run_event::Event::RunFinished(_))
                );
                if sender.send(Ok(event)).await.is_err() || last {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a slow workflow run listener missed events");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub(super) async fn get(
    service: &AgentService,
    request: Request<pb::GetWorkflowRunRequest>,
) -> Result<Response<pb::GetWorkflowRunResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let row = service
        .pool
        .run(async |conn| store::find_run(conn, tenant, id).await)
        .await?
        .ok_or(Error::NotFound("workflow run"))?;
    Ok(Response::new(pb::GetWorkflowRunResponse {
        run: Some((&row).into()),
    }))
}

pub(super) async fn list(
    service: &AgentService,
    request: Request<pb::ListWorkflowRunsRequest>,
) -> Result<Response<pb::ListWorkflowRunsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let (workflow, page_size) = validate::all((
        validate::id("workflow_id", &message.workflow_id),
        paging::page_size(message.page_size),
    ))?;
    // Another tenant's workflow, or none, is NOT_FOUND rather than an empty list.
    service.cached_workflow(tenant, workflow).await?;
    let status = match pb::WorkflowRunStatus::try_from(message.status) {
        Ok(status) => run_status_name(status),
        Err(_) => return Err(Error::invalid("status", "is not a run status").into()),
    };
    let fingerprint = format!("workflow_runs|{tenant}|{workflow}|{status:?}");
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &WorkflowRunRow| row.id,
            |before, limit| {
                service.pool.run(async move |conn| {
                    store::list_runs(conn, tenant, workflow, status, before, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListWorkflowRunsResponse {
        runs: rows.iter().map(pb::WorkflowRun::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn cancel(
    service: &AgentService,
    request: Request<pb::CancelWorkflowRunRequest>,
) -> Result<Response<pb::CancelWorkflowRunResponse>, Status> {
    let caller = Caller::of(&request)?;
    let tenant = caller.member_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let reason = format!("cancelled by {}", caller.subject);
    let row = service
        .pool
        .write_in(tenant, async |conn| {
            store::cancel_run(conn, tenant, id, &reason).await
        })
        .await?;
    // Here, the runner stops at once; on another replica, at its next lease renewal.
    service.live.runs.cancel(id);
    metrics::counter!("workflow_runs_cancelled_total").increment(1);
    Ok(Response::new(pb::CancelWorkflowRunResponse {
        run: Some((&row).into()),
    }))
}

/// This process as a holder of run leases.
pub(crate) struct RunOwner {
    /// The id it holds leases under.
    pub(crate) owner: Uuid,
    runs: LiveRuns,
}

impl RunOwner {
    pub(crate) fn new() -> Self {
        Self {
            owner: Uuid::new_v4(),
            runs: LiveRuns::default(),
        }
    }
}

/// Takes up runs whose lease lapsed, until `stop`: looks every half lease. At `stop`,
/// lets go of the runs this process drives.
pub(super) async fn resume_lapsed(service: Arc<AgentService>, stop: CancellationToken) {
    let every = (service.workflow_runs.workflow_run_lease / 2).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                // Shutting down: the runs driven here go to another replica now.
                let owner = service.live.owner;
                let released = service
                    .pool
                    .run(async |conn| store::release_leases(conn, owner).await)
                    .await;
                if let Ok(count) = released && count > 0 {
                    tracing::info!(count, "released the leases of unfinished workflow runs");
                }
                return;
            }
            _ = tokio::time::sleep(every) => {}
        }
        loop {
            let claimed = service
                .pool
                .run(async |conn| {
                    store::claim_lapsed(
                        conn,
                        service.live.owner,
                        service.workflow_runs.workflow_run_lease,
                    )
                    .await
                })
                .await;
            match claimed {
                Ok(Some(row)) => {
                    tracing::info!(run = %row.id, attempts = row.attempts, "resuming a workflow run whose lease lapsed");
                    metrics::counter!("workflow_runs_resumed_total").increment(1);
                    let live = service.live.runs.add(row.id);
                    service.spawn_runner(row, live);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "looking for lapsed workflow runs failed");
                    break;
                }
            }
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
