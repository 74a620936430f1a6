//! Agents; deleted ones (`deleted_at` set) are invisible to everything but undelete.

use std::time::Duration;

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result, unique_violation};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{check_etag, next_update_time, write_error};
use crate::model::{AgentChanges, AgentFilter, AgentRow, NewAgent};
use crate::schema::{agents, mcp_servers};

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
