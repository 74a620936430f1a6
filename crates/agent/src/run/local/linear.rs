//! A weight matrix kept twice, once for each shape of work the model does.
//!
//! Decoding multiplies one row of activations by each matrix: reading the weights is the
//! cost, so they stay 8-bit (candle's Q8_0 dot products). A prompt multiplies many rows at
//! once: then arithmetic is the cost, and candle's 8-bit kernel does one row against four
//! weight rows at a time, re-quantising nothing but re-reading each weight block per row.
//! The same weights in f32 go through a tiled matrix multiply (the `gemm` crate, with FMA)
//! that reuses every load across a block of rows and columns: prefill runs about 1.5 times
//! as fast, for four bytes per weight more (`docs/performance.md`, "The local chat model").

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

/// Rows of activations from which the f32 copy is used: below, the 8-bit kernel's smaller
/// reads win.
const DENSE_FROM_ROWS: usize = 16;

pub(super) struct Linear {
    /// `[out, in]`, 8-bit.
    quantized: QMatMul,
    /// `[out, in]`, f32, for many rows at once.
    dense: Tensor,
}

impl Linear {
    /// `quantized` and `dense` hold the same matrix.
    pub(super) fn new(quantized: QTensor, dense: Tensor) -> Result<Self> {
        Ok(Self {
            quantized: QMatMul::from_qtensor(quantized)?,
            dense,
        })
    }

    /// `x` is `[rows, in]`; the result `[rows, out]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dim(0)? >= DENSE_FROM_ROWS {
            x.matmul(&self.dense.t()?)
        } else {
            self.quantized.forward(x)
        }
    }
}
