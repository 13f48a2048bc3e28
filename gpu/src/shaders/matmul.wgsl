// y = W x for a batch of tokens, W in its GGUF encoding (`quant.wgsl` decodes it; the host
// prepends that file and a `dequant_group` that calls the matrix type's decoder).
//
// A workgroup of 64 threads computes 4 rows, 16 threads each, for up to TILE tokens: each
// thread decodes groups of 32 weights once and multiplies them with every token of the tile,
// then each row's 16 threads add their partial sums. With `gather`, the rows are a list of
// (row, output slot) pairs (the sparse output head: logits for the allowed ids only).

struct Params {
    rows: u32,       // rows to compute (or pairs in `ids`, with gather)
    cols: u32,
    n: u32,          // tokens
    row_bytes: u32,
    x_offset: u32,   // f32 index of token 0's input; inputs are `cols` apart
    y_offset: u32,   // f32 index of token 0's row 0
    y_stride: u32,   // floats between two tokens' outputs
    gather: u32,
    wg_x: u32,       // workgroups along x: row = wid.x + wid.y * wg_x
    ids_offset: u32, // where this dispatch's pairs start in `ids`
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;

const TILE: u32 = 8u;
const WG: u32 = 64u;
const LANES: u32 = 16u; // threads per row
const ROWS: u32 = 4u;   // rows per workgroup
var<workgroup> partial: array<f32, 512>; // TILE × WG

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lane = lid % LANES;
    let r = (wid.x + wid.y * p.wg_x) * ROWS + lid / LANES;
    let t0 = wid.z * TILE;
    let nt = min(TILE, p.n - t0);
    let live = r < p.rows;
    var acc: array<f32, 8>;
    if live {
        var row = r;
        if p.gather == 1u {
            row = ids[p.ids_offset + 2u * r];
        }
        let base = row * p.row_bytes;
        let groups = p.cols / 32u;
        for (var g = lane; g < groups; g += LANES) {
            var v: array<f32, 32>;
            dequant_group(base, g, &v);
            for (var t = 0u; t < nt; t++) {
                let xo = p.x_offset + (t0 + t) * p.cols + g * 32u;
                var s = 0.0;
                for (var j = 0u; j < 32u; j++) {
                    s += v[j] * x[xo + j];
                }
                acc[t] += s;
            }
        }
    }
    for (var t = 0u; t < nt; t++) {
        partial[t * WG + lid] = acc[t];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            for (var t = 0u; t < nt; t++) {
                partial[t * WG + lid] += partial[t * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    if live && lane < nt {
        var slot = r;
        if p.gather == 1u {
            slot = ids[p.ids_offset + 2u * r + 1u];
        }
        y[p.y_offset + (t0 + lane) * p.y_stride + slot] = partial[lane * WG + lid - lane];
    }
}

// Rows of W decoded whole: the token embedding lookup. Pair r of `ids` is (row within this
// piece, token slot); one workgroup per pair writes y[y_offset + slot·cols ..].
@compute @workgroup_size(64)
fn embed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * p.wg_x;
    if r >= p.rows {
        return;
    }
    let base = ids[p.ids_offset + 2u * r] * p.row_bytes;
    let out = p.y_offset + ids[p.ids_offset + 2u * r + 1u] * p.cols;
    for (var g = lid; g < p.cols / 32u; g += WG) {
        var v: array<f32, 32>;
        dequant_group(base, g, &v);
        for (var j = 0u; j < 32u; j++) {
            y[out + g * 32u + j] = v[j];
        }
    }
}
