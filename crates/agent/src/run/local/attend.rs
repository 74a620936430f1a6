//! Attention for one new position (each decoded token), straight over the key-value
//! cache's memory.
//!
//! The general matrix multiply serves a query of one row badly: per key-value head it
//! multiplies 3 query rows by hundreds of cached keys with a kernel built for blocks of
//! 16 rows, and packs its operands first. After a long prompt that was a third of each
//! token's time. Here each query head walks its key-value head's rows once for the scores
//! and once for the weighted values, with dot products the compiler turns into FMA
//! vectors.

use candle_core::{Device, Result, Storage, Tensor};

/// Lanes summed apart in a dot product: one AVX register of f32.
const LANES: usize = 8;

/// The attention output, `[1, heads * head_dim]`, of `query` (`[heads * head_dim]` values,
/// its rotary embedding applied) over the first `seen` positions of `keys` and `values`
/// (`[kv_heads, capacity, head_dim]`, contiguous). Query heads share key-value heads in
/// consecutive groups, as llama's grouped-query attention has it.
pub(super) fn attend_one(
    query: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    seen: usize,
) -> Result<Tensor> {
    let (kv_heads, capacity, head_dim) = keys.dims3()?;
    let query = query.flatten_all()?.to_vec1::<f32>()?;
    let heads = query.len() / head_dim;
    let group = heads / kv_heads;
    let (key_storage, key_layout) = keys.storage_and_layout();
    let (value_storage, value_layout) = values.storage_and_layout();
    if !key_layout.is_contiguous() || !value_layout.is_contiguous() {
        candle_core::bail!("the key-value cache is not contiguous");
    }
    let keys = &f32s(&key_storage)?[key_layout.start_offset()..];
    let values = &f32s(&value_storage)?[value_layout.start_offset()..];

    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; heads * head_dim];
    let mut weights = vec![0f32; seen];
    for head in 0..heads {
        let first = (head / group) * capacity * head_dim;
        let cached = first..first + seen * head_dim;
        let q = &query[head * head_dim..(head + 1) * head_dim];
        for (weight, key) in weights
            .iter_mut()
            .zip(keys[cached.clone()].chunks_exact(head_dim))
        {
            *weight = dot(q, key) * scale;
        }
        softmax(&mut weights);
        let o = &mut out[head * head_dim..(head + 1) * head_dim];
        for (&weight, value) in weights.iter().zip(values[cached].chunks_exact(head_dim)) {
            for (o, v) in o.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
    }
    Tensor::from_vec(out, (1, heads * head_dim), &Device::Cpu)
}

fn f32s(storage: &Storage) -> Result<&[f32]> {
    match storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>(),
        _ => candle_core::bail!("the key-value cache is not in CPU memory"),
    }
}

/// `a · b`, summed in [`LANES`] partial sums (which the compiler keeps in one register).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; LANES];
    for (a, b) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for lane in 0..LANES {
            sums[lane] += a[lane] * b[lane];
        }
    }
    let rest: f32 = a
        .chunks_exact(LANES)
        .remainder()
        .iter()
        .zip(b.chunks_exact(LANES).remainder())
        .map(|(a, b)| a * b)
        .sum();
    sums.iter().sum::<f32>() + rest
}

/// `weights` turned into probabilities, in place.
fn softmax(weights: &mut [f32]) {
    let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for weight in weights.iter_mut() {
        *weight = (*weight - max).exp();
        total += *weight;
    }
    for weight in weights.iter_mut() {
        *weight /= total;
    }
}
