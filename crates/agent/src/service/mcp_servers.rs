//! MCP servers: the tool servers agents may call. Header values are sealed before they
//! are stored and never leave the service; reads show only their names.

use std::collections::BTreeMap;

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
use crate::kinds;
use crate::mcp::session::{Endpoint, Failure, Session};
use crate::model::{McpServerRow, NewMcpServer};
use crate::store;

/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &[
    "name",
    "transport",
    "url",
    "command",
    "args",
    "headers",
    "enabled",
    "tools",
];

/// Header values sealed for one server, and their names.
struct SealedHeaders {
    sealed: Option<Vec<u8>>,
    names: Vec<String>,
}

impl AgentService {
    /// Seals `headers` for server `id` of `tenant`: the sealed value opens only on that row.
    fn seal_headers(
        &self,
        tenant: Uuid,
        id: Uuid,
        headers: &BTreeMap<String, String>,
    ) -> Result<SealedHeaders> {
        if headers.is_empty() {
            return Ok(SealedHeaders {
                sealed: None,
                names: Vec::new(),
            });
        }
        let plain = serde_json::to_vec(headers).map_err(Error::internal)?;
        Ok(SealedHeaders {
            sealed: Some(self.sealer.seal(&plain, &seal_context(tenant, id))?),
            names: headers.keys().cloned().collect(),
        })
    }

    fn mcp_server_key(&self, tenant: Uuid, id: Uuid) -> [super::StaleKey<'_>; 1] {
        [(&self.kinds.mcp_server, ScopedKey(tenant, id.to_string()))]
    }

    /// Where `row` is, with its headers unsealed.
    pub(super) fn endpoint(&self, row: &McpServerRow) -> Result<Endpoint> {
        let headers = match &row.headers_sealed {
            Some(sealed) => {
                let plain = self
                    .sealer
                    .open(sealed, &seal_context(row.tenant_id, row.id))?;
                serde_json::from_slice(&plain).map_err(Error::internal)?
            }
            None => BTreeMap::new(),
        };
        Ok(Endpoint {
            id: row.id,
            name: row.name.clone(),
            transport: row.transport.clone(),
            url: row.url.clone(),
            command: row.command.clone(),
            args: row.args.clone(),
            headers,
        })
    }

    /// Asks the server for its tools and stores what it said (the tools, or why not).
    /// Returns the stored row, and the failure if there was one.
    async fn discover(&self, row: &McpServerRow) -> Result<(McpServerRow, Option<Failure>)> {
        let endpoint = self.endpoint(row)?;
        let found = async {
            let session = Session::open(&endpoint, &self.mcp).await?;
            let tools = session.tools(self.mcp.mcp_connect_timeout).await;
            session.close().await;
            tools
        }
        .await;
        let (stored, failure) = match found {
            Ok(tools) => (
                Ok(serde_json::to_value(limit_tools(tools)).map_err(Error::internal)?),
                None,
            ),
            Err(failure) => (Err(failure.to_string()), Some(failure)),
        };
        let outcome = if failure.is_none() { "ok" } else { "error" };
        metrics::counter!("mcp_discoveries_total", "outcome" => outcome).increment(1);
        let (tenant, id) = (row.tenant_id, row.id);
        let row = self
            .pool
            .write_in(tenant, async |conn| {
                store::record_discovery(conn, tenant, id, stored).await
            })
            .await?;
        self.cache
            .invalidate(&self.mcp_server_key(row.tenant_id, row.id))
            .await;
        Ok((row, failure))
    }

    /// Discovery after a write that set the server's endpoint: a failure is recorded on
    /// the server, not returned.
    async fn discover_after_write(&self, row: McpServerRow) -> Result<McpServerRow> {
        if !row.enabled {
            return Ok(row);
        }
        Ok(self.discover(&row).await?.0)
    }
}

/// The tools a server may list that are kept.
const MAX_TOOLS: usize = 256;

fn limit_tools(mut tools: Vec<crate::model::ToolJson>) -> Vec<crate::model::ToolJson> {
    tools.truncate(MAX_TOOLS);
    tools
}

/// What a server's sealed headers are bound to.
fn seal_context(tenant: Uuid, id: Uuid) -> Vec<u8> {
    [b"mcp_server".as_slice(), tenant.as_bytes(), id.as_bytes()].concat()
}

pub(super) async fn create(
    service: &AgentService,
    request: Request<pb::CreateMcpServerRequest>,
) -> Result<Response<pb::CreateMcpServerResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let server = message
        .mcp_server
        .as_ref()
        .ok_or_else(|| Error::invalid("mcp_server", "is required"))?;
    let (input, request_id) = validate::all((
        input::new_mcp_server(server),
        idempotency::request_id(&message.request_id),
    ))?;
    let id = Uuid::now_v7();
    let headers = service.seal_headers(tenant, id, &input.headers)?;
    let new_server = NewMcpServer {
        id,
        tenant_id: tenant,
        name: input.name,
        transport: input.transport.to_owned(),
        url: input.url,
        command: input.command,
        args: input.args,
        headers_sealed: headers.sealed,
        header_names: headers.names,
        enabled: server.enabled,
        tools: input.tools,
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "CreateMcpServer",
            message,
            async |conn| {
                let row = store::insert_mcp_server(conn, &new_server).await?;
                Ok(pb::CreateMcpServerResponse {
                    mcp_server: Some(row.into()),
                })
            },
        )
        .await?;
    // The server as it stands once discovered: a retry, which gets the first response's
    // id, reads what the first call answered with.
    let created = match response.mcp_server.as_ref().map(|s| s.id.parse::<Uuid>()) {
        Some(Ok(id)) => {
            service
                .pool
                .read(async |conn| store::find_mcp_server(conn, tenant, id).await)
                .await?
        }
        _ => None,
    };
    let mcp_server = match created {
        Some(row) if row.discovered_at.is_none() => {
            Some(service.discover_after_write(row).await?.into())
        }
        Some(row) => Some(row.into()),
        None => response.mcp_server,
    };
    Ok(Response::new(pb::CreateMcpServerResponse { mcp_server }))
}

