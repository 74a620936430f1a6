//! Any server with an OpenAI-compatible `POST {base}/v1/embeddings` (OpenAI, Ollama,
//! text-embeddings-inference, vLLM, …), chosen by `EMBEDDING_PROVIDER=openai`.
//!
//! Each call has a timeout; answers 429 and 5xx, and calls that got no answer, are
//! retried with exponential backoff (honouring `Retry-After`); any other error fails the
//! call with the server's reason. Vectors are checked for their dimensions and stored
//! unit-length, as the local model's are.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use agentic_platform::error::{Error, Result};

use super::{Embedder, normalize};

/// The first retry waits this long; each later one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// No wait between retries is longer than this, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Characters of an error body quoted in the reason.
const MAX_REASON_CHARS: usize = 300;

pub struct OpenAi {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    dimensions: usize,
    api_key: Option<String>,
    retries: u32,
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// Why one try failed, and whether another may succeed.
enum Failure {
    Retry(String, Option<Duration>),
    Fatal(String),
}

impl OpenAi {
    pub fn new(
        base_url: &str,
        model: &str,
        dimensions: usize,
        api_key: Option<String>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Self> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::internal(format!(
                "EMBEDDING_URL must be an http:// URL, not {base_url:?}"
            )));
        }
        if model.is_empty() || dimensions == 0 {
            return Err(Error::internal(
                "the openai embedding provider needs EMBEDDING_MODEL and EMBEDDING_DIMENSIONS",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::internal(format!("embedding client: {e}")))?;
        Ok(Self {
            client,
            endpoint: format!("{}/v1/embeddings", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            dimensions,
            api_key,
            retries,
        })
    }

    async fn try_once(&self, texts: &[String]) -> std::result::Result<Vec<Vec<f32>>, Failure> {
        let mut request = self.client.post(&self.endpoint).json(&EmbeddingsRequest {
            model: &self.model,
            input: texts,
            encoding_format: "float",
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("embedding server unreachable: {e}"), None))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = agentic_platform::client::retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(MAX_REASON_CHARS).collect();
            let reason = format!("embedding server answered {status}: {body}");
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                Failure::Retry(reason, retry_after)
            } else {
                Failure::Fatal(reason)
            });
        }
        let body: EmbeddingsResponse = response.json().await.map_err(|e| {
            Failure::Fatal(format!("embedding server sent an unreadable answer: {e}"))
        })?;
        self.vectors(body, texts.len()).map_err(Failure::Fatal)
    }

    /// The answer's vectors in input order, checked and normalised.
    fn vectors(
        &self,
        body: EmbeddingsResponse,
        expected: usize,
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        if body.data.len() != expected {
            return Err(format!(
                "embedding server returned {} vectors for {expected} texts",
                body.data.len()
            ));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in body.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            if index >= expected || vectors[index].is_some() {
                return Err(format!("embedding server returned a bad index {index}"));
            }
            if item.embedding.len() != self.dimensions {
                return Err(format!(
                    "embedding server returned {} dimensions, expected {}",
                    item.embedding.len(),
                    self.dimensions
                ));
            }
            if item.embedding.iter().any(|x| !x.is_finite()) {
                return Err("embedding server returned a non-finite value".into());
            }
            let mut vector = item.embedding;
            normalize(&mut vector);
            vectors[index] = Some(vector);
        }
        Ok(vectors.into_iter().flatten().collect())
    }
}

impl Embedder for OpenAi {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The server's tokenizer is not known here: words and punctuation approximate it.
    fn count_tokens(&self, text: &str) -> usize {
        text.split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
            .filter(|word| !word.is_empty())
            .count()
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let mut backoff = FIRST_BACKOFF;
            let mut tries = 0;
            loop {
                tries += 1;
                match self.try_once(texts).await {
                    Ok(vectors) => return Ok(vectors),
                    Err(Failure::Retry(reason, after)) if tries <= self.retries => {
                        let wait = after.unwrap_or(backoff).min(MAX_BACKOFF);
                        tracing::warn!(%reason, ?wait, "embedding call failed; retrying");
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(Failure::Retry(reason, _)) | Err(Failure::Fatal(reason)) => {
                        return Err(Error::Unavailable(reason));
                    }
                }
            }
        })
    }
}
