//! WebAssembly SIMD128 twins of the scalar dot products (the component is built with
//! `+simd128`). Each block's integer sum is computed with SIMD, then finished with exactly
//! the scalar kernel's float expression, so results are bit-identical to `scalar`.
//!
//! SIMD128 multiplies 16-bit lanes (`i32x4.dot_i16x8_s`), so both sides are widened from
//! bytes first. For one token the activations come widened once per matrix product
//! (`QuantizedRow::qs16`) instead of once per weight row, and the 32-value types finish four
//! blocks per step; the four-token tiles keep widening bytes (twice the loads made them
//! slower). Measured with `examples/kernel_bench.rs` in wasmtime: one token Q8_0 +50%,
//! Q6_K +40%; Q5_0's fifth bits through a lookup table instead of `i8x16.swizzle` (which
//! compiles to several instructions on x86): Q5_0 tiles +70%. With the engine feature
//! `relaxed-simd`, some types use relaxed-simd's 8-bit dot products instead (module
//! `relaxed`, below).

use core::arch::wasm32::*;

use super::f16::{f16_table, read_f16};
use super::scalar::scale_min_k4;
use super::{block, k4_layout, GgmlType, QuantizedRow, QK, QK_K};

/// `None` where there is no SIMD128 kernel for the type (the scalar one runs instead).
#[inline]
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    if a.qs16.len() != a.qs.len() {
        return None;
    }
    // SAFETY: every load below reads 16 bytes inside a block of the row, or 8 i16 inside
    // a block of `a.qs16` (as long as `a.qs`, checked above).
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_q32::<{ block::Q8_0 }, false>(w, a, |p| unpack_q8_0(p)),
            GgmlType::Q4_0 => dot_q32::<{ block::Q4_0 }, false>(w, a, |p| unpack_q4_0(p)),
            GgmlType::Q4_1 => dot_q32::<{ block::Q4_1 }, true>(w, a, |p| unpack_q4_1(p)),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q5_0 => relaxed::dot_q5_0(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q5_0 => dot_q32::<{ block::Q5_0 }, false>(w, a, |p| unpack_q5_0(p)),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q4K => relaxed::dot_k4::<false>(w, a),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q5K => relaxed::dot_k4::<true>(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q4K => dot_k4::<false>(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q5K => dot_k4::<true>(w, a),
            GgmlType::Q6K => dot_q6_k(w, a),
            _ => return None,
        })
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> v128 {
    v128_load(p as *const v128)
}

/// 8 widened activations.
#[inline(always)]
unsafe fn load_i16(y: *const i16) -> v128 {
    v128_load(y as *const v128)
}

/// Σ x·y over 16 signed-byte weights and 16 widened activations, as 4 i32 lanes.
#[inline(always)]
unsafe fn dot16(x: v128, y: *const i16) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), load_i16(y));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), load_i16(y.add(8)));
    i32x4_add(lo, hi)
}

#[inline(always)]
fn hsum_i32(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

/// Σ over one 32-value block where the weights are given as two 16-byte halves.
#[inline(always)]
unsafe fn block_dot(x0: v128, x1: v128, y: *const i16) -> v128 {
    i32x4_add(dot16(x0, y), dot16(x1, y.add(16)))
}

#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (v128, v128) {
    let b = load(p);
    let m = u8x16_splat(0x0f);
    (v128_and(b, m), u8x16_shr(b, 4))
}

/// Positions `o..o + 16` (`o` 0 or 16) of group pair `c` of a Q4_K block, or of a Q5_K block
/// when `FIVE`: the low-nibble codes (group 2c) and the high ones (group 2c + 1), for Q5_K
/// with their fifth bits (bits 2c and 2c + 1 of the `qh` byte at each position).
#[inline(always)]
unsafe fn k4_codes<const FIVE: bool>(blk: *const u8, c: usize, o: usize) -> (v128, v128) {
    let (lo, hi) = nibbles(blk.add(k4_layout(FIVE).1 + c * 32 + o));
    if !FIVE {
        return (lo, hi);
    }
    let qh = load(blk.add(16 + o));
    let fifth = |j: u32| i8x16_shl(v128_and(u8x16_shr(qh, j), u8x16_splat(1)), 4);
    (v128_or(lo, fifth(2 * c as u32)), v128_or(hi, fifth(2 * c as u32 + 1)))
}

