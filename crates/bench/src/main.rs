//! `agentic-baseline`: the bare servers `make bench` measures the services against. Not a
//! service: no auth, metrics, cache, pool or limits, only what the measured path needs.
//!
//! - `echo`: `grpc.health.v1.Health/Check` answering a constant: tonic's own floor. With
//!   `--coalesced-writes`, over the platform's write-coalescing connections, so the
//!   services' layers can be weighed apart from what that saves.
//! - `by-key`: `agentic.user.v1.UserService/GetUser` reading the row by primary key with
//!   one prepared statement per tokio-postgres connection: the database path's floor. By
//!   default each request has a connection to itself while it runs, as with any pool;
//!   `--pipelined` lets requests share connections, which a pool cannot.
//!
//! - `search`: `agentic.rag.v1.RagService/Search` with a query vector, running the RAG
//!   service's dense statement through the platform's pool (`search_baseline`).
//!
//! They speak the methods the load generators call, so one generator drives service and
//! baseline alike.

mod search_baseline;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentic_platform::server::coalesce::CoalescedWrites;
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_server::{UserService, UserServiceServer};
use agentic_user::model::UserRow;
use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The user service with GetUser alone; the other methods are unimplemented.
macro_rules! get_user_only {
    ($($method:ident($request:ident) -> $response:ident,)*) => {
        #[tonic::async_trait]
        impl UserService for ByKey {
            async fn get_user(
                &self,
                request: Request<pb::GetUserRequest>,
            ) -> Result<Response<pb::GetUserResponse>, Status> {
                self.by_key(request).await
            }
            $(
                async fn $method(
                    &self,
                    _: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    Err(Status::unimplemented("not part of the baseline"))
                }
            )*
        }
    };
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agentic-baseline",
    about = "Bare tonic baselines for make bench"
)]
struct Cli {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:27070")]
    addr: SocketAddr,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Health/Check answering SERVING.
    Echo {
        /// Serve over the platform's `CoalescedWrites` connections, as the services do.
        #[arg(long)]
        coalesced_writes: bool,
    },
    /// GetUser by primary key through tokio-postgres.
    ByKey {
        /// The user service's database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// PostgreSQL connections, each with its prepared statement.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Send queries of concurrent requests down one connection without waiting.
        #[arg(long)]
        pipelined: bool,
    },
    /// RagService/Search by query vector through the RAG service's statement.
    Search {
        /// The RAG service's database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = tonic::transport::Server::builder();
    match cli.mode {
        Mode::Echo { coalesced_writes } => {
            let mut server = server;
            let router = server.add_service(HealthServer::new(Echo));
            if coalesced_writes {
                let listener = tokio::net::TcpListener::bind(cli.addr).await?;
                let incoming = TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .map_ok(CoalescedWrites::new);
                router.serve_with_incoming(incoming).await?;
            } else {
                router.serve(cli.addr).await?;
            }
        }
        Mode::ByKey {
            database_url,
            connections,
            pipelined,
        } => {
            let by_key = ByKey::connect(&database_url, connections, pipelined).await?;
            let mut server = server;
            server
                .add_service(UserServiceServer::new(by_key))
                .serve(cli.addr)
                .await?;
        }
        Mode::Search { database_url } => {
            let search = search_baseline::SearchOnly::new(&database_url);
            let mut server = server;
            server
                .add_service(
                    agentic_proto::rag::v1::rag_service_server::RagServiceServer::new(search),
                )
                .serve(cli.addr)
                .await?;
        }
    }
    Ok(())
}

struct Echo;

#[tonic::async_trait]
impl Health for Echo {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not part of the baseline"))
    }
}

/// The row by primary key with the columns the user service selects, through one
/// prepared statement per connection; connections are taken round-robin.
struct ByKey {
    connections: Vec<(tokio_postgres::Client, tokio_postgres::Statement)>,
    next: AtomicUsize,
    /// Indexes of connections no request holds; `None` when pipelined.
    free: Option<Free>,
}

/// The idle connections of the exclusive mode: a permit per idle connection.
struct Free {
    permits: tokio::sync::Semaphore,
    idle: std::sync::Mutex<Vec<usize>>,
}

impl Free {
    async fn take(&self) -> Held<'_> {
        let permit = self.permits.acquire().await.expect("never closed");
        let turn = self.idle.lock().expect("idle lock").pop();
        Held {
            free: self,
            turn: turn.expect("a permit per idle connection"),
            _permit: permit,
        }
    }
}

/// A connection taken for one request; given back when dropped, even if the request is
/// abandoned.
struct Held<'a> {
    free: &'a Free,
    turn: usize,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.free.idle.lock().expect("idle lock").push(self.turn);
    }
}

const BY_KEY: &str = "SELECT id, tenant_id, email, username, display_name, role, status, \
     created_at, updated_at FROM users.users WHERE id = $1";

impl ByKey {
    async fn connect(url: &str, connections: usize, pipelined: bool) -> anyhow::Result<Self> {
        let mut opened = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let statement = client.prepare(BY_KEY).await?;
            opened.push((client, statement));
        }
        let free = (!pipelined).then(|| Free {
            permits: tokio::sync::Semaphore::new(opened.len()),
            idle: std::sync::Mutex::new((0..opened.len()).collect()),
        });
        Ok(Self {
            connections: opened,
            next: AtomicUsize::new(0),
            free,
        })
    }
}

impl ByKey {
    async fn by_key(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let id: uuid::Uuid = request
            .get_ref()
            .id
            .parse()
            .map_err(|_| Status::invalid_argument("id"))?;
        let row = match &self.free {
            None => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
                self.query(turn, &id).await
            }
            Some(free) => {
                let held = free.take().await;
                self.query(held.turn, &id).await
            }
        };
        let row = row?.ok_or_else(|| Status::not_found("user"))?;
        let user = UserRow {
            id: row.get(0),
            tenant_id: row.get(1),
            email: row.get(2),
            username: row.get(3),
            display_name: row.get(4),
            role: row.get(5),
            status: row.get(6),
            created_at: row.get(7),
            updated_at: row.get(8),
        };
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user.into()),
        }))
    }
}

impl ByKey {
    async fn query(
        &self,
        turn: usize,
        id: &uuid::Uuid,
    ) -> Result<Option<tokio_postgres::Row>, Status> {
        let (client, statement) = &self.connections[turn];
        client
            .query_opt(statement, &[id])
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }
}

get_user_only! {
        create_tenant(CreateTenantRequest) -> CreateTenantResponse,
        get_tenant(GetTenantRequest) -> GetTenantResponse,
        update_tenant(UpdateTenantRequest) -> UpdateTenantResponse,
        list_tenants(ListTenantsRequest) -> ListTenantsResponse,
        get_principal(GetPrincipalRequest) -> GetPrincipalResponse,
        set_tenant_rate_limits(SetTenantRateLimitsRequest) -> SetTenantRateLimitsResponse,
        get_tenant_rate_limits(GetTenantRateLimitsRequest) -> GetTenantRateLimitsResponse,
        create_user(CreateUserRequest) -> CreateUserResponse,
        lookup_user(LookupUserRequest) -> LookupUserResponse,
        update_user(UpdateUserRequest) -> UpdateUserResponse,
        delete_user(DeleteUserRequest) -> DeleteUserResponse,
        list_users(ListUsersRequest) -> ListUsersResponse,
        batch_create_users(BatchCreateUsersRequest) -> BatchCreateUsersResponse,
        authenticate(AuthenticateRequest) -> AuthenticateResponse,
}
