//! Intel AMX (the tile unit of Sapphire Rapids and later Xeons) for batched products of the
//! 32-value block types: for each 32-value block, one tile instruction gives the exact i32
//! sums of 16 weight rows × 16 tokens (`tdpbusd`: Q4_0, Q4_1 and Q5_0 as unsigned codes
//! against signed activations; `tdpbssd`: Q8_0, signed × signed), and each (row, token) is
//! then finished with the scalar kernel's float expression, block after block: bit-identical
//! to `scalar::vec_dot`. Q4_K and Q5_K take one tile instruction per 32-value group, whose
//! sums are scaled and added in integers before the block's float epilogue; Q6_K likewise
//! per 16-value group (half-depth tiles). llama.cpp's CPU
//! backend uses the same unit on these machines.
//!
//! Rust has no stable AMX intrinsics or target features, so the instructions are written in
//! `asm!`; Linux grants a process the tile state only when asked (`arch_prctl`).

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::avx2::{self, Q32};
use super::f16::read_f16;
use super::{block, k4_layout, GgmlType, QuantizedRow, QK, QK_K};

/// Weight rows per tile.
pub const ROWS: usize = 16;
/// Tokens per tile (its 16 i32 columns).
pub const TOKENS: usize = 16;
/// A B tile holds one block of 16 tokens: 8 rows of (4 bytes × 16 tokens).
const B_TILE: usize = 8 * 64;

/// Whether the tile unit can be used: the CPU has AMX-TILE, AMX-INT8 and AVX-512 (F, BW), the OS gave this
/// process the tile state, and `EDGESLM_X86_KERNELS` is not `avx2` or `vnni`.
pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        if std::env::var("EDGESLM_X86_KERNELS").is_ok_and(|v| v == "avx2" || v == "vnni") || !avx2::available() {
            return false;
        }
        // CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8 (every such CPU has
        // AVX-512, which finishes the tiles 16 lanes at a time).
        let edx = __cpuid_count(7, 0).edx;
        edx & (3 << 24) == 3 << 24 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && request_tile_state()
    })
}

/// The types with a tile kernel.
pub fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K)
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: without it the first tile
/// instruction faults. Refused where the kernel (or a hypervisor) does not offer AMX.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a system call with no memory operands.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret, in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// A batch of up to 16 tokens rearranged once for every group of rows: per 32 values, the
/// activations in the B tile's layout (row k/4 holds bytes k..k+4 of each token in turn);
/// per block, the tokens' scales and, for the 32-value types, offsets (the weight type's
/// OFF·Σq) and Q8_1 sums as 16-lane rows; for the K-quants, per pair of 32-value groups, the
/// tokens' Σq of each group as interleaved i16 (what the groups' mins multiply; Q6_K: its
/// 16-value groups' sums, what its scales multiply for the −32 centring). Zero past
/// the batch.
pub struct Tokens {
    b: Vec<u8>,
    d: Vec<f32>,
    off: Vec<i32>,
    s: Vec<f32>,
    group_sums: Vec<i16>,
}

impl Tokens {
    /// `xs`: 1 to 16 rows quantized for `ty` (one of `supports`).
    pub fn new(ty: GgmlType, xs: &[QuantizedRow]) -> Tokens {
        assert!(!xs.is_empty() && xs.len() <= TOKENS && supports(ty));
        let chunks = xs[0].n / QK;
        let blocks = xs[0].n / ty.block_size();
        let off = match ty {
            GgmlType::Q4_0 => 8,
            GgmlType::Q5_0 => 16,
            _ => 0,
        };
        let k_quant = ty.block_size() == QK_K;
        let mut t = Tokens {
            b: vec![0; chunks * B_TILE],
            d: vec![0.0; blocks * TOKENS],
            off: vec![0; if k_quant { 0 } else { blocks * TOKENS }],
            s: vec![0.0; if ty == GgmlType::Q4_1 { blocks * TOKENS } else { 0 }],
            group_sums: vec![0; if k_quant { blocks * 8 * 2 * TOKENS } else { 0 }],
        };
        for (n, x) in xs.iter().enumerate() {
            for chunk in 0..chunks {
                let tile = &mut t.b[chunk * B_TILE..(chunk + 1) * B_TILE];
                for (k, &q) in x.qs[chunk * QK..(chunk + 1) * QK].iter().enumerate() {
                    tile[(k / 4) * 64 + n * 4 + k % 4] = q as u8;
                }
            }
            for blk in 0..blocks {
                t.d[blk * TOKENS + n] = x.d[blk];
                if ty == GgmlType::Q6K {
                    // The 16-value groups' sums, paired for pmaddwd against (scale, scale).
                    for g in 0..16 {
                        t.group_sums[(blk * 8 + g / 2) * 2 * TOKENS + 2 * n + g % 2] = x.bsums[blk * 16 + g];
                    }
                } else if k_quant {
                    // Group g's sum is its two 16-value bsums (|Σ| ≤ 32·127: an i16).
                    for pair in 0..4 {
                        for half in 0..2 {
                            let g = 2 * pair + half;
                            let sum = x.bsums[blk * 16 + 2 * g] + x.bsums[blk * 16 + 2 * g + 1];
                            t.group_sums[(blk * 8 + pair) * 2 * TOKENS + 2 * n + half] = sum;
                        }
                    }
                } else {
                    t.off[blk * TOKENS + n] = off * x.isum[blk];
                    if ty == GgmlType::Q4_1 {
                        t.s[blk * TOKENS + n] = x.s[blk];
                    }
                }
            }
        }
        t
    }
}