/// Byte k of `SPREAD[b]` is 0x10 where bit k of `b` is set: Q5_0's fifth bits, eight at a
/// time, put in place with one lookup instead of a shuffle, a mask and a compare.
static SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 8 {
            if b & (1 << k) != 0 {
                t[b] |= 0x10 << (8 * k);
            }
            k += 1;
        }
        b += 1;
    }
    t
};

/// 16 bits of `bits` starting at `from` (0 or 16) → 16 bytes holding 0x10 where the bit is set.
#[inline(always)]
fn high_bits(bits: u32, from: u32) -> v128 {
    let spread = |k: u32| SPREAD[((bits >> (from + 8 * k)) & 0xff) as usize];
    u64x2(spread(0), spread(1))
}

// A 32-value block's weights as two halves of 16 signed bytes.

#[inline(always)]
unsafe fn unpack_q8_0(p: *const u8) -> (v128, v128) {
    (load(p.add(2)), load(p.add(18)))
}

#[inline(always)]
unsafe fn unpack_q4_0(p: *const u8) -> (v128, v128) {
    let (lo, hi) = nibbles(p.add(2));
    (i8x16_sub(lo, i8x16_splat(8)), i8x16_sub(hi, i8x16_splat(8)))
}

#[inline(always)]
unsafe fn unpack_q4_1(p: *const u8) -> (v128, v128) {
    nibbles(p.add(4))
}

#[inline(always)]
unsafe fn unpack_q5_0(p: *const u8) -> (v128, v128) {
    let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
    let (lo, hi) = nibbles(p.add(6));
    let sixteen = i8x16_splat(16);
    (i8x16_sub(v128_or(lo, high_bits(qh, 0)), sixteen), i8x16_sub(v128_or(hi, high_bits(qh, 16)), sixteen))
}

/// The f16 at `p`, through the exact table.
#[inline(always)]
unsafe fn f16_at(table: &[f32], p: *const u8) -> f32 {
    table[u16::from_le_bytes([*p, *p.add(1)]) as usize]
}

/// The 32-value block types, one token. Four blocks at a time: their integer sums are
/// gathered into one vector and finished lane-wise with the scalar kernel's expression,
/// then added to the running sum one block after another, in the scalar kernel's order
/// (same bits), without four horizontal sums and four scalar epilogues.
#[inline(always)]
unsafe fn dot_q32<const BB: usize, const MIN: bool>(
    w: &[u8],
    a: &QuantizedRow,
    unpack: impl Fn(*const u8) -> (v128, v128),
) -> f32 {
    let nb = w.len() / BB;
    let (wp, y) = (w.as_ptr(), a.qs16.as_ptr());
    let block = |i: usize| {
        let (x0, x1) = unpack(wp.add(i * BB));
        block_dot(x0, x1, y.add(i * QK))
    };
    let table = f16_table();
    let mut sum = 0.0f32;
    let mut i = 0;
    while i + 4 <= nb {
        let s = f32x4_convert_i32x4(hsum4(block(i), block(i + 1), block(i + 2), block(i + 3)));
        let p = wp.add(i * BB);
        let dw = f32x4(f16_at(table, p), f16_at(table, p.add(BB)), f16_at(table, p.add(2 * BB)), f16_at(table, p.add(3 * BB)));
        let mut t = f32x4_mul(s, f32x4_mul(dw, v128_load(a.d.as_ptr().add(i) as *const v128)));
        if MIN {
            let m = f32x4(f16_at(table, p.add(2)), f16_at(table, p.add(BB + 2)), f16_at(table, p.add(2 * BB + 2)), f16_at(table, p.add(3 * BB + 2)));
            t = f32x4_add(t, f32x4_mul(m, v128_load(a.s.as_ptr().add(i) as *const v128)));
        }
        for v in lanes(t) {
            sum += v;
        }
        i += 4;
    }
    for i in i..nb {
        let p = wp.add(i * BB);
        let mut t = hsum_i32(block(i)) as f32 * (f16_at(table, p) * a.d[i]);
        if MIN {
            t += f16_at(table, p.add(2)) * a.s[i];
        }
        sum += t;
    }
    sum
}

