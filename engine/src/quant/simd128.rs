//! WebAssembly SIMD128 twins of the scalar dot products (the component is built with
//! `+simd128`). Each block's integer sum is computed with SIMD, then finished with exactly
//! the scalar kernel's float expression, so results are bit-identical to `scalar`.

use core::arch::wasm32::*;

use super::f16::read_f16;
use super::scalar::scale_min_k4;
use super::{GgmlType, QuantizedRow, QK, QK_K};

/// `None` where there is no SIMD128 kernel for the type (the scalar one runs instead).
#[inline]
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    // SAFETY: every load below reads 16 bytes inside a block of the row or of `a.qs`.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_q8_0(w, a),
            GgmlType::Q4_0 => dot_q4_0(w, a),
            GgmlType::Q4_1 => dot_q4_1(w, a),
            GgmlType::Q5_0 => dot_q5_0(w, a),
            GgmlType::Q4K => dot_q4_k(w, a),
            GgmlType::Q6K => dot_q6_k(w, a),
            _ => return None,
        })
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> v128 {
    v128_load(p as *const v128)
}

/// Σ x·y over 16 signed bytes, as 4 i32 lanes.
#[inline(always)]
fn dot16(x: v128, y: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
    i32x4_add(lo, hi)
}

#[inline(always)]
fn hsum_i32(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

/// Σ over one 32-value block where the weights are given as two 16-byte halves.
#[inline(always)]
unsafe fn block_dot(x0: v128, x1: v128, q8: *const i8) -> v128 {
    i32x4_add(dot16(x0, load(q8 as *const u8)), dot16(x1, load(q8.add(16) as *const u8)))
}

unsafe fn dot_q8_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(34).enumerate() {
        let p = blk.as_ptr().add(2);
        let s = block_dot(load(p), load(p.add(16)), a.qs.as_ptr().add(i * QK));
        sum += hsum_i32(s) as f32 * (read_f16(blk, 0) * a.d[i]);
    }
    sum
}

#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (v128, v128) {
    let b = load(p);
    let m = u8x16_splat(0x0f);
    (v128_and(b, m), u8x16_shr(b, 4))
}

unsafe fn dot_q4_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    let eight = i8x16_splat(8);
    for (i, blk) in w.chunks_exact(18).enumerate() {
        let (lo, hi) = nibbles(blk.as_ptr().add(2));
        let s = block_dot(i8x16_sub(lo, eight), i8x16_sub(hi, eight), a.qs.as_ptr().add(i * QK));
        sum += hsum_i32(s) as f32 * (read_f16(blk, 0) * a.d[i]);
    }
    sum
}

unsafe fn dot_q4_1(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(20).enumerate() {
        let (lo, hi) = nibbles(blk.as_ptr().add(4));
        let s = block_dot(lo, hi, a.qs.as_ptr().add(i * QK));
        sum += hsum_i32(s) as f32 * (read_f16(blk, 0) * a.d[i]) + read_f16(blk, 2) * a.s[i];
    }
    sum
}

/// 16 bits of `bits` starting at `from` (0 or 16) → 16 bytes holding 0x10 where the bit is
/// set: each byte picks its source byte, keeps its own bit, and compares.
#[inline(always)]
fn high_bits(bits: u32, from: u32) -> v128 {
    let v = u32x4_splat(bits);
    let first = (from / 8) as u8;
    let pick = u8x16(
        first, first, first, first, first, first, first, first,
        first + 1, first + 1, first + 1, first + 1, first + 1, first + 1, first + 1, first + 1,
    );
    let bit = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let set = i8x16_eq(v128_and(i8x16_swizzle(v, pick), bit), bit);
    v128_and(set, u8x16_splat(0x10))
}

unsafe fn dot_q5_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    let sixteen = i8x16_splat(16);
    for (i, blk) in w.chunks_exact(22).enumerate() {
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        let (lo, hi) = nibbles(blk.as_ptr().add(6));
        let x0 = i8x16_sub(v128_or(lo, high_bits(qh, 0)), sixteen);
        let x1 = i8x16_sub(v128_or(hi, high_bits(qh, 16)), sixteen);
        let s = block_dot(x0, x1, a.qs.as_ptr().add(i * QK));
        sum += hsum_i32(s) as f32 * (read_f16(blk, 0) * a.d[i]);
    }
    sum
}

