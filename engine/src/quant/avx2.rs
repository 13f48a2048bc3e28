//! x86-64 AVX2+FMA twins of the scalar dot products (selected at run time), with the 8-bit
//! products on VNNI's `vpdpbusd` where the CPU has it (AVX-VNNI, or AVX-512 VNNI with VL).
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

/// How 32 bytes of unsigned × signed products are summed into eight i32 lanes: AVX2's
/// `vpmaddubsw` + `vpmaddwd` (pair sums in i16, which every caller keeps in range), or one
/// VNNI `vpdpbusd` (exact in i32). The integer sums, hence the results, are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Avx2,
    AvxVnni,
    Avx512Vnni,
}

const AVX2: u8 = 0;
const AVX_VNNI: u8 = 1;
const AVX512_VNNI: u8 = 2;

impl Flavor {
    /// The best this CPU has (call only where `available()`).
    pub fn detect() -> Flavor {
        static BEST: OnceLock<Flavor> = OnceLock::new();
        *BEST.get_or_init(|| {
            // EDGESLM_X86_KERNELS=avx2 keeps the AVX2 products (A/B measurements).
            if std::env::var("EDGESLM_X86_KERNELS").is_ok_and(|v| v == "avx2") {
                Flavor::Avx2
            } else if is_x86_feature_detected!("avxvnni") {
                Flavor::AvxVnni
            } else if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                Flavor::Avx512Vnni
            } else {
                Flavor::Avx2
            }
        })
    }

    /// Every flavor this CPU can run (the kernel tests compare each with the scalar kernels).
    pub fn all_available() -> Vec<Flavor> {
        let mut v = vec![Flavor::Avx2];
        if is_x86_feature_detected!("avxvnni") {
            v.push(Flavor::AvxVnni);
        }
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            v.push(Flavor::Avx512Vnni);
        }
        v
    }
}

/// acc + Σ x·y over each four bytes, `x` unsigned, `y` signed. AVX2's pair sums saturate
/// at i16: callers keep x·y pairs below 2¹⁵ (codes ≤ 128 against activations within ±127).
#[inline(always)]
unsafe fn dpbusd<const V: u8>(acc: __m256i, x: __m256i, y: __m256i) -> __m256i {
    match V {
        AVX_VNNI => _mm256_dpbusd_avx_epi32(acc, x, y),
        AVX512_VNNI => _mm256_dpbusd_epi32(acc, x, y),
        _ => _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))),
    }
}

/// Defines `$name(flavor, args…)`: `$body::<V>` compiled once per flavor with its target
/// features (the generic kernels are `#[inline(always)]`, so each flavor's intrinsics are
/// inlined into a function that may use them).
macro_rules! per_flavor {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $body:ident $(<$($g:ty),*>)?) => {
        $(#[$doc])*
        unsafe fn $name(flavor: Flavor, $($arg: $ty),*) -> $ret {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) -> $ret {
                $body::<$($($g,)*)? AVX2>($($arg),*)
            }
            #[target_feature(enable = "avx2,fma,avxvnni")]
            unsafe fn avx_vnni($($arg: $ty),*) -> $ret {
                $body::<$($($g,)*)? AVX_VNNI>($($arg),*)
            }
            #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
            unsafe fn avx512_vnni($($arg: $ty),*) -> $ret {
                $body::<$($($g,)*)? AVX512_VNNI>($($arg),*)
            }
            match flavor {
                Flavor::Avx2 => avx2($($arg),*),
                Flavor::AvxVnni => avx_vnni($($arg),*),
                Flavor::Avx512Vnni => avx512_vnni($($arg),*),
            }
        }
    };
}

/// `None` where there is no AVX2 kernel for the type (the scalar one runs instead).
#[inline]
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    vec_dot_with(Flavor::detect(), ty, w, a)
}

/// `vec_dot` on the given flavor (one this CPU has).
pub fn vec_dot_with(flavor: Flavor, ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    // SAFETY: callers check `available()` and pick an available flavor; every kernel reads
    // within the row's blocks.
    unsafe {
        Some(match ty {
            GgmlType::Q8_0 => dot_q8_0(flavor, w, a),
            GgmlType::Q4_0 => dot_q4_0(flavor, w, a),
            GgmlType::Q4_1 => dot_q4_1(flavor, w, a),
            GgmlType::Q5_0 => dot_q5_0(flavor, w, a),
            GgmlType::Q4K => dot_k4::<false>(w, a),
            GgmlType::Q5K => dot_k4::<true>(w, a),
            GgmlType::Q6K => dot_q6_k(w, a),
            _ => return None,
        })
    }
}

