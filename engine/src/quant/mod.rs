//! Tensor element types and their kernels.
//!
//! Weights stay in their GGUF block encoding. A matrix-vector product first quantizes the
//! activation row once into the weight type's "dot type" (Q8_0, Q8_1, Q8_K, F16, ...), as
//! llama.cpp does, then runs an integer dot product per weight row. `scalar` holds the
//! reference kernels; `avx2` and `simd128` hold SIMD twins tested against them, `amx` the
//! batched products on Intel's tile unit.

pub mod f16;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
pub mod simd128;

use self::f16::{f32_to_bf16, f32_to_f16, round_f16};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

pub const QK: usize = 32;
pub const QK_K: usize = 256;

/// Block layouts: bytes per block of each quantized type, as ggml lays them out. Scales are
/// f16 (2 bytes); `QK` or `QK_K` values per block.
pub mod block {
    /// d, then 32 4-bit values (16 bytes): v = d · (q − 8).
    pub const Q4_0: usize = 2 + 16;
    /// d, m, then 32 4-bit values: v = d · q + m.
    pub const Q4_1: usize = 2 + 2 + 16;
    /// d, 32 high bits (4 bytes), 32 low nibbles: v = d · (q − 16).
    pub const Q5_0: usize = 2 + 4 + 16;
    /// d, m, 32 high bits, 32 low nibbles: v = d · q + m.
    pub const Q5_1: usize = 2 + 2 + 4 + 16;
    /// d, then 32 signed bytes.
    pub const Q8_0: usize = 2 + 32;
    /// d, dmin, 8 six-bit (scale, min) pairs packed in 12 bytes, 256 nibbles.
    pub const Q4_K: usize = 2 + 2 + 12 + 128;
    /// Q4_K's layout with 256 high bits (32 bytes) before the nibbles.
    pub const Q5_K: usize = 2 + 2 + 12 + 32 + 128;
    /// 256 low nibbles (128 bytes), 256 two-bit highs (64), 16 signed scales, d last.
    pub const Q6_K: usize = 128 + 64 + 16 + 2;
}

/// Q4_K's block layout, or Q5_K's when `five` (the same but for 32 bytes of fifth bits after
/// the scales): the block's size and where its nibbles start.
pub(crate) const fn k4_layout(five: bool) -> (usize, usize) {
    if five {
        (block::Q5_K, 48)
    } else {
        (block::Q4_K, 16)
    }
}