#[cfg_attr(feature = "relaxed-simd", allow(dead_code))] // replaced by `relaxed`
unsafe fn dot_k4<const FIVE: bool>(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
        let scales = &blk[4..16];
        // Raw bytes, widened here: measured no slower than `qs16` for this type.
        let q8 = a.qs.as_ptr().add(i * QK_K);
        let mut sumi = i32x4_splat(0);
        for c in 0..4 {
            let (sc1, _) = scale_min_k4(2 * c, scales);
            let (sc2, _) = scale_min_k4(2 * c + 1, scales);
            let (lo0, hi0) = k4_codes::<FIVE>(blk.as_ptr(), c, 0);
            let (lo1, hi1) = k4_codes::<FIVE>(blk.as_ptr(), c, 16);
            let [l00, l01] = widen(lo0);
            let [l10, l11] = widen(lo1);
            let [h00, h01] = widen(hi0);
            let [h10, h11] = widen(hi1);
            let d1 = dot32_wide(&[l00, l01, l10, l11], q8.add(c * 64));
            let d2 = dot32_wide(&[h00, h01, h10, h11], q8.add(c * 64 + 32));
            sumi = i32x4_add(sumi, i32x4_mul(d1, i32x4_splat(sc1 as i32)));
            sumi = i32x4_add(sumi, i32x4_mul(d2, i32x4_splat(sc2 as i32)));
        }
        let summ = hsum_i32(q4_k_mins_dot(&q4_k_mins(scales), a, i));
        let d = read_f16(blk, 0) * a.d[i];
        let dmin = read_f16(blk, 2) * a.d[i];
        sum += hsum_i32(sumi) as f32 * d - summ as f32 * dmin;
    }
    sum
}

/// 16 of a Q6_K block's 6-bit codes (0..63, uncentred) in each of its half's four quads:
/// positions `o..o + 16` (`o` 0 or 16) of the 32 in every quad of half `half`.
#[inline(always)]
unsafe fn q6_k_quads(blk: &[u8], half: usize, o: usize) -> [v128; 4] {
    let (m4, m3) = (u8x16_splat(0x0f), u8x16_splat(0x03));
    let ql0 = load(blk.as_ptr().add(half * 64 + o));
    let ql1 = load(blk.as_ptr().add(half * 64 + 32 + o));
    let qh = load(blk.as_ptr().add(128 + half * 32 + o));
    [
        v128_or(v128_and(ql0, m4), u8x16_shl(v128_and(qh, m3), 4)),
        v128_or(v128_and(ql1, m4), u8x16_shl(v128_and(u8x16_shr(qh, 2), m3), 4)),
        v128_or(u8x16_shr(ql0, 4), u8x16_shl(v128_and(u8x16_shr(qh, 4), m3), 4)),
        v128_or(u8x16_shr(ql1, 4), u8x16_shl(u8x16_shr(qh, 6), 4)),
    ]
}

unsafe fn dot_q6_k(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    let c32 = i8x16_splat(32);
    for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
        let q8 = a.qs16.as_ptr().add(i * QK_K);
        let sc = &blk[192..208];
        let mut sumi = i32x4_splat(0);
        for half in 0..2 {
            for part in 0..2 {
                // 16 of the 32 `l` positions: one scale group in each of the four quads.
                let o = part * 16;
                let quads = q6_k_quads(blk, half, o);
                for (k, q) in quads.iter().enumerate() {
                    let s = sc[half * 8 + 2 * k + part] as i8 as i32;
                    let y = q8.add(half * 128 + k * 32 + o);
                    sumi = i32x4_add(sumi, i32x4_mul(dot16(i8x16_sub(*q, c32), y), i32x4_splat(s)));
                }
            }
        }
        sum += hsum_i32(sumi) as f32 * (read_f16(blk, 208) * a.d[i]);
    }
    sum
}

// ---------------------------------------------------------------------------------------
// Four activation rows at once (batched prefill): each weight block is unpacked and widened
// to i16 once, then dotted with four tokens. Per token the integer sums are the same exact
// values as above, and the float epilogue runs lane-wise with the same operations in the
// same order, so every lane is bit-identical to `vec_dot` on that token.

/// `None` where there is no four-row SIMD128 kernel for the type.
#[inline]
pub fn vec_dot_x4(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> Option<[f32; 4]> {
    // SAFETY: as for `vec_dot`; all four rows have the weight row's length.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_xn_q32::<{ block::Q8_0 }, false, 4>(w, a, |p| unpack_q8_0(p)),
            GgmlType::Q4_0 => dot_xn_q32::<{ block::Q4_0 }, false, 4>(w, a, |p| unpack_q4_0(p)),
            GgmlType::Q4_1 => dot_xn_q32::<{ block::Q4_1 }, true, 4>(w, a, |p| unpack_q4_1(p)),
            GgmlType::Q5_0 => dot_xn_q32::<{ block::Q5_0 }, false, 4>(w, a, |p| unpack_q5_0(p)),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q4K => relaxed::dot_x4_k4::<false>(w, a),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q5K => relaxed::dot_x4_k4::<true>(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q4K => dot_x4_k4::<false>(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q5K => dot_x4_k4::<true>(w, a),
            #[cfg(feature = "relaxed-simd")]
            GgmlType::Q6K => relaxed::dot_x4_q6_k(w, a),
            #[cfg(not(feature = "relaxed-simd"))]
            GgmlType::Q6K => dot_x4_q6_k(w, a),
            _ => return None,
        })
    }
}

