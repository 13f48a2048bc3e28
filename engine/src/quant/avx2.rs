//! x86-64 AVX2+FMA twins of the scalar dot products (selected at run time).
//! Each block's integer sum is computed with SIMD, then finished with exactly the scalar
//! kernel's float expression, so results are bit-identical to `scalar`.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::f16::read_f16;
use super::scalar::scale_min_k4;
use super::{block, k4_layout, GgmlType, QuantizedRow, QK, QK_K};

pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// `None` where there is no AVX2 kernel for the type (the scalar one runs instead).
#[inline]
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    // SAFETY: callers check `available()`; every kernel reads within the row's blocks.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_q8_0(w, a),
            GgmlType::Q4_0 => dot_q4_0(w, a),
            GgmlType::Q4_1 => dot_q4_1(w, a),
            GgmlType::Q5_0 => dot_q5_0(w, a),
            GgmlType::Q4K => dot_k4::<false>(w, a),
            GgmlType::Q5K => dot_k4::<true>(w, a),
            GgmlType::Q6K => dot_q6_k(w, a),
            _ => return None,
        })
    }
}

/// The lane sums of four vectors at once: [Σa, Σb, Σc, Σd] (exact integer sums).
#[inline(always)]
unsafe fn hsum4_i32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> [i32; 4] {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    let mut out = [0i32; 4];
    _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, s);
    out
}

/// Σ over blocks of `block_sum(i) as f32 * scale(i)`, summed in block order like the scalar
/// kernel, with the integer block sums reduced four at a time.
#[inline(always)]
unsafe fn sum_blocks(nb: usize, block_sum: impl Fn(usize) -> __m256i, scale: impl Fn(usize) -> f32) -> f32 {
    let mut sum = 0.0f32;
    let mut i = 0;
    while i + 4 <= nb {
        let s = hsum4_i32(block_sum(i), block_sum(i + 1), block_sum(i + 2), block_sum(i + 3));
        for (k, &v) in s.iter().enumerate() {
            sum += v as f32 * scale(i + k);
        }
        i += 4;
    }
    while i < nb {
        sum += hsum_i32(block_sum(i)) as f32 * scale(i);
        i += 1;
    }
    sum
}

/// Sum of 8 i32 lanes (exact, so the order does not matter).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Σ x·y over 32 signed bytes, as 8 i32 lanes.
#[inline(always)]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}

/// Σ x·y with x unsigned (< 128) and y signed, as 8 i32 lanes.
#[inline(always)]
unsafe fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// 16 bytes of packed nibbles → 32 bytes: low nibbles first, then high nibbles.
#[inline(always)]
unsafe fn unpack_nibbles(p: *const u8) -> __m256i {
    let b = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_srli_epi16(b, 4);
    _mm256_and_si256(_mm256_set_m128i(hi, b), _mm256_set1_epi8(0x0f))
}

/// 32 bits → 32 bytes, 0xFF where the bit is set.
#[inline(always)]
unsafe fn bits_to_bytes(bits: u32) -> __m256i {
    let v = _mm256_set1_epi32(bits as i32);
    let shuf = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    let bytes = _mm256_shuffle_epi8(v, shuf);
    let mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, mask), _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q8_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let blocks = w.as_ptr();
    sum_blocks(
        w.len() / block::Q8_0,
        |i| {
            let x = _mm256_loadu_si256(blocks.add(i * block::Q8_0 + 2) as *const __m256i);
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
            dot_i8(x, y)
        },
        |i| read_f16(w, i * block::Q8_0) * a.d[i],
    )
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q4_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let blocks = w.as_ptr();
    sum_blocks(
        w.len() / block::Q4_0,
        |i| {
            let x = _mm256_sub_epi8(unpack_nibbles(blocks.add(i * block::Q4_0 + 2)), _mm256_set1_epi8(8));
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
            dot_i8(x, y)
        },
        |i| read_f16(w, i * block::Q4_0) * a.d[i],
    )
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q4_1(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(block::Q4_1).enumerate() {
        let x = unpack_nibbles(blk.as_ptr().add(4));
        let y = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
        sum += hsum_i32(dot_u8_i8(x, y)) as f32 * (read_f16(blk, 0) * a.d[i]) + read_f16(blk, 2) * a.s[i];
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q5_0(w: &[u8], a: &QuantizedRow) -> f32 {
    let blocks = w.as_ptr();
    sum_blocks(
        w.len() / block::Q5_0,
        |i| {
            let blk = blocks.add(i * block::Q5_0);
            let qh = u32::from_le_bytes([*blk.add(2), *blk.add(3), *blk.add(4), *blk.add(5)]);
            let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
            let x = _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(blk.add(6)), hi), _mm256_set1_epi8(16));
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
            dot_i8(x, y)
        },
        |i| read_f16(w, i * block::Q5_0) * a.d[i],
    )
}