/// `out[m][n]` = row m · token n, for the 16 rows of type `ty` at `w` (each `rb` bytes, one
/// after the other) and the batch's tokens (lanes past the batch are left unspecified).
pub fn tile(ty: GgmlType, w: &[u8], rb: usize, t: &Tokens, out: &mut [[f32; TOKENS]; ROWS]) {
    assert!(available() && w.len() >= ROWS * rb && t.d.len() == rb / ty.block_bytes() * TOKENS && t.b.len() == rb / ty.block_bytes() * ty.block_size() / QK * B_TILE);
    // SAFETY: the tile unit is available and enabled; `w` holds 16 rows of `rb` bytes, and
    // `t` the blocks of rows that long.
    unsafe {
        match ty {
            GgmlType::Q8_0 => tile_q32::<avx2::Q8_0>(w, rb, t, out),
            GgmlType::Q4_0 => tile_q32::<avx2::Q4_0>(w, rb, t, out),
            GgmlType::Q4_1 => tile_q32::<avx2::Q4_1>(w, rb, t, out),
            GgmlType::Q5_0 => tile_q32::<avx2::Q5_0>(w, rb, t, out),
            GgmlType::Q4K => tile_k4::<false>(w, rb, t, out),
            GgmlType::Q5K => tile_k4::<true>(w, rb, t, out),
            GgmlType::Q6K => tile_q6_k(w, rb, t, out),
            _ => panic!("no tile kernel for {}", ty.name()),
        }
    }
}

/// The tile shapes: C (tmm0) 16 rows × 16 i32, A (tmm1) 16 rows × `depth` bytes (one block
/// of 16 weight rows: 32 values, or Q6_K's 16), B (tmm2) `depth`/4 rows × 64 bytes (the same
/// values of 16 tokens).
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new(depth: u16) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for (tmm, (colsb, rows)) in [(64u16, 16u8), (depth, 16), (64, depth as u8 / 4)].into_iter().enumerate() {
            c[16 + 2 * tmm..18 + 2 * tmm].copy_from_slice(&colsb.to_le_bytes());
            c[48 + tmm] = rows;
        }
        TileConfig(c)
    }
}

#[repr(C, align(64))]
struct Aligned<T>(T);

/// Load the tile shapes for blocks `depth` bytes deep (see `TileConfig`).
///
/// SAFETY: the tile unit is available and enabled.
#[inline(always)]
unsafe fn configure(depth: u16) {
    let config = TileConfig::new(depth);
    asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
}

/// Give the tile state back and write the 16 rows' sums of 16 tokens.
///
/// SAFETY: called from a function compiled with AVX-512F.
#[inline(always)]
unsafe fn release_into(sum: &[__m512; ROWS], out: &mut [[f32; TOKENS]; ROWS]) {
    asm!("tilerelease", options(nostack, nomem));
    for (row, sum) in out.iter_mut().zip(sum) {
        _mm512_storeu_ps(row.as_mut_ptr(), *sum);
    }
}


