//! MCP servers.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{array_remove, bumped_update_time, check_etag, next_update_time, write_error};
use crate::model::{McpServerChanges, McpServerRow, NewMcpServer};
use crate::schema::{agents, mcp_servers};

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

/// The servers of `ids` that exist in the tenant, in no set order.
pub async fn find_mcp_servers(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<McpServerRow>> {
    Ok(mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant))
        .filter(mcp_servers::id.eq_any(ids))
        .select(McpServerRow::as_select())
        .load(conn)
        .await?)
}

/// Records a discovery of the server's tools: the tools found, or why none were (the
/// tools last found are kept). A new version of the server: its etag changes.
pub async fn record_discovery(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    found: std::result::Result<serde_json::Value, String>,
) -> Result<McpServerRow> {
    let now = chrono::Utc::now();
    let (tools, error) = match found {
        Ok(tools) => (Some(tools), String::new()),
        Err(error) => (None, error),
    };
    diesel::update(
        mcp_servers::table.filter(
            mcp_servers::tenant_id
                .eq(tenant)
                .and(mcp_servers::id.eq(id)),
        ),
    )
    .set((
        tools.map(|tools| mcp_servers::tools.eq(tools)),
        mcp_servers::discovered_at.eq(now),
        mcp_servers::discovery_error.eq(error),
        mcp_servers::updated_at.eq(super::bumped_update_time()),
    ))
    .returning(McpServerRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound("MCP server"))
}