/// Eight rows at once, for the types whose weight blocks cost enough to unpack that sharing
/// them among eight tokens pays; `None` for the others (two four-row tiles run instead).
#[inline]
pub fn vec_dot_x8(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> Option<[f32; 8]> {
    // SAFETY: as for `vec_dot_x4`.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_xn_q32::<{ block::Q8_0 }, false, 8>(w, a, |p| unpack_q8_0(p)),
            GgmlType::Q4_0 => dot_xn_q32::<{ block::Q4_0 }, false, 8>(w, a, |p| unpack_q4_0(p)),
            GgmlType::Q5_0 => dot_xn_q32::<{ block::Q5_0 }, false, 8>(w, a, |p| unpack_q5_0(p)),
            // Q4_1 (its nibbles are cheap to unpack, its min term is per token), Q4_K and
            // Q6_K (eight tokens' sums no longer fit the registers beside the widened
            // weights): measured no faster.
            _ => return None,
        })
    }
}

/// [Σa, Σb, Σc, Σd] of four i32x4 vectors (exact integer sums).
#[inline(always)]
fn hsum4(a: v128, b: v128, c: v128, d: v128) -> v128 {
    let ab = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
    let cd = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd))
}

/// 16 signed bytes → two i16x8 halves.
#[inline(always)]
fn widen(x: v128) -> [v128; 2] {
    [i16x8_extend_low_i8x16(x), i16x8_extend_high_i8x16(x)]
}

/// Σ x·y over 32 values: `x` already widened to four i16x8 vectors, `y` 32 bytes of q8,
/// widened here (Q4_K's kernels: reading `qs16` instead measured no faster for one token,
/// 6% slower in the tiles).
#[inline(always)]
unsafe fn dot32_wide(x: &[v128; 4], y: *const i8) -> v128 {
    let y0 = load(y as *const u8);
    let y1 = load(y.add(16) as *const u8);
    let a = i32x4_add(
        i32x4_dot_i16x8(x[0], i16x8_extend_low_i8x16(y0)),
        i32x4_dot_i16x8(x[1], i16x8_extend_high_i8x16(y0)),
    );
    let b = i32x4_add(
        i32x4_dot_i16x8(x[2], i16x8_extend_low_i8x16(y1)),
        i32x4_dot_i16x8(x[3], i16x8_extend_high_i8x16(y1)),
    );
    i32x4_add(a, b)
}

/// Σ x·y over 32 values, both widened: `y` 32 activations of `qs16`. The 32-value types'
/// tiles and Q6_K's read the activations so: twice the bytes of `qs`, but each product is
/// one instruction with its load (Q8_0 tiles +12%, Q5_0 +7%, Q6_K +30% in wasmtime).
#[inline(always)]
unsafe fn dot32_w16(x: &[v128; 4], y: *const i16) -> v128 {
    let a = i32x4_add(i32x4_dot_i16x8(x[0], load_i16(y)), i32x4_dot_i16x8(x[1], load_i16(y.add(8))));
    let b = i32x4_add(i32x4_dot_i16x8(x[2], load_i16(y.add(16))), i32x4_dot_i16x8(x[3], load_i16(y.add(24))));
    i32x4_add(a, b)
}

