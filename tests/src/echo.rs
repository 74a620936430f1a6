//! `agentic.echo.v1.EchoService`: a service of one RPC, for the platform's own tests. It
//! is nothing but a [`ServiceType`] implementation, so whatever it can do (serving, auth,
//! health, readiness, reflection, metrics, drain) comes from the platform.

use std::sync::Arc;
use std::time::Duration;

use agentic_platform::auth::Caller;
use agentic_platform::error::Result;
use agentic_platform::principal::PrincipalSource;
use agentic_platform::server::Services;
use agentic_platform::service::{Context, NoArgs, ServiceSpec, ServiceType};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use tonic::{Request, Response, Status};

pub mod pb {
    tonic::include_proto!("agentic.echo.v1");
}

/// The descriptor set reflection serves for the echo service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/echo_descriptor.bin"));

pub struct EchoApp;

impl ServiceType for EchoApp {
    const SPEC: ServiceSpec = ServiceSpec {
        name: "echo",
        about: "A one-RPC service for the platform's tests",
        grpc_port: 50099,
        admin_port: 9199,
    };
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/echo");
    const FILE_DESCRIPTOR_SET: &'static [u8] = FILE_DESCRIPTOR_SET;

    type Args = NoArgs;

    fn principal_source(_: &Context, _: &NoArgs) -> Result<Option<Arc<dyn PrincipalSource>>> {
        Ok(None)
    }

    fn services(context: &Context, _: &NoArgs, services: &mut Services) -> Result<()> {
        services.add(agentic_platform::grpc_server!(
            pb::echo_service_server::EchoServiceServer::new(Echo),
            context
        ));
        Ok(())
    }
}

struct Echo;

#[tonic::async_trait]
impl pb::echo_service_server::EchoService for Echo {
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        let tenant = Caller::of(&request)?.tenant()?;
        let message = request.into_inner();
        tokio::time::sleep(Duration::from_millis(message.delay_ms.into())).await;
        Ok(Response::new(pb::EchoResponse {
            message: message.message,
            tenant_id: tenant.to_string(),
        }))
    }
}
