// The element-wise and per-head operations of a transformer block, as the engine's
// `model::ops` computes them: `a` is updated in place, `b` is the second operand (a bias, a
// norm's weights, RoPE factors, the up projection). Values the CPU path holds in f16
// precision (GELU's table) are rounded to f16 here too; the KV cache is kv.wgsl's.

struct Params {
    count: u32,     // elements, or rows for rms_norm, or (token, head) pairs for rope
    width: u32,     // row width (bias, norm), or head_dim for rope
    a_offset: u32,
    b_offset: u32,  // u32::MAX: no b (rope without factors)
    eps: f32,       // rms_norm's ε
    // rope:
    pos0: u32,
    heads: u32,     // heads per token
    n_rot: u32,
    base: f32,
    freq_scale: f32,
    attn_factor: f32,
    neox: u32,
    post_scale: f32, // multiplies the rotated head (a family that scales its queries)
    kind: u32,       // gated: 0 SiLU, 1 GELU
    wg_x: u32,       // workgroups along x
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

const WG: u32 = 64u;

fn index(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * p.wg_x) * WG + lid;
}

fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(64)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if i < p.count {
        a[p.a_offset + i] = b[p.b_offset + i];
    }
}

// a *= post_scale (Gemma's embeddings, by √d).
@compute @workgroup_size(64)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if i < p.count {
        a[p.a_offset + i] *= p.post_scale;
    }
}

@compute @workgroup_size(64)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if i < p.count {
        a[p.a_offset + i] += b[p.b_offset + i];
    }
}

@compute @workgroup_size(64)
fn add_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if i < p.count {
        a[p.a_offset + i] += b[p.b_offset + i % p.width];
    }
}

// GELU, tanh approximation, as ggml's CPU backend tabulates it: f16 in, f16 out, identity
// above 10 and zero below -10.
fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let h = round_f16(x);
    return round_f16(0.5 * h * (1.0 + tanh(0.7978846 * h * (1.0 + 0.044715 * h * h))));
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

// The feed-forward gate: a = act(a) · b.
@compute @workgroup_size(64)
fn gated(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if i < p.count {
        let g = a[p.a_offset + i];
        var act = silu(g);
        if p.kind == 1u {
            act = gelu(g);
        }
        a[p.a_offset + i] = act * b[p.b_offset + i];
    }
}

var<workgroup> sums: array<f32, 64>;

// RMS normalisation of `count` rows of `width` in place, with the weights at b_offset:
// one workgroup per row.
@compute @workgroup_size(64)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * p.wg_x;
    let live = row < p.count;
    let o = p.a_offset + row * p.width;
    var s = 0.0;
    if live {
        for (var i = lid; i < p.width; i += WG) {
            let v = a[o + i];
            s += v * v;
        }
    }
    sums[lid] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if lid < k {
            sums[lid] += sums[lid + k];
        }
        workgroupBarrier();
    }
    if live {
        let scale = 1.0 / sqrt(sums[0] / f32(p.width) + p.eps);
        for (var i = lid; i < p.width; i += WG) {
            a[o + i] = a[o + i] * scale * b[p.b_offset + i];
        }
    }
}

// sin and cos of a position's angle: reduced by 2π in two parts first (Cody-Waite), as a
// GPU's own reduction is coarse for the angles of late positions.
fn sin_cos(angle: f32) -> vec2<f32> {
    let k = round(angle * 0.15915494);
    let r = (angle - k * 6.28125) - k * 0.0019353072;
    return vec2<f32>(sin(r), cos(r));
}

// Rotary position embedding of `count` (token, head) pairs in place: token t's heads sit
// at a_offset + (t·heads + h)·width and take position pos0 + t. One thread per pair of dims.
@compute @workgroup_size(64)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let pairs = p.width / 2u;
    let i = index(wid, lid);
    if i >= p.count * pairs {
        return;
    }
    let head = i / pairs;
    let d = i % pairs;
    let pos = p.pos0 + head / p.heads;
    let o = p.a_offset + head * p.width;
    if d < p.n_rot / 2u {
        // θ_d = pos · base^(-2d/n_rot), built by repeated multiplication as ggml does.
        let theta_scale = pow(p.base, -2.0 / f32(p.n_rot));
        var theta = f32(pos);
        for (var k = 0u; k < d; k++) {
            theta *= theta_scale;
        }
        var angle = theta * p.freq_scale;
        if p.b_offset != 0xffffffffu {
            angle = theta / b[p.b_offset + d] * p.freq_scale;
        }
        let sc = sin_cos(angle) * p.attn_factor;
        var ia = 2u * d;
        var ib = 2u * d + 1u;
        if p.neox == 1u {
            ia = d;
            ib = d + p.n_rot / 2u;
        }
        let x0 = a[o + ia];
        let x1 = a[o + ib];
        a[o + ia] = (x0 * sc.y - x1 * sc.x) * p.post_scale;
        a[o + ib] = (x0 * sc.x + x1 * sc.y) * p.post_scale;
    } else if p.post_scale != 1.0 {
        // Dimensions past n_rot are not rotated, but scaled with the rest.
        let k = d - p.n_rot / 2u;
        a[o + p.n_rot + 2u * k] *= p.post_scale;
        a[o + p.n_rot + 2u * k + 1u] *= p.post_scale;
    }
}
