//! The conversation service: conversations between users and agents, and their messages
//! (`agentic.conversation.v1.ConversationService`). The first service that calls others:
//! the agent and user services, through the platform's `client`.
//!
//! `service/` implements the RPCs (one module per resource), `input.rs` the validation,
//! `store/` the queries (one file per resource), `model.rs` the rows and their protobuf
//! mapping, `args.rs` the service's own settings; this file declares the service to the
//! platform.

pub mod args;
mod input;
pub mod model;
pub mod schema;
pub mod service;
pub mod store;

use std::sync::Arc;

use agentic_platform::cache::KindSpec;
use agentic_platform::error::Result;
use agentic_platform::principal::{PrincipalSource, RemotePrincipals};
use agentic_platform::server::Services;
use agentic_platform::service::{Context, ServiceSpec, ServiceType};
use agentic_proto::conversation::v1::conversation_service_server::ConversationServiceServer;
use args::ConversationArgs;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// What the conversation service caches.
pub mod kinds {
    use super::KindSpec;

    pub const CONVERSATION: KindSpec = KindSpec::new("conversation").default_ttl(300);
}

/// The conversation service, as the platform runs it.
pub struct ConversationApp;

impl ServiceType for ConversationApp {
    const SPEC: ServiceSpec = ServiceSpec {
        name: "conversation",
        about: "The Agentic conversation service: conversations and their messages",
        grpc_port: 50053,
        admin_port: 9153,
    };
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/conversation");
    const CACHE_KINDS: &'static [KindSpec] = &[kinds::CONVERSATION];

    type Args = ConversationArgs;

    fn services(context: &Context, args: &ConversationArgs, services: &mut Services) -> Result<()> {
        let request_ids = context.request_ids(service::REQUEST_IDS);
        let pool = context.pool.clone();
        services.background(move |stop| request_ids.clean_up(pool, stop));
        let service = service::ConversationService::new(context, args)?;
        services.add(agentic_platform::grpc_server!(
            ConversationServiceServer::new(service),
            context
        ));
        Ok(())
    }

    fn principal_source(
        context: &Context,
        args: &Self::Args,
    ) -> Result<Option<Arc<dyn PrincipalSource>>> {
        let source = RemotePrincipals::new(Self::SPEC.name, &args.users, context.tokens.clone())?;
        Ok(Some(Arc::new(source)))
    }
}
