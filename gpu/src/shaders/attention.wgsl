// Causal self-attention of a batch's queries over the KV cache: out = softmax(scale · q·Kᵀ) · V
// per head, grouped-query (a KV head serves n_head / n_head_kv query heads), with an optional
// sliding window. One workgroup per (head, token) walks the visible positions in tiles of 64
// with a running maximum and sum (online softmax), so any context length fits in 64 floats of
// workgroup memory. As on the CPU path, queries are rounded to f16 before q·k (the cache
// holds f16 values already, two to a word: kv.wgsl).

struct Params {
    pos0: u32,      // position of the batch's first token
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    window: u32,    // sliding window (positions seen, itself included); 0: all
    scale: f32,
    q_dim: u32,
    kv_dim: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
// The cache: f16 values packed in pairs (kv.wgsl).
@group(0) @binding(2) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read> vc: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
var<workgroup> scores: array<f32, 64>;
var<workgroup> qh: array<f32, 256>;

fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let pos = p.pos0 + t;
    var first = 0u;
    if p.window != 0u && pos + 1u > p.window {
        first = pos + 1u - p.window;
    }
    let kvo = (h / (p.n_head / p.n_head_kv)) * hd;
    let qo = t * p.q_dim + h * hd;
    for (var d = lid; d < hd; d += WG) {
        qh[d] = round_f16(q[qo + d]);
    }
    workgroupBarrier();

    var m = -3.4e38;
    var l = 0.0;
    var acc: array<f32, 4>; // dims lid, lid + 64, ... (head_dim ≤ 256)
    for (var start = first; start <= pos; start += WG) {
        let i = start + lid;
        var s = -3.4e38;
        if i <= pos {
            let ko = i * p.kv_dim + kvo;
            var dot = 0.0;
            for (var d = 0u; d < hd; d += 2u) {
                let k = unpack2x16float(kc[(ko + d) >> 1u]);
                dot += qh[d] * k.x;
                dot += qh[d + 1u] * k.y;
            }
            s = dot * p.scale;
        }
        scores[lid] = s;
        workgroupBarrier();
        let count = min(WG, pos + 1u - start);
        var tile_max = m;
        for (var j = 0u; j < count; j++) {
            tile_max = max(tile_max, scores[j]);
        }
        let correction = exp(m - tile_max);
        l *= correction;
        for (var k = 0u; k < 4u; k++) {
            acc[k] *= correction;
        }
        for (var j = 0u; j < count; j++) {
            let e = exp(scores[j] - tile_max);
            l += e;
            let vo = (start + j) * p.kv_dim + kvo;
            for (var k = 0u; k < 4u; k++) {
                let d = lid + k * WG;
                if d < hd {
                    let pair = unpack2x16float(vc[(vo + d) >> 1u]);
                    acc[k] += e * select(pair.x, pair.y, ((vo + d) & 1u) == 1u);
                }
            }
        }
        m = tile_max;
        workgroupBarrier();
    }
    for (var k = 0u; k < 4u; k++) {
        let d = lid + k * WG;
        if d < hd {
            out[qo + d] = acc[k] / l;
        }
    }
}