/// Group pair `c` (values c·64..c·64+64) of a Q4_K/Q5_K block as two vectors of unsigned
/// codes: the low nibbles (group 2c), then the high ones (group 2c+1); for Q5_K each with its
/// fifth bit (bit 2c or 2c+1 of the block's 32 `qh` bytes, one per value position).
#[inline(always)]
unsafe fn k4_codes<const FIVE: bool>(blk: *const u8, c: usize) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0f);
    let q4 = _mm256_loadu_si256(blk.add(k4_layout(FIVE).1 + c * 32) as *const __m256i);
    let (lo, hi) = (_mm256_and_si256(q4, m4), _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4));
    if !FIVE {
        return (lo, hi);
    }
    let qh = _mm256_loadu_si256(blk.add(16) as *const __m256i);
    let one = _mm256_set1_epi8(1);
    // Bit j of each byte, moved to bit 4 (16-bit shifts: the byte mask drops what crosses).
    let fifth = |j: i32| _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), one), 4);
    (_mm256_or_si256(lo, fifth(2 * c as i32)), _mm256_or_si256(hi, fifth(2 * c as i32 + 1)))
}

/// Q4_K, or Q5_K when `FIVE` (codes up to 31: pair sums stay below 2·31·127 in i16).
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_k4<const FIVE: bool>(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
        let scales = &blk[4..16];
        let q8 = a.qs.as_ptr().add(i * QK_K);
        let bsums = &a.bsums[i * 16..i * 16 + 16];
        let mut sumi = _mm256_setzero_si256();
        let mut summ = 0i32;
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
            let (lo, hi) = k4_codes::<FIVE>(blk.as_ptr(), c);
            let y1 = _mm256_loadu_si256(q8.add(c * 64) as *const __m256i);
            let y2 = _mm256_loadu_si256(q8.add(c * 64 + 32) as *const __m256i);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y1), _mm256_set1_epi16(sc1 as i16));
            let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y2), _mm256_set1_epi16(sc2 as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
            summ += m1 as i32 * (bsums[4 * c] as i32 + bsums[4 * c + 1] as i32);
            summ += m2 as i32 * (bsums[4 * c + 2] as i32 + bsums[4 * c + 3] as i32);
        }
        let d = read_f16(blk, 0) * a.d[i];
        let dmin = read_f16(blk, 2) * a.d[i];
        sum += hsum_i32(sumi) as f32 * d - summ as f32 * dmin;
    }
    sum
}

