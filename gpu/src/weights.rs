//! The model's weights on the GPU, uploaded once: matrices in their GGUF encoding (split by
//! rows into pieces no larger than one binding may be: Gemma 3's 262k×640 embedding is
//! 178 MB where many adapters bind at most 128 MiB), and every vector (norms, biases, RoPE
//! factors) in one f32 buffer.

use edgeslm_engine::quant::GgmlType;
use edgeslm_engine::remote::codec;
use edgeslm_engine::tensor::Matrix;
use edgeslm_engine::{Error, Result};

use crate::device::Gpu;

/// Rows `row0..row0 + rows` of a matrix, in a buffer of their own.
pub struct Piece {
    pub buffer: wgpu::Buffer,
    pub row0: u32,
    pub rows: u32,
}

pub struct GpuMatrix {
    pub ty: GgmlType,
    pub rows: u32,
    pub cols: u32,
    pub row_bytes: u32,
    pub pieces: Vec<Piece>,
}

impl GpuMatrix {
    pub fn upload(gpu: &Gpu, m: &Matrix) -> Result<GpuMatrix> {
        GpuMatrix::from_bytes(gpu, &m.name, m.ty, m.rows, m.cols, m.bytes())
    }

    /// A `rows` × `cols` matrix of type `ty` from its GGUF bytes.
    pub fn from_bytes(gpu: &Gpu, name: &str, ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<GpuMatrix> {
        if !cols.is_multiple_of(ty.block_size()) || !cols.is_multiple_of(32) {
            return Err(Error::UnsupportedArchitecture(format!("{name}: rows of {cols} values (the GPU kernels take whole blocks of 32)")));
        }
        let row_bytes = ty.row_bytes(cols);
        if bytes.len() != rows * row_bytes {
            return Err(Error::Corrupt(format!("{name}: {} bytes for {rows} rows of {row_bytes}", bytes.len())));
        }
        if (row_bytes as u64) > gpu.max_binding() {
            return Err(Error::Io(format!("{name}: one row is larger than the GPU binds ({} bytes)", gpu.max_binding())));
        }
        let per_piece = (gpu.max_binding() / row_bytes as u64) as usize;
        let mut pieces = Vec::new();
        let mut row0 = 0;
        while row0 < rows {
            let n = per_piece.min(rows - row0);
            let buffer = gpu.upload(name, &bytes[row0 * row_bytes..(row0 + n) * row_bytes]);
            pieces.push(Piece { buffer, row0: row0 as u32, rows: n as u32 });
            row0 += n;
        }
        Ok(GpuMatrix { ty, rows: rows as u32, cols: cols as u32, row_bytes: row_bytes as u32, pieces })
    }

    /// Which piece holds `row`, and the row's index within it.
    pub fn locate(&self, row: u32) -> (usize, u32) {
        let i = self.pieces.partition_point(|p| p.row0 + p.rows <= row);
        (i, row - self.pieces[i].row0)
    }

    /// (row within its piece, slot) pairs for `rows` (slot i for rows[i]), grouped by piece,
    /// and each piece's (pairs, offset) in that list: what `gather` and `embed` read (the
    /// pairs as the little-endian bytes to upload).
    pub fn pairs(&self, rows: &[u32]) -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut by_piece = vec![Vec::new(); self.pieces.len()];
        for (slot, &row) in rows.iter().enumerate() {
            let (piece, local) = self.locate(row);
            by_piece[piece].extend([local, slot as u32]);
        }
        let (mut pairs, mut per_piece) = (Vec::new(), Vec::new());
        for p in &by_piece {
            per_piece.push(((p.len() / 2) as u32, pairs.len() as u32));
            pairs.extend_from_slice(p);
        }
        (pairs.iter().flat_map(|v| v.to_le_bytes()).collect(), per_piece)
    }
}

/// Every f32 vector of the model, gathered into one buffer at known offsets.
#[derive(Default)]
pub struct Vectors {
    data: Vec<f32>,
}

impl Vectors {
    /// Add `v`; returns its offset (in floats).
    pub fn add(&mut self, v: &[f32]) -> u32 {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(v);
        at
    }

    pub fn add_opt(&mut self, v: &Option<Vec<f32>>) -> Option<u32> {
        v.as_deref().map(|v| self.add(v))
    }

    pub fn upload(&self, gpu: &Gpu) -> wgpu::Buffer {
        gpu.upload("vectors", &codec::f32s_to_bytes(&self.data))
    }
}
