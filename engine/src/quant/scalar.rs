//! Reference kernels: block decoding and dot products written for clarity.
//! The SIMD twins compute the same per-block integer sums and finish each block with the
//! same float expression, in the same order, so every path gives bit-identical results:
//! native and wasm hosts agree to the last bit.

use super::f16::{bf16_to_f32, f16_to_f32, read_f16};
use super::{block, GgmlType, QuantizedRow, QK, QK_K};

/// Q4_K / Q5_K pack eight 6-bit (scale, min) pairs into 12 bytes.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

pub fn dequantize_row(ty: GgmlType, b: &[u8], y: &mut [f32]) {
    let n = y.len();
    match ty {
        GgmlType::F32 => {
            for (i, v) in y.iter_mut().enumerate() {
                *v = f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
            }
        }
        GgmlType::F16 => {
            for (i, v) in y.iter_mut().enumerate() {
                *v = read_f16(b, i * 2);
            }
        }
        GgmlType::BF16 => {
            for (i, v) in y.iter_mut().enumerate() {
                *v = bf16_to_f32(u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]));
            }
        }
        GgmlType::Q4_0 => {
            for (blk, y) in b.chunks_exact(block::Q4_0).zip(y.chunks_exact_mut(QK)) {
                let d = read_f16(blk, 0);
                for j in 0..16 {
                    y[j] = ((blk[2 + j] & 0xf) as i32 - 8) as f32 * d;
                    y[j + 16] = ((blk[2 + j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (blk, y) in b.chunks_exact(block::Q4_1).zip(y.chunks_exact_mut(QK)) {
                let (d, m) = (read_f16(blk, 0), read_f16(blk, 2));
                for j in 0..16 {
                    y[j] = (blk[4 + j] & 0xf) as f32 * d + m;
                    y[j + 16] = (blk[4 + j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (blk, y) in b.chunks_exact(block::Q5_0).zip(y.chunks_exact_mut(QK)) {
                let d = read_f16(blk, 0);
                let qh = u32::from_le_bytes(blk[2..6].try_into().unwrap());
                for j in 0..16 {
                    let (lo, hi) = q5_pair(blk[6 + j], qh, j);
                    y[j] = (lo - 16) as f32 * d;
                    y[j + 16] = (hi - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q5_1 => {
            for (blk, y) in b.chunks_exact(block::Q5_1).zip(y.chunks_exact_mut(QK)) {
                let (d, m) = (read_f16(blk, 0), read_f16(blk, 2));
                let qh = u32::from_le_bytes(blk[4..8].try_into().unwrap());
                for j in 0..16 {
                    let (lo, hi) = q5_pair(blk[8 + j], qh, j);
                    y[j] = lo as f32 * d + m;
                    y[j + 16] = hi as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (blk, y) in b.chunks_exact(block::Q8_0).zip(y.chunks_exact_mut(QK)) {
                let d = read_f16(blk, 0);
                for j in 0..QK {
                    y[j] = blk[2 + j] as i8 as f32 * d;
                }
            }
        }
        GgmlType::Q4K => {
            for (blk, y) in b.chunks_exact(block::Q4_K).zip(y.chunks_exact_mut(QK_K)) {
                let (d, dmin) = (read_f16(blk, 0), read_f16(blk, 2));
                let (scales, qs) = (&blk[4..16], &blk[16..144]);
                for c in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * c, scales);
                    let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    for l in 0..32 {
                        let q = qs[c * 32 + l];
                        y[c * 64 + l] = d1 * (q & 0xf) as f32 - m1;
                        y[c * 64 + 32 + l] = d2 * (q >> 4) as f32 - m2;
                    }
                }
            }
        }
        GgmlType::Q5K => {
            for (blk, y) in b.chunks_exact(block::Q5_K).zip(y.chunks_exact_mut(QK_K)) {
                let (d, dmin) = (read_f16(blk, 0), read_f16(blk, 2));
                let (scales, qh, qs) = (&blk[4..16], &blk[16..48], &blk[48..176]);
                for c in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * c, scales);
                    let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    for l in 0..32 {
                        let q = qs[c * 32 + l];
                        let h1 = ((qh[l] >> (2 * c)) & 1) << 4;
                        let h2 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                        y[c * 64 + l] = d1 * ((q & 0xf) | h1) as f32 - m1;
                        y[c * 64 + 32 + l] = d2 * ((q >> 4) | h2) as f32 - m2;
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for (blk, y) in b.chunks_exact(block::Q6_K).zip(y.chunks_exact_mut(QK_K)) {
                let d = read_f16(blk, 208);
                for half in 0..2 {
                    let ql = &blk[half * 64..half * 64 + 64];
                    let qh = &blk[128 + half * 32..128 + half * 32 + 32];
                    let sc = &blk[192 + half * 8..192 + half * 8 + 8];
                    let y = &mut y[half * 128..half * 128 + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let (q1, q2, q3, q4) = q6_quad(ql, qh, l);
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
            }
        }
    }
    debug_assert_eq!(n % ty.block_size(), 0);
}

/// The two 5-bit values (positions j and j+16) of a Q5_0/Q5_1 block.
#[inline]
pub(crate) fn q5_pair(q: u8, qh: u32, j: usize) -> (i32, i32) {
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (((q & 0xf) as u32 | h0) as i32, ((q >> 4) as u32 | h1) as i32)
}

/// The four 6-bit values (l, l+32, l+64, l+96 of a 128-half) of a Q6_K block, centred.
#[inline]
fn q6_quad(ql: &[u8], qh: &[u8], l: usize) -> (i32, i32, i32, i32) {
    let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
    let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
    (q1, q2, q3, q4)
}

pub fn vec_dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> f32 {
    debug_assert_eq!(a.kind, ty.dot_type());
    match ty {
        GgmlType::F32 => (0..a.n).map(|i| f32::from_le_bytes(w[i * 4..i * 4 + 4].try_into().unwrap()) * a.f[i]).sum(),
        GgmlType::F16 => (0..a.n).map(|i| read_f16(w, i * 2) * f16_to_f32(a.half[i])).sum(),
        GgmlType::BF16 => (0..a.n)
            .map(|i| bf16_to_f32(u16::from_le_bytes([w[i * 2], w[i * 2 + 1]])) * bf16_to_f32(a.half[i]))
            .sum(),
        GgmlType::Q4_0 => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q4_0).enumerate() {
                let q8 = &a.qs[i * QK..];
                let mut sumi = 0i32;
                for j in 0..16 {
                    sumi += ((blk[2 + j] & 0xf) as i32 - 8) * q8[j] as i32;
                    sumi += ((blk[2 + j] >> 4) as i32 - 8) * q8[j + 16] as i32;
                }
                sum += sumi as f32 * (read_f16(blk, 0) * a.d[i]);
            }
            sum
        }
        GgmlType::Q4_1 => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q4_1).enumerate() {
                let q8 = &a.qs[i * QK..];
                let mut sumi = 0i32;
                for j in 0..16 {
                    sumi += (blk[4 + j] & 0xf) as i32 * q8[j] as i32;
                    sumi += (blk[4 + j] >> 4) as i32 * q8[j + 16] as i32;
                }
                sum += sumi as f32 * (read_f16(blk, 0) * a.d[i]) + read_f16(blk, 2) * a.s[i];
            }
            sum
        }
        GgmlType::Q5_0 => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q5_0).enumerate() {
                let q8 = &a.qs[i * QK..];
                let qh = u32::from_le_bytes(blk[2..6].try_into().unwrap());
                let mut sumi = 0i32;
                for j in 0..16 {
                    let (lo, hi) = q5_pair(blk[6 + j], qh, j);
                    sumi += (lo - 16) * q8[j] as i32 + (hi - 16) * q8[j + 16] as i32;
                }
                sum += sumi as f32 * (read_f16(blk, 0) * a.d[i]);
            }
            sum
        }
        GgmlType::Q5_1 => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q5_1).enumerate() {
                let q8 = &a.qs[i * QK..];
                let qh = u32::from_le_bytes(blk[4..8].try_into().unwrap());
                let mut sumi = 0i32;
                for j in 0..16 {
                    let (lo, hi) = q5_pair(blk[8 + j], qh, j);
                    sumi += lo * q8[j] as i32 + hi * q8[j + 16] as i32;
                }
                sum += sumi as f32 * (read_f16(blk, 0) * a.d[i]) + read_f16(blk, 2) * a.s[i];
            }
            sum
        }
        GgmlType::Q8_0 => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q8_0).enumerate() {
                let q8 = &a.qs[i * QK..];
                let sumi: i32 = (0..QK).map(|j| blk[2 + j] as i8 as i32 * q8[j] as i32).sum();
                sum += sumi as f32 * (read_f16(blk, 0) * a.d[i]);
            }
            sum
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let five = ty == GgmlType::Q5K;
            let bytes = ty.block_bytes();
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[i * QK_K..];
                let bsums = &a.bsums[i * 16..];
                let scales = &blk[4..16];
                let (qh, qs) = if five { (&blk[16..48], &blk[48..176]) } else { (&blk[0..0], &blk[16..144]) };
                let (mut sumi, mut summ) = (0i32, 0i32);
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, scales);
                    let (c, shift) = (j / 2, 4 * (j % 2));
                    let mut s = 0i32;
                    for l in 0..32 {
                        let mut q = ((qs[c * 32 + l] >> shift) & 0xf) as i32;
                        if five {
                            q |= (((qh[l] >> j) & 1) << 4) as i32;
                        }
                        s += q * q8[j * 32 + l] as i32;
                    }
                    sumi += sc as i32 * s;
                    summ += m as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32);
                }
                let d = read_f16(blk, 0) * a.d[i];
                let dmin = read_f16(blk, 2) * a.d[i];
                sum += sumi as f32 * d - summ as f32 * dmin;
            }
            sum
        }
        GgmlType::Q6K => {
            let mut sum = 0.0;
            for (i, blk) in w.chunks_exact(block::Q6_K).enumerate() {
                let q8 = &a.qs[i * QK_K..];
                let mut sumi = 0i32;
                for half in 0..2 {
                    let ql = &blk[half * 64..];
                    let qh = &blk[128 + half * 32..];
                    let sc = &blk[192 + half * 8..];
                    let q8 = &q8[half * 128..];
                    for l in 0..32 {
                        let is = l / 16;
                        let (q1, q2, q3, q4) = q6_quad(ql, qh, l);
                        sumi += (sc[is] as i8) as i32 * q1 * q8[l] as i32;
                        sumi += (sc[is + 2] as i8) as i32 * q2 * q8[l + 32] as i32;
                        sumi += (sc[is + 4] as i8) as i32 * q3 * q8[l + 64] as i32;
                        sumi += (sc[is + 6] as i8) as i32 * q4 * q8[l + 96] as i32;
                    }
                }
                sum += sumi as f32 * (read_f16(blk, 208) * a.d[i]);
            }
            sum
        }
    }
}