/// One 128-value half of a Q6_K block as its four 32-value quads of unsigned 6-bit values
/// (the -32 centring is left to the caller).
#[inline(always)]
unsafe fn q6_quads(blk: *const u8, half: usize) -> [__m256i; 4] {
    let (m4, m3) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x03));
    let ql0 = _mm256_loadu_si256(blk.add(half * 64) as *const __m256i);
    let ql1 = _mm256_loadu_si256(blk.add(half * 64 + 32) as *const __m256i);
    let qh = _mm256_loadu_si256(blk.add(128 + half * 32) as *const __m256i);
    let high = |shift: i32| _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m3), 4);
    [
        _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), high(4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), high(6)),
    ]
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q6_k(w: &[u8], a: &QuantizedRow) -> f32 {
    let mut sum = 0.0f32;
    for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
        let q8 = a.qs.as_ptr().add(i * QK_K);
        let bsums = &a.bsums[i * 16..i * 16 + 16];
        let sc = &blk[192..208];
        let mut sumi = _mm256_setzero_si256();
        let mut offset = 0i32; // Σ sc·32·bsum: the "-32" centring, applied once per block
        for half in 0..2 {
            let quads = q6_quads(blk.as_ptr(), half);
            for (k, q) in quads.iter().enumerate() {
                let s0 = sc[half * 8 + 2 * k] as i8 as i16;
                let s1 = sc[half * 8 + 2 * k + 1] as i8 as i16;
                let y = _mm256_loadu_si256(q8.add(half * 128 + k * 32) as *const __m256i);
                let scv = _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(*q, y), scv));
                let g = half * 8 + 2 * k;
                offset += 32 * (s0 as i32 * bsums[g] as i32 + s1 as i32 * bsums[g + 1] as i32);
            }
        }
        sum += (hsum_i32(sumi) - offset) as f32 * (read_f16(blk, 208) * a.d[i]);
    }
    sum
}

// ---------------------------------------------------------------------------------------
// Four activation rows at once (batched prefill): each weight block is decoded once and
// dotted with four tokens. Integer sums are exact; the float epilogue runs lane-wise in
// SSE with the scalar kernel's operations in its order (no FMA), so every lane is
// bit-identical to `vec_dot` on that token.

/// `None` where there is no four-row AVX2 kernel for the type.
#[inline]
pub fn vec_dot_x4(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> Option<[f32; 4]> {
    // SAFETY: callers check `available()`; all four rows have the weight row's length.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_x4_q8_0(w, a),
            GgmlType::Q4_0 => dot_x4_q4_0(w, a),
            GgmlType::Q4_1 => dot_x4_q4_1(w, a),
            GgmlType::Q5_0 => dot_x4_q5_0(w, a),
            GgmlType::Q4K => dot_x4_k4::<false>(w, a),
            GgmlType::Q5K => dot_x4_k4::<true>(w, a),
            GgmlType::Q6K => dot_x4_q6_k(w, a),
            _ => return None,
        })
    }
}

/// [Σa, Σb, Σc, Σd] as one vector.
#[inline(always)]
unsafe fn hsum4_vec(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
}

#[inline(always)]
unsafe fn lanes(v: __m128) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), v);
    out
}

#[inline(always)]
unsafe fn load_q8(a: &QuantizedRow, at: usize) -> __m256i {
    _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i)
}