pub(super) async fn refresh_tools(
    service: &AgentService,
    request: Request<pb::RefreshMcpServerToolsRequest>,
) -> Result<Response<pb::RefreshMcpServerToolsResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let row = service
        .pool
        .read(async |conn| store::find_mcp_server(conn, tenant, id).await)
        .await?
        .ok_or(Error::NotFound("MCP server"))?;
    if !row.enabled {
        return Err(Error::FailedPrecondition("id: the MCP server is disabled".into()).into());
    }
    let (row, failure) = service.discover(&row).await?;
    match failure {
        None => Ok(Response::new(pb::RefreshMcpServerToolsResponse {
            mcp_server: Some(row.into()),
        })),
        Some(Failure::NotAllowed(reason)) => Err(Error::FailedPrecondition(reason).into()),
        Some(unreachable) => Err(Error::Unavailable(unreachable.to_string()).into()),
    }
}

pub(super) async fn get(
    service: &AgentService,
    request: Request<pb::GetMcpServerRequest>,
) -> Result<Response<pb::GetMcpServerResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let server = service
        .cache
        .get_or_load(&service.kinds.mcp_server, ScopedKey(tenant, id), || {
            service.pool.read_in(tenant, async |conn| {
                Ok(store::find_mcp_server(conn, tenant, id)
                    .await?
                    .map(pb::McpServer::from))
            })
        })
        .await?
        .ok_or(Error::NotFound("MCP server"))?;
    Ok(Response::new(pb::GetMcpServerResponse {
        mcp_server: Some(server),
    }))
}

pub(super) async fn list(
    service: &AgentService,
    request: Request<pb::ListMcpServersRequest>,
) -> Result<Response<pb::ListMcpServersResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let page_size = paging::page_size(message.page_size)?;
    let fingerprint = format!("mcp_servers|{tenant}");
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &McpServerRow| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_mcp_servers(conn, tenant, after, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListMcpServersResponse {
        mcp_servers: rows.into_iter().map(pb::McpServer::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn update(
    service: &AgentService,
    request: Request<pb::UpdateMcpServerRequest>,
) -> Result<Response<pb::UpdateMcpServerResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let server = message
        .mcp_server
        .as_ref()
        .ok_or_else(|| Error::invalid("mcp_server", "is required"))?;
    let id = validate::id("mcp_server.id", &server.id)?;
    let expected = input::etag("mcp_server.etag", &server.etag)?;
    let mask = fieldmask::update_mask(message.update_mask.as_ref(), UPDATABLE_FIELDS)?;
    let update = input::mcp_server_update(server, &mask)?;
    let mut changes = update.changes;
    if let Some(headers) = &update.headers {
        let sealed = service.seal_headers(tenant, id, headers)?;
        changes.headers_sealed = Some(sealed.sealed);
        changes.header_names = Some(sealed.names);
    }
    let row = service
        .pool
        .write_in(tenant, async |conn| {
            store::update_mcp_server(conn, tenant, id, expected, &changes, |after| {
                input::endpoint(&after.transport, &after.url, &after.command, &after.args)
            })
            .await
        })
        .await?;
    service
        .cache
        .invalidate(&service.mcp_server_key(tenant, id))
        .await;
    // A new endpoint (or headers, or a server enabled again) may offer other tools.
    let endpoint_changed = ["transport", "url", "command", "args", "headers", "enabled"]
        .iter()
        .any(|path| mask.includes(path))
        && !mask.includes("tools");
    let row = if endpoint_changed {
        service.discover_after_write(row).await?
    } else {
        row
    };
    Ok(Response::new(pb::UpdateMcpServerResponse {
        mcp_server: Some(row.into()),
    }))
}

pub(super) async fn delete(
    service: &AgentService,
    request: Request<pb::DeleteMcpServerRequest>,
) -> Result<Response<pb::DeleteMcpServerResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let agents_changed = service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_mcp_server(conn, tenant, id).await
        })
        .await?;
    service
        .cache
        .invalidate(&service.mcp_server_key(tenant, id))
        .await;
    if agents_changed > 0 {
        // Any number of agents lost the server: drop every cached agent of the tenant.
        service.cache.invalidate_scope(kinds::AGENTS, tenant).await;
    }
    Ok(Response::new(pb::DeleteMcpServerResponse {}))
}
