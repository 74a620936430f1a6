//! The agent service's queries. Each takes a connection, and every query filters by
//! tenant: another tenant's rows are never read or written. Deleted agents
//! (`deleted_at` set) are invisible to everything but undelete.

use std::time::Duration;

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result, unique_violation};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{
    AgentChanges, AgentFilter, AgentRow, McpServerChanges, McpServerRow, NewAgent, NewMcpServer,
    NewWorkflow, WorkflowChanges, WorkflowRow,
};
use crate::schema::{agents, mcp_servers, workflows};

diesel::define_sql_function! {
    /// PostgreSQL's `array_remove(array, element)`.
    fn array_remove(array: Array<SqlUuid>, element: SqlUuid) -> Array<SqlUuid>;
}

/// Maps a failed write to what a client must change.
fn write_error(error: diesel::result::Error) -> Error {
    match unique_violation(&error) {
        Some("agents_tenant_slug_live_key") => {
            Error::AlreadyExists("an agent with this slug already exists in the tenant".into())
        }
        Some("mcp_servers_tenant_name_key") => {
            Error::AlreadyExists("an MCP server with this name already exists in the tenant".into())
        }
        _ => Error::from(error),
    }
}

/// Fails with ABORTED unless the row is still as the caller read it: its etag (the
/// update time in microseconds) is unchanged.
fn check_etag(expected: Option<i64>, updated_at: DateTime<Utc>, what: &'static str) -> Result<()> {
    match expected {
        Some(expected) if expected != updated_at.timestamp_micros() => Err(Error::Aborted(what)),
        _ => Ok(()),
    }
}

/// The update time of a row's next version: now, but always at least a microsecond
/// after the last, so every write changes the etag.
fn next_update_time(last: DateTime<Utc>) -> DateTime<Utc> {
    let micros = Utc::now()
        .timestamp_micros()
        .max(last.timestamp_micros() + 1);
    DateTime::from_timestamp_micros(micros).unwrap_or(last)
}

/// `updated_at` moved forward in SQL, for writes that change many rows at once.
fn bumped_update_time() -> diesel::expression::SqlLiteral<Timestamptz> {
    diesel::dsl::sql("greatest(updated_at + interval '1 microsecond', now())")
}

// ---- agents ----

