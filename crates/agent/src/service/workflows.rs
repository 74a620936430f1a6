//! Workflows: ordered steps, each naming an agent and its input. Runs are
//! `workflow_runs/`; Validate says whether every step could run now.

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask;
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate;
use agentic_proto::agent::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::AgentService;
use crate::input;
use crate::model::{NewWorkflow, StepJson, WorkflowChanges, WorkflowRow};
use crate::store;

/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &["name", "description", "steps"];

impl AgentService {
    pub(super) async fn cached_workflow(&self, tenant: Uuid, id: Uuid) -> Result<pb::Workflow> {
        self.cache
            .get_or_load(&self.kinds.workflow, ScopedKey(tenant, id), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_workflow(conn, tenant, id)
                        .await?
                        .map(pb::Workflow::from))
                })
            })
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    async fn forget_workflow(&self, tenant: Uuid, id: Uuid) {
        self.cache
            .invalidate(&[(&self.kinds.workflow, ScopedKey(tenant, id.to_string()))])
            .await;
    }
}

fn steps_json(steps: Vec<StepJson>) -> Result<serde_json::Value> {
    serde_json::to_value(steps).map_err(Error::internal)
}

pub(super) async fn create(
    service: &AgentService,
    request: Request<pb::CreateWorkflowRequest>,
) -> Result<Response<pb::CreateWorkflowResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let workflow = message
        .workflow
        .as_ref()
        .ok_or_else(|| Error::invalid("workflow", "is required"))?;
    let (input, request_id) = validate::all((
        input::new_workflow(workflow),
        idempotency::request_id(&message.request_id),
    ))?;
    let new_workflow = NewWorkflow {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: input.name,
        description: input.description,
        steps: steps_json(input.steps)?,
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "CreateWorkflow",
            message,
            async |conn| {
                let row = store::insert_workflow(conn, &new_workflow).await?;
                Ok(pb::CreateWorkflowResponse {
                    workflow: Some(row.into()),
                })
            },
        )
        .await?;
    Ok(Response::new(response))
}

pub(super) async fn get(
    service: &AgentService,
    request: Request<pb::GetWorkflowRequest>,
) -> Result<Response<pb::GetWorkflowResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let workflow = service.cached_workflow(tenant, id).await?;
    Ok(Response::new(pb::GetWorkflowResponse {
        workflow: Some(workflow),
    }))
}

pub(super) async fn list(
    service: &AgentService,
    request: Request<pb::ListWorkflowsRequest>,
) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let page_size = paging::page_size(message.page_size)?;
    let fingerprint = format!("workflows|{tenant}");
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &WorkflowRow| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_workflows(conn, tenant, after, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListWorkflowsResponse {
        workflows: rows.into_iter().map(pb::Workflow::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn update(
    service: &AgentService,
    request: Request<pb::UpdateWorkflowRequest>,
) -> Result<Response<pb::UpdateWorkflowResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let workflow = message
        .workflow
        .as_ref()
        .ok_or_else(|| Error::invalid("workflow", "is required"))?;
    let id = validate::id("workflow.id", &workflow.id)?;
    let expected = input::etag("workflow.etag", &workflow.etag)?;
    let mask = fieldmask::update_mask(message.update_mask.as_ref(), UPDATABLE_FIELDS)?;
    let update = input::workflow_update(workflow, &mask)?;
    let changes = WorkflowChanges {
        name: update.name,
        description: update.description,
        steps: update.steps.map(steps_json).transpose()?,
    };

    let row = service
        .pool
        .write_in(tenant, async |conn| {
            store::update_workflow(conn, tenant, id, expected, &changes).await
        })
        .await?;
    service.forget_workflow(tenant, id).await;
    Ok(Response::new(pb::UpdateWorkflowResponse {
        workflow: Some(row.into()),
    }))
}

pub(super) async fn delete(
    service: &AgentService,
    request: Request<pb::DeleteWorkflowRequest>,
) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_workflow(conn, tenant, id).await
        })
        .await?;
    service.forget_workflow(tenant, id).await;
    Ok(Response::new(pb::DeleteWorkflowResponse {}))
}

pub(super) async fn validate(
    service: &AgentService,
    request: Request<pb::ValidateWorkflowRequest>,
) -> Result<Response<pb::ValidateWorkflowResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let workflow = service.cached_workflow(tenant, id).await?;
    let steps: Vec<StepJson> = workflow
        .steps
        .iter()
        .map(|step| StepJson {
            name: step.name.clone(),
            agent_id: Uuid::try_parse(&step.agent_id).unwrap_or_default(),
            input_template: step.input_template.clone(),
        })
        .collect();
    let problems = service.step_problems(tenant, &steps).await?;
    Ok(Response::new(pb::ValidateWorkflowResponse {
        valid: problems.is_empty(),
        problems,
    }))
}
