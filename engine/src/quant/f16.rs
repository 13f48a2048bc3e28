//! IEEE half and bfloat16 conversions (bit-exact, round-to-nearest-even on the way down).

#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // subnormal: renormalise
            let mut e: i32 = 0;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (((127 - 15 + 1 + e) as u32) << 23) | ((m & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[inline]
pub fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent, which is the correct rounding
    }
    sign | r as u16
}

#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[inline]
pub fn f32_to_bf16(f: f32) -> u16 {
    let x = f.to_bits();
    if f.is_nan() {
        return ((x >> 16) | 0x40) as u16;
    }
    ((x + (0x7fff + ((x >> 16) & 1))) >> 16) as u16
}

/// Round an f32 through f16 and back: the precision ggml keeps for block scales, the KV
/// cache and attention weights.
#[inline]
pub fn round_f16(f: f32) -> f32 {
    let x = f.to_bits();
    let exp = (x >> 23) & 0xff;
    // Normal f16 range: round the mantissa to 10 bits in place (ties to even); a carry
    // into the exponent is the correct rounding, and past f16's largest exponent it is inf.
    if (113..=142).contains(&exp) {
        let r = (x + 0xfff + ((x >> 13) & 1)) & !0x1fff;
        if (r >> 23) & 0xff <= 142 {
            return f32::from_bits(r);
        }
    }
    f16_to_f32(f32_to_f16(f))
}

/// Every f16 value as f32 (256 KiB): block scales are decoded in the kernels' inner loops.
pub fn f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(f16_to_f32).collect())
}

/// The little-endian f16 at `b[at..at + 2]`, as f32 (exact, through the table).
#[inline]
pub fn read_f16(b: &[u8], at: usize) -> f32 {
    f16_table()[u16::from_le_bytes([b[at], b[at + 1]]) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn f16_roundtrip_all_finite() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f32_to_f16(f) & 0x7c00 == 0x7c00);
                continue;
            }
            assert_eq!(f32_to_f16(f), h, "h={h:#x} f={f}");
        }
    }
    #[test]
    fn round_f16_fast_path_matches_the_conversions() {
        let mut x = 0x1234_5678u64;
        let check = |f: f32| {
            let slow = f16_to_f32(f32_to_f16(f));
            let fast = round_f16(f);
            assert!(fast.to_bits() == slow.to_bits() || (fast.is_nan() && slow.is_nan()), "{f:e}: {fast:e} vs {slow:e}");
        };
        for _ in 0..2_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(f32::from_bits(x as u32));
        }
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            for d in [-2i32, -1, 0, 1, 2] {
                check(f32::from_bits((f.to_bits() as i32 + d) as u32));
                check(f32::from_bits((f.to_bits() as i32 + d + 0x1000) as u32));
            }
        }
    }
    #[test]
    fn f16_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00); // halfway, even stays
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02); // halfway, odd rounds up
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // overflows to inf
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8); // smallest subnormal
    }
}