impl GgmlType {
    pub const ALL: [GgmlType; 11] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];

    pub fn from_u32(v: u32) -> Option<GgmlType> {
        Some(match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// Name of any ggml type id, including the ones we do not support (for error messages).
    pub fn name_of(id: u32) -> &'static str {
        if let Some(t) = GgmlType::from_u32(id) {
            return t.name();
        }
        match id {
            10 => "Q2_K",
            11 => "Q3_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => QK,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => block::Q4_0,
            GgmlType::Q4_1 => block::Q4_1,
            GgmlType::Q5_0 => block::Q5_0,
            GgmlType::Q5_1 => block::Q5_1,
            GgmlType::Q8_0 => block::Q8_0,
            GgmlType::Q4K => block::Q4_K,
            GgmlType::Q5K => block::Q5_K,
            GgmlType::Q6K => block::Q6_K,
        }
    }

    pub fn row_bytes(self, n: usize) -> usize {
        n / self.block_size() * self.block_bytes()
    }

    /// The encoding activations are quantized to before a dot product with this type.
    pub fn dot_type(self) -> DotType {
        match self {
            GgmlType::F32 => DotType::F32,
            GgmlType::F16 => DotType::F16,
            GgmlType::BF16 => DotType::BF16,
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => DotType::Q8_0,
            GgmlType::Q4_1 | GgmlType::Q5_1 => DotType::Q8_1,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => DotType::Q8K,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q8_1,
    Q8K,
}

/// An activation row quantized for dot products against one weight type.
///
/// `d` holds one scale per block (32 or 256 values); `s` is Q8_1's d·Σq per block;
/// `bsums` is Q8_K's Σq per 16 values.
/// `qs16` is `qs` widened to 16 bits, filled only where the SIMD128 kernels run (their
/// one-token kernels multiply 16-bit lanes: widened once here instead of once per weight
/// row). Buffers are reused across calls.
#[derive(Debug, Clone)]
pub struct QuantizedRow {
    pub kind: DotType,
    pub n: usize,
    pub qs: Vec<i8>,
    pub qs16: Vec<i16>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
    pub bsums: Vec<i16>,
    /// Q8_0 / Q8_1: each block's Σ of quants, for kernels that multiply a weight type's
    /// unsigned codes and subtract its offset afterwards (relaxed-simd's Q5_0).
    pub isum: Vec<i32>,
    pub half: Vec<u16>,
    pub f: Vec<f32>,
}

impl QuantizedRow {
    pub fn new(kind: DotType) -> Self {
        QuantizedRow { kind, n: 0, qs: vec![], qs16: vec![], d: vec![], s: vec![], bsums: vec![], isum: vec![], half: vec![], f: vec![] }
    }

    /// Quantize `x` into this row's encoding, reusing its buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        self.n = x.len();
        match self.kind {
            DotType::F32 => {
                self.f.clear();
                self.f.extend_from_slice(x);
            }
            DotType::F16 => {
                self.half.clear();
                self.half.extend(x.iter().map(|&v| f32_to_f16(v)));
            }
            DotType::BF16 => {
                self.half.clear();
                self.half.extend(x.iter().map(|&v| f32_to_bf16(v)));
            }
            DotType::Q8_0 | DotType::Q8_1 => self.quantize_q8(x),
            DotType::Q8K => self.quantize_q8k(x),
        }
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        if matches!(self.kind, DotType::Q8_0 | DotType::Q8_1 | DotType::Q8K) {
            self.qs16.clear();
            self.qs16.extend(self.qs.iter().map(|&q| q as i16));
        }
    }

    /// Q8_0 / Q8_1: per 32 values, scale amax/127 kept at f16 precision, round half to even
    /// (what llama.cpp's x86 and wasm paths do).
    fn quantize_q8(&mut self, x: &[f32]) {
        let nb = x.len() / QK;
        self.qs.resize(x.len(), 0);
        self.d.resize(nb, 0.0);
        self.s.resize(nb, 0.0);
        self.isum.resize(nb, 0);
        for b in 0..nb {
            let xs = &x[b * QK..(b + 1) * QK];
            let amax = xs.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in self.qs[b * QK..(b + 1) * QK].iter_mut().zip(xs) {
                let r = round_even(v * id) as i32;
                *q = r as i8;
                sum += r;
            }
            self.d[b] = round_f16(d);
            self.s[b] = round_f16(d * sum as f32);
            self.isum[b] = sum;
        }
    }

    /// Q8_K: per 256 values, scale from the value of largest magnitude (sign kept), and
    /// the sum of every 16 quants for the K-quants' min terms.
    fn quantize_q8k(&mut self, x: &[f32]) {
        let nb = x.len() / QK_K;
        self.qs.resize(x.len(), 0);
        self.d.resize(nb, 0.0);
        self.bsums.resize(nb * QK_K / 16, 0);
        for b in 0..nb {
            let xs = &x[b * QK_K..(b + 1) * QK_K];
            let qs = &mut self.qs[b * QK_K..(b + 1) * QK_K];
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in xs {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                self.d[b] = 0.0;
                qs.fill(0);
                self.bsums[b * 16..(b + 1) * 16].fill(0);
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in qs.iter_mut().zip(xs) {
                *q = (round_even(iscale * v) as i32).min(127) as i8;
            }
            for j in 0..16 {
                self.bsums[b * 16 + j] = qs[j * 16..(j + 1) * 16].iter().map(|&q| q as i16).sum();
            }
            self.d[b] = 1.0 / iscale;
        }
    }
}

/// Round half to even. Baseline x86-64 has no rounding instruction (`roundss` is SSE4.1)
/// and would call `rintf`; below 2^22, adding and subtracting 1.5·2^23 rounds the same way
/// in the default rounding mode. (wasm has `f32.nearest`.)
#[inline(always)]
fn round_even(x: f32) -> f32 {
    #[cfg(not(any(target_family = "wasm", target_feature = "sse4.1")))]
    {
        const MAGIC: f32 = 12_582_912.0;
        if x.abs() < 4_194_304.0 {
            return (x + MAGIC) - MAGIC;
        }
    }
    x.round_ties_even()
}

/// Dequantize one row of `n` values of type `ty` from its raw bytes.
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    scalar::dequantize_row(ty, bytes, out)
}

/// Dot product of one weight row (raw bytes of type `ty`) with a quantized activation row.
#[inline]
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            if let Some(v) = avx2::vec_dot(ty, w, a) {
                return v;
            }
        }
    }
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    {
        if let Some(v) = simd128::vec_dot(ty, w, a) {
            return v;
        }
    }
    scalar::vec_dot(ty, w, a)
}

