//! Set-up shared by the tests that run the `agentic-user` binary.

use std::net::SocketAddr;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::testsuite::{Bearer, BearerChannel, auth_args, create_tenant, grpc_channel};
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use tonic::service::interceptor::InterceptedService;
use uuid::Uuid;

pub(crate) type Client = UserServiceClient<BearerChannel>;

/// Creates the tenant `slug` on the service at `addr`; returns its id with a client that
/// acts as its admin.
pub(crate) async fn tenant_admin(addr: SocketAddr, slug: &str) -> (Client, Uuid) {
    let tokens = Tokens::new(&auth_args()).expect("test secret");
    let channel = grpc_channel(addr).await.expect("connect");
    let tenant = create_tenant(channel.clone(), &tokens, slug).await;
    let (admin, _) = tokens
        .issue("test", Some(tenant), roles::ADMIN, None)
        .expect("token");
    let client =
        UserServiceClient::new(InterceptedService::new(channel, Bearer::new(Some(&admin))));
    (client, tenant)
}
