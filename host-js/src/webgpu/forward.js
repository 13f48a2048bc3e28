// The transformer on WebGPU, behind the step protocol (docs/wasi-nn.md): tokens in, the last
// position's logits (all, or for the allowed ids only) out. A line-for-line port of
// gpu/src/forward.rs, which follows the engine's `model::block`: the same architecture table,
// the same optional tensors, f16 precision where the CPU path keeps it, the same WGSL.

import { configOf, isSliding } from "./config.js";
import { GgufError } from "./gguf.js";
import { Kernels, Pass, paramsBuffer } from "./kernels.js";
import { GpuMatrix, Vectors, readVector } from "./weights.js";

/** Tokens per batch (the engine's UBATCH). */
export const UBATCH = 128;

/** A step error the guest sees as wasi:nn `invalid-argument` (with the engine's message); the sequence stays usable. */
export class StepError extends Error {
  /** The engine's `Error::InvalidOption`. */
  static invalidOption(message) {
    return new StepError(`invalid option: ${message}`);
  }

  /** The engine's `Error::ContextOverflow`. */
  static contextOverflow(needed, limit) {
    return new StepError(`context overflow: ${needed} tokens needed, the context holds ${limit}`);
  }
}

/** The layers' tensors, found and checked as the engine's `Weights::load` does, uploaded to `gpu`. */
function loadWeights(gpu, file, gguf, c, vectors) {
  const used = new Set();
  const has = (name) => gguf.tensors.has(name);
  const info = (name) => {
    const t = gguf.tensors.get(name);
    if (!t) throw new GgufError("corrupt-file", `missing tensor '${name}'`);
    used.add(name);
    return t;
  };
  const shape = (t, rows, cols) => {
    if ((t.dims[1] ?? 1) !== rows || t.dims[0] !== cols) throw new GgufError("corrupt-file", `tensor '${t.name}' is ${t.dims[1] ?? 1}x${t.dims[0]}, expected ${rows}x${cols}`);
    return t;
  };
  const matrix = (name, rows, cols) => GpuMatrix.upload(gpu, file, shape(info(name), rows, cols));
  const vector = (name, len) => readVector(file, info(name), len);
  const optVector = (name, len) => (has(name) ? vector(name, len) : undefined);

  // The vocabulary is the tokenizer's: the embeddings (and the head) must have a row per token.
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens")?.skipped;
  if (!tokens) throw new GgufError("corrupt-file", "missing tokenizer.ggml.tokens");
  const vocab = tokens;
  const tokenEmbd = matrix("token_embd.weight", vocab, c.nEmbd);
  const output = has("output.weight") ? matrix("output.weight", vocab, c.nEmbd) : tokenEmbd;
  // Llama 3's `rope_freqs`, or Phi-3's LongRoPE pair (the long one past the original context).
  const pairs = c.nRot / 2;
  let ropeFactors = optVector("rope_freqs.weight", pairs);
  if (!ropeFactors) {
    const [long, short] = [optVector("rope_factors_long.weight", pairs), optVector("rope_factors_short.weight", pairs)];
    ropeFactors = c.nCtxTrain > c.nCtxOrig ? long ?? short : short ?? long;
  }
  if (ropeFactors?.some((v) => !(Number.isFinite(v) && v > 0))) throw new GgufError("corrupt-file", "a RoPE frequency factor is not a positive number");

  const layers = [];
  for (let l = 0; l < c.nLayer; l++) {
    const p = (s) => `blk.${l}.${s}.weight`;
    const bias = (s, len) => optVector(`blk.${l}.${s}.bias`, len);
    const qkNorm = (name) => (c.arch.qkNorm === "required" ? vector(p(name), c.headDim) : optVector(p(name), c.headDim));
    const postNorm = (name) => (c.arch.postNorms ? vector(p(name), c.nEmbd) : undefined);
    const [q, kv] = [c.qDim, c.kvDim];
    let wq, wk, wv, bq, bk, bv;
    if (has(p("attn_qkv"))) {
      // One fused tensor whose rows are Q, K, V.
      const t = shape(info(p("attn_qkv")), q + 2 * kv, c.nEmbd);
      [wq, wk, wv] = [[0, q], [q, q + kv], [q + kv, q + 2 * kv]].map((r) => GpuMatrix.upload(gpu, file, t, r));
      const b = bias("attn_qkv", q + 2 * kv);
      [bq, bk, bv] = b ? [b.slice(0, q), b.slice(q, q + kv), b.slice(q + kv)] : [];
    } else {
      [wq, wk, wv] = [matrix(p("attn_q"), q, c.nEmbd), matrix(p("attn_k"), kv, c.nEmbd), matrix(p("attn_v"), kv, c.nEmbd)];
      [bq, bk, bv] = [bias("attn_q", q), bias("attn_k", kv), bias("attn_v", kv)];
    }
    let wGate, wUp;
    if (has(p("ffn_gate"))) {
      [wGate, wUp] = [matrix(p("ffn_gate"), c.nFf, c.nEmbd), matrix(p("ffn_up"), c.nFf, c.nEmbd)];
    } else {
      // One `ffn_up` of twice the rows, the gate first.
      const t = shape(info(p("ffn_up")), 2 * c.nFf, c.nEmbd);
      [wGate, wUp] = [[0, c.nFf], [c.nFf, 2 * c.nFf]].map((r) => GpuMatrix.upload(gpu, file, t, r));
    }
    layers.push({
      attnNorm: vectors.add(vector(p("attn_norm"), c.nEmbd)),
      wq, wk, wv,
      bq: vectors.addOpt(bq), bk: vectors.addOpt(bk), bv: vectors.addOpt(bv),
      wo: matrix(p("attn_output"), c.nEmbd, q),
      bo: vectors.addOpt(bias("attn_output", c.nEmbd)),
      qNorm: vectors.addOpt(qkNorm("attn_q_norm")),
      kNorm: vectors.addOpt(qkNorm("attn_k_norm")),
      postAttnNorm: vectors.addOpt(postNorm("post_attention_norm")),
      ffnNorm: vectors.add(vector(p("ffn_norm"), c.nEmbd)),
      wGate, wUp,
      wDown: matrix(p("ffn_down"), c.nEmbd, c.nFf),
      postFfnNorm: vectors.addOpt(postNorm("post_ffw_norm")),
    });
  }
  const outputNorm = vectors.add(vector("output_norm.weight", c.nEmbd));
  // A text-model tensor nothing reads would be silently wrong output: refused, as in the engine.
  const textModel = (n) => ["blk.", "token_embd.", "output", "rope_"].some((s) => n.startsWith(s));
  for (const name of gguf.tensors.keys()) {
    if (textModel(name) && !used.has(name)) throw new GgufError("unsupported-architecture", `${c.arch.name} with tensor '${name}', which this engine does not implement`);
  }
  return { vocab, tokenEmbd, output, ropeFactors: vectors.addOpt(ropeFactors), layers, outputNorm };
}