// One function per type and flavor: a kernel per call keeps each call's entry cheap (one
// function holding every type's kernel measured 15-25% slower for one token).
per_flavor! { fn dot_q8_0(w: &[u8], a: &QuantizedRow) -> f32 => dot_q32<Q8_0> }
per_flavor! { fn dot_q4_0(w: &[u8], a: &QuantizedRow) -> f32 => dot_q32<Q4_0> }
per_flavor! { fn dot_q4_1(w: &[u8], a: &QuantizedRow) -> f32 => dot_q32<Q4_1> }
per_flavor! { fn dot_q5_0(w: &[u8], a: &QuantizedRow) -> f32 => dot_q32<Q5_0> }

/// The lane sums of four vectors at once: [Σa, Σb, Σc, Σd] (exact integer sums).
#[inline(always)]
unsafe fn hsum4_i32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> [i32; 4] {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    let mut out = [0i32; 4];
    _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, s);
    out
}

/// Sum of 8 i32 lanes (exact, so the order does not matter).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
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

/// A 32-value block type, as its kernels read it: `unpack` gives the block's 32 weights,
/// Q8_0's as signed bytes (`SIGNED`: the sign trick makes |w| the unsigned side), the others
/// as unsigned codes whose offset `OFF` (Q4_0's 8, Q5_0's 16) is taken off afterwards through
/// the token's block sum Σq: Σ(c−OFF)·q = Σc·q − OFF·Σq, the same integer. `MIN`: Q4_1's
/// `m·s` term. (Traits, not closures: closures would not inline into each flavor's kernels.)
pub(super) trait Q32 {
    const BYTES: usize;
    const SIGNED: bool = false;
    const OFF: i32 = 0;
    const MIN: bool = false;
    unsafe fn unpack(blk: *const u8) -> __m256i;
}

pub(super) struct Q8_0;
pub(super) struct Q4_0;
pub(super) struct Q4_1;
pub(super) struct Q5_0;

impl Q32 for Q8_0 {
    const BYTES: usize = block::Q8_0;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(blk: *const u8) -> __m256i {
        _mm256_loadu_si256(blk.add(2) as *const __m256i)
    }
}

impl Q32 for Q4_0 {
    const BYTES: usize = block::Q4_0;
    const OFF: i32 = 8;
    #[inline(always)]
    unsafe fn unpack(blk: *const u8) -> __m256i {
        unpack_nibbles(blk.add(2))
    }
}

impl Q32 for Q4_1 {
    const BYTES: usize = block::Q4_1;
    const MIN: bool = true;
    #[inline(always)]
    unsafe fn unpack(blk: *const u8) -> __m256i {
        unpack_nibbles(blk.add(4))
    }
}

impl Q32 for Q5_0 {
    const BYTES: usize = block::Q5_0;
    const OFF: i32 = 16;
    #[inline(always)]
    unsafe fn unpack(blk: *const u8) -> __m256i {
        let qh = u32::from_le_bytes([*blk.add(2), *blk.add(3), *blk.add(4), *blk.add(5)]);
        _mm256_or_si256(unpack_nibbles(blk.add(6)), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)))
    }
}

/// Σ w·q of one block and one token as eight i32 lanes, before the offset: `w` the unpacked
/// weights, `uw` their unsigned side (|w| for signed types).
#[inline(always)]
unsafe fn block_dot<W: Q32, const V: u8>(w: __m256i, uw: __m256i, a: &QuantizedRow, i: usize) -> __m256i {
    let q = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
    dpbusd::<V>(_mm256_setzero_si256(), uw, if W::SIGNED { _mm256_sign_epi8(q, w) } else { q })
}

#[inline(always)]
unsafe fn unsigned_side<W: Q32>(w: __m256i) -> __m256i {
    if W::SIGNED {
        _mm256_sign_epi8(w, w)
    } else {
        w
    }
}

/// How far ahead of the block being read the weights are prefetched, in bytes. Rows follow
/// each other in memory, so this runs into the next rows: the products stream the weights
/// once, and on the Intel VM here software prefetch made one-token products 2.3× faster
/// end to end (its hardware prefetchers keep up with no stream).
const PREFETCH: usize = 2048;