/// The 32-value block types: `unpack` gives a block's 32 weights; `SIGNED` says whether they
/// are signed (sign trick) or unsigned nibbles; `MIN` adds Q4_1's `m·s` term.
#[inline(always)]
unsafe fn dot_x4_q32<const BB: usize, const SIGNED: bool, const MIN: bool>(
    w: &[u8],
    a: &[&QuantizedRow; 4],
    unpack: impl Fn(*const u8) -> __m256i,
) -> [f32; 4] {
    let ones = _mm256_set1_epi16(1);
    let mut sum = _mm_setzero_ps();
    for (i, blk) in w.chunks_exact(BB).enumerate() {
        let x = unpack(blk.as_ptr());
        let ax = if SIGNED { _mm256_sign_epi8(x, x) } else { x };
        let dot = |t: usize| {
            let y = load_q8(a[t], i * QK);
            let y = if SIGNED { _mm256_sign_epi8(y, x) } else { y };
            _mm256_madd_epi16(_mm256_maddubs_epi16(ax, y), ones)
        };
        let s = hsum4_vec(dot(0), dot(1), dot(2), dot(3));
        let d = _mm_setr_ps(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
        let mut t = _mm_mul_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(_mm_set1_ps(read_f16(blk, 0)), d));
        if MIN {
            let s = _mm_setr_ps(a[0].s[i], a[1].s[i], a[2].s[i], a[3].s[i]);
            t = _mm_add_ps(t, _mm_mul_ps(_mm_set1_ps(read_f16(blk, 2)), s));
        }
        sum = _mm_add_ps(sum, t);
    }
    lanes(sum)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q8_0(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    dot_x4_q32::<{ block::Q8_0 }, true, false>(w, a, |p| _mm256_loadu_si256(p.add(2) as *const __m256i))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q4_0(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    dot_x4_q32::<{ block::Q4_0 }, true, false>(w, a, |p| _mm256_sub_epi8(unpack_nibbles(p.add(2)), _mm256_set1_epi8(8)))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q4_1(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    dot_x4_q32::<{ block::Q4_1 }, false, true>(w, a, |p| unpack_nibbles(p.add(4)))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q5_0(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    dot_x4_q32::<{ block::Q5_0 }, true, false>(w, a, |p| {
        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
        let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
        _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(p.add(6)), hi), _mm256_set1_epi8(16))
    })
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_k4<const FIVE: bool>(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = _mm_setzero_ps();
    for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
        let scales = &blk[4..16];
        let mut sumi = [_mm256_setzero_si256(); 4];
        let mut summ = [0i32; 4];
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
            let (lo, hi) = k4_codes::<FIVE>(blk.as_ptr(), c);
            let (s1, s2) = (_mm256_set1_epi16(sc1 as i16), _mm256_set1_epi16(sc2 as i16));
            for t in 0..4 {
                let at = i * QK_K + c * 64;
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load_q8(a[t], at)), s1);
                let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load_q8(a[t], at + 32)), s2);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p1, p2));
                let bsums = &a[t].bsums[i * 16 + 4 * c..i * 16 + 4 * c + 4];
                summ[t] += m1 as i32 * (bsums[0] as i32 + bsums[1] as i32);
                summ[t] += m2 as i32 * (bsums[2] as i32 + bsums[3] as i32);
            }
        }
        let ad = _mm_setr_ps(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
        let d = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 0)), ad);
        let dmin = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 2)), ad);
        let isum = _mm_cvtepi32_ps(hsum4_vec(sumi[0], sumi[1], sumi[2], sumi[3]));
        let msum = _mm_cvtepi32_ps(_mm_setr_epi32(summ[0], summ[1], summ[2], summ[3]));
        sum = _mm_add_ps(sum, _mm_sub_ps(_mm_mul_ps(isum, d), _mm_mul_ps(msum, dmin)));
    }
    lanes(sum)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q6_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = _mm_setzero_ps();
    for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
        let sc = &blk[192..208];
        let mut sumi = [_mm256_setzero_si256(); 4];
        let mut offset = [0i32; 4];
        for half in 0..2 {
            let quads = q6_quads(blk.as_ptr(), half);
            for (k, q) in quads.iter().enumerate() {
                let s0 = sc[half * 8 + 2 * k] as i8 as i16;
                let s1 = sc[half * 8 + 2 * k + 1] as i8 as i16;
                let scv = _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1);
                let g = half * 8 + 2 * k;
                for t in 0..4 {
                    let y = load_q8(a[t], i * QK_K + half * 128 + k * 32);
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(*q, y), scv));
                    let bsums = &a[t].bsums[i * 16..i * 16 + 16];
                    offset[t] += 32 * (s0 as i32 * bsums[g] as i32 + s1 as i32 * bsums[g + 1] as i32);
                }
            }
        }
        let isum = _mm_sub_epi32(
            hsum4_vec(sumi[0], sumi[1], sumi[2], sumi[3]),
            _mm_setr_epi32(offset[0], offset[1], offset[2], offset[3]),
        );
        let d = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 208)), _mm_setr_ps(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]));
        sum = _mm_add_ps(sum, _mm_mul_ps(_mm_cvtepi32_ps(isum), d));
    }
    lanes(sum)
}