/** Dispatches of one batch: per layer 21 besides the matrix products, one per piece of each matrix, and the final copy and norm. */
function dispatchesPerBatch(layers) {
  const products = (l) => [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].reduce((a, m) => a + m.pieces.length, 0);
  return layers.reduce((a, l) => a + 21 + products(l), 0) + 2;
}

/** A model whose forward pass runs on the GPU. */
export class GpuModel {
  /** Upload the weights of the GGUF file `file` (a FileBytes, header parsed as `gguf`) to `gpu`. */
  static async create(gpu, file, gguf) {
    const c = configOf(gguf.metadata);
    if (c.headDim > 256) throw new GgufError("unsupported-architecture", `heads of ${c.headDim} dimensions on the GPU (at most 256)`);
    const m = new GpuModel();
    m.gpu = gpu;
    m.config = c;
    const vectors = new Vectors();
    await gpu.guarded("uploading the weights", async () => {
      Object.assign(m, loadWeights(gpu, file, gguf, c, vectors));
      m.vectors = vectors.upload(gpu);
      const types = [m.output.type, ...m.layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].map((w) => w.type))];
      m.kernels = await Kernels.create(gpu, types, [m.tokenEmbd.type]);
      const f32s = (label, n) => gpu.buffer(label, 4 * n);
      const b = UBATCH;
      m.scratch = {
        x: f32s("x", b * c.nEmbd), h: f32s("h", b * c.nEmbd), q: f32s("q", b * c.qDim), k: f32s("k", b * c.kvDim), v: f32s("v", b * c.kvDim),
        att: f32s("att", b * c.qDim), proj: f32s("proj", b * c.nEmbd), gate: f32s("gate", b * c.nFf), up: f32s("up", b * c.nFf),
        logits: f32s("logits", m.vocab),
        // (row within a piece, output slot) pairs of the sparse head or the embedding lookup.
        ids: f32s("ids", 2 * Math.max(m.vocab, b)),
        params: paramsBuffer(gpu, dispatchesPerBatch(m.layers) + m.tokenEmbd.pieces.length + 1),
      };
    });
    await gpu.queue.onSubmittedWorkDone();
    return m;
  }

  /** Record and submit one batch of at most UBATCH tokens at `seq.pos`. */
  batch(seq, tokens) {
    const { config: c, scratch: sc, vectors: vecs } = this;
    const [n, d] = [tokens.length, c.nEmbd];
    const [hd, qDim, kvDim] = [c.headDim, c.qDim, c.kvDim];
    const pos0 = seq.pos;
    const [pairs, perPiece] = this.tokenEmbd.pairs(tokens);
    this.gpu.queue.writeBuffer(sc.ids, 0, pairs);
    const pass = new Pass(this.gpu, this.kernels, sc.params);
    // Token embeddings (scaled by √d in the families that do).
    pass.embed(this.tokenEmbd, sc.x, sc.ids, perPiece);
    if (c.embedScale !== 1) pass.op("scale", { count: n * d, postScale: c.embedScale }, sc.x, vecs, n * d);
    const norm = (buf, at, rows, width) => pass.op("rms_norm", { count: rows, width, bOffset: at, eps: c.rmsEps }, buf, vecs, rows);
    const elementwise = (op, a, b, bOffset, count, width) => pass.op(op, { count, width, bOffset }, a, b, count);
    this.layers.forEach((layer, l) => {
      // Attention: h = norm(x); q, k, v; per-head norms and RoPE; cache; attend; x += wo·att.
      elementwise("copy", sc.h, sc.x, 0, n * d, d);
      norm(sc.h, layer.attnNorm, n, d);
      pass.matmul(layer.wq, [sc.h, 0], [sc.q, 0], qDim, n);
      pass.matmul(layer.wk, [sc.h, 0], [sc.k, 0], kvDim, n);
      pass.matmul(layer.wv, [sc.h, 0], [sc.v, 0], kvDim, n);
      for (const [bias, buf, width] of [[layer.bq, sc.q, qDim], [layer.bk, sc.k, kvDim], [layer.bv, sc.v, kvDim]]) {
        if (bias !== undefined) elementwise("add_bias", buf, vecs, bias, n * width, width);
      }
      if (layer.qNorm !== undefined) norm(sc.q, layer.qNorm, n * c.nHead, hd);
      if (layer.kNorm !== undefined) norm(sc.k, layer.kNorm, n * c.nHeadKv, hd);
      const sliding = isSliding(c, l);
      const rope = {
        width: hd,
        bOffset: this.ropeFactors ?? 0xffffffff,
        pos0,
        nRot: c.nRot,
        base: sliding ? c.ropeBaseLocal : c.ropeBase,
        freqScale: sliding ? c.ropeFreqScaleLocal : c.ropeFreqScale,
        attnFactor: c.ropeAttnFactor,
        neox: c.ropeStyle === "neox" ? 1 : 0,
        postScale: 1,
      };
      const qScale = c.arch.attentionScale === "queries" ? c.attnScale : 1;
      const half = hd / 2;
      const heads = n * c.nHead;
      pass.op("rope", { ...rope, count: heads, heads: c.nHead, postScale: qScale }, sc.q, vecs, heads * half);
      const kvHeads = n * c.nHeadKv;
      pass.op("rope", { ...rope, count: kvHeads, heads: c.nHeadKv }, sc.k, vecs, kvHeads * half);
      for (const [cache, src] of [[seq.k[l], sc.k], [seq.v[l], sc.v]]) {
        pass.op("store_kv", { count: n * kvDim, aOffset: pos0 * kvDim }, cache, src, (n * kvDim) / 2);
      }
      const attention = {
        pos0, nHead: c.nHead, nHeadKv: c.nHeadKv, headDim: hd,
        window: sliding ? c.slidingWindow : 0,
        scale: c.arch.attentionScale === "scores" ? c.attnScale : 1,
        qDim, kvDim,
      };
      pass.attention(attention, sc.q, seq.k[l], seq.v[l], sc.att, n);
      pass.matmul(layer.wo, [sc.att, 0], [sc.proj, 0], d, n);
      this.#residual(pass, layer.bo, layer.postAttnNorm, n);

      // Feed-forward: h = norm(x); x += down(act(gate·h) ⊙ up·h).
      elementwise("copy", sc.h, sc.x, 0, n * d, d);
      norm(sc.h, layer.ffnNorm, n, d);
      pass.matmul(layer.wGate, [sc.h, 0], [sc.gate, 0], c.nFf, n);
      pass.matmul(layer.wUp, [sc.h, 0], [sc.up, 0], c.nFf, n);
      const count = n * c.nFf;
      pass.op("gated", { count, kind: c.arch.activation === "gelu" ? 1 : 0 }, sc.gate, sc.up, count);
      pass.matmul(layer.wDown, [sc.gate, 0], [sc.proj, 0], d, n);
      this.#residual(pass, undefined, layer.postFfnNorm, n);
    });
    // The last token's state, normalised for the output head.
    pass.op("copy", { count: d, bOffset: (n - 1) * d }, seq.last, sc.x, d);
    pass.op("rms_norm", { count: 1, width: d, bOffset: this.outputNorm, eps: c.rmsEps }, seq.last, vecs, 1);
    pass.submit();
  }

  /** x += postNorm(proj + bias), for n rows. */
  #residual(pass, bias, postNorm, n) {
    const { config: c, scratch: sc, vectors } = this;
    const d = c.nEmbd;
    if (bias !== undefined) pass.op("add_bias", { count: n * d, width: d, bOffset: bias }, sc.proj, vectors, n * d);
    if (postNorm !== undefined) pass.op("rms_norm", { count: n, width: d, bOffset: postNorm, eps: c.rmsEps }, sc.proj, vectors, n);
    pass.op("add", { count: n * d }, sc.x, sc.proj, n * d);
  }

  /** The output head over `seq.last`: every logit, or those of `ids` in their order. */
  async logits(seq, ids) {
    const sc = this.scratch;
    if (ids && ids.length > this.vocab) throw StepError.invalidOption(`${ids.length} ids asked for, more than the vocabulary (${this.vocab})`);
    const bad = ids?.find((t) => t >= this.vocab);
    if (bad !== undefined) throw StepError.invalidOption(`token id ${bad} is outside the vocabulary (${this.vocab})`);
    const pass = new Pass(this.gpu, this.kernels, sc.params);
    let count;
    if (!ids) {
      pass.matmul(this.output, [seq.last, 0], [sc.logits, 0], 0, 1);
      count = this.vocab;
    } else {
      const [pairs, perPiece] = this.output.pairs(ids);
      if (pairs.length) this.gpu.queue.writeBuffer(sc.ids, 0, pairs);
      pass.gather(this.output, [seq.last, 0], [sc.logits, 0], sc.ids, perPiece);
      count = ids.length;
    }
    pass.submit();
    if (count === 0) return new Float32Array(0);
    const bytes = await this.gpu.read(sc.logits, 4 * count);
    return new Float32Array(bytes.buffer, 0, count);
  }
}

