//! Workflow runs: started once per request id, written only by the process holding the
//! run's lease, taken up by another when a lease lapses.

use std::time::Duration;

use agentic_platform::error::{Error, Result};
use diesel::prelude::*;
use diesel::sql_types::{Float8, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{NewWorkflowRun, RUN_UNFINISHED, WorkflowRunRow};
use crate::schema::workflow_runs;

/// Inserts `run`, unless its request id started a run of the workflow already: then that
/// run. The flag says whether this call created it.
pub async fn insert_run(
    conn: &mut AsyncPgConnection,
    run: &NewWorkflowRun,
) -> Result<(WorkflowRunRow, bool)> {
    let inserted = diesel::insert_into(workflow_runs::table)
        .values(run)
        .on_conflict_do_nothing()
        .returning(WorkflowRunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    let existing = workflow_runs::table
        .filter(workflow_runs::tenant_id.eq(run.tenant_id))
        .filter(workflow_runs::workflow_id.eq(run.workflow_id))
        .filter(workflow_runs::request_id.eq(run.request_id))
        .select(WorkflowRunRow::as_select())
        .first(conn)
        .await?;
    Ok((existing, false))
}

pub async fn find_run(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<WorkflowRunRow>> {
    Ok(workflow_runs::table
        .filter(workflow_runs::tenant_id.eq(tenant))
        .filter(workflow_runs::id.eq(id))
        .select(WorkflowRunRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A workflow's runs, newest first, after `before` (a run id, for the next page).
pub async fn list_runs(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    workflow: Uuid,
    status: Option<&'static str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WorkflowRunRow>> {
    let mut query = workflow_runs::table
        .filter(workflow_runs::tenant_id.eq(tenant))
        .filter(workflow_runs::workflow_id.eq(workflow))
        .select(WorkflowRunRow::as_select())
        .order(workflow_runs::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(workflow_runs::status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(workflow_runs::id.lt(before));
    }
    Ok(query.load(conn).await?)
}

/// What the lease holder writes as a run goes on.
pub struct Progress<'a> {
    pub status: &'static str,
    pub steps: serde_json::Value,
    pub output: &'a str,
    pub error: &'a str,
    pub finished: bool,
}

/// Writes `progress` if `owner` still holds the run and it is unfinished; None when it
/// does not (the run was cancelled, or another process took it up).
///
/// Progress within a run is committed without waiting for the disk (`synchronous_commit`
/// off for that transaction): a crash may lose the last step's record, and the run is
/// then resumed from the step before, which runs again. A run's end waits for the disk.
pub async fn save_progress(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Uuid,
    progress: Progress<'_>,
) -> Result<Option<WorkflowRunRow>> {
    use diesel_async::AsyncConnection;
    let now = chrono::Utc::now();
    let finished = progress.finished;
    let finished_at = finished.then_some(now);
    let update = diesel::update(
        workflow_runs::table
            .filter(workflow_runs::id.eq(id))
            .filter(workflow_runs::lease_owner.eq(owner))
            .filter(workflow_runs::status.eq_any(RUN_UNFINISHED)),
    )
    .set((
        workflow_runs::status.eq(progress.status),
        workflow_runs::steps.eq(progress.steps),
        workflow_runs::output.eq(progress.output.to_owned()),
        workflow_runs::error.eq(progress.error.to_owned()),
        workflow_runs::finished_at.eq(finished_at),
        workflow_runs::started_at.eq(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        >("coalesce(started_at, now())")),
        workflow_runs::updated_at.eq(now),
    ))
    .returning(WorkflowRunRow::as_returning());
    if finished {
        return Ok(update.get_result(conn).await.optional()?);
    }
    conn.transaction::<_, Error, _>(async |conn| {
        diesel::sql_query("SET LOCAL synchronous_commit = off")
            .execute(conn)
            .await?;
        Ok(update.get_result(conn).await.optional()?)
    })
    .await
}

/// Extends `owner`'s lease on the run; the run's status, or None when `owner` lost it.
pub async fn renew_lease(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Uuid,
    lease: Duration,
) -> Result<Option<String>> {
    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let renewed: Option<Status> = diesel::sql_query(
        "UPDATE agents.workflow_runs
            SET lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND lease_owner = $2
      RETURNING status",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(owner)
    .bind::<Float8, _>(lease.as_secs_f64())
    .get_result(conn)
    .await
    .optional()?;
    Ok(renewed.map(|r| r.status))
}

/// Takes up one unfinished run whose lease lapsed (its process died), for `owner`.
pub async fn claim_lapsed(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    lease: Duration,
) -> Result<Option<WorkflowRunRow>> {
    Ok(diesel::sql_query(
        "UPDATE agents.workflow_runs
            SET lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                attempts = attempts + 1, updated_at = now()
          WHERE id = (SELECT id FROM agents.workflow_runs
                       WHERE status IN ('queued', 'running') AND lease_until < now()
                       ORDER BY lease_until
                       LIMIT 1
                       FOR UPDATE SKIP LOCKED)
      RETURNING *",
    )
    .bind::<SqlUuid, _>(owner)
    .bind::<Float8, _>(lease.as_secs_f64())
    .get_result(conn)
    .await
    .optional()?)
}

/// Marks an unfinished run cancelled, with `reason`. A finished run is
/// FAILED_PRECONDITION; another tenant's or a missing one NOT_FOUND.
pub async fn cancel_run(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<WorkflowRunRow> {
    let now = chrono::Utc::now();
    let cancelled = diesel::update(
        workflow_runs::table
            .filter(workflow_runs::tenant_id.eq(tenant))
            .filter(workflow_runs::id.eq(id))
            .filter(workflow_runs::status.eq_any(RUN_UNFINISHED)),
    )
    .set((
        workflow_runs::status.eq(crate::model::RUN_CANCELLED),
        workflow_runs::error.eq(reason),
        workflow_runs::finished_at.eq(now),
        workflow_runs::updated_at.eq(now),
    ))
    .returning(WorkflowRunRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match cancelled {
        Some(row) => Ok(row),
        None => match find_run(conn, tenant, id).await? {
            Some(row) => Err(Error::FailedPrecondition(format!(
                "id: the run is {} already",
                row.status
            ))),
            None => Err(Error::NotFound("workflow run")),
        },
    }
}

/// Stores the steps of a run `owner` was driving when it was cancelled; None when the run
/// is not a cancelled run of `owner`'s.
pub async fn store_cancelled_steps(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Uuid,
    steps: serde_json::Value,
) -> Result<Option<WorkflowRunRow>> {
    Ok(diesel::update(
        workflow_runs::table
            .filter(workflow_runs::id.eq(id))
            .filter(workflow_runs::lease_owner.eq(owner))
            .filter(workflow_runs::status.eq(crate::model::RUN_CANCELLED)),
    )
    .set((
        workflow_runs::steps.eq(steps),
        workflow_runs::lease_owner.eq(None::<Uuid>),
    ))
    .returning(WorkflowRunRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Lets go of `owner`'s unfinished runs at once (a process shutting down), so another
/// replica takes them up at its next look instead of after the lease; the process's own
/// writes to them fail from now on.
pub async fn release_leases(conn: &mut AsyncPgConnection, owner: Uuid) -> Result<usize> {
    Ok(diesel::update(
        workflow_runs::table
            .filter(workflow_runs::lease_owner.eq(owner))
            .filter(workflow_runs::status.eq_any(RUN_UNFINISHED)),
    )
    .set((
        workflow_runs::lease_until.eq(chrono::Utc::now()),
        workflow_runs::lease_owner.eq(None::<Uuid>),
    ))
    .execute(conn)
    .await?)
}
