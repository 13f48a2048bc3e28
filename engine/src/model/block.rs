//! The one transformer block every architecture runs, over a batch of consecutive tokens:
//! `x += attention(norm(x))`, then `x += feed_forward(norm(x))`, each output normalised
//! again first where the family does it. What differs by family is read from the
//! architecture table (`config.arch`) and the layer's optional tensors.

use super::arch::{Activation, AttentionScale};
use super::config::Config;
use super::kv_cache::LayerCache;
use super::ops::{add_bias, attend, gelu, rms_norm, rope_with, silu, Angles, Rope};
use super::scratch::Scratch;
use super::Layer;

/// Self-attention of the batch's tokens at positions `pos0..pos0 + n` (n = `sc.x`'s rows),
/// added to the residual stream `sc.x`. Keys and values are computed and cached for every
/// token; queries, attention and `wo` only from token `t0` on (earlier rows' outputs are
/// not read).
#[allow(clippy::too_many_arguments)]
pub(super) fn attention(
    c: &Config,
    layer: &Layer,
    layer_index: usize,
    rope_factors: Option<&[f32]>,
    cache: &mut LayerCache,
    pos0: usize,
    t0: usize,
    sc: &mut Scratch,
) {
    let d = c.n_embd;
    let hd = c.head_dim;
    let n = sc.x.len() / d;
    let Scratch { x, h, q, k, v, att, proj, scores, q16, acts, .. } = sc;
    let sliding = c.is_sliding(layer_index);
    let (base, freq_scale) = if sliding { (c.rope_base_local, c.rope_freq_scale_local) } else { (c.rope_base, c.rope_freq_scale) };
    let rot = Rope { n_rot: c.n_rot, base, freq_scale, style: c.rope_style, factors: rope_factors, attn_factor: c.rope_attn_factor };
    let score_scale = if c.arch.attention_scale == AttentionScale::Scores { c.attn_scale } else { 1.0 };
    // A query group: the query heads that share one KV head (grouped-query attention).
    let group = c.n_head / c.n_head_kv;

    h.copy_from_slice(x);
    h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.attn_norm, c.rms_eps));
    acts.set(h, d);
    layer.wq.matmul(&acts.get(layer.wq.dot_type())[t0..], &mut q[t0 * c.q_dim()..]);
    layer.wk.matmul(acts.get(layer.wk.dot_type()), k);
    layer.wv.matmul(acts.get(layer.wv.dot_type()), v);
    if let Some(b) = &layer.bq {
        add_bias(&mut q[t0 * c.q_dim()..], b);
    }
    if let Some(b) = &layer.bk {
        add_bias(k, b);
    }
    if let Some(b) = &layer.bv {
        add_bias(v, b);
    }
    for t in t0..n {
        let angles = Angles::new(pos0 + t, &rot);
        for head in q[t * c.q_dim()..(t + 1) * c.q_dim()].chunks_exact_mut(hd) {
            if let Some(w) = &layer.q_norm {
                rms_norm(head, w, c.rms_eps);
            }
            rope_with(head, &angles, rot.style);
            if c.arch.attention_scale == AttentionScale::Queries {
                head.iter_mut().for_each(|v| *v *= c.attn_scale);
            }
        }
    }
    for t in 0..n {
        let pos = pos0 + t;
        let angles = Angles::new(pos, &rot);
        for head in k[t * c.kv_dim()..(t + 1) * c.kv_dim()].chunks_exact_mut(hd) {
            if let Some(w) = &layer.k_norm {
                rms_norm(head, w, c.rms_eps);
            }
            rope_with(head, &angles, rot.style);
        }
        cache.store(pos, &k[t * c.kv_dim()..(t + 1) * c.kv_dim()], &v[t * c.kv_dim()..(t + 1) * c.kv_dim()]);
    }
    let cache = &*cache;
    for t in t0..n {
        let pos = pos0 + t;
        // A sliding-window query sees the last `window` positions, itself included.
        let first = match (sliding, c.sliding_window) {
            (true, Some(w)) => (pos + 1).saturating_sub(w),
            _ => 0,
        };
        for kvh in 0..c.n_head_kv {
            let at = t * c.q_dim() + kvh * group * hd;
            let heads = at..at + group * hd;
            let kv = |i: usize| cache.get(first + i, kvh, hd);
            attend(&q[heads.clone()], hd, pos + 1 - first, kv, score_scale, q16, scores, &mut att[heads]);
        }
    }
    // From here on, the rows from `t0`.
    let (x, proj) = (&mut x[t0 * d..], &mut proj[t0 * d..]);
    acts.set(&att[t0 * c.q_dim()..], c.q_dim());
    layer.wo.matmul(acts.get(layer.wo.dot_type()), proj);
    if let Some(b) = &layer.bo {
        add_bias(proj, b);
    }
    if let Some(w) = &layer.post_attn_norm {
        proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
    }
    x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
}

/// The gated feed-forward block, `down(act(gate(h)) * up(h))` with `h = norm(x)`, added to
/// the residual stream for the rows from `t0`.
pub(super) fn feed_forward(c: &Config, layer: &Layer, t0: usize, sc: &mut Scratch) {
    let d = c.n_embd;
    let Scratch { x, h, proj, gate, up, acts, .. } = sc;
    let (x, h, proj) = (&mut x[t0 * d..], &mut h[t0 * d..], &mut proj[t0 * d..]);
    let (gate, up) = (&mut gate[t0 * c.n_ff..], &mut up[t0 * c.n_ff..]);
    h.copy_from_slice(x);
    h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.ffn_norm, c.rms_eps));
    acts.set(h, d);
    layer.w_gate.matmul(acts.get(layer.w_gate.dot_type()), gate);
    layer.w_up.matmul(acts.get(layer.w_up.dot_type()), up);
    let act: fn(f32) -> f32 = match c.arch.activation {
        Activation::Gelu => gelu,
        Activation::Silu => silu,
    };
    gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = act(*g) * u);
    acts.set(gate, c.n_ff);
    layer.w_down.matmul(acts.get(layer.w_down.dot_type()), proj);
    if let Some(w) = &layer.post_ffn_norm {
        proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
    }
    x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
}