/// One weight row against four activation rows (a tile of prefill tokens): the weight block
/// is decoded once for all four. Every lane equals `vec_dot` on that row, bit for bit.
#[inline]
pub fn vec_dot_x4(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            if let Some(v) = avx2::vec_dot_x4(ty, w, a) {
                return v;
            }
        }
    }
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    {
        if let Some(v) = simd128::vec_dot_x4(ty, w, a) {
            return v;
        }
    }
    a.map(|a| vec_dot(ty, w, a))
}

/// Eight tokens against one weight row: where a SIMD kernel shares each unpacked block
/// among all eight, that kernel; otherwise two four-token tiles (the same bits either way).
#[inline]
pub fn vec_dot_x8(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> [f32; 8] {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            if let Some(v) = avx2::vec_dot_x8(ty, w, a) {
                return v;
            }
        }
    }
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    {
        if let Some(v) = simd128::vec_dot_x8(ty, w, a) {
            return v;
        }
    }
    let lo = vec_dot_x4(ty, w, &[a[0], a[1], a[2], a[3]]);
    let hi = vec_dot_x4(ty, w, &[a[4], a[5], a[6], a[7]]);
    [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
}

/// Random but well-formed encoded rows, for kernel tests and generated test models.
pub mod testdata {
    use super::f16::{f32_to_bf16, f32_to_f16};
    use super::GgmlType;

