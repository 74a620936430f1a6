//! The llama architecture's forward pass (SmolLM2 and its kin), from a GGUF file's tensors.
//!
//! The suite's own rather than candle's `quantized_llama`, for two reasons: each weight
//! matrix is kept both 8-bit (for decoding) and f32 (for prompts, see [`Linear`]), and the
//! weights are shared between generations while each generation owns only its [`Cache`].

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::ops::{rms_norm, silu, softmax_last_dim};
use candle_nn::rotary_emb::rope_i;

use super::attend::attend_one;
use super::linear::Linear;

/// Quantisations candle has no SIMD dot product for: re-quantised to Q8_0 at load, twice
/// the bytes of Q4_1, but the model is small enough that the bytes matter less than
/// scalar arithmetic.
const SLOW: [GgmlDType; 4] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
];

/// The weights, shared by every generation.
pub(super) struct Llama {
    /// `[vocab, hidden]`, f32: a token's row is its input.
    embedding: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `[vocab, hidden]`: the last position's logits (llama ties it to the embedding when
    /// the file has no `output.weight`). One row at a time, so 8-bit only.
    output: QMatMul,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    /// Rotary embedding tables, `[positions, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
}

struct Layer {
    attention_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// One generation's keys and values, per layer: allocated once for every position the
/// generation may reach and written in place (appending to a tensor would copy all of it
/// on every token).
pub(super) struct Cache {
    layers: Vec<LayerCache>,
    /// Positions already run.
    len: usize,
}

struct LayerCache {
    /// `[kv_heads, capacity, head_dim]`.
    keys: Tensor,
    values: Tensor,
}

impl Llama {
    /// The model in `content`, read from `reader`; `positions` bounds the rotary tables.
    pub(super) fn from_gguf<R: std::io::Seek + std::io::Read>(
        content: &gguf_file::Content,
        reader: &mut R,
        positions: usize,
    ) -> Result<Self> {
        let cpu = Device::Cpu;
        let number = |key: &str| -> Result<&gguf_file::Value> {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("no {key} in the metadata")))
        };
        let heads = number("llama.attention.head_count")?.to_u32()? as usize;
        let kv_heads = number("llama.attention.head_count_kv")?.to_u32()? as usize;
        let blocks = number("llama.block_count")?.to_u32()? as usize;
        let hidden = number("llama.embedding_length")?.to_u32()? as usize;
        let rope_dim = number("llama.rope.dimension_count")?.to_u32()? as usize;
        let eps = number("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let freq_base = number("llama.rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(10_000.0);
        let mut tensor = |name: &str| content.tensor(reader, name, &cpu);

        let embedding_q = tensor("token_embd.weight")?;
        let embedding = embedding_q.dequantize(&cpu)?;
        let output = match tensor("output.weight") {
            Ok(output) => {
                let dense = output.dequantize(&cpu)?;
                fast(output, &dense)?
            }
            Err(_) => fast(embedding_q, &embedding)?,
        };
        let norm = tensor("output_norm.weight")?.dequantize(&cpu)?;
        let mut layers = Vec::with_capacity(blocks);
        for index in 0..blocks {
            let mut linear = |what: &str| linear(tensor(&format!("blk.{index}.{what}.weight"))?);
            layers.push(Layer {
                q: linear("attn_q")?,
                k: linear("attn_k")?,
                v: linear("attn_v")?,
                o: linear("attn_output")?,
                gate: linear("ffn_gate")?,
                up: linear("ffn_up")?,
                down: linear("ffn_down")?,
                attention_norm: tensor(&format!("blk.{index}.attn_norm.weight"))?
                    .dequantize(&cpu)?,
                ffn_norm: tensor(&format!("blk.{index}.ffn_norm.weight"))?.dequantize(&cpu)?,
            });
        }
        let (cos, sin) = rotary_tables(rope_dim, freq_base, positions)?;
        Ok(Self {
            embedding,
            layers,
            norm,
            output: QMatMul::from_qtensor(output)?,
            heads,
            kv_heads,
            head_dim: hidden / heads,
            eps,
            cos,
            sin,
        })
    }