/// C (tmm0) = A (16 rows of 32 bytes from `a`, `a_stride` apart) · B (the B tile at `b`),
/// stored to `c` (16 rows of 16 i32). `SIGNED`: A's bytes are signed (`tdpbssd`), else
/// unsigned (`tdpbusd`); B's are signed.
///
/// SAFETY: the tile configuration is loaded; the pointers hold what the tiles read and write.
#[inline(always)]
unsafe fn dot_tile<const SIGNED: bool>(a: *const u8, a_stride: usize, b: *const u8, c: *mut i32) {
    if SIGNED {
        asm!("tilezero tmm0", "tileloadd tmm1, [{a} + {sa} * 1]", "tileloadd tmm2, [{b} + {sb} * 1]", "tdpbssd tmm0, tmm1, tmm2",
             "tilestored [{c} + {sb} * 1], tmm0",
             a = in(reg) a, sa = in(reg) a_stride, b = in(reg) b, sb = in(reg) 64usize, c = in(reg) c, options(nostack));
    } else {
        asm!("tilezero tmm0", "tileloadd tmm1, [{a} + {sa} * 1]", "tileloadd tmm2, [{b} + {sb} * 1]", "tdpbusd tmm0, tmm1, tmm2",
             "tilestored [{c} + {sb} * 1], tmm0",
             a = in(reg) a, sa = in(reg) a_stride, b = in(reg) b, sb = in(reg) 64usize, c = in(reg) c, options(nostack));
    }
}

#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn tile_q32<W: Q32>(w: &[u8], rb: usize, t: &Tokens, out: &mut [[f32; TOKENS]; ROWS]) {
    let nb = rb / W::BYTES;
    let mut a = Aligned([0u8; ROWS * QK]);
    let mut c = Aligned([0i32; ROWS * TOKENS]);
    let mut sum = [_mm512_setzero_ps(); ROWS];
    configure(QK as u16);
    for blk in 0..nb {
        let at = blk * W::BYTES;
        // The weight rows are 16 streams; fetch each a few blocks ahead.
        for m in 0..ROWS {
            _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().wrapping_add(m * rb + at + 256) as *const i8);
        }
        let b = t.b.as_ptr().add(blk * B_TILE);
        if W::SIGNED {
            // Q8_0's 32 signed bytes are read in place, row after row.
            dot_tile::<true>(w.as_ptr().add(at + 2), rb, b, c.0.as_mut_ptr());
        } else {
            for m in 0..ROWS {
                _mm256_store_si256(a.0.as_mut_ptr().add(m * QK) as *mut __m256i, W::unpack(w.as_ptr().add(m * rb + at)));
            }
            dot_tile::<false>(a.0.as_ptr(), QK, b, c.0.as_mut_ptr());
        }
        // Row m's 16 tokens: the scalar kernel's `isum·(d·d_q) [+ m·s]`, added in block order.
        let lanes = blk * TOKENS;
        let d = _mm512_loadu_ps(t.d.as_ptr().add(lanes));
        for (m, sum) in sum.iter_mut().enumerate() {
            let mut s = _mm512_load_si512(c.0.as_ptr().add(m * TOKENS) as *const __m512i);
            if W::OFF != 0 {
                s = _mm512_sub_epi32(s, _mm512_loadu_si512(t.off.as_ptr().add(lanes) as *const __m512i));
            }
            let dw = _mm512_set1_ps(read_f16(w, m * rb + at));
            let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, d));
            if W::MIN {
                let mw = _mm512_set1_ps(read_f16(w, m * rb + at + 2));
                v = _mm512_add_ps(v, _mm512_mul_ps(mw, _mm512_loadu_ps(t.s.as_ptr().add(lanes))));
            }
            *sum = _mm512_add_ps(*sum, v);
        }
    }
    release_into(&sum, out);
}

