//! The user service: tenants, users and sign-in (`agentic.user.v1.UserService`).
//!
//! `service/` implements the RPCs (one module per resource), `input.rs` the validation,
//! `store/` the queries (one file per resource), `model.rs` the rows and their protobuf
//! mapping, `password.rs` the hashing; this file declares the service to the platform.

mod input;
pub mod model;
mod password;
pub mod principals;
pub mod schema;
pub mod service;
pub mod store;

use std::sync::Arc;

use agentic_platform::cache::KindSpec;
use agentic_platform::error::Result;
use agentic_platform::principal::PrincipalSource;
use agentic_platform::server::Services;
use agentic_platform::service::{Context, NoArgs, ServiceSpec, ServiceType};
use agentic_proto::user::v1::user_service_server::UserServiceServer;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// What the user service caches: users by id, email and username (one TTL), tenants.
pub mod kinds {
    use super::KindSpec;

    pub const USER: KindSpec = KindSpec::new("user");
    pub const USER_BY_EMAIL: KindSpec = KindSpec::new("user_by_email").ttl_of("user");
    pub const USER_BY_USERNAME: KindSpec = KindSpec::new("user_by_username").ttl_of("user");
    pub const TENANT: KindSpec = KindSpec::new("tenant");
}

/// The user service, as the platform runs it.
pub struct UserApp;

impl ServiceType for UserApp {
    const SPEC: ServiceSpec = ServiceSpec {
        name: "user",
        about: "The Agentic user service: tenants, users and sign-in",
        grpc_port: 50051,
        admin_port: 9151,
    };
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/user");
    const PUBLIC_METHODS: &'static [&'static str] = &["/agentic.user.v1.UserService/Authenticate"];
    const CACHE_KINDS: &'static [KindSpec] = &[
        kinds::USER,
        kinds::USER_BY_EMAIL,
        kinds::USER_BY_USERNAME,
        kinds::TENANT,
    ];

    type Args = NoArgs;

    fn principal_source(context: &Context, _: &NoArgs) -> Result<Option<Arc<dyn PrincipalSource>>> {
        Ok(Some(Arc::new(principals::UserPrincipals::new(
            context.pool.clone(),
        ))))
    }

    fn services(context: &Context, _: &NoArgs, services: &mut Services) -> Result<()> {
        let request_ids = context.request_ids(service::REQUEST_IDS);
        let pool = context.pool.clone();
        services.background(move |stop| request_ids.clean_up(pool, stop));
        let plans = service::PlanBoard::new(context.plan_announcer.clone());
        let (board, pool) = (plans.clone(), context.pool.clone());
        services.background(move |stop| board.keep_announced(pool, stop));
        let service = service::UserService::new(context, plans);
        services.add(agentic_platform::grpc_server!(
            UserServiceServer::new(service),
            context
        ));
        Ok(())
    }
}
