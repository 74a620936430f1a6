//! Fixtures for the end-to-end tests: services in-process on `127.0.0.1:0` (the platform's
//! generic [`TestService`]), against a fresh PostgreSQL database and the shared (or a
//! private) Redis, called over real gRPC. What is specific to the user service is here.

pub mod agent;
pub mod chat;
pub mod conversation;
pub mod echo;
pub mod mcp;
pub mod rag;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use agentic_platform::auth::roles;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{self, BearerChannel, TestService};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use agentic_user::UserApp;
use uuid::Uuid;

pub use agentic_platform::testsuite::{JWT_SECRET, Options};

/// The user schema's migrations.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations = UserApp::MIGRATIONS;

pub type UserClient = UserServiceClient<BearerChannel>;
/// A running user service.
pub type UserService = TestService<UserApp>;
/// A test's own database and a user service on it.
pub type Harness = testsuite::Harness<UserApp>;

/// What tests do with a running user service.
// Test-only and never boxed, so the futures need no `Send` bound spelled out.
#[allow(async_fn_in_trait)]
pub trait UserFixture {
    /// A client that sends `token` (none when `None`).
    async fn client(&self, token: Option<&str>) -> UserClient;

    /// Creates a tenant and returns its id with an admin client for it.
    async fn tenant(&self, slug: &str) -> (Uuid, UserClient);
}

impl UserFixture for UserService {
    async fn client(&self, token: Option<&str>) -> UserClient {
        UserServiceClient::new(self.bearer_channel(token).await)
    }

    async fn tenant(&self, slug: &str) -> (Uuid, UserClient) {
        let id = testsuite::create_tenant(self.channel().await, &self.tokens, slug).await;
        let admin = self.client(Some(&self.token(id, roles::ADMIN))).await;
        (id, admin)
    }
}

/// A create request for `email` with a display name.
pub fn new_user(email: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        email: email.to_owned(),
        display_name: format!("User {email}"),
        ..Default::default()
    }
}

/// A plain get of `id`.
pub fn get_user(id: &str) -> pb::GetUserRequest {
    pb::GetUserRequest {
        id: id.to_owned(),
        read_mask: None,
    }
}

/// Creates the user `email` (see [`new_user`]) and returns it.
pub async fn create_user(client: &mut UserClient, email: &str) -> pb::User {
    client
        .create_user(new_user(email))
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user")
}

/// An update of `id`'s display name alone.
pub fn rename(id: &str, display_name: impl Into<String>) -> pb::UpdateUserRequest {
    pb::UpdateUserRequest {
        user: Some(pb::User {
            id: id.to_owned(),
            display_name: display_name.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    }
}

/// The field names of a status's `google.rpc.BadRequest` details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The sum of a metric's samples on a Prometheus page whose lines contain every filter.
pub fn metric_sum(page: &str, name: &str, filters: &[&str]) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(name) && filters.iter().all(|f| line.contains(f)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A command-line tool `scripts/tools.sh` installs into `.local/bin` (`make test` runs it).
pub fn local_tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.local/bin")
        .join(name);
    assert!(
        path.exists(),
        "{name} is missing at {}: run scripts/tools.sh (make test does)",
        path.display()
    );
    path
}

/// Runs `command`, failing the test with `what` and its output unless it succeeds; its
/// standard output.
pub fn run_to_success(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A short unique slug for a tenant.
pub fn slug(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// The host and port of a `postgres://` URL.
pub fn database_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let host_port = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split('/').next().expect("host");
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("host:port")
}

/// `url` pointed at `addr` instead of its own host and port.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (user, host_and_path) = rest.split_once('@').expect("user@host");
    let path = host_and_path.split_once('/').map_or("", |(_, p)| p);
    format!("{scheme}://{user}@{addr}/{path}")
}