#[inline(always)]
fn lanes(v: v128) -> [f32; 4] {
    [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
}

/// The 32-value block types for `N` tokens (4 or 8): `unpack` gives a block's 32 signed
/// weights as two 16-byte halves, widened once for all `N`; `MIN` adds Q4_1's `m·s` term.
/// Each group of four tokens is one vector of sums, finished lane-wise.
#[inline(always)]
unsafe fn dot_xn_q32<const BB: usize, const MIN: bool, const N: usize>(
    w: &[u8],
    a: &[&QuantizedRow; N],
    unpack: impl Fn(*const u8) -> (v128, v128),
) -> [f32; N] {
    let mut sums = [f32x4_splat(0.0); N]; // the first N / 4 are used
    let table = f16_table();
    for (i, blk) in w.chunks_exact(BB).enumerate() {
        let (x0, x1) = unpack(blk.as_ptr());
        let [a0, a1] = widen(x0);
        let [a2, a3] = widen(x1);
        let x = [a0, a1, a2, a3];
        let o = i * QK;
        let dw = f32x4_splat(f16_at(table, blk.as_ptr()));
        for g in 0..N / 4 {
            let a = &a[4 * g..4 * g + 4];
            let s = hsum4(
                dot32_w16(&x, a[0].qs16.as_ptr().add(o)),
                dot32_w16(&x, a[1].qs16.as_ptr().add(o)),
                dot32_w16(&x, a[2].qs16.as_ptr().add(o)),
                dot32_w16(&x, a[3].qs16.as_ptr().add(o)),
            );
            // Unchecked: every row has the weight row's length, so block `i` (four bounds
            // checks here cost more than the gather).
            let d = f32x4(*a[0].d.as_ptr().add(i), *a[1].d.as_ptr().add(i), *a[2].d.as_ptr().add(i), *a[3].d.as_ptr().add(i));
            let mut t = f32x4_mul(f32x4_convert_i32x4(s), f32x4_mul(dw, d));
            if MIN {
                let s = f32x4(a[0].s[i], a[1].s[i], a[2].s[i], a[3].s[i]);
                t = f32x4_add(t, f32x4_mul(f32x4_splat(f16_at(table, blk.as_ptr().add(2))), s));
            }
            sums[g] = f32x4_add(sums[g], t);
        }
    }
    let mut out = [0.0; N];
    for g in 0..N / 4 {
        out[4 * g..4 * g + 4].copy_from_slice(&lanes(sums[g]));
    }
    out
}

/// A Q4_K (or Q5_K) block's eight mins, each twice (a 32-value sub-block has two of the activations'
/// 16-value `bsums`), as i16 lanes: once per block, for every token.
#[inline(always)]
fn q4_k_mins(scales: &[u8]) -> [v128; 2] {
    let m: [i16; 8] = core::array::from_fn(|j| scale_min_k4(j, scales).1 as i16);
    [i16x8(m[0], m[0], m[1], m[1], m[2], m[2], m[3], m[3]), i16x8(m[4], m[4], m[5], m[5], m[6], m[6], m[7], m[7])]
}

/// Σ m·y over Q4_K (or Q5_K) block `i` for one token, from its bsums, as four i32 lanes to add
/// (exact: |m·bsum| ≤ 63·16·127).
#[inline(always)]
unsafe fn q4_k_mins_dot(mins: &[v128; 2], a: &QuantizedRow, i: usize) -> v128 {
    let b = a.bsums.as_ptr().add(i * 16);
    i32x4_add(i32x4_dot_i16x8(mins[0], load_i16(b)), i32x4_dot_i16x8(mins[1], load_i16(b.add(8))))
}

/// Block `i` of a Q4_K (or Q5_K) row for four tokens, finished lane-wise: Σ sc·q·y · d − Σ m·y · dmin.
#[inline(always)]
unsafe fn finish_x4_q4_k(blk: &[u8], a: &[&QuantizedRow; 4], i: usize, sumi: &[v128; 4]) -> v128 {
    let ad = f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
    let d = f32x4_mul(f32x4_splat(read_f16(blk, 0)), ad);
    let dmin = f32x4_mul(f32x4_splat(read_f16(blk, 2)), ad);
    let isum = f32x4_convert_i32x4(hsum4(sumi[0], sumi[1], sumi[2], sumi[3]));
    let mins = q4_k_mins(&blk[4..16]);
    let m = |t: usize| q4_k_mins_dot(&mins, a[t], i);
    let msum = f32x4_convert_i32x4(hsum4(m(0), m(1), m(2), m(3)));
    f32x4_sub(f32x4_mul(isum, d), f32x4_mul(msum, dmin))
}

#[cfg_attr(feature = "relaxed-simd", allow(dead_code))] // replaced by `relaxed`
unsafe fn dot_x4_k4<const FIVE: bool>(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = f32x4_splat(0.0);
    for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
        let scales = &blk[4..16];
        let mut sumi = [i32x4_splat(0); 4];
        for c in 0..4 {
            let (sc1, _) = scale_min_k4(2 * c, scales);
            let (sc2, _) = scale_min_k4(2 * c + 1, scales);
            let (lo0, hi0) = k4_codes::<FIVE>(blk.as_ptr(), c, 0);
            let (lo1, hi1) = k4_codes::<FIVE>(blk.as_ptr(), c, 16);
            // Scale the widened weights once (q·sc ≤ 31·63 fits i16): Σ(q·sc)·y = sc·Σq·y.
            let (s1, s2) = (i16x8_splat(sc1 as i16), i16x8_splat(sc2 as i16));
            let [l00, l01] = widen(lo0);
            let [l10, l11] = widen(lo1);
            let [h00, h01] = widen(hi0);
            let [h10, h11] = widen(hi1);
            let lo = [i16x8_mul(l00, s1), i16x8_mul(l01, s1), i16x8_mul(l10, s1), i16x8_mul(l11, s1)];
            let hi = [i16x8_mul(h00, s2), i16x8_mul(h01, s2), i16x8_mul(h10, s2), i16x8_mul(h11, s2)];
            for t in 0..4 {
                let q8 = a[t].qs.as_ptr().add(i * QK_K + c * 64);
                sumi[t] = i32x4_add(sumi[t], i32x4_add(dot32_wide(&lo, q8), dot32_wide(&hi, q8.add(32))));
            }
        }
        sum = f32x4_add(sum, finish_x4_q4_k(blk, a, i, &sumi));
    }
    lanes(sum)
}