/** One sequence on the GPU: its KV cache (every position, f16 values packed in pairs) and its last evaluated state. */
export class GpuSequence {
  constructor(model) {
    this.model = model;
    this.k = [];
    this.v = [];
    this.capacity = 0;
    this.pos = 0;
    this.last = model.gpu.buffer("last", 4 * model.config.nEmbd);
    /** Whether `last` is the state of position pos - 1 (no rollback since). */
    this.ready = false;
  }

  /** Grow the cache to hold `positions` (doubling, up to the trained context), keeping what it holds. */
  reserve(positions) {
    if (positions <= this.capacity) return;
    const { gpu, config: c } = this.model;
    const row = 2 * c.kvDim; // f16 values, two to a word (kv.wgsl)
    const most = Math.floor(gpu.maxBinding() / row);
    const capacity = Math.min(Math.max(this.capacity * 2, positions, 256), c.nCtxTrain, most);
    if (capacity < positions) throw StepError.contextOverflow(positions, capacity);
    const encoder = gpu.device.createCommandEncoder();
    const grow = (old, label) => {
      const grown = Array.from({ length: c.nLayer }, () => gpu.buffer(label, row * capacity));
      old.forEach((o, i) => {
        if (this.pos > 0) encoder.copyBufferToBuffer(o, 0, grown[i], 0, row * this.pos);
      });
      return grown;
    };
    const old = [...this.k, ...this.v];
    this.k = grow(this.k, "k cache");
    this.v = grow(this.v, "v cache");
    gpu.queue.submit([encoder.finish()]);
    // Destroying after the submit is safe: work already submitted completes first.
    for (const b of old) b.destroy();
    this.capacity = capacity;
  }