/// Prefetch the `bytes` bytes `PREFETCH` ahead of `p` (a hint: never faults, even past the end).
#[inline(always)]
unsafe fn prefetch_ahead(p: *const u8, bytes: usize) {
    let mut off = 0;
    while off < bytes {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + off) as *const i8);
        off += 64;
    }
}

/// Block `i` of the row at `p` against one token (before the offset).
#[inline(always)]
unsafe fn block_sum<W: Q32, const V: u8>(p: *const u8, a: &QuantizedRow, i: usize) -> __m256i {
    let x = W::unpack(p.add(i * W::BYTES));
    block_dot::<W, V>(x, unsigned_side::<W>(x), a, i)
}

/// One token: the scalar kernel's `Σ isum·(d·d_q) [+ m·s]` over blocks, in block order; the
/// offset types' integer sums reduced four blocks at a time (Q4_1's one at a time: measured
/// faster).
#[inline(always)]
unsafe fn dot_q32<W: Q32, const V: u8>(w: &[u8], a: &QuantizedRow) -> f32 {
    let (nb, p) = (w.len() / W::BYTES, w.as_ptr());
    let finish = |b: usize, s: i32| {
        let s = if W::OFF != 0 { s - W::OFF * *a.isum.get_unchecked(b) } else { s };
        let t = s as f32 * (read_f16(w, b * W::BYTES) * *a.d.get_unchecked(b));
        if W::MIN {
            t + read_f16(w, b * W::BYTES + 2) * *a.s.get_unchecked(b)
        } else {
            t
        }
    };
    let mut sum = 0.0f32;
    if W::MIN {
        for (i, blk) in w.chunks_exact(W::BYTES).enumerate() {
            prefetch_ahead(blk.as_ptr(), W::BYTES);
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(i * QK) as *const __m256i);
            let s = hsum_i32(dpbusd::<V>(_mm256_setzero_si256(), W::unpack(blk.as_ptr()), y));
            sum += s as f32 * (read_f16(blk, 0) * a.d[i]) + read_f16(blk, 2) * a.s[i];
        }
        return sum;
    }
    let mut i = 0;
    while i + 4 <= nb {
        prefetch_ahead(p.add(i * W::BYTES), 4 * W::BYTES);
        let s = hsum4_i32(block_sum::<W, V>(p, a, i), block_sum::<W, V>(p, a, i + 1), block_sum::<W, V>(p, a, i + 2), block_sum::<W, V>(p, a, i + 3));
        for (j, &s) in s.iter().enumerate() {
            sum += finish(i + j, s);
        }
        i += 4;
    }
    while i < nb {
        sum += finish(i, hsum_i32(block_sum::<W, V>(p, a, i)));
        i += 1;
    }
    sum
}

