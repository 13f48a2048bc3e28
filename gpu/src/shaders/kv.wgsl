// The KV cache holds f16 values, as llama.cpp's default cache and the CPU path's do, packed
// two to a u32 word with `pack2x16float` (core WGSL: no shader-f16 needed). It takes half the
// memory of f32 and attention reads half the bytes; the values are the same as rounding to
// f16 and keeping f32. `attention.wgsl` unpacks them.

// The element-wise kernels' parameters (`Params` in ops.wgsl); `store` reads count, a_offset
// (the first value's index in the cache, even), b_offset and wg_x.
struct Params {
    count: u32,
    width: u32,
    a_offset: u32,
    b_offset: u32,
    eps: f32,
    pos0: u32,
    heads: u32,
    n_rot: u32,
    base: f32,
    freq_scale: f32,
    attn_factor: f32,
    neox: u32,
    post_scale: f32,
    kind: u32,
    wg_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// Values b[b_offset..][..count] (count even) into the cache at value index a_offset: one
// thread per pair.
@compute @workgroup_size(64)
fn store(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.wg_x) * 64u + lid;
    if 2u * i < p.count {
        let s = p.b_offset + 2u * i;
        cache[(p.a_offset >> 1u) + i] = pack2x16float(vec2<f32>(b[s], b[s + 1u]));
    }
}