    /// An empty cache for a generation of at most `positions` (prompt and answer).
    pub(super) fn cache(&self, positions: usize) -> Result<Cache> {
        let shape = (self.kv_heads, positions, self.head_dim);
        let layers = (0..self.layers.len())
            .map(|_| {
                Ok(LayerCache {
                    keys: Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
                    values: Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Cache { layers, len: 0 })
    }

    /// Runs `tokens` after the positions in `cache` (adding theirs to it); returns the
    /// logits for the token after the last one, `[vocab]`.
    pub(super) fn forward(&self, cache: &mut Cache, tokens: &[u32]) -> Result<Tensor> {
        let position = cache.len;
        let rows = tokens.len();
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embedding.index_select(&ids, 0)?;
        // One row may look at every position before it: no mask, and one-row attention.
        let mask = match rows {
            1 => None,
            _ => Some(causal_mask(rows, position)?),
        };
        let cos = self.cos.narrow(0, position, rows)?;
        let sin = self.sin.narrow(0, position, rows)?;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = rms_norm(&x, &layer.attention_norm, self.eps)?;
            let h = self.attention(
                layer,
                layer_cache,
                position,
                &h,
                mask.as_ref(),
                (&cos, &sin),
            )?;
            x = (x + h)?;
            let h = rms_norm(&x, &layer.ffn_norm, self.eps)?;
            let h = (silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (x + layer.down.forward(&h)?)?;
        }
        cache.len += rows;
        let last = rms_norm(&x.narrow(0, rows - 1, 1)?, &self.norm, self.eps)?;
        self.output.forward(&last)?.squeeze(0)
    }

    /// Self-attention of `x` (`[rows, hidden]`) over the cached positions and its own.
    /// Several rows (with their causal `mask`) go through the matrix multiply, the heads
    /// that share a key-value head as one matrix with it, so the keys and values are never
    /// copied per head; one row (no mask) takes [`attend_one`].
    fn attention(
        &self,
        layer: &Layer,
        cache: &mut LayerCache,
        position: usize,
        x: &Tensor,
        mask: Option<&Tensor>,
        (cos, sin): (&Tensor, &Tensor),
    ) -> Result<Tensor> {
        let rows = x.dim(0)?;
        // `[rows, heads * head_dim]` to `[1, heads, rows, head_dim]`.
        let split = |t: Tensor, heads: usize| {
            t.reshape((1, rows, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rope_i(&split(layer.q.forward(x)?, self.heads)?, cos, sin)?;
        let k = rope_i(&split(layer.k.forward(x)?, self.kv_heads)?, cos, sin)?;
        let v = split(layer.v.forward(x)?, self.kv_heads)?;
        cache.keys.slice_set(&k.squeeze(0)?, 1, position)?;
        cache.values.slice_set(&v.squeeze(0)?, 1, position)?;
        let seen = position + rows;
        let Some(mask) = mask else {
            return layer
                .o
                .forward(&attend_one(&q, &cache.keys, &cache.values, seen)?);
        };
        let keys = cache.keys.narrow(1, 0, seen)?;
        let values = cache.values.narrow(1, 0, seen)?;

        let group = self.heads / self.kv_heads;
        let q = q.reshape((self.kv_heads, group * rows, self.head_dim))?;
        let scores = (q.matmul(&keys.t()?)? / (self.head_dim as f64).sqrt())?
            .reshape((self.kv_heads, group, rows, seen))?
            .broadcast_add(mask)?
            .reshape((self.kv_heads, group * rows, seen))?;
        let y = softmax_last_dim(&scores)?.matmul(&values)?;
        let y = y
            .reshape((self.heads, rows, self.head_dim))?
            .transpose(0, 1)?
            .reshape((rows, ()))?;
        layer.o.forward(&y)
    }
}

/// `[rows, position + rows]`: 0 where row `i` (at `position + i`) may look, minus infinity
/// at the positions after it.
fn causal_mask(rows: usize, position: usize) -> Result<Tensor> {
    let seen = position + rows;
    let values: Vec<f32> = (0..rows)
        .flat_map(|i| {
            (0..seen).map(move |j| {
                if j > position + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (rows, seen), &Device::Cpu)
}

/// A weight matrix, both ways [`Linear`] keeps it.
fn linear(tensor: QTensor) -> Result<Linear> {
    let dense = tensor.dequantize(&Device::Cpu)?;
    Linear::new(fast(tensor, &dense)?, dense)
}

/// `tensor` (whose values are `dense`) in a quantisation candle has fast kernels for.
fn fast(tensor: QTensor, dense: &Tensor) -> Result<QTensor> {
    let row = tensor.shape().dims().last().copied().unwrap_or(0);
    if SLOW.contains(&tensor.dtype()) && row % GgmlDType::Q8_0.block_size() == 0 {
        QTensor::quantize(dense, GgmlDType::Q8_0)
    } else {
        Ok(tensor)
    }
}

/// cos and sin of each position times each rotary frequency.
fn rotary_tables(dims: usize, base: f32, positions: usize) -> Result<(Tensor, Tensor)> {
    let inverse: Vec<f32> = (0..dims)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dims as f32))
        .collect();
    let inverse = Tensor::new(inverse.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let angles = Tensor::arange(0, positions as u32, &Device::Cpu)?
        .to_dtype(DType::F32)?
        .unsqueeze(D::Minus1)?
        .matmul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use candle_core::IndexOp;
    use candle_transformers::models::quantized_llama::ModelWeights;

    use super::*;

    const MODEL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.local/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    );

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    fn argmax(v: &[f32]) -> usize {
        (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap()
    }

    /// Our logits `got` against candle's `expected`: nearly parallel, and our next token
    /// one that candle ranks within a tenth of its best (the two quantise the weights
    /// differently, Q8_0 and Q4_1, so near-ties may fall either way).
    fn agrees(got: &[f32], expected: &[f32], what: &str) {
        let similarity = cosine(got, expected);
        assert!(similarity > 0.999, "{what}: cosine {similarity}");
        let (ours, theirs) = (argmax(got), argmax(expected));
        assert!(
            expected[ours] >= expected[theirs] - 0.1,
            "{what}: we take {ours}, candle {theirs} ({} against {})",
            expected[ours],
            expected[theirs]
        );
    }

    /// candle's own llama (on the file's Q4_1 weights) and ours agree ([`agrees`]) after a
    /// prompt run as one block of many rows (the f32 path), after a few rows at a time
    /// (the 8-bit path), and on each decoded token (one-row attention).
    #[test]
    fn the_forward_pass_matches_candles_llama() {
        let bytes = std::fs::read(MODEL).expect("the model file (make tools fetches it)");
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader).unwrap();
        let ours = Llama::from_gguf(&content, &mut reader, 256).unwrap();
        let mut reader = Cursor::new(reader.into_inner());
        let content = gguf_file::Content::read(&mut reader).unwrap();
        let mut theirs = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).unwrap();

        // Forty token ids spread over the vocabulary.
        let prompt: Vec<u32> = (0..40).map(|i| 1 + (i * 977) % 49_000).collect();
        let reference = |theirs: &mut ModelWeights, tokens: &[u32], position: usize| {
            let input = Tensor::new(tokens, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = theirs.forward(&input, position).unwrap();
            logits.i(0).unwrap().to_vec1::<f32>().unwrap()
        };
        let expected = reference(&mut theirs, &prompt, 0);

        let mut in_one_block = ours.cache(64).unwrap();
        let got = ours.forward(&mut in_one_block, &prompt).unwrap();
        let got = got.to_vec1::<f32>().unwrap();
        agrees(&got, &expected, "the prompt in one block");

        let mut in_pieces = ours.cache(64).unwrap();
        let mut got = Vec::new();
        for piece in prompt.chunks(5) {
            got = ours
                .forward(&mut in_pieces, piece)
                .unwrap()
                .to_vec1()
                .unwrap();
        }
        agrees(&got, &expected, "the prompt in pieces");

        let mut token = argmax(&expected) as u32;
        for step in 0..8 {
            let expected = reference(&mut theirs, &[token], prompt.len() + step);
            let got = ours.forward(&mut in_one_block, &[token]).unwrap();
            let got = got.to_vec1::<f32>().unwrap();
            agrees(&got, &expected, &format!("decoded token {step}"));
            token = argmax(&expected) as u32;
        }
    }
}
