//! Weight matrices that stay in their GGUF encoding, and the matrix-vector products on them.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::quant::{dequantize_row, vec_dot, vec_dot_x4, DotType, GgmlType, QuantizedRow};
use crate::storage::Storage;

/// A 2-D weight `[rows, cols]` (ggml's `ne = [cols, rows]`): `rows` output features, each a
/// contiguous encoded row of `cols` inputs.
#[derive(Clone)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    storage: Arc<Storage>,
    range: Range<usize>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({} {} {}x{})", self.name, self.ty.name(), self.rows, self.cols)
    }
}

impl Matrix {
    pub fn from_info(info: &TensorInfo, storage: &Arc<Storage>) -> Result<Matrix> {
        let (cols, rows) = match info.dims.as_slice() {
            [c] => (*c, 1),
            [c, r] => (*c, *r),
            [c, r, rest @ ..] if rest.iter().all(|&d| d == 1) => (*c, *r),
            d => return Err(Error::Corrupt(format!("tensor '{}' has shape {d:?}, expected 2-D", info.name))),
        };
        Ok(Matrix {
            name: info.name.clone(),
            ty: info.ggml_type,
            rows: rows as usize,
            cols: cols as usize,
            storage: storage.clone(),
            range: info.offset..info.offset + info.size,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.range.clone()]
    }

    pub fn row_bytes(&self, r: usize) -> &[u8] {
        let rb = self.ty.row_bytes(self.cols);
        &self.bytes()[r * rb..(r + 1) * rb]
    }

    /// Dequantize row `r` (e.g. an embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.ty, self.row_bytes(r), &mut out[..self.cols]);
    }

    pub fn dot_type(&self) -> DotType {
        self.ty.dot_type()
    }

    /// out[r] = W[r,:] · x for all rows, `x` already quantized to `self.dot_type()`.
    pub fn matvec(&self, x: &QuantizedRow, out: &mut [f32]) {
        let rb = self.ty.row_bytes(self.cols);
        for (o, w) in out[..self.rows].iter_mut().zip(self.bytes().chunks_exact(rb)) {
            *o = vec_dot(self.ty, w, x);
        }
    }

    /// Row-subset product: out[i] = W[rows[i],:] · x (a sparse output head).
    pub fn matvec_rows(&self, x: &QuantizedRow, rows: &[u32], out: &mut [f32]) {
        for (o, &r) in out.iter_mut().zip(rows) {
            *o = vec_dot(self.ty, self.row_bytes(r as usize), x);
        }
    }

    /// Batched product for `xs.len()` tokens: out[t*rows + r]. Each weight row is read once
    /// for the whole batch, which is what makes prefill faster than token-by-token decoding.
    /// Tokens go four at a time through `vec_dot_x4`, which decodes each weight block once
    /// per tile instead of once per token.
    pub fn matmul(&self, xs: &[QuantizedRow], out: &mut [f32]) {
        let rb = self.ty.row_bytes(self.cols);
        let tiles = xs.len() / 4;
        for (r, w) in self.bytes().chunks_exact(rb).enumerate() {
            for tile in 0..tiles {
                let t = tile * 4;
                let v = vec_dot_x4(self.ty, w, &[&xs[t], &xs[t + 1], &xs[t + 2], &xs[t + 3]]);
                for (k, v) in v.into_iter().enumerate() {
                    out[(t + k) * self.rows + r] = v;
                }
            }
            for (t, x) in xs.iter().enumerate().skip(tiles * 4) {
                out[t * self.rows + r] = vec_dot(self.ty, w, x);
            }
        }
    }
}

/// Read a small F32-convertible vector (norm weights, biases) into memory.
pub fn load_vector(g: &Gguf, storage: &Storage, name: &str, len: usize) -> Result<Vec<f32>> {
    let info = g.tensor(name).ok_or_else(|| Error::Corrupt(format!("missing tensor '{name}'")))?;
    if info.n_elements() != len as u64 {
        return Err(Error::Corrupt(format!("tensor '{name}' has {} elements, expected {len}", info.n_elements())));
    }
    let mut out = vec![0.0; len];
    dequantize_row(info.ggml_type, &storage[info.offset..info.offset + info.size], &mut out);
    Ok(out)
}
