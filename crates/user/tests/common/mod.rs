//! Set-up shared by the tests that run the `agentic-user` binary.

use std::net::SocketAddr;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::testsuite::{Bearer, BearerChannel, auth_args, grpc_channel};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use tonic::service::interceptor::InterceptedService;

pub(crate) type Client = UserServiceClient<BearerChannel>;

/// Creates the tenant `slug` on the service at `addr`; returns it with a client that
/// acts as its admin.
pub(crate) async fn tenant_admin(addr: SocketAddr, slug: &str) -> (Client, pb::Tenant) {
    let tokens = Tokens::new(&auth_args()).expect("test secret");
    let channel = grpc_channel(addr).await.expect("connect");
    let client = |token: &str| {
        UserServiceClient::new(InterceptedService::new(
            channel.clone(),
            Bearer::new(Some(token)),
        ))
    };
    let (platform, _) = tokens.issue("test", None, roles::PLATFORM, None).unwrap();
    let tenant = client(&platform)
        .create_tenant(pb::CreateTenantRequest {
            name: format!("Tenant {slug}"),
            slug: slug.to_owned(),
        })
        .await
        .expect("create tenant")
        .into_inner()
        .tenant
        .expect("tenant");
    let (admin, _) = tokens
        .issue("test", Some(tenant.id.parse().unwrap()), roles::ADMIN, None)
        .unwrap();
    (client(&admin), tenant)
}