unsafe fn dot_q4_k(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(144).enumerate() {
        let scales = &blk[4..16];
        let q8 = a.qs.as_ptr().add(i * QK_K);
        let bsums = &a.bsums[i * 16..i * 16 + 16];
        let mut sumi = i32x4_splat(0);
        let mut summ = 0i32;
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
            let (lo0, hi0) = nibbles(blk.as_ptr().add(16 + c * 32));
            let (lo1, hi1) = nibbles(blk.as_ptr().add(16 + c * 32 + 16));
            let d1 = block_dot(lo0, lo1, q8.add(c * 64));
            let d2 = block_dot(hi0, hi1, q8.add(c * 64 + 32));
            sumi = i32x4_add(sumi, i32x4_mul(d1, i32x4_splat(sc1 as i32)));
            sumi = i32x4_add(sumi, i32x4_mul(d2, i32x4_splat(sc2 as i32)));
            summ += m1 as i32 * (bsums[4 * c] as i32 + bsums[4 * c + 1] as i32);
            summ += m2 as i32 * (bsums[4 * c + 2] as i32 + bsums[4 * c + 3] as i32);
        }
        let d = read_f16(blk, 0) * a.d[i];
        let dmin = read_f16(blk, 2) * a.d[i];
        sum += hsum_i32(sumi) as f32 * d - summ as f32 * dmin;
    }
    sum
}

