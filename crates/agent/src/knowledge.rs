//! Agents' knowledge, in the RAG service: checking that an agent's collections exist in
//! its tenant, and searching them for an answer. Every call carries the caller's own
//! token, so another tenant's collections stay invisible here too.

use agentic_platform::client::{CallError, Credentials, Dependency, Rpc};
use agentic_platform::error::{Error, Result};
use agentic_proto::agent::v1 as pb;
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use futures::future::try_join_all;
use tonic::Code;
use uuid::Uuid;

use crate::args::AgentArgs;

const RAG: &str = "agentic.rag.v1.RagService";

pub struct Knowledge {
    rag: Dependency,
}

impl Knowledge {
    pub fn new(args: &AgentArgs) -> Result<Self> {
        Ok(Self {
            rag: Dependency::new("rag", &args.rag_service_url, &args.users.client)?,
        })
    }

    /// Fails naming `field` unless every one of `ids` is a collection of the caller's
    /// tenant (one GetCollection each, at once).
    pub async fn require_collections(
        &self,
        credentials: &Credentials,
        field: &str,
        ids: &[Uuid],
    ) -> Result<()> {
        let checks = ids.iter().enumerate().map(|(index, id)| async move {
            let request = rag_pb::GetCollectionRequest { id: id.to_string() };
            let found = self
                .rag
                .call(
                    Rpc::read(RAG, "GetCollection"),
                    credentials,
                    request,
                    |channel, request| async move {
                        RagServiceClient::new(channel).get_collection(request).await
                    },
                )
                .await;
            match found {
                Ok(_) => Ok(()),
                Err(CallError::Status(status)) if status.code() == Code::NotFound => {
                    Err(Error::FailedPrecondition(format!(
                        "{field}[{index}]: collection {id} does not exist"
                    )))
                }
                Err(other) => Err(other.into()),
            }
        });
        try_join_all(checks).await.map(|_| ())
    }

    /// The chunks of `agent`'s collections closest to `query`: each collection searched at
    /// once, the results merged by score, the best `top_k` kept.
    pub async fn search(
        &self,
        credentials: &Credentials,
        agent: &pb::Agent,
        query: &str,
    ) -> Result<Vec<pb::ContextChunk>> {
        let retrieval = agent.retrieval.unwrap_or_default();
        let top_k = retrieval
            .top_k
            .unwrap_or(crate::input::DEFAULT_RETRIEVAL_TOP_K);
        let mode = match pb::RetrievalMode::try_from(retrieval.mode) {
            Ok(pb::RetrievalMode::Dense) => rag_pb::SearchMode::Dense,
            _ => rag_pb::SearchMode::Hybrid,
        };
        // Queries longer than the RAG service takes are cut (at a character boundary).
        let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
        let searches = agent.collection_ids.iter().map(|collection| {
            let request = rag_pb::SearchRequest {
                collection_id: collection.clone(),
                query: query.clone(),
                top_k: Some(top_k),
                min_score: retrieval.min_score,
                mode: mode as i32,
                ..Default::default()
            };
            async move {
                let found = self
                    .rag
                    .call(
                        Rpc::read(RAG, "Search"),
                        credentials,
                        request,
                        |channel, request| async move {
                            RagServiceClient::new(channel).search(request).await
                        },
                    )
                    .await;
                match found {
                    Ok(response) => Ok(response
                        .results
                        .into_iter()
                        .map(|result| chunk(collection, result))
                        .collect::<Vec<_>>()),
                    // Deleted since the agent named it: nothing to find there.
                    Err(CallError::Status(status)) if status.code() == Code::NotFound => {
                        Ok(Vec::new())
                    }
                    Err(other) => Err(Error::from(other)),
                }
            }
        });
        let mut chunks: Vec<pb::ContextChunk> = try_join_all(searches)
            .await?
            .into_iter()
            .flatten()
            .collect();
        chunks.sort_by(|a, b| b.score.total_cmp(&a.score));
        chunks.truncate(top_k.max(0) as usize);
        Ok(chunks)
    }
}

/// The longest query the RAG service's Search takes.
const MAX_QUERY_CHARS: usize = 2_000;

fn chunk(collection: &str, result: rag_pb::SearchResult) -> pb::ContextChunk {
    pb::ContextChunk {
        collection_id: collection.to_owned(),
        document_id: result.document_id,
        chunk_id: result.chunk_id,
        title: result.title,
        score: result.score,
        text: result.text,
    }
}
