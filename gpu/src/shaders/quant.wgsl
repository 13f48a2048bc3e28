// Weights stay in their GGUF block encoding on the GPU; these functions decode one group of
// 32 consecutive weights of a row (a Q4_0/Q8_0 block, a K-quant sub-block) into f32. The
// layouts are ggml's (engine/src/quant/mod.rs, `block`); the scalar reference decoder is
// `engine::quant::scalar::dequantize_row`, which these mirror line for line.
//
// Blocks are 18, 20, 22, 34, 144, 176 or 210 bytes long, so rows are not 4-byte aligned:
// the weights are bound as `array<u32>` (`w`, declared by the kernel) and read by the byte.

fn byte(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

fn half(b: u32) -> f32 {
    return unpack2x16float(byte(b) | (byte(b + 1u) << 8u)).x;
}

fn word(b: u32) -> u32 {
    return byte(b) | (byte(b + 1u) << 8u) | (byte(b + 2u) << 16u) | (byte(b + 3u) << 24u);
}

// The 4 bytes at any byte offset (two loads where it is not aligned).
fn word_at(b: u32) -> u32 {
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    if s == 0u {
        return w[i];
    }
    return (w[i] >> s) | (w[i + 1u] << (32u - s));
}

// Byte k (0..3) of a word, sign-extended.
fn signed_lane(x: u32, k: u32) -> f32 {
    return f32((i32(x) << (24u - 8u * k)) >> 24u);
}

fn signed_byte(b: u32) -> f32 {
    return f32((i32(byte(b)) << 24u) >> 24u);
}

fn group_f32(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 128u;
    for (var j = 0u; j < 32u; j++) {
        (*v)[j] = bitcast<f32>(w[(o >> 2u) + j]);
    }
}

fn group_f16(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 64u;
    for (var j = 0u; j < 32u; j++) {
        (*v)[j] = half(o + 2u * j);
    }
}

fn group_bf16(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 64u;
    for (var j = 0u; j < 32u; j++) {
        (*v)[j] = bitcast<f32>((byte(o + 2u * j) | (byte(o + 2u * j + 1u) << 8u)) << 16u);
    }
}

// d, then 32 4-bit values: v = d · (q − 8).
fn group_q4_0(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 18u;
    let d = half(o);
    for (var k = 0u; k < 4u; k++) {
        let q = word_at(o + 2u + 4u * k);
        for (var b = 0u; b < 4u; b++) {
            let j = 4u * k + b;
            (*v)[j] = (f32((q >> (8u * b)) & 15u) - 8.0) * d;
            (*v)[j + 16u] = (f32((q >> (8u * b + 4u)) & 15u) - 8.0) * d;
        }
    }
}

// d, m, then 32 4-bit values: v = d · q + m.
fn group_q4_1(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 20u;
    let d = half(o);
    let m = half(o + 2u);
    for (var k = 0u; k < 4u; k++) {
        let q = word_at(o + 4u + 4u * k);
        for (var b = 0u; b < 4u; b++) {
            let j = 4u * k + b;
            (*v)[j] = f32((q >> (8u * b)) & 15u) * d + m;
            (*v)[j + 16u] = f32((q >> (8u * b + 4u)) & 15u) * d + m;
        }
    }
}

// d, 32 fifth bits, 32 low nibbles: v = d · (q − 16).
fn group_q5_0(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 22u;
    let d = half(o);
    let qh = word(o + 2u);
    for (var j = 0u; j < 16u; j++) {
        let q = byte(o + 6u + j);
        let lo = (q & 15u) | (((qh >> j) << 4u) & 16u);
        let hi = (q >> 4u) | ((qh >> (j + 12u)) & 16u);
        (*v)[j] = (f32(lo) - 16.0) * d;
        (*v)[j + 16u] = (f32(hi) - 16.0) * d;
    }
}

// d, m, 32 fifth bits, 32 low nibbles: v = d · q + m.
fn group_q5_1(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 24u;
    let d = half(o);
    let m = half(o + 2u);
    let qh = word(o + 4u);
    for (var j = 0u; j < 16u; j++) {
        let q = byte(o + 8u + j);
        let lo = (q & 15u) | (((qh >> j) << 4u) & 16u);
        let hi = (q >> 4u) | ((qh >> (j + 12u)) & 16u);
        (*v)[j] = f32(lo) * d + m;
        (*v)[j + 16u] = f32(hi) * d + m;
    }
}

// d, then 32 signed bytes.
fn group_q8_0(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + g * 34u;
    let d = half(o);
    for (var k = 0u; k < 8u; k++) {
        let q = word_at(o + 2u + 4u * k);
        for (var b = 0u; b < 4u; b++) {
            (*v)[4u * k + b] = signed_lane(q, b) * d;
        }
    }
}

// Sub-block j's 6-bit scale and min of a Q4_K/Q5_K block, from the 12 packed bytes at `s`.
fn scale_min_k4(j: u32, s: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(byte(s + j) & 63u), f32(byte(s + j + 4u) & 63u));
    }
    let sc = (byte(s + j + 4u) & 15u) | ((byte(s + j - 4u) >> 6u) << 4u);
    let m = (byte(s + j + 4u) >> 4u) | ((byte(s + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// Sub-block j's scale and min of the Q4_K/Q5_K block at `o`, multiplied out: (d·sc, dmin·m).
fn k4_scale_min(o: u32, j: u32) -> vec2<f32> {
    let sm = scale_min_k4(j, o + 4u);
    return vec2<f32>(half(o) * sm.x, half(o + 2u) * sm.y);
}

// Super-blocks of 256: d, dmin, 8 packed (scale, min) pairs, 128 bytes of nibbles; sub-block
// j is the low (j even) or high nibbles of the 32 bytes at 32·(j/2).
fn group_q4_k(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + (g >> 3u) * 144u;
    let j = g & 7u;
    let dm = k4_scale_min(o, j);
    let qs = o + 16u + (j >> 1u) * 32u;
    let shift = (j & 1u) * 4u;
    for (var k = 0u; k < 8u; k++) {
        let q = word_at(qs + 4u * k) >> shift;
        for (var b = 0u; b < 4u; b++) {
            (*v)[4u * k + b] = dm.x * f32((q >> (8u * b)) & 15u) - dm.y;
        }
    }
}

// Q4_K's layout with 32 bytes of fifth bits (bit j of byte l for sub-block j) before the nibbles.
fn group_q5_k(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + (g >> 3u) * 176u;
    let j = g & 7u;
    let dm = k4_scale_min(o, j);
    let qs = o + 48u + (j >> 1u) * 32u;
    let shift = (j & 1u) * 4u;
    for (var k = 0u; k < 8u; k++) {
        let lo = word_at(qs + 4u * k) >> shift;
        let hi = word_at(o + 16u + 4u * k) >> j;
        for (var b = 0u; b < 4u; b++) {
            let q = ((lo >> (8u * b)) & 15u) | (((hi >> (8u * b)) & 1u) << 4u);
            (*v)[4u * k + b] = dm.x * f32(q) - dm.y;
        }
    }
}

// 128 bytes of low nibbles, 64 of two-bit highs, 16 signed scales, d last. Sub-block s is
// quarter k = s % 4 of half s / 4: low or high nibbles (k / 2) of the 32 bytes at 32·(k % 2).
fn group_q6_k(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {
    let o = base + (g >> 3u) * 210u;
    let s = g & 7u;
    let h = s >> 2u;
    let k = s & 3u;
    let d = half(o + 208u);
    let ql = o + h * 64u + (k & 1u) * 32u;
    let qh = o + 128u + h * 32u;
    let shift = (k >> 1u) * 4u;
    let d0 = d * signed_byte(o + 192u + h * 8u + 2u * k);
    let d1 = d * signed_byte(o + 192u + h * 8u + 1u + 2u * k);
    for (var i = 0u; i < 8u; i++) {
        let lo = word_at(ql + 4u * i) >> shift;
        let hi = word_at(qh + 4u * i) >> (2u * k);
        let dl = select(d1, d0, i < 4u);
        for (var b = 0u; b < 4u; b++) {
            let q = ((lo >> (8u * b)) & 15u) | (((hi >> (8u * b)) & 3u) << 4u);
            (*v)[4u * i + b] = dl * (f32(q) - 32.0);
        }
    }
}