/// Fails with FAILED_PRECONDITION unless every id is an enabled MCP server of the tenant.
/// The servers are locked (FOR SHARE) until the caller's transaction ends, so none is
/// deleted or disabled under an agent being written.
async fn require_mcp_servers(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: Vec<(Uuid, bool)> = mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant))
        .filter(mcp_servers::id.eq_any(ids))
        .select((mcp_servers::id, mcp_servers::enabled))
        .for_share()
        .load(conn)
        .await?;
    for id in ids {
        match found.iter().find(|(found, _)| found == id) {
            None => {
                return Err(Error::FailedPrecondition(format!(
                    "agent.mcp_server_ids: MCP server {id} does not exist"
                )));
            }
            Some((_, false)) => {
                return Err(Error::FailedPrecondition(format!(
                    "agent.mcp_server_ids: MCP server {id} is disabled"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub async fn insert_agent(conn: &mut AsyncPgConnection, agent: &NewAgent) -> Result<AgentRow> {
    conn.transaction::<_, Error, _>(async |conn| {
        require_mcp_servers(conn, agent.tenant_id, &agent.mcp_server_ids).await?;
        diesel::insert_into(agents::table)
            .values(agent)
            .returning(AgentRow::as_returning())
            .get_result(conn)
            .await
            .map_err(write_error)
    })
    .await
}

/// Live agents of a tenant.
fn live_agents(tenant: Uuid) -> agents::BoxedQuery<'static, diesel::pg::Pg> {
    agents::table
        .filter(agents::tenant_id.eq(tenant))
        .filter(agents::deleted_at.is_null())
        .into_boxed()
}

pub async fn find_agent(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<AgentRow>> {
    Ok(live_agents(tenant)
        .filter(agents::id.eq(id))
        .select(AgentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn find_agent_by_slug(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    slug: &str,
) -> Result<Option<AgentRow>> {
    Ok(live_agents(tenant)
        .filter(agents::slug.eq(slug.to_owned()))
        .select(AgentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The live agents among `ids`, in one query.
pub async fn find_agents(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<AgentRow>> {
    Ok(live_agents(tenant)
        .filter(agents::id.eq_any(ids.to_vec()))
        .select(AgentRow::as_select())
        .load(conn)
        .await?)
}

/// One page of live agents in creation order (by id), after `after`, in one query.
pub async fn list_agents(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    filter: &AgentFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AgentRow>> {
    let mut query = live_agents(tenant)
        .select(AgentRow::as_select())
        .order(agents::id.asc())
        .limit(limit);
    if let Some(status) = filter.status {
        query = query.filter(agents::status.eq(status));
    }
    if let Some(model) = &filter.model {
        query = query.filter(agents::model.eq(model.clone()));
    }
    if let Some(after) = after {
        query = query.filter(agents::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// The live agent `id`, locked for the rest of the transaction.
async fn lock_live_agent(conn: &mut AsyncPgConnection, tenant: Uuid, id: Uuid) -> Result<AgentRow> {
    agents::table
        .filter(agents::tenant_id.eq(tenant).and(agents::id.eq(id)))
        .filter(agents::deleted_at.is_null())
        .select(AgentRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound("agent"))
}

/// Applies `changes` if the agent is at etag `expected` (any, when `None`); returns
/// the row before and after.
pub async fn update_agent(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    expected: Option<i64>,
    changes: &AgentChanges,
) -> Result<(AgentRow, AgentRow)> {
    conn.transaction::<_, Error, _>(async |conn| {
        let before = lock_live_agent(conn, tenant, id).await?;
        check_etag(
            expected,
            before.updated_at,
            "the agent changed since its etag was read",
        )?;
        if let Some(ids) = &changes.mcp_server_ids {
            require_mcp_servers(conn, tenant, ids).await?;
        }
        let after = diesel::update(agents::table.filter(agents::id.eq(id)))
            .set((
                changes,
                agents::updated_at.eq(next_update_time(before.updated_at)),
            ))
            .returning(AgentRow::as_returning())
            .get_result(conn)
            .await
            .map_err(write_error)?;
        Ok((before, after))
    })
    .await
}

/// Soft-deletes the agent; returns it as it was.
pub async fn delete_agent(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    expected: Option<i64>,
) -> Result<AgentRow> {
    conn.transaction::<_, Error, _>(async |conn| {
        let before = lock_live_agent(conn, tenant, id).await?;
        check_etag(
            expected,
            before.updated_at,
            "the agent changed since its etag was read",
        )?;
        let updated_at = next_update_time(before.updated_at);
        diesel::update(agents::table.filter(agents::id.eq(id)))
            .set((
                agents::deleted_at.eq(updated_at),
                agents::updated_at.eq(updated_at),
            ))
            .execute(conn)
            .await?;
        Ok(before)
    })
    .await
}

/// Restores an agent deleted less than `retention` ago, if its slug is still free.
pub async fn undelete_agent(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    retention: Duration,
) -> Result<AgentRow> {
    conn.transaction::<_, Error, _>(async |conn| {
        let row = agents::table
            .filter(agents::tenant_id.eq(tenant).and(agents::id.eq(id)))
            .select(AgentRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("agent"))?;
        let cutoff = Utc::now() - chrono::Duration::from_std(retention).map_err(Error::internal)?;
        match row.deleted_at {
            None => {
                return Err(Error::FailedPrecondition("the agent is not deleted".into()));
            }
            // Past the retention window it is as good as purged.
            Some(deleted_at) if deleted_at < cutoff => return Err(Error::NotFound("agent")),
            Some(_) => {}
        }
        diesel::update(agents::table.filter(agents::id.eq(id)))
            .set((
                agents::deleted_at.eq(None::<DateTime<Utc>>),
                agents::updated_at.eq(next_update_time(row.updated_at)),
            ))
            .returning(AgentRow::as_returning())
            .get_result(conn)
            .await
            .map_err(|error| match unique_violation(&error) {
                Some("agents_tenant_slug_live_key") => Error::AlreadyExists(
                    "another live agent now has this agent's slug; rename it first".into(),
                ),
                _ => Error::from(error),
            })
    })
    .await
}

/// The live agents among `ids` with their status, for workflow validation.
pub async fn agent_statuses(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>> {
    Ok(live_agents(tenant)
        .filter(agents::id.eq_any(ids.to_vec()))
        .select((agents::id, agents::status))
        .load(conn)
        .await?)
}

// ---- MCP servers ----

pub async fn insert_mcp_server(
    conn: &mut AsyncPgConnection,
    server: &NewMcpServer,
) -> Result<McpServerRow> {
    diesel::insert_into(mcp_servers::table)
        .values(server)
        .returning(McpServerRow::as_returning())
        .get_result(conn)
        .await
        .map_err(write_error)
}

pub async fn find_mcp_server(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<McpServerRow>> {
    Ok(mcp_servers::table
        .filter(
            mcp_servers::tenant_id
                .eq(tenant)
                .and(mcp_servers::id.eq(id)),
        )
        .select(McpServerRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn list_mcp_servers(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<McpServerRow>> {
    let mut query = mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant))
        .select(McpServerRow::as_select())
        .order(mcp_servers::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(mcp_servers::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// Applies `changes` if the server is at etag `expected`, and keeps them only if
/// `check` accepts the result (it sees the server as it would be).
pub async fn update_mcp_server(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    expected: Option<i64>,
    changes: &McpServerChanges,
    check: impl FnOnce(&McpServerRow) -> Result<()> + Send,
) -> Result<McpServerRow> {
    conn.transaction::<_, Error, _>(async |conn| {
        let before = mcp_servers::table
            .filter(
                mcp_servers::tenant_id
                    .eq(tenant)
                    .and(mcp_servers::id.eq(id)),
            )
            .select(McpServerRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("MCP server"))?;
        check_etag(
            expected,
            before.updated_at,
            "the MCP server changed since its etag was read",
        )?;
        let after = diesel::update(mcp_servers::table.filter(mcp_servers::id.eq(id)))
            .set((
                changes,
                mcp_servers::updated_at.eq(next_update_time(before.updated_at)),
            ))
            .returning(McpServerRow::as_returning())
            .get_result(conn)
            .await
            .map_err(write_error)?;
        check(&after)?;
        Ok(after)
    })
    .await
}

/// Deletes the server and removes it from every agent that refers to it, in one
/// transaction; returns how many agents changed.
pub async fn delete_mcp_server(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<usize> {
    conn.transaction::<_, Error, _>(async |conn| {
        let deleted = diesel::delete(
            mcp_servers::table.filter(
                mcp_servers::tenant_id
                    .eq(tenant)
                    .and(mcp_servers::id.eq(id)),
            ),
        )
        .execute(conn)
        .await?;
        if deleted == 0 {
            return Err(Error::NotFound("MCP server"));
        }
        // Deleted agents too: an undeleted agent must not call a server that is gone.
        let changed = diesel::update(
            agents::table
                .filter(agents::tenant_id.eq(tenant))
                .filter(agents::mcp_server_ids.contains(vec![id])),
        )
        .set((
            agents::mcp_server_ids.eq(array_remove(agents::mcp_server_ids, id)),
            agents::updated_at.eq(bumped_update_time()),
        ))
        .execute(conn)
        .await?;
        Ok(changed)
    })
    .await
}

// ---- workflows ----

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