unsafe fn dot_q6_k(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    let m4 = u8x16_splat(0x0f);
    let m3 = u8x16_splat(0x03);
    let c32 = i8x16_splat(32);
    for (i, blk) in w.chunks_exact(210).enumerate() {
        let q8 = a.qs.as_ptr().add(i * QK_K);
        let sc = &blk[192..208];
        let mut sumi = i32x4_splat(0);
        for half in 0..2 {
            for part in 0..2 {
                // 16 of the 32 `l` positions: one scale group in each of the four quads.
                let o = part * 16;
                let ql0 = load(blk.as_ptr().add(half * 64 + o));
                let ql1 = load(blk.as_ptr().add(half * 64 + 32 + o));
                let qh = load(blk.as_ptr().add(128 + half * 32 + o));
                let quads = [
                    v128_or(v128_and(ql0, m4), u8x16_shl(v128_and(qh, m3), 4)),
                    v128_or(v128_and(ql1, m4), u8x16_shl(v128_and(u8x16_shr(qh, 2), m3), 4)),
                    v128_or(u8x16_shr(ql0, 4), u8x16_shl(v128_and(u8x16_shr(qh, 4), m3), 4)),
                    v128_or(u8x16_shr(ql1, 4), u8x16_shl(u8x16_shr(qh, 6), 4)),
                ];
                for (k, q) in quads.iter().enumerate() {
                    let s = sc[half * 8 + 2 * k + part] as i8 as i32;
                    let y = load(q8.add(half * 128 + k * 32 + o) as *const u8);
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
            GgmlType::Q8_0 => dot_x4_q32::<34, false>(w, a, |p| (load(p.add(2)), load(p.add(18)))),
            GgmlType::Q4_0 => dot_x4_q32::<18, false>(w, a, |p| {
                let (lo, hi) = nibbles(p.add(2));
                (i8x16_sub(lo, i8x16_splat(8)), i8x16_sub(hi, i8x16_splat(8)))
            }),
            GgmlType::Q4_1 => dot_x4_q32::<20, true>(w, a, |p| nibbles(p.add(4))),
            GgmlType::Q5_0 => dot_x4_q32::<22, false>(w, a, |p| {
                let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
                let (lo, hi) = nibbles(p.add(6));
                let sixteen = i8x16_splat(16);
                (i8x16_sub(v128_or(lo, high_bits(qh, 0)), sixteen), i8x16_sub(v128_or(hi, high_bits(qh, 16)), sixteen))
            }),
            GgmlType::Q4K => dot_x4_q4_k(w, a),
            GgmlType::Q6K => dot_x4_q6_k(w, a),
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

/// Σ x·y over 32 values: `x` already widened to four i16x8 vectors, `y` 32 bytes of q8.
#[inline(always)]
unsafe fn dot32_wide(x: &[v128; 4], q8: *const i8) -> v128 {
    let y0 = load(q8 as *const u8);
    let y1 = load(q8.add(16) as *const u8);
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

#[inline(always)]
fn lanes(v: v128) -> [f32; 4] {
    [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
}

/// The 32-value block types: `unpack` gives a block's 32 signed weights as two 16-byte
/// halves; `MIN` adds Q4_1's `m·s` term.
#[inline(always)]
unsafe fn dot_x4_q32<const BB: usize, const MIN: bool>(
    w: &[u8],
    a: &[&QuantizedRow; 4],
    unpack: impl Fn(*const u8) -> (v128, v128),
) -> [f32; 4] {
    let mut sum = f32x4_splat(0.0);
    for (i, blk) in w.chunks_exact(BB).enumerate() {
        let (x0, x1) = unpack(blk.as_ptr());
        let [a0, a1] = widen(x0);
        let [a2, a3] = widen(x1);
        let x = [a0, a1, a2, a3];
        let o = i * QK;
        let s = hsum4(
            dot32_wide(&x, a[0].qs.as_ptr().add(o)),
            dot32_wide(&x, a[1].qs.as_ptr().add(o)),
            dot32_wide(&x, a[2].qs.as_ptr().add(o)),
            dot32_wide(&x, a[3].qs.as_ptr().add(o)),
        );
        let d = f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
        let mut t = f32x4_mul(f32x4_convert_i32x4(s), f32x4_mul(f32x4_splat(read_f16(blk, 0)), d));
        if MIN {
            let s = f32x4(a[0].s[i], a[1].s[i], a[2].s[i], a[3].s[i]);
            t = f32x4_add(t, f32x4_mul(f32x4_splat(read_f16(blk, 2)), s));
        }
        sum = f32x4_add(sum, t);
    }
    lanes(sum)
}

unsafe fn dot_x4_q4_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = f32x4_splat(0.0);
    for (i, blk) in w.chunks_exact(144).enumerate() {
        let scales = &blk[4..16];
        let mut sumi = [i32x4_splat(0); 4];
        let mut summ = [0i32; 4];
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
            let (lo0, hi0) = nibbles(blk.as_ptr().add(16 + c * 32));
            let (lo1, hi1) = nibbles(blk.as_ptr().add(16 + c * 32 + 16));
            // Scale the widened weights once (q·sc ≤ 15·63 fits i16): Σ(q·sc)·y = sc·Σq·y.
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
                let bsums = &a[t].bsums[i * 16 + 4 * c..i * 16 + 4 * c + 4];
                summ[t] += m1 as i32 * (bsums[0] as i32 + bsums[1] as i32);
                summ[t] += m2 as i32 * (bsums[2] as i32 + bsums[3] as i32);
            }
        }
        let ad = f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
        let d = f32x4_mul(f32x4_splat(read_f16(blk, 0)), ad);
        let dmin = f32x4_mul(f32x4_splat(read_f16(blk, 2)), ad);
        let isum = f32x4_convert_i32x4(hsum4(sumi[0], sumi[1], sumi[2], sumi[3]));
        let msum = f32x4_convert_i32x4(i32x4(summ[0], summ[1], summ[2], summ[3]));
        sum = f32x4_add(sum, f32x4_sub(f32x4_mul(isum, d), f32x4_mul(msum, dmin)));
    }
    lanes(sum)
}

unsafe fn dot_x4_q6_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = f32x4_splat(0.0);
    let m4 = u8x16_splat(0x0f);
    let m3 = u8x16_splat(0x03);
    let c32 = i8x16_splat(32);
    for (i, blk) in w.chunks_exact(210).enumerate() {
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
                    let q8 = a[t].qs.as_ptr().add(i * QK_K + half * 128 + k * 32);
                    sumi[t] = i32x4_add(sumi[t], dot32_wide(&x, q8));
                }
            }
        }
        let d = f32x4_mul(f32x4_splat(read_f16(blk, 208)), f32x4(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]));
        sum = f32x4_add(sum, f32x4_mul(f32x4_convert_i32x4(hsum4(sumi[0], sumi[1], sumi[2], sumi[3])), d));
    }
    lanes(sum)
}