/// Q4_K, or Q5_K when `FIVE`: per 32-value group g, the tile's sums times the row's 6-bit
/// scale, added in i32 (exact: what the AVX2 kernel's pmaddwd sums); the mins' term
/// Σ_g min·Σq as four pmaddwd of (min, min) pairs against the tokens' group sums; then the
/// block's `isum·d − msum·dmin` per (row, token), as the scalar kernel finishes it.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
unsafe fn tile_k4<const FIVE: bool>(w: &[u8], rb: usize, t: &Tokens, out: &mut [[f32; TOKENS]; ROWS]) {
    let bytes = k4_layout(FIVE).0;
    let nb = rb / bytes;
    let mut lo = Aligned([0u8; ROWS * QK]);
    let mut hi = Aligned([0u8; ROWS * QK]);
    let mut c = Aligned([0i32; ROWS * TOKENS]);
    let mut sum = [_mm512_setzero_ps(); ROWS];
    configure(QK as u16);
    for blk in 0..nb {
        let at = blk * bytes;
        let mut scales = [0u64; ROWS];
        let mut mins = [0u64; ROWS];
        for m in 0..ROWS {
            (scales[m], mins[m]) = avx2::k4_scales_mins(&w[m * rb + at + 4..m * rb + at + 16]);
            for line in (0..bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().wrapping_add(m * rb + at + bytes + line) as *const i8);
            }
        }
        let mut isum = [_mm512_setzero_si512(); ROWS];
        for pair in 0..4 {
            for m in 0..ROWS {
                let (l, h) = avx2::k4_codes::<FIVE>(w.as_ptr().add(m * rb + at), pair);
                _mm256_store_si256(lo.0.as_mut_ptr().add(m * QK) as *mut __m256i, l);
                _mm256_store_si256(hi.0.as_mut_ptr().add(m * QK) as *mut __m256i, h);
            }
            for (half, a) in [&lo, &hi].into_iter().enumerate() {
                let g = 2 * pair + half;
                dot_tile::<false>(a.0.as_ptr(), QK, t.b.as_ptr().add((blk * 8 + g) * B_TILE), c.0.as_mut_ptr());
                for (m, isum) in isum.iter_mut().enumerate() {
                    let s = _mm512_load_si512(c.0.as_ptr().add(m * TOKENS) as *const __m512i);
                    let scale = _mm512_set1_epi32((scales[m] >> (8 * g)) as u8 as i32);
                    *isum = _mm512_add_epi32(*isum, _mm512_mullo_epi32(s, scale));
                }
            }
        }
        let lanes = blk * TOKENS;
        let da = _mm512_loadu_ps(t.d.as_ptr().add(lanes));
        let group_sums: [__m512i; 4] =
            std::array::from_fn(|pair| _mm512_loadu_si512(t.group_sums.as_ptr().add((blk * 8 + pair) * 2 * TOKENS) as *const __m512i));
        for (m, sum) in sum.iter_mut().enumerate() {
            let mut msum = _mm512_setzero_si512();
            for (pair, sums) in group_sums.iter().enumerate() {
                let (m0, m1) = ((mins[m] >> (16 * pair)) as u8 as i32, (mins[m] >> (16 * pair + 8)) as u8 as i32);
                msum = _mm512_add_epi32(msum, _mm512_madd_epi16(_mm512_set1_epi32(m0 | m1 << 16), *sums));
            }
            let d = _mm512_mul_ps(_mm512_set1_ps(read_f16(w, m * rb + at)), da);
            let dmin = _mm512_mul_ps(_mm512_set1_ps(read_f16(w, m * rb + at + 2)), da);
            let v = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum[m]), d), _mm512_mul_ps(_mm512_cvtepi32_ps(msum), dmin));
            *sum = _mm512_add_ps(*sum, v);
        }
    }
    release_into(&sum, out);
}