  /** Free the sequence's GPU memory (its KV cache); the sequence is not used after. */
  destroy() {
    for (const b of [...this.k, ...this.v, this.last]) b.destroy();
    this.k = [];
    this.v = [];
    this.capacity = 0;
  }

  /**
   * One step of the protocol: rollback to `position`, evaluate `tokens`, project `allowed`
   * (undefined: every logit). A failed evaluation leaves the sequence where it was, as in
   * gpu/src/forward.rs.
   */
  async step({ tokens, position, allowed }) {
    const m = this.model;
    if (position !== undefined) {
      if (position > this.pos) throw StepError.invalidOption(`cannot roll back to position ${position}: the sequence holds ${this.pos} tokens`);
      if (position < this.pos) {
        this.pos = position;
        this.ready = false;
      }
    }
    if (tokens.length) {
      const bad = tokens.find((t) => t >= m.vocab);
      if (bad !== undefined) throw StepError.invalidOption(`token id ${bad} is outside the vocabulary (${m.vocab})`);
      const end = this.pos + tokens.length;
      if (end > m.config.nCtxTrain) throw StepError.contextOverflow(end, m.config.nCtxTrain);
      this.ready = false;
      const start = this.pos;
      try {
        await m.gpu.guarded("evaluating tokens", () => {
          this.reserve(end);
          for (let i = 0; i < tokens.length; i += UBATCH) {
            const chunk = tokens.subarray(i, i + UBATCH);
            m.batch(this, chunk);
            this.pos += chunk.length;
          }
        });
      } catch (e) {
        this.pos = start;
        throw e;
      }
      this.ready = true;
    }
    if (allowed && allowed.length === 0) return new Float32Array(0);
    if (!this.ready) throw StepError.invalidOption("no evaluated position to take logits from (send tokens first)");
    return m.gpu.guarded("computing logits", () => m.logits(this, allowed));
  }
}
