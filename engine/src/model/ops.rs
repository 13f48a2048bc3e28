//! The element-wise and per-head operations of a transformer block, as ggml computes them.
//! Transcendentals come from the pure-Rust `libm`, so native and wasm builds agree bit for bit.

use super::arch::RopeStyle;
use crate::quant::f16::{f16_to_f32, f32_to_f16, round_f16};

/// RMS normalisation with a learned scale: y = x / √(mean(x²) + ε) · w.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    // ggml accumulates the sum of squares in double precision.
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// How one layer rotates its heads: ggml's `rope_ext` without YaRN's ramp.
#[derive(Clone, Copy)]
pub struct Rope<'a> {
    /// The leading dimensions of a head that rotate; the rest pass through.
    pub n_rot: usize,
    pub base: f32,
    /// Positions are multiplied by this (linear scaling: 1/factor).
    pub freq_scale: f32,
    pub style: RopeStyle,
    /// Per-pair divisors of the angle (Llama 3's `rope_freqs`, Phi-3's LongRoPE factors).
    pub factors: Option<&'a [f32]>,
    /// Multiplies cos and sin (LongRoPE's attention factor).
    pub attn_factor: f32,
}

/// The most rotating pairs `Angles` holds (heads up to 512 wide).
pub const MAX_ROPE_PAIRS: usize = 256;

/// One position's (cos, sin) per rotating pair: computed once per token and layer, applied
/// to every head (the sines and cosines were a tenth of a seed call when each head made them).
pub struct Angles {
    pairs: [(f32, f32); MAX_ROPE_PAIRS],
    n: usize,
}

impl Angles {
    /// The angles of position `pos`, built by repeated multiplication as ggml builds them
    /// (same bits). `r.n_rot / 2` must be at most `MAX_ROPE_PAIRS`.
    pub fn new(pos: usize, r: &Rope) -> Angles {
        let n = r.n_rot / 2;
        assert!(n <= MAX_ROPE_PAIRS, "{} rotating dimensions: at most {} are supported", r.n_rot, 2 * MAX_ROPE_PAIRS);
        let mut pairs = [(0.0, 0.0); MAX_ROPE_PAIRS];
        let theta_scale = libm::powf(r.base, -2.0 / r.n_rot as f32);
        let mut theta = pos as f32;
        for (i, pair) in pairs[..n].iter_mut().enumerate() {
            let angle = match r.factors {
                Some(f) => theta / f[i] * r.freq_scale,
                None => theta * r.freq_scale,
            };
            let (mut sin, mut cos) = (libm::sinf(angle), libm::cosf(angle));
            if r.attn_factor != 1.0 {
                sin *= r.attn_factor;
                cos *= r.attn_factor;
            }
            *pair = (cos, sin);
            theta *= theta_scale;
        }
        Angles { pairs, n }
    }
}

/// Rotary position embedding of one head in place, by one position's angles.
pub fn rope_with(x: &mut [f32], angles: &Angles, style: RopeStyle) {
    let n = angles.n;
    for (i, &(cos, sin)) in angles.pairs[..n].iter().enumerate() {
        let (a, b) = match style {
            RopeStyle::Adjacent => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + n),
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos - x1 * sin;
        x[b] = x0 * sin + x1 * cos;
    }
}

/// Rotary position embedding of one head in place, for position `pos`.
pub fn rope(x: &mut [f32], pos: usize, r: &Rope) {
    rope_with(x, &Angles::new(pos, r), r.style)
}

/// `rows` (each `bias.len()` wide) plus `bias`.
pub fn add_bias(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// GELU, tanh approximation (Gemma's feed-forward activation).
#[inline]
pub fn gelu_exact(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)))
}

/// GELU as ggml's CPU backend computes it: through a table indexed by the f16 input,
/// holding f16 outputs (identity above 10, zero below -10).
#[inline]
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[f32_to_f16(x) as usize]
    }
}

/// round_f16(gelu_exact(h)) for every f16 `h` (256 KiB, built on first use in ~2 ms).
fn gelu_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|h| round_f16(gelu_exact(f16_to_f32(h)))).collect())
}

