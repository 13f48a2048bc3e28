// The architecture table and the hyperparameters read from GGUF metadata: the engine's
// `model::arch` and `model::config`, row for row (the WebGPU host runs the forward pass, so it
// must read a file exactly as the engine does; the browser tests compare the two paths).

import { GgufError } from "./gguf.js";

/** What one transformer family does differently from another (engine: `Architecture`). */
export const ARCHITECTURES = {
  llama: { activation: "silu", rope: "adjacent", qkNorm: "optional", postNorms: false, scaleEmbeddings: false, attentionScale: "scores" },
  gemma3: {
    activation: "gelu", rope: "neox", qkNorm: "required", postNorms: true, scaleEmbeddings: true, attentionScale: "queries",
    slidingWindow: { defaultWindow: 4096, defaultPattern: 6, localRopeBase: 10000 },
    // Gemma 3 27B scales queries by the model width per head; the others by the head size.
    hparams: (c) => { if (c.nLayer === 62) c.attnScale = f32(1 / f32(Math.sqrt(Math.floor(c.nEmbd / c.nHead)))); },
  },
  qwen2: { activation: "silu", rope: "neox", qkNorm: "optional", postNorms: false, scaleEmbeddings: false, attentionScale: "scores" },
  qwen3: { activation: "silu", rope: "neox", qkNorm: "required", postNorms: false, scaleEmbeddings: false, attentionScale: "scores" },
  // A sliding window in a Phi-3 file is not applied (as llama.cpp does not).
  phi3: { activation: "silu", rope: "neox", qkNorm: "optional", postNorms: false, scaleEmbeddings: false, attentionScale: "queries" },
};

// f32 arithmetic as the engine's: a double result rounded once is the correctly rounded f32
// result for sqrt and division.
const f32 = Math.fround;

/** The model's hyperparameters from its metadata (a `Map`), as the engine's `Config::from_gguf`. */
export function configOf(metadata) {
  const archName = metadata.get("general.architecture");
  if (typeof archName !== "string") throw new GgufError("corrupt-file", "missing general.architecture");
  const arch = ARCHITECTURES[archName];
  if (!arch) throw new GgufError("unsupported-architecture", archName);
  const key = (k) => `${archName}.${k}`;
  const opt = (k) => {
    const v = metadata.get(key(k));
    return typeof v === "number" ? v : undefined;
  };
  const req = (k) => {
    const v = opt(k);
    if (v === undefined) throw new GgufError("corrupt-file", `missing ${key(k)}`);
    if (!(v > 0 && v < 1 << 24)) throw new GgufError("corrupt-file", `${key(k)} = ${v} is out of range`);
    return v;
  };
  const nEmbd = req("embedding_length");
  const nLayer = req("block_count");
  const nHead = req("attention.head_count");
  const nHeadKv = opt("attention.head_count_kv") ?? nHead;
  const nFf = req("feed_forward_length");
  const nCtxTrain = req("context_length");
  if (nHeadKv === 0 || nHead % nHeadKv !== 0) throw new GgufError("corrupt-file", `${nHead} attention heads cannot share ${nHeadKv} KV heads`);
  const headDim = opt("attention.key_length") ?? Math.floor(nEmbd / nHead);
  if (headDim === 0 || headDim % 2 !== 0 || headDim > 1024) throw new GgufError("corrupt-file", `attention head size ${headDim}`);
  const valueLength = opt("attention.value_length");
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new GgufError("unsupported-architecture", `${archName} with value length ${valueLength} != key length ${headDim}`);
  }
  const nRot = opt("rope.dimension_count") ?? headDim;
  if (nRot > headDim || nRot % 2 !== 0) throw new GgufError("corrupt-file", `rope dimension count ${nRot} for head size ${headDim}`);
  const scaling = metadata.get(key("rope.scaling.type"));
  let linearScale = 1;
  if (scaling === undefined || scaling === "linear" || scaling === "longrope") {
    const f = opt("rope.scaling.factor");
    if (f > 0) linearScale = f32(1 / f);
  } else if (scaling !== "none") {
    throw new GgufError("unsupported-architecture", `rope scaling '${scaling}'`);
  }
  const ropeBase = f32(opt("rope.freq_base") ?? 10000);
  const attnFactor = opt("rope.scaling.attn_factor");
  const c = {
    arch: { name: archName, ...arch },
    nEmbd, nLayer, nHead, nHeadKv, headDim, nFf, nCtxTrain,
    rmsEps: f32(opt("attention.layer_norm_rms_epsilon") ?? 1e-6),
    ropeStyle: arch.rope,
    nRot,
    ropeBase,
    ropeFreqScale: linearScale,
    ropeBaseLocal: ropeBase,
    ropeFreqScaleLocal: linearScale,
    slidingWindow: undefined,
    swaPattern: 1,
    attnScale: f32(1 / f32(Math.sqrt(headDim))),
    embedScale: arch.scaleEmbeddings ? f32(Math.sqrt(nEmbd)) : 1,
    ropeAttnFactor: attnFactor > 0 ? f32(attnFactor) : 1,
    nCtxOrig: opt("rope.scaling.original_context_length") ?? nCtxTrain,
  };
  if (arch.slidingWindow) {
    const rule = arch.slidingWindow;
    c.ropeBaseLocal = rule.localRopeBase;
    c.ropeFreqScaleLocal = 1;
    c.slidingWindow = opt("attention.sliding_window") ?? rule.defaultWindow;
    const pattern = opt("attention.sliding_window_pattern");
    c.swaPattern = pattern > 0 ? pattern : rule.defaultPattern;
  }
  arch.hparams?.(c);
  c.qDim = c.nHead * c.headDim;
  c.kvDim = c.nHeadKv * c.headDim;
  return c;
}

/** Sliding-window layers: all but every `swaPattern`-th (layers 5, 11, 17 are global in Gemma 3). */
export function isSliding(c, layer) {
  return c.slidingWindow !== undefined && layer % c.swaPattern < c.swaPattern - 1;
}