    /// A tiny deterministic generator (xorshift64*), so test data is the same everywhere.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in [-1, 1).
        pub fn f32(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    /// `n` values of type `ty`: random payload bytes with block scales of about `scale`.
    pub fn random_row(ty: GgmlType, n: usize, scale: f32, rng: &mut Rng) -> Vec<u8> {
        let nb = n / ty.block_size();
        let bb = ty.block_bytes();
        let mut out = vec![0u8; nb * bb];
        for b in out.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        let put_f16 = |buf: &mut [u8], at: usize, v: f32| buf[at..at + 2].copy_from_slice(&f32_to_f16(v).to_le_bytes());
        for blk in out.chunks_exact_mut(bb) {
            match ty {
                GgmlType::F32 => blk.copy_from_slice(&(rng.f32() * scale).to_le_bytes()),
                GgmlType::F16 => put_f16(blk, 0, rng.f32() * scale),
                GgmlType::BF16 => blk.copy_from_slice(&f32_to_bf16(rng.f32() * scale).to_le_bytes()),
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => put_f16(blk, 0, rng.f32() * scale / 16.0),
                GgmlType::Q4_1 | GgmlType::Q5_1 => {
                    put_f16(blk, 0, rng.f32().abs() * scale / 16.0);
                    put_f16(blk, 2, -rng.f32().abs() * scale);
                }
                GgmlType::Q4K | GgmlType::Q5K => {
                    put_f16(blk, 0, rng.f32().abs() * scale / 256.0);
                    put_f16(blk, 2, rng.f32().abs() * scale / 256.0);
                }
                GgmlType::Q6K => put_f16(blk, 208, rng.f32() * scale / 1024.0),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::{random_row, Rng};
    use super::*;

    /// The quantized activation's own values, for an exact-arithmetic reference.
    fn dequantized_activation(a: &QuantizedRow) -> Vec<f64> {
        match a.kind {
            DotType::F32 => a.f.iter().map(|&v| v as f64).collect(),
            DotType::F16 => a.half.iter().map(|&h| f16::f16_to_f32(h) as f64).collect(),
            DotType::BF16 => a.half.iter().map(|&h| f16::bf16_to_f32(h) as f64).collect(),
            DotType::Q8_0 | DotType::Q8_1 => a.qs.iter().enumerate().map(|(i, &q)| q as f64 * a.d[i / QK] as f64).collect(),
            DotType::Q8K => a.qs.iter().enumerate().map(|(i, &q)| q as f64 * a.d[i / QK_K] as f64).collect(),
        }
    }

    #[test]
    fn every_kernel_matches_dequantize_then_dot() {
        let mut rng = Rng(0x5eed);
        for ty in GgmlType::ALL {
            // 19 blocks of 32 (SIMD kernels take four blocks at a time, then a tail), or two of 256.
            let n = if ty.block_size() == QK { 19 * QK } else { 2 * QK_K };
            for trial in 0..20 {
                let w = random_row(ty, n, 1.0, &mut rng);
                let x: Vec<f32> = (0..n).map(|_| rng.f32() * 3.0).collect();
                let mut a = QuantizedRow::new(ty.dot_type());
                a.quantize(&x);
                let mut wf = vec![0.0f32; n];
                dequantize_row(ty, &w, &mut wf);
                let xa = dequantized_activation(&a);
                let mut exact: f64 = wf.iter().zip(&xa).map(|(&w, &x)| w as f64 * x).sum();
                if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                    // Q8_1 carries the block sums at f16 precision: Σ m·x uses s, not Σ q·d.
                    let mut s = 0.0;
                    for (b, blk) in w.chunks_exact(ty.block_bytes()).enumerate() {
                        let m = f16::read_f16(blk, 2) as f64;
                        let dq: f64 = xa[b * QK..(b + 1) * QK].iter().sum();
                        s += m * (a.s[b] as f64 - dq);
                    }
                    exact += s;
                }
                let scale: f64 = wf.iter().zip(&xa).map(|(&w, &x)| (w as f64 * x).abs()).sum::<f64>().max(1e-6);
                let reference = scalar::vec_dot(ty, &w, &a) as f64;
                assert!(
                    (reference - exact).abs() / scale < 1e-5,
                    "{} trial {trial}: scalar {reference} vs exact {exact}",
                    ty.name()
                );
                // SIMD twins finish every block exactly as the scalar kernel does: same bits.
                let fast = vec_dot(ty, &w, &a);
                assert_eq!(fast.to_bits(), (reference as f32).to_bits(), "{} trial {trial}: SIMD {fast} vs scalar {reference}", ty.name());
                // The four-token tile gives each token the same bits as the one-token kernel.
                let others: Vec<QuantizedRow> = (1..8)
                    .map(|k| {
                        let x: Vec<f32> = (0..n).map(|_| rng.f32() * k as f32).collect();
                        let mut b = QuantizedRow::new(ty.dot_type());
                        b.quantize(&x);
                        b
                    })
                    .collect();
                let tile = [&others[0], &a, &others[1], &others[2]];
                let x4 = vec_dot_x4(ty, &w, &tile);
                for (k, row) in tile.iter().enumerate() {
                    let one = scalar::vec_dot(ty, &w, row);
                    assert_eq!(x4[k].to_bits(), one.to_bits(), "{} trial {trial} lane {k}: x4 {} vs scalar {one}", ty.name(), x4[k]);
                }
                // And so does the eight-token tile.
                let tile8 = [&others[3], &others[0], &a, &others[1], &others[4], &others[2], &others[5], &others[6]];
                let x8 = vec_dot_x8(ty, &w, &tile8);
                for (k, row) in tile8.iter().enumerate() {
                    let one = scalar::vec_dot(ty, &w, row);
                    assert_eq!(x8[k].to_bits(), one.to_bits(), "{} trial {trial} lane {k}: x8 {} vs scalar {one}", ty.name(), x8[k]);
                }
                // Natively, every flavor the CPU has (AVX2, and VNNI where present), not only the
                // one picked at run time.
                #[cfg(target_arch = "x86_64")]
                if avx2::available() {
                    for flavor in avx2::Flavor::all_available() {
                        let one = avx2::vec_dot_with(flavor, ty, &w, &a).map(|v| vec![(v, &a)]);
                        let x4 = avx2::vec_dot_x4_with(flavor, ty, &w, &tile).map(|v| v.into_iter().zip(tile).collect());
                        let x8 = avx2::vec_dot_x8_with(flavor, ty, &w, &tile8).map(|v| v.into_iter().zip(tile8).collect());
                        for (k, (v, row)) in [one, x4, x8].into_iter().flatten().flatten().enumerate() {
                            let one = scalar::vec_dot(ty, &w, row);
                            assert_eq!(v.to_bits(), one.to_bits(), "{} trial {trial} {flavor:?} output {k}: {v} vs scalar {one}", ty.name());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn round_even_is_round_ties_even() {
        let mut rng = Rng(11);
        for i in 0..200_000 {
            let x = if i < 1000 { (i as f32 - 500.0) * 0.5 } else { rng.f32() * 300.0 };
            assert_eq!(round_even(x) as i32, x.round_ties_even() as i32, "{x}");
        }
        assert_eq!(round_even(1e9), 1e9);
    }

    #[test]
    fn q8_quantization_round_trips_within_half_a_step() {
        let mut rng = Rng(7);
        let x: Vec<f32> = (0..512).map(|_| rng.f32() * 10.0).collect();
        for kind in [DotType::Q8_0, DotType::Q8K] {
            let mut a = QuantizedRow::new(kind);
            a.quantize(&x);
            let bs = if kind == DotType::Q8K { QK_K } else { QK };
            for (i, &v) in x.iter().enumerate() {
                let d = a.d[i / bs];
                // d is kept at f16 precision after the quants were computed: allow its rounding too.
                assert!((a.qs[i] as f32 * d - v).abs() <= d.abs() * (0.5 + 127.0 / 1024.0) + 1e-6, "{kind:?} {i}");
            }
        }
    }
}