/// Group pair `c` (values c·64..c·64+64) of a Q4_K/Q5_K block as two vectors of unsigned
/// codes: the low nibbles (group 2c), then the high ones (group 2c+1); for Q5_K each with its
/// fifth bit (bit 2c or 2c+1 of the block's 32 `qh` bytes, one per value position).
#[inline(always)]
pub(super) unsafe fn k4_codes<const FIVE: bool>(blk: *const u8, c: usize) -> (__m256i, __m256i) {
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
        prefetch_ahead(blk.as_ptr(), blk.len());
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
pub(super) unsafe fn q6_quads(blk: *const u8, half: usize) -> [__m256i; 4] {
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
        prefetch_ahead(blk.as_ptr(), blk.len());
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
    vec_dot_x4_with(Flavor::detect(), ty, w, a)
}

/// `vec_dot_x4` on the given flavor (one this CPU has).
pub fn vec_dot_x4_with(flavor: Flavor, ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> Option<[f32; 4]> {
    // SAFETY: callers check `available()` and the flavor; all rows have the weight row's length.
    unsafe { tiles4(flavor, ty, w, a) }
}

/// Eight tokens against one weight row, each 32-value block unpacked once for all eight;
/// `None` for the types whose eight-token tile would be two four-token ones.
#[inline]
pub fn vec_dot_x8(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> Option<[f32; 8]> {
    vec_dot_x8_with(Flavor::detect(), ty, w, a)
}

/// `vec_dot_x8` on the given flavor (one this CPU has).
pub fn vec_dot_x8_with(flavor: Flavor, ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> Option<[f32; 8]> {
    // SAFETY: as for `vec_dot_x4_with`.
    unsafe { tiles8(flavor, ty, w, a) }
}

per_flavor! {
    fn tiles4(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> Option<[f32; 4]> => tiles4_body
}

per_flavor! {
    fn tiles8(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> Option<[f32; 8]> => tiles8_body
}

#[inline(always)]
unsafe fn tiles4_body<const V: u8>(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 4]) -> Option<[f32; 4]> {
    Some(match ty {
        GgmlType::Q4K => dot_x4_k4::<false>(w, a),
        GgmlType::Q5K => dot_x4_k4::<true>(w, a),
        GgmlType::Q6K => dot_x4_q6_k(w, a),
        _ => return tiles_q32::<4, V>(ty, w, a),
    })
}

#[inline(always)]
unsafe fn tiles8_body<const V: u8>(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; 8]) -> Option<[f32; 8]> {
    tiles_q32::<8, V>(ty, w, a)
}

/// The 32-value block types, N tokens at a time.
#[inline(always)]
unsafe fn tiles_q32<const N: usize, const V: u8>(ty: GgmlType, w: &[u8], a: &[&QuantizedRow; N]) -> Option<[f32; N]> {
    Some(match ty {
        GgmlType::Q8_0 => dot_xn_q32::<Q8_0, N, V>(w, a),
        GgmlType::Q4_0 => dot_xn_q32::<Q4_0, N, V>(w, a),
        GgmlType::Q4_1 => dot_xn_q32::<Q4_1, N, V>(w, a),
        GgmlType::Q5_0 => dot_xn_q32::<Q5_0, N, V>(w, a),
        _ => return None,
    })
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

/// The 32-value block types, N tokens (4 or 8) per weight block: each block is unpacked once
/// for all N. Each group of four tokens is finished lane-wise in SSE with the scalar kernel's
/// operations in its order (no FMA).
#[inline(always)]
unsafe fn dot_xn_q32<W: Q32, const N: usize, const V: u8>(w: &[u8], a: &[&QuantizedRow; N]) -> [f32; N] {
    let mut sum = [_mm_setzero_ps(); N];
    for (i, blk) in w.chunks_exact(W::BYTES).enumerate() {
        prefetch_ahead(blk.as_ptr(), W::BYTES);
        let x = W::unpack(blk.as_ptr());
        let ux = unsigned_side::<W>(x);
        let dw = _mm_set1_ps(read_f16(blk, 0));
        for g in 0..N / 4 {
            let r: [&QuantizedRow; 4] = [a[4 * g], a[4 * g + 1], a[4 * g + 2], a[4 * g + 3]];
            let mut s = hsum4_vec(block_dot::<W, V>(x, ux, r[0], i), block_dot::<W, V>(x, ux, r[1], i), block_dot::<W, V>(x, ux, r[2], i), block_dot::<W, V>(x, ux, r[3], i));
            if W::OFF != 0 {
                let isum = _mm_setr_epi32(*r[0].isum.get_unchecked(i), *r[1].isum.get_unchecked(i), *r[2].isum.get_unchecked(i), *r[3].isum.get_unchecked(i));
                s = _mm_sub_epi32(s, _mm_mullo_epi32(isum, _mm_set1_epi32(W::OFF)));
            }
            let d = _mm_setr_ps(*r[0].d.get_unchecked(i), *r[1].d.get_unchecked(i), *r[2].d.get_unchecked(i), *r[3].d.get_unchecked(i));
            let mut t = _mm_mul_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(dw, d));
            if W::MIN {
                let m = _mm_setr_ps(*r[0].s.get_unchecked(i), *r[1].s.get_unchecked(i), *r[2].s.get_unchecked(i), *r[3].s.get_unchecked(i));
                t = _mm_add_ps(t, _mm_mul_ps(_mm_set1_ps(read_f16(blk, 2)), m));
            }
            sum[g] = _mm_add_ps(sum[g], t);
        }
    }
    let mut out = [0.0f32; N];
    for g in 0..N / 4 {
        out[4 * g..4 * g + 4].copy_from_slice(&lanes(sum[g]));
    }
    out
}

/// The 16 per-16-value activation sums of block `i` (Q8_K's `bsums`).
#[inline(always)]
unsafe fn load_bsums(a: &QuantizedRow, i: usize) -> __m256i {
    debug_assert!(a.bsums.len() >= (i + 1) * 16);
    _mm256_loadu_si256(a.bsums.as_ptr().add(i * 16) as *const __m256i)
}

/// A Q4_K/Q5_K block's eight 6-bit scales and eight mins, one per byte, from their 12 packed
/// bytes (`scale_min_k4` for all eight at once, with word operations).
#[inline(always)]
pub(super) fn k4_scales_mins(q: &[u8]) -> (u64, u64) {
    let word = |k: usize| u32::from_le_bytes([q[4 * k], q[4 * k + 1], q[4 * k + 2], q[4 * k + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (low6, low4, top2) = (0x3f3f3f3f, 0x0f0f0f0f, 0x03030303);
    let scales = (w0 & low6) as u64 | (((w2 & low4) | (((w0 >> 6) & top2) << 4)) as u64) << 32;
    let mins = (w1 & low6) as u64 | ((((w2 >> 4) & low4) | (((w1 >> 6) & top2) << 4)) as u64) << 32;
    (scales, mins)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_k4<const FIVE: bool>(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = _mm_setzero_ps();
    for (i, blk) in w.chunks_exact(k4_layout(FIVE).0).enumerate() {
        prefetch_ahead(blk.as_ptr(), blk.len());
        let (scales, mins) = k4_scales_mins(&blk[4..16]);
        let mut sumi = [_mm256_setzero_si256(); 4];
        for c in 0..4 {
            let (lo, hi) = k4_codes::<FIVE>(blk.as_ptr(), c);
            let s1 = _mm256_set1_epi16((scales >> (16 * c)) as u8 as i16);
            let s2 = _mm256_set1_epi16((scales >> (16 * c + 8)) as u8 as i16);
            for t in 0..4 {
                let at = i * QK_K + c * 64;
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load_q8(a[t], at)), s1);
                let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load_q8(a[t], at + 32)), s2);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p1, p2));
            }
        }
        // Σ m·(two 16-value activation sums) per 32-value group: the sums paired by one
        // phaddw, then one pmaddwd with the eight mins (exact: |sum pair| < 2¹², m < 64).
        let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
        let mut m = [_mm_setzero_si128(); 4];
        for t in 0..4 {
            let b = load_bsums(a[t], i);
            m[t] = _mm_madd_epi16(mins, _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
        }
        let summ = _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
        let ad = _mm_setr_ps(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]);
        let d = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 0)), ad);
        let dmin = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 2)), ad);
        let isum = _mm_cvtepi32_ps(hsum4_vec(sumi[0], sumi[1], sumi[2], sumi[3]));
        sum = _mm_add_ps(sum, _mm_sub_ps(_mm_mul_ps(isum, d), _mm_mul_ps(_mm_cvtepi32_ps(summ), dmin)));
    }
    lanes(sum)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_x4_q6_k(w: &[u8], a: &[&QuantizedRow; 4]) -> [f32; 4] {
    let mut sum = _mm_setzero_ps();
    for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
        prefetch_ahead(blk.as_ptr(), blk.len());
        let sc = &blk[192..208];
        let mut sumi = [_mm256_setzero_si256(); 4];
        for half in 0..2 {
            let quads = q6_quads(blk.as_ptr(), half);
            for (k, q) in quads.iter().enumerate() {
                let s0 = sc[half * 8 + 2 * k] as i8 as i16;
                let s1 = sc[half * 8 + 2 * k + 1] as i8 as i16;
                let scv = _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1);
                for t in 0..4 {
                    let y = load_q8(a[t], i * QK_K + half * 128 + k * 32);
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(*q, y), scv));
                }
            }
        }
        // The "-32" centring: 32·Σ sc·bsum over the 16 groups, one pmaddwd per token.
        let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
        let mut offset = [_mm256_setzero_si256(); 4];
        for t in 0..4 {
            offset[t] = _mm256_madd_epi16(scales, load_bsums(a[t], i));
        }
        let offsets = _mm_slli_epi32(hsum4_vec(offset[0], offset[1], offset[2], offset[3]), 5);
        let isum = _mm_sub_epi32(hsum4_vec(sumi[0], sumi[1], sumi[2], sumi[3]), offsets);
        let d = _mm_mul_ps(_mm_set1_ps(read_f16(blk, 208)), _mm_setr_ps(a[0].d[i], a[1].d[i], a[2].d[i], a[3].d[i]));
        sum = _mm_add_ps(sum, _mm_mul_ps(_mm_cvtepi32_ps(isum), d));
    }
    lanes(sum)
}