#[cfg_attr(feature = "relaxed-simd", allow(dead_code))] // replaced by `relaxed`
unsafe fn dot_x4_q6_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = f32x4_splat(0.0);
    let m4 = u8x16_splat(0x0f);
    let m3 = u8x16_splat(0x03);
    let c32 = i8x16_splat(32);
    for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
        let sc = &blk[192..208];
        let mut sumi = [i32x4_splat(0); 4];
        for half in 0..2 {
            let ql0 = [load(blk.as_ptr().add(half * 64)), load(blk.as_ptr().add(half * 64 + 16))];
            let ql1 = [load(blk.as_ptr().add(half * 64 + 32)), load(blk.as_ptr().add(half * 64 + 48))];
            let qh = [load(blk.as_ptr().add(128 + half * 32)), load(blk.as_ptr().add(128 + half * 32 + 16))];
            for k in 0..4 {
                // Quad k: 32 values (two scale groups of 16), centred, widened, scaled
                // (|q·sc| ≤ 32·128 fits i16).
                let mut x = [i16x8_splat(0); 4];
                for part in 0..2 {
                    let q = match k {
                        0 => v128_or(v128_and(ql0[part], m4), u8x16_shl(v128_and(qh[part], m3), 4)),
                        1 => v128_or(v128_and(ql1[part], m4), u8x16_shl(v128_and(u8x16_shr(qh[part], 2), m3), 4)),
                        2 => v128_or(u8x16_shr(ql0[part], 4), u8x16_shl(v128_and(u8x16_shr(qh[part], 4), m3), 4)),
                        _ => v128_or(u8x16_shr(ql1[part], 4), u8x16_shl(u8x16_shr(qh[part], 6), 4)),
                    };
                    let s = i16x8_splat(sc[half * 8 + 2 * k + part] as i8 as i16);
                    let [lo, hi] = widen(i8x16_sub(q, c32));
                    x[2 * part] = i16x8_mul(lo, s);
                    x[2 * part + 1] = i16x8_mul(hi, s);
                }
                for t in 0..4 {
                    let y = a[t].qs16.as_ptr().add(i * QK_K + half * 128 + k * 32);
                    sumi[t] = i32x4_add(sumi[t], dot32_w16(&x, y));
                }
            }
        }
        let d = f32x4_mul(f32x4_splat(read_f16(blk, 208)), f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]));
        sum = f32x4_add(sum, f32x4_mul(f32x4_convert_i32x4(hsum4(sumi[0], sumi[1], sumi[2], sumi[3])), d));
    }
    lanes(sum)
}

