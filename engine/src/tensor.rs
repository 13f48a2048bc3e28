//! Weight matrices that stay in their GGUF encoding, and the matrix-vector products on them.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::parallel::{self, SharedOut};
#[cfg(target_arch = "x86_64")]
use crate::quant;
use crate::quant::{dequantize_row, vec_dot, vec_dot_x4, vec_dot_x8, DotType, GgmlType, QuantizedRow};
use crate::storage::Storage;

/// Tokens per pass over a matrix's rows in batched products: 16 tokens of a 2048-wide
/// input are 32 KiB of 8-bit activations.
const TOKEN_BLOCK: usize = 16;
/// A token block rearranged for the tile unit (`None`: the block goes row by row).
#[cfg(target_arch = "x86_64")]
type TileBatch = Option<quant::amx::Tokens>;
#[cfg(not(target_arch = "x86_64"))]
type TileBatch = ();
/// The fewest tokens a batch takes to the tile unit (fewer go row by row).
#[cfg(target_arch = "x86_64")]
const AMX_MIN_TOKENS: usize = 4;

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
        self.storage.at(self.range.clone())
    }

    /// Rows `rows` as a matrix of their own: the parts of a fused tensor (Phi-3's
    /// `attn_qkv`, its gate and up halves in `ffn_up`). The bytes stay where they are.
    pub fn split_rows(&self, rows: Range<usize>, name: &str) -> Result<Matrix> {
        if rows.start > rows.end || rows.end > self.rows {
            return Err(Error::Corrupt(format!("tensor '{}' has {} rows, not the {} its parts need", self.name, self.rows, rows.end)));
        }
        let rb = self.ty.row_bytes(self.cols);
        let start = self.range.start + rows.start * rb;
        Ok(Matrix { name: name.to_string(), ty: self.ty, rows: rows.len(), cols: self.cols, storage: self.storage.clone(), range: start..start + rows.len() * rb })
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
    /// Rows are split across the engine's threads (`parallel::set_threads`).
    pub fn matvec(&self, x: &QuantizedRow, out: &mut [f32]) {
        self.matmul(std::slice::from_ref(x), out)
    }

    /// Row-subset product: out[i] = W[rows[i],:] · x (a sparse output head).
    pub fn matvec_rows(&self, x: &QuantizedRow, rows: &[u32], out: &mut [f32]) {
        let out = SharedOut(out[..rows.len()].as_mut_ptr());
        parallel::for_ranges(rows.len(), 1, 256, |part| {
            for i in part {
                // SAFETY: each thread writes its own indices of `out`.
                unsafe { out.write(i, vec_dot(self.ty, self.row_bytes(rows[i] as usize), x)) };
            }
        });
    }

    /// Batched product for `xs.len()` tokens: out[t*rows + r]. Each weight row is read once
    /// for the whole batch, which is what makes prefill faster than token-by-token decoding;
    /// tokens go eight, then four, at a time through `vec_dot_x8` and `vec_dot_x4`, which
    /// decode each weight block once per tile instead of once per token. Rows are split
    /// across the engine's threads.
    pub fn matmul(&self, xs: &[QuantizedRow], out: &mut [f32]) {
        assert!(out.len() >= xs.len() * self.rows);
        let tiles = self.tile_batches(xs);
        let out = SharedOut(out.as_mut_ptr());
        parallel::for_ranges(self.rows, 16, 64, |rows| {
            // SAFETY: each thread writes its own rows of every token's output.
            unsafe { self.matmul_rows(rows, xs, &tiles, out) }
        });
    }

    /// The token blocks the tile unit takes (x86 CPUs with AMX), rearranged once for all
    /// threads: one entry per block of `xs`, or none at all (no allocation) where it is unused.
    #[cfg(target_arch = "x86_64")]
    fn tile_batches(&self, xs: &[QuantizedRow]) -> Vec<TileBatch> {
        if xs.len() < AMX_MIN_TOKENS || !quant::amx::supports(self.ty) || !quant::amx::available() {
            return Vec::new();
        }
        xs.chunks(TOKEN_BLOCK).map(|b| (b.len() >= AMX_MIN_TOKENS).then(|| quant::amx::Tokens::new(self.ty, b))).collect()
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn tile_batches(&self, _: &[QuantizedRow]) -> Vec<TileBatch> {
        Vec::new()
    }

    /// `matmul` for the rows in `rows` only.
    ///
    /// SAFETY: `out` holds `xs.len() * self.rows` values, and no other thread writes these rows.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    unsafe fn matmul_rows(&self, rows: Range<usize>, xs: &[QuantizedRow], tiles: &[TileBatch], out: SharedOut) {
        let rb = self.ty.row_bytes(self.cols);
        let put = |t: usize, r: usize, v: f32| out.write(t * self.rows + r, v);
        // A block of tokens at a time goes past every row: its activations stay in the L1
        // cache while the rows stream by (a whole prompt's do not, and would be read again
        // from further out for every row).
        for (b, block) in xs.chunks(TOKEN_BLOCK).enumerate() {
            let first = b * TOKEN_BLOCK;
            #[allow(unused_mut)] // only the x86 tile path takes rows off the front
            let mut rows = rows.clone();
            // On CPUs with a tile unit, groups of 16 rows at once (the rest row by row).
            #[cfg(target_arch = "x86_64")]
            if let Some(Some(tokens)) = tiles.get(b) {
                let mut tile = [[0.0; quant::amx::TOKENS]; quant::amx::ROWS];
                while rows.len() >= quant::amx::ROWS {
                    let r = rows.start;
                    quant::amx::tile(self.ty, &self.bytes()[r * rb..(r + quant::amx::ROWS) * rb], rb, tokens, &mut tile);
                    for (m, row) in tile.iter().enumerate() {
                        for (t, &v) in row[..block.len()].iter().enumerate() {
                            put(first + t, r + m, v);
                        }
                    }
                    rows.start += quant::amx::ROWS;
                }
            }
            for r in rows {
                let w = &self.bytes()[r * rb..(r + 1) * rb];
                let mut t = 0;
                while t + 8 <= block.len() {
                    let tile: [&QuantizedRow; 8] = std::array::from_fn(|k| &block[t + k]);
                    for (k, v) in vec_dot_x8(self.ty, w, &tile).into_iter().enumerate() {
                        put(first + t + k, r, v);
                    }
                    t += 8;
                }
                if t + 4 <= block.len() {
                    let v = vec_dot_x4(self.ty, w, &[&block[t], &block[t + 1], &block[t + 2], &block[t + 3]]);
                    for (k, v) in v.into_iter().enumerate() {
                        put(first + t + k, r, v);
                    }
                    t += 4;
                }
                for (t, x) in block.iter().enumerate().skip(t) {
                    put(first + t, r, vec_dot(self.ty, w, x));
                }
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
    dequantize_row(info.ggml_type, storage.at(info.offset..info.offset + info.size), &mut out);
    Ok(out)
}
