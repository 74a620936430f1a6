//! Running agents: the chat models an agent's `model` names, and how a prompt is built
//! for them.
//!
//! `chat.rs` is what every model takes and gives, `prompt.rs` fits a conversation into a
//! model's context window, `stop.rs` watches streamed text for stop sequences, `local/`
//! runs the local model on the CPU, `openai.rs` streams from OpenAI-compatible servers.
//! The RPC itself is `service/runs.rs`.

pub mod chat;
pub mod local;
pub mod openai;
pub mod prompt;
pub mod stop;

use std::sync::Arc;

use agentic_platform::error::{Error, Result};
use tokio::sync::OnceCell;

use crate::args::ModelArgs;
use chat::{ChatMessage, Generation, Settings};
use local::LocalModel;
use openai::{Provider, ProviderSettings};
use prompt::{Estimate, Measure};

/// The model name of the local model.
pub const LOCAL_MODEL: &str = "local/smollm2-135m-instruct";

/// Every model the service can run.
pub struct Models {
    local: Arc<OnceCell<LocalModel>>,
    args: ModelArgs,
    /// Longest prefix first.
    providers: Vec<Provider>,
    estimate: Estimate,
}

/// The model an agent names.
pub enum Model<'m> {
    Local(&'m LocalModel),
    Remote(&'m Provider, &'m Estimate),
}

impl Models {
    pub fn new(args: &ModelArgs) -> Result<Self> {
        let settings = ProviderSettings {
            connect_timeout: args.chat_connect_timeout,
            breaker_threshold: args.chat_breaker_threshold,
            breaker_cooldown: args.chat_breaker_cooldown,
            context_window: args.chat_context_tokens,
        };
        let keys = pairs("CHAT_API_KEYS", &args.chat_api_keys)?;
        let mut providers = pairs("CHAT_PROVIDERS", &args.chat_providers)?
            .into_iter()
            .map(|(prefix, url)| {
                let key = keys
                    .iter()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, k)| (*k).to_owned());
                let prefix = if prefix == "*" { "" } else { prefix };
                Provider::new(prefix, url, key, &settings)
            })
            .collect::<Result<Vec<_>>>()?;
        providers.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        Ok(Self {
            local: Arc::new(OnceCell::new()),
            args: args.clone(),
            providers,
            estimate: Estimate {
                window: args.chat_context_tokens,
            },
        })
    }

    /// Loads the local model now (in the background at start, when configured so).
    pub async fn load_local(&self) -> Result<&LocalModel> {
        let args = &self.args;
        self.local
            .get_or_try_init(|| async {
                let (path, concurrency, queue) = (
                    args.local_model_path.clone(),
                    args.local_model_concurrency,
                    args.local_model_queue,
                );
                tokio::task::spawn_blocking(move || LocalModel::load(&path, concurrency, queue))
                    .await
                    .map_err(|e| Error::internal(format!("loading the local model: {e}")))?
            })
            .await
    }

    /// The model called `name`: FAILED_PRECONDITION naming `agent.model` when nothing
    /// serves it.
    pub async fn resolve(&self, name: &str) -> Result<Model<'_>> {
        if let Some(provider) = self.providers.iter().find(|p| p.serves(name)) {
            return Ok(Model::Remote(provider, &self.estimate));
        }
        if name == LOCAL_MODEL {
            return match self.load_local().await {
                Ok(model) => Ok(Model::Local(model)),
                Err(error) => {
                    tracing::error!(%error, "the local model cannot be loaded");
                    Err(Error::FailedPrecondition(format!(
                        "agent.model: the local model is not installed here ({})",
                        self.args.local_model_path.display()
                    )))
                }
            };
        }
        Err(Error::FailedPrecondition(format!(
            "agent.model: no provider serves model '{name}' (set CHAT_PROVIDERS)"
        )))
    }
}

impl Model<'_> {
    /// How a prompt for it is measured.
    pub fn measure(&self) -> &dyn Measure {
        match self {
            Model::Local(model) => *model,
            Model::Remote(_, estimate) => *estimate,
        }
    }

    /// Starts the answer to `messages`.
    pub async fn start(
        &self,
        name: &str,
        messages: &[ChatMessage],
        settings: Settings,
    ) -> Result<Generation> {
        match self {
            Model::Local(model) => model.start(messages, settings).await,
            Model::Remote(provider, _) => provider.start(name, messages, &settings).await,
        }
    }

    /// Whether it is offered tools: a provider's models are; the local model is not (too
    /// small to call them reliably).
    pub fn takes_tools(&self) -> bool {
        matches!(self, Model::Remote(..))
    }

    /// The label of its kind in metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Local(_) => "local",
            Model::Remote(..) => "provider",
        }
    }
}

/// `a=b,c=d` as pairs; INVALID naming the setting when an entry has no `=`.
fn pairs<'a>(setting: &str, text: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| Error::invalid(setting, format!("'{entry}' is not prefix=value")))
        })
        .collect()
}