/// Kernels for hosts with relaxed-simd (engine feature `relaxed-simd`, its own component
/// build: a module using it validates only where the host has it). Its 8-bit dot products
/// multiply 16 signed bytes by 16 bytes below 128 and add pairs into i16 lanes (x86:
/// `pmaddubsw`; the `_add` form goes on to i32 lanes), with no widening of either side. The
/// result is implementation-defined only when a byte of the second operand has its top bit
/// set or a pair's sum overflows i16; here the second operand is a weight's unsigned code
/// (Q5_0 0..31, Q4_K 0..15, Q5_K 0..31, Q6_K 0..63, the offset subtracted afterwards through the
/// activations' sums) and activations are within ±127, so pairs stay below 2·127·63: exact
/// on every engine, with the same integer sums, hence the same bits, as the kernels above.
/// Only the kernels that measured faster are used (bench/results/kernels.md): Q5_0 and Q4_K
/// for one token, Q4_K and Q6_K in four-token tiles (Q5_K with Q4_K).
#[cfg(feature = "relaxed-simd")]
mod relaxed {
    use super::*;

    /// Σ q·y over one 32-value block: `x0`, `x1` the weights' unsigned codes, `y` 32 quants.
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    unsafe fn dot32(x0: v128, x1: v128, y: *const i8) -> v128 {
        let y = y as *const u8;
        i32x4_relaxed_dot_i8x16_i7x16_add(load(y.add(16)), x1, i32x4_relaxed_dot_i8x16_i7x16_add(load(y), x0, i32x4_splat(0)))
    }

    /// Q5_0's block `p` as unsigned codes 0..31, two halves of 16.
    #[inline(always)]
    unsafe fn codes_q5_0(p: *const u8) -> (v128, v128) {
        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
        let (lo, hi) = nibbles(p.add(6));
        (v128_or(lo, high_bits(qh, 0)), v128_or(hi, high_bits(qh, 16)))
    }

    /// Q5_0, one token: four blocks per step, finished as `dot_q32` finishes them.
    #[target_feature(enable = "relaxed-simd")]
    pub unsafe fn dot_q5_0(w: &[u8], a: &QuantizedRow) -> f32 {
        let nb = w.len() / block::Q5_0;
        let (wp, y) = (w.as_ptr(), a.qs.as_ptr());
        let dot_block = |i: usize| {
            let (x0, x1) = codes_q5_0(wp.add(i * block::Q5_0));
            dot32(x0, x1, y.add(i * QK))
        };
        let table = f16_table();
        let mut sum = 0.0f32;
        let mut i = 0;
        while i + 4 <= nb {
            let qy = hsum4(dot_block(i), dot_block(i + 1), dot_block(i + 2), dot_block(i + 3));
            let s = f32x4_convert_i32x4(i32x4_sub(qy, i32x4_shl(v128_load(a.isum.as_ptr().add(i) as *const v128), 4)));
            let p = wp.add(i * block::Q5_0);
            let dw = f32x4(f16_at(table, p), f16_at(table, p.add(block::Q5_0)), f16_at(table, p.add(2 * block::Q5_0)), f16_at(table, p.add(3 * block::Q5_0)));
            let t = f32x4_mul(s, f32x4_mul(dw, v128_load(a.d.as_ptr().add(i) as *const v128)));
            for v in lanes(t) {
                sum += v;
            }
            i += 4;
        }
        for i in i..nb {
            let s = hsum_i32(dot_block(i)) - 16 * a.isum[i];
            sum += s as f32 * (f16_at(table, wp.add(i * block::Q5_0)) * a.d[i]);
        }
        sum
    }

