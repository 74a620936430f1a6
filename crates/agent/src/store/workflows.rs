//! Workflows.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{check_etag, next_update_time};
use crate::model::{NewWorkflow, WorkflowChanges, WorkflowRow};
use crate::schema::workflows;

pub async fn insert_workflow(
    conn: &mut AsyncPgConnection,
    workflow: &NewWorkflow,
) -> Result<WorkflowRow> {
    Ok(diesel::insert_into(workflows::table)
        .values(workflow)
        .returning(WorkflowRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find_workflow(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<WorkflowRow>> {
    Ok(workflows::table
        .filter(workflows::tenant_id.eq(tenant).and(workflows::id.eq(id)))
        .select(WorkflowRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn list_workflows(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WorkflowRow>> {
    let mut query = workflows::table
        .filter(workflows::tenant_id.eq(tenant))
        .select(WorkflowRow::as_select())
        .order(workflows::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(workflows::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

pub async fn update_workflow(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    expected: Option<i64>,
    changes: &WorkflowChanges,
) -> Result<WorkflowRow> {
    conn.transaction::<_, Error, _>(async |conn| {
        let updated_at: DateTime<Utc> = workflows::table
            .filter(workflows::tenant_id.eq(tenant).and(workflows::id.eq(id)))
            .select(workflows::updated_at)
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("workflow"))?;
        check_etag(
            expected,
            updated_at,
            "the workflow changed since its etag was read",
        )?;
        Ok(
            diesel::update(workflows::table.filter(workflows::id.eq(id)))
                .set((
                    changes,
                    workflows::updated_at.eq(next_update_time(updated_at)),
                ))
                .returning(WorkflowRow::as_returning())
                .get_result(conn)
                .await?,
        )
    })
    .await
}

pub async fn delete_workflow(conn: &mut AsyncPgConnection, tenant: Uuid, id: Uuid) -> Result<()> {
    let deleted = diesel::delete(
        workflows::table.filter(workflows::tenant_id.eq(tenant).and(workflows::id.eq(id))),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(Error::NotFound("workflow"));
    }
    Ok(())
}