/// SiLU (llama's feed-forward activation).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The query heads that share one KV head (grouped-query attention) attending over its
/// cached keys/values (already in f16 precision): out = softmax(scale · q·Kᵀ) · V for each
/// head (`scale` 1 where the queries are scaled already).
/// Like llama.cpp with an f16 KV cache, the queries and the attention weights are rounded
/// to f16 before their products.
///
/// `qs` and `out` hold the group's heads one after another, `head_dim` values each; `kv(i)`
/// is the i-th of `n` cached (key, value) pairs, read once for the whole group. `q16` and
/// `scores` are buffers kept by the caller, so a decode step allocates nothing.
#[allow(clippy::too_many_arguments)]
pub fn attend<'a>(
    qs: &[f32],
    head_dim: usize,
    n: usize,
    kv: impl Fn(usize) -> (&'a [f32], &'a [f32]),
    scale: f32,
    q16: &mut Vec<f32>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2::available() {
        // SAFETY: the CPU has AVX2.
        return unsafe { attend_avx2(qs, head_dim, n, &kv, scale, q16, scores, out) };
    }
    attend_body(qs, head_dim, n, &kv, scale, q16, scores, out)
}

/// `attend` compiled for AVX2: the same loops, eight lanes a step instead of four. Each lane
/// does the same multiplications and additions in the same order (Rust never fuses or
/// reorders float operations), so the bits are the baseline build's and wasm's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2<'a, F: Fn(usize) -> (&'a [f32], &'a [f32])>(
    qs: &[f32],
    head_dim: usize,
    n: usize,
    kv: &F,
    scale: f32,
    q16: &mut Vec<f32>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attend_body(qs, head_dim, n, kv, scale, q16, scores, out)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body<'a, F: Fn(usize) -> (&'a [f32], &'a [f32])>(
    qs: &[f32],
    head_dim: usize,
    n: usize,
    kv: &F,
    scale: f32,
    q16: &mut Vec<f32>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let heads = qs.len() / head_dim;
    q16.clear();
    q16.extend(qs.iter().map(|&v| round_f16(v)));
    scores.clear();
    scores.resize(heads * n, 0.0);
    for i in 0..n {
        let k = kv(i).0;
        for (h, q) in q16.chunks_exact(head_dim).enumerate() {
            scores[h * n + i] = dot(q, k) * scale;
        }
    }
    scores.chunks_exact_mut(n).for_each(softmax);
    out.fill(0.0);
    for i in 0..n {
        let v = kv(i).1;
        for (h, o) in out.chunks_exact_mut(head_dim).enumerate() {
            let w = round_f16(scores[h * n + i]);
            for (o, &x) in o.iter_mut().zip(v) {
                *o += w * x;
            }
        }
    }
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums let the compiler vectorise without reassociating by itself.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rope_rotates_pairs_and_keeps_norm() {
        let mut x: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        let n0: f32 = x.iter().map(|v| v * v).sum();
        let r = |n_rot, style| Rope { n_rot, base: 10000.0, freq_scale: 1.0, style, factors: None, attn_factor: 1.0 };
        rope(&mut x, 7, &r(8, RopeStyle::Neox));
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
        let mut y = vec![1.0, 0.0];
        rope(&mut y, 1, &r(2, RopeStyle::Adjacent));
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        // A factor f divides the angle; the attention factor scales the result.
        let mut z = vec![1.0, 0.0, 5.0];
        rope(&mut z, 3, &Rope { factors: Some(&[2.0]), attn_factor: 0.5, ..r(2, RopeStyle::Adjacent) });
        assert!((z[0] - 0.5 * 1.5f32.cos()).abs() < 1e-6 && (z[1] - 0.5 * 1.5f32.sin()).abs() < 1e-6);
        assert_eq!(z[2], 5.0, "dimensions past n_rot pass through");
    }
    #[test]
    fn gelu_table_is_the_rounded_formula() {
        for i in -1600..1600 {
            let x = i as f32 * 0.0061; // inside (-10, 10), where the table applies
            assert_eq!(gelu(x).to_bits(), round_f16(gelu_exact(round_f16(x))).to_bits(), "{x}");
        }
    }
    #[test]
    fn softmax_sums_to_one() {
        let mut x = vec![1.0, 2.0, 3.0, -1e9];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[3], 0.0);
    }
}
