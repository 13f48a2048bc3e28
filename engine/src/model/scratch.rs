//! The buffers a forward pass works in. They live with the model's weights and are reused
//! from call to call, so decoding a token allocates nothing: every vector already has the
//! capacity one token needs after the first step.

use crate::quant::{DotType, QuantizedRow};

/// The longest call that works in the kept buffers: a decode step, or the few tokens a
/// constraint forces at once. A longer one (a prompt) works in buffers of its own, freed
/// after it, so the ~5 MB of a 128-token batch of Gemma 3 270M are not held for the rest of
/// the model's life (nor left between other allocations).
pub(crate) const KEEP_TOKENS: usize = 8;

#[derive(Default)]
pub(crate) struct Scratch {
    /// The residual stream, one row per token.
    pub x: Vec<f32>,
    /// A normalised copy of `x`, the input of attention or the feed-forward block.
    pub h: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// The attention heads' outputs, in `q`'s layout.
    pub att: Vec<f32>,
    /// The output of `wo` or `w_down`, before the residual add.
    pub proj: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// A query group's attention weights, and its queries rounded to f16.
    pub scores: Vec<f32>,
    pub q16: Vec<f32>,
    pub acts: Activations,
    /// The last token's normalised hidden state, and that quantized for the output head.
    pub last: Vec<f32>,
    pub out: Option<QuantizedRow>,
}

/// The per-token widths of the buffers: the model's dimensions.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub d: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub n_ff: usize,
}

impl Scratch {
    /// Each per-token buffer with its width.
    fn buffers(&mut self, m: Dims) -> [(&mut Vec<f32>, usize); 9] {
        [
            (&mut self.x, m.d),
            (&mut self.h, m.d),
            (&mut self.q, m.q_dim),
            (&mut self.k, m.kv_dim),
            (&mut self.v, m.kv_dim),
            (&mut self.att, m.q_dim),
            (&mut self.proj, m.d),
            (&mut self.gate, m.n_ff),
            (&mut self.up, m.n_ff),
        ]
    }

    /// Size the per-token buffers for `n` tokens (zeroed; their capacity is kept).
    pub fn resize(&mut self, n: usize, m: Dims) {
        for (b, width) in self.buffers(m) {
            b.clear();
            b.resize(n * width, 0.0);
        }
    }
}

/// A batch of activation rows, quantized on demand once per dot type (a layer's products
/// usually share one; a model mixing weight types needs two).
#[derive(Default)]
pub(crate) struct Activations {
    rows: Vec<f32>,
    width: usize,
    /// Per dot type: its rows, and whether they hold the current `rows` (the rest are kept
    /// for their buffers).
    quantized: Vec<(DotType, Vec<QuantizedRow>, bool)>,
}

impl Activations {
    pub fn set(&mut self, rows: &[f32], width: usize) {
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.width = width;
        self.quantized.iter_mut().for_each(|q| q.2 = false);
    }

    pub fn get(&mut self, kind: DotType) -> &[QuantizedRow] {
        let i = match self.quantized.iter().position(|q| q.0 == kind) {
            Some(i) => i,
            None => {
                self.quantized.push((kind, Vec::new(), false));
                self.quantized.len() - 1
            }
        };
        let n = self.rows.len() / self.width;
        let (_, rows, current) = &mut self.quantized[i];
        if !*current {
            if rows.len() < n {
                rows.resize_with(n, || QuantizedRow::new(kind));
            }
            for (q, r) in rows.iter_mut().zip(self.rows.chunks_exact(self.width)) {
                q.quantize(r);
            }
            *current = true;
        }
        &rows[..n]
    }
}