    /// Q4_K or Q5_K, one token (see `dot_x4_k4`).
    #[target_feature(enable = "relaxed-simd")]
    pub unsafe fn dot_k4<const FIVE: bool>(w: &[u8], a: &QuantizedRow) -> f32 {
        let mut sum = 0.0f32;
        for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
            let scales = &blk[4..16];
            let q8 = a.qs.as_ptr().add(i * QK_K);
            let mut sumi = i32x4_splat(0);
            for c in 0..4 {
                let (sc1, _) = scale_min_k4(2 * c, scales);
                let (sc2, _) = scale_min_k4(2 * c + 1, scales);
                let (lo0, hi0) = k4_codes::<FIVE>(blk.as_ptr(), c, 0);
                let (lo1, hi1) = k4_codes::<FIVE>(blk.as_ptr(), c, 16);
                let y = q8.add(c * 64);
                let l = i16x8_add(pairs(y, lo0), pairs(y.add(16), lo1));
                let h = i16x8_add(pairs(y.add(32), hi0), pairs(y.add(48), hi1));
                sumi = i32x4_add(sumi, i32x4_add(i32x4_dot_i16x8(l, i16x8_splat(sc1 as i16)), i32x4_dot_i16x8(h, i16x8_splat(sc2 as i16))));
            }
            let summ = hsum_i32(q4_k_mins_dot(&q4_k_mins(scales), a, i));
            let d = read_f16(blk, 0) * a.d[i];
            let dmin = read_f16(blk, 2) * a.d[i];
            sum += hsum_i32(sumi) as f32 * d - summ as f32 * dmin;
        }
        sum
    }

    /// Σ scale·bsum over a Q6_K block's 16 groups: `sc` its 16 signed scales, `bsums` the
    /// activations' 16 group sums.
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    unsafe fn scaled_bsums(sc: *const u8, bsums: *const i16) -> i32 {
        let s = load(sc);
        let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(s), v128_load(bsums as *const v128));
        let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(s), v128_load(bsums.add(8) as *const v128));
        hsum_i32(i32x4_add(lo, hi))
    }

    /// Pair sums of 16 quants `y` and 16 codes below 128, as i16x8 (`pmaddubsw`).
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    unsafe fn pairs(y: *const i8, x: v128) -> v128 {
        i16x8_relaxed_dot_i8x16_i7x16(load(y as *const u8), x)
    }

    /// Q4_K (codes 0..15) or Q5_K (0..31) for four tokens: two pair sums of a 32-value group
    /// add up to at most 4·127·31 in i16, then one `i32x4.dot_i16x8_s` applies the group's scale.
    #[target_feature(enable = "relaxed-simd")]
    pub unsafe fn dot_x4_k4<const FIVE: bool>(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
        let mut sum = f32x4_splat(0.0);
        for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
            let scales = &blk[4..16];
            let mut sumi = [i32x4_splat(0); 4];
            for c in 0..4 {
                let (sc1, _) = scale_min_k4(2 * c, scales);
                let (sc2, _) = scale_min_k4(2 * c + 1, scales);
                let (lo0, hi0) = k4_codes::<FIVE>(blk.as_ptr(), c, 0);
                let (lo1, hi1) = k4_codes::<FIVE>(blk.as_ptr(), c, 16);
                let (s1, s2) = (i16x8_splat(sc1 as i16), i16x8_splat(sc2 as i16));
                for t in 0..4 {
                    let q8 = a[t].qs.as_ptr().add(i * QK_K + c * 64);
                    let l = i16x8_add(pairs(q8, lo0), pairs(q8.add(16), lo1));
                    let h = i16x8_add(pairs(q8.add(32), hi0), pairs(q8.add(48), hi1));
                    sumi[t] = i32x4_add(sumi[t], i32x4_add(i32x4_dot_i16x8(l, s1), i32x4_dot_i16x8(h, s2)));
                }
            }
            sum = f32x4_add(sum, finish_x4_q4_k(blk, a, i, &sumi));
        }
        lanes(sum)
    }

    /// Q6_K for four tokens: the codes 0..63 are multiplied uncentred (pairs below
    /// 2·127·63), each 16-value group by its scale, and Σ 32·scale·(group's Σ y) from the
    /// activations' `bsums` is subtracted: the same integer as Σ scale·(q − 32)·y.
    #[target_feature(enable = "relaxed-simd")]
    pub unsafe fn dot_x4_q6_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
        let mut sum = f32x4_splat(0.0);
        for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
            let sc = &blk[192..208];
            let mut sumi = [i32x4_splat(0); 4];
            let offset: [i32; 4] = core::array::from_fn(|t| scaled_bsums(sc.as_ptr(), a[t].bsums[i * 16..i * 16 + 16].as_ptr()));
            for half in 0..2 {
                for part in 0..2 {
                    let o = part * 16;
                    let quads = q6_k_quads(blk, half, o);
                    for (k, &q) in quads.iter().enumerate() {
                        let s16 = i16x8_splat(sc[half * 8 + 2 * k + part] as i8 as i16);
                        for t in 0..4 {
                            let y = a[t].qs.as_ptr().add(i * QK_K + half * 128 + k * 32 + o);
                            sumi[t] = i32x4_add(sumi[t], i32x4_dot_i16x8(pairs(y, q), s16));
                        }
                    }
                }
            }
            let off = i32x4_shl(i32x4(offset[0], offset[1], offset[2], offset[3]), 5);
            let isum = i32x4_sub(hsum4(sumi[0], sumi[1], sumi[2], sumi[3]), off);
            let d = f32x4_mul(f32x4_splat(read_f16(blk, 208)), f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]));
            sum = f32x4_add(sum, f32x4_mul(f32x4_convert_i32x4(isum), d));
        }
        lanes(sum)
    }
}
