//! Reading the local model's GGUF file: its weights, its tokenizer (built from the file's
//! own vocabulary and merges) and its chat template's special tokens.

use std::io::Cursor;
use std::path::Path;

use agentic_platform::error::{Error, Result};
use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::llama::Llama;

/// The most positions a generation runs, whatever the model was trained on: the rotary
/// tables and a cache this long stay small.
const MAX_POSITIONS: usize = 4096;

/// GGUF token types that are control tokens (`<|im_start|>`), never split by the BPE.
const CONTROL_TOKEN_TYPES: [i32; 2] = [3, 4];

/// What a GGUF file holds that the model needs.
pub(super) struct Loaded {
    pub weights: Llama,
    pub tokenizer: Tokenizer,
    /// Tokens that end an answer.
    pub end_tokens: Vec<u32>,
    /// The most tokens of prompt and answer together.
    pub context_window: usize,
}

fn failed(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::internal(format!("the local model {}: {what}", path.display()))
}

/// Loads a llama-architecture GGUF chat model with a ChatML template (SmolLM2).
pub(super) fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| failed(path, e))?;
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| failed(path, e))?;
    let template = metadata_string(&content, "tokenizer.chat_template").unwrap_or_default();
    if !template.contains("<|im_start|>") {
        return Err(failed(
            path,
            "only models with a ChatML chat template run locally",
        ));
    }
    let tokenizer = tokenizer(&content).map_err(|e| failed(path, e))?;
    let end_tokens: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
        .iter()
        .filter_map(|token| tokenizer.token_to_id(token))
        .chain(
            content
                .metadata
                .get("tokenizer.ggml.eos_token_id")
                .and_then(|id| id.to_u32().ok()),
        )
        .collect();
    let trained = content
        .metadata
        .get("llama.context_length")
        .and_then(|v| v.to_u32().ok())
        .map_or(MAX_POSITIONS, |n| n as usize);
    let context_window = trained.min(MAX_POSITIONS);
    let weights =
        Llama::from_gguf(&content, &mut reader, context_window).map_err(|e| failed(path, e))?;
    Ok(Loaded {
        weights,
        tokenizer,
        end_tokens,
        context_window,
    })
}

fn metadata_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content.metadata.get(key)?.to_string().ok().cloned()
}

/// The model's own byte-level BPE tokenizer, from the vocabulary, merges and token types
/// in the file's metadata.
fn tokenizer(content: &gguf_file::Content) -> std::result::Result<Tokenizer, String> {
    let get = |key: &str| {
        content
            .metadata
            .get(key)
            .ok_or_else(|| format!("no {key} in the metadata"))
    };
    let kind = get("tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| e.to_string())?;
    if kind != "gpt2" {
        return Err(format!(
            "a {kind} tokenizer; only byte-level BPE (gpt2) is supported"
        ));
    }
    let strings = |key: &str| -> std::result::Result<Vec<String>, String> {
        get(key)?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("a merge without a space: {merge:?}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    // SmolLM2's own tokenizer splits numbers into single digits before the BPE.
    let pre: PreTokenizerWrapper = match metadata_string(content, "tokenizer.ggml.pre").as_deref() {
        Some("smollm") => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        _ => byte_level.into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(types) => types
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_i32().map_err(|e| e.to_string()))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, kind)| CONTROL_TOKEN_TYPES.contains(kind))
        .map(|(token, _)| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&control);
    Ok(tokenizer)
}
