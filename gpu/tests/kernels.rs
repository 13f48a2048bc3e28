//! The WGSL decoders against the engine's scalar reference (`quant::scalar::dequantize_row`):
//! for every GGUF type, a matrix of random blocks times a batch of random tokens on the GPU
//! equals the product of the scalar decoder's weights, up to f32 summation order, and the
//! row lookup gives the scalar decoder's rows. Runs on
//! Mesa's lavapipe where there is no GPU (`.ci/run` installs it).

use edgeslm_engine::quant::f16::{f32_to_bf16, f32_to_f16};
use edgeslm_engine::quant::{dequantize_row, GgmlType};

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
}

/// Where each block of `ty` keeps its f16 scales (random bytes there could be inf or NaN).
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[],
    }
}

/// `rows` rows of `cols` random but finite weights of type `ty`.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..rows * ty.row_bytes(cols)).map(|_| rng.next() as u8).collect();
    match ty {
        GgmlType::F32 => bytes = (0..rows * cols).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        GgmlType::F16 => bytes = (0..rows * cols).flat_map(|_| f32_to_f16(rng.unit()).to_le_bytes()).collect(),
        GgmlType::BF16 => bytes = (0..rows * cols).flat_map(|_| f32_to_bf16(rng.unit()).to_le_bytes()).collect(),
        _ => {
            let block = ty.row_bytes(ty.block_size());
            for b in bytes.chunks_exact_mut(block) {
                for &o in scale_offsets(ty) {
                    b[o..o + 2].copy_from_slice(&f32_to_f16(rng.unit() * 0.05).to_le_bytes());
                }
            }
        }
    }
    bytes
}

#[test]
fn every_type_decodes_as_the_scalar_reference() {
    let gpu = edgeslm_gpu::Gpu::open().unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (Mesa's lavapipe: mesa-vulkan-drivers)"));
    let mut rng = Rng(0x9e3779b97f4a7c15);
    // 512 columns: two K-quant super-blocks; 11 tokens: a full tile of 8 and a partial one.
    let (rows, cols, n) = (13, 512, 11);
    for ty in GgmlType::ALL {
        let w = random_matrix(ty, rows, cols, &mut rng);
        let x: Vec<f32> = (0..n * cols).map(|_| rng.unit()).collect();
        let got = edgeslm_gpu::matmul(&gpu, ty, rows, cols, &w, &x, n).unwrap();
        let rb = ty.row_bytes(cols);
        let mut worst = 0f64;
        for r in 0..rows {
            let mut row = vec![0f32; cols];
            dequantize_row(ty, &w[r * rb..(r + 1) * rb], &mut row);
            for t in 0..n {
                let xs = &x[t * cols..(t + 1) * cols];
                let want: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
                let scale: f64 = row.iter().zip(xs).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum::<f64>().max(1e-6);
                let err = (got[t * rows + r] as f64 - want).abs() / scale;
                worst = worst.max(err);
                assert!(err < 1e-5, "{}: row {r} token {t}: GPU {} scalar {want}", ty.name(), got[t * rows + r]);
            }
        }
        // The row lookup (token embeddings): each row as the scalar decoder gives it.
        let ids = [7u32, 0, 12, 7];
        let got = edgeslm_gpu::rows(&gpu, ty, rows, cols, &w, &ids).unwrap();
        for (i, &r) in ids.iter().enumerate() {
            let mut row = vec![0f32; cols];
            dequantize_row(ty, &w[r as usize * rb..(r as usize + 1) * rb], &mut row);
            for (j, (&a, &b)) in got[i * cols..(i + 1) * cols].iter().zip(&row).enumerate() {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{}: row {r} value {j}: GPU {a} scalar {b}", ty.name());
            }
        }
        eprintln!("{}: worst relative error {worst:.2e}; rows as decoded", ty.name());
    }
}