/// Q6_K: per 16-value group g, a half-depth tile's sums of the unsigned 6-bit codes times the
/// group's signed scale, added in i32; the −32 centring as 32·Σ_g scale·Σq (eight pmaddwd of
/// scale pairs against the tokens' group sums); then `isum·d` per (row, token).
#[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
unsafe fn tile_q6_k(w: &[u8], rb: usize, t: &Tokens, out: &mut [[f32; TOKENS]; ROWS]) {
    let nb = rb / block::Q6_K;
    let mut quads = Aligned([0u8; 4 * ROWS * QK]);
    let mut c = Aligned([0i32; ROWS * TOKENS]);
    let mut sum = [_mm512_setzero_ps(); ROWS];
    configure(16);
    for blk in 0..nb {
        let at = blk * block::Q6_K;
        for m in 0..ROWS {
            for line in (0..block::Q6_K).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().wrapping_add(m * rb + at + block::Q6_K + line) as *const i8);
            }
        }
        let mut isum = [_mm512_setzero_si512(); ROWS];
        for half in 0..2 {
            // Quad k of every row (32 values: groups 2k and 2k+1), rows 32 bytes apart.
            for m in 0..ROWS {
                for (k, q) in avx2::q6_quads(w.as_ptr().add(m * rb + at), half).into_iter().enumerate() {
                    _mm256_store_si256(quads.0.as_mut_ptr().add((k * ROWS + m) * QK) as *mut __m256i, q);
                }
            }
            for k in 0..4 {
                let chunk = blk * 8 + half * 4 + k;
                for second in 0..2 {
                    let g = half * 8 + 2 * k + second;
                    let a = quads.0.as_ptr().add(k * ROWS * QK + 16 * second);
                    dot_tile::<false>(a, QK, t.b.as_ptr().add(chunk * B_TILE + 256 * second), c.0.as_mut_ptr());
                    for (m, isum) in isum.iter_mut().enumerate() {
                        let s = _mm512_load_si512(c.0.as_ptr().add(m * TOKENS) as *const __m512i);
                        let scale = _mm512_set1_epi32(w[m * rb + at + 192 + g] as i8 as i32);
                        *isum = _mm512_add_epi32(*isum, _mm512_mullo_epi32(s, scale));
                    }
                }
            }
        }
        let lanes = blk * TOKENS;
        let da = _mm512_loadu_ps(t.d.as_ptr().add(lanes));
        let group_sums: [__m512i; 8] =
            std::array::from_fn(|pair| _mm512_loadu_si512(t.group_sums.as_ptr().add((blk * 8 + pair) * 2 * TOKENS) as *const __m512i));
        for (m, sum) in sum.iter_mut().enumerate() {
            let sc = &w[m * rb + at + 192..m * rb + at + 208];
            let mut offset = _mm512_setzero_si512();
            for (pair, sums) in group_sums.iter().enumerate() {
                let (s0, s1) = (sc[2 * pair] as i8 as i16 as u16 as i32, sc[2 * pair + 1] as i8 as i16 as u16 as i32);
                offset = _mm512_add_epi32(offset, _mm512_madd_epi16(_mm512_set1_epi32(s0 | s1 << 16), *sums));
            }
            let s = _mm512_sub_epi32(isum[m], _mm512_slli_epi32::<5>(offset));
            let d = _mm512_mul_ps(_mm512_set1_ps(read_f16(w, m * rb + at + 208)), da);
            *sum = _mm512_add_ps(*sum, _mm512_mul_ps(_mm512_cvtepi32_ps(s), d));
        }
    }
    release_into(&sum, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::scalar;
    use crate::quant::testdata::{random_row, Rng};

    /// Every (row, token) of a tile has the scalar kernel's bits, for each type and batch size.
    #[test]
    fn tiles_match_the_scalar_kernel() {
        if !available() {
            // Nothing to compare on a CPU (or OS) without the tile unit; say so in the output.
            eprintln!("amx: not available here (CPUID leaf 7 EDX = {:#x}); tile kernels not tested", __cpuid_count(7, 0).edx);
            return;
        }
        let mut rng = Rng(0xa3c5);
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let cols = if ty.block_size() == QK { 19 * QK } else { 3 * QK_K };
            let rb = ty.row_bytes(cols);
            let w: Vec<u8> = (0..ROWS).flat_map(|_| random_row(ty, cols, 1.0, &mut rng)).collect();
            for n in [1, 3, 8, 9, 16] {
                let xs: Vec<QuantizedRow> = (0..n)
                    .map(|k| {
                        let x: Vec<f32> = (0..cols).map(|_| rng.f32() * (k + 1) as f32).collect();
                        let mut q = QuantizedRow::new(ty.dot_type());
                        q.quantize(&x);
                        q
                    })
                    .collect();
                let mut out = [[0.0; TOKENS]; ROWS];
                tile(ty, &w, rb, &Tokens::new(ty, &xs), &mut out);
                for (m, row) in out.iter().enumerate() {
                    for (k, x) in xs.iter().enumerate() {
                        let want = scalar::vec_dot(ty, &w[m * rb..(m + 1) * rb], x);
                        assert_eq!(row[k].to_bits(), want.to_bits(), "{} {n} tokens: row {m} token {k}: {} vs scalar {want}", ty.name(), row[k]);
                    }
                }
            }
        }
    }
}
