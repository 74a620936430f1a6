//! The RAG service (`agentic.rag.v1.RagService`): collections, documents ingested by
//! queue workers (`ingest`), the chunker (`chunking`), the embedders (`embedding`) and
//! pgvector search (`store::search`).
//!
//! `service/` implements the RPCs (one module per resource), `input.rs` the validation,
//! `store/` the queries (one file per resource), `model.rs` the rows and their protobuf
//! mapping, `args.rs` the service's own settings; this file declares the service to the
//! platform.

pub mod args;
pub mod chunking;
pub mod embedding;
pub mod ingest;
mod input;
pub mod model;
pub mod schema;
pub mod service;
pub mod store;

pub use input::DEFAULT_EF_SEARCH;

use std::sync::Arc;

use agentic_platform::cache::KindSpec;
use agentic_platform::error::Result;
use agentic_platform::principal::{PrincipalSource, RemotePrincipals};
use agentic_platform::server::Services;
use agentic_platform::service::{Context, ServiceSpec, ServiceType};
use agentic_proto::rag::v1::rag_service_server::RagServiceServer;
use args::RagArgs;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// What the RAG service caches, with the seeds' TTLs.
pub mod kinds {
    use super::KindSpec;

    /// Every cached document of a tenant, dropped at once when a collection (and so its
    /// documents) goes.
    pub const DOCUMENTS: &str = "rag_documents";
    /// Every cached search result of a collection, dropped at once by any change to it.
    pub const SEARCHES: &str = "rag_search";

    pub const COLLECTION: KindSpec = KindSpec::new("collection").default_ttl(300);
    /// Content-addressed: a text's vector never changes, so it lives long.
    pub const EMBEDDING: KindSpec = KindSpec::new("embedding")
        .ttl_of("embeddings")
        .default_ttl(3600);
    /// Documents by id, in a namespace per tenant: deleting a collection drops all of
    /// the tenant's at once (its documents went with it).
    pub const DOCUMENT: KindSpec = KindSpec::new("document")
        .default_ttl(300)
        .in_namespace(DOCUMENTS);
    /// Search results, in a namespace per collection: any change to it drops them all.
    pub const SEARCH: KindSpec = KindSpec::new("rag_search")
        .default_ttl(300)
        .in_namespace(SEARCHES);
}

/// Lowercase hex of `bytes`: cache keys name content by its SHA-256 digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The RAG service, as the platform runs it.
pub struct RagApp;

impl ServiceType for RagApp {
    const SPEC: ServiceSpec = ServiceSpec {
        name: "rag",
        about: "The Agentic RAG service: collections, document ingestion, embeddings and vector search",
        grpc_port: 50054,
        admin_port: 9154,
    };
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/rag");
    const CACHE_KINDS: &'static [KindSpec] = &[
        kinds::COLLECTION,
        kinds::DOCUMENT,
        kinds::EMBEDDING,
        kinds::SEARCH,
    ];
    /// The repository's own model folder, wherever a test runs from.
    const TEST_FLAGS: &'static [&'static str] = &[
        "--embedding-model-dir",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.local/models"),
    ];

    type Args = RagArgs;

    fn services(context: &Context, args: &RagArgs, services: &mut Services) -> Result<()> {
        let request_ids = context.request_ids(service::REQUEST_IDS);
        let pool = context.pool.clone();
        services.background(move |stop| request_ids.clean_up(pool, stop));
        let pool = context.pool.clone();
        services.background(move |stop| ingest::report_queue_depth(pool, stop));
        let service = service::RagService::new(context, args)?;
        let ingestor = service.ingestor();
        for _ in 0..args.ingest.ingest_workers {
            let ingestor = ingestor.clone();
            services.background(move |stop| ingestor.run_worker(stop));
        }
        services.add(agentic_platform::grpc_server!(
            RagServiceServer::new(service),
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
