// The WGSL kernels (gpu/src/shaders, the same files the native host runs; build.mjs copies
// them into dist/shaders.js), compiled once per device, and `Pass`, which records a batch's
// dispatches into one compute pass (gpu/src/kernels.rs).
//
// Every dispatch takes its parameters from a slot of one uniform buffer: the pass writes
// each slot as it goes and uploads them all before submitting, so a step costs one buffer
// write and one submission however many layers the model has.

import { ATTENTION_WGSL, KV_WGSL, MATMUL_WGSL, OPS_WGSL, QUANT_WGSL } from "../../dist/shaders.js";
import { TYPES } from "./gguf.js";

/** Bytes between two dispatches' parameters (minUniformBufferOffsetAlignment is at most 256). */
const SLOT = 256;
/** Bytes of one dispatch's parameters (the largest `Params` struct, padded). */
const PARAMS = 64;
/** Threads per workgroup in every kernel. */
const WG = 64;
/** Tokens and rows per matmul workgroup (`TILE`, `ROWS` in matmul.wgsl). */
const TILE = 8;
const ROWS = 4;
/** Workgroups along x before a dispatch spills into y (the limit is 65,535). */
const MAX_X = 32768;

const DECODERS = {
  F32: "group_f32", F16: "group_f16", BF16: "group_bf16", Q4_0: "group_q4_0", Q4_1: "group_q4_1", Q5_0: "group_q5_0",
  Q5_1: "group_q5_1", Q8_0: "group_q8_0", Q4_K: "group_q4_k", Q5_K: "group_q5_k", Q6_K: "group_q6_k",
};

/** The WGSL of the matrix product for weights of GGML type `type`. */
export function matmulSource(type) {
  const f = DECODERS[TYPES[type].name];
  return `${QUANT_WGSL}\n${MATMUL_WGSL}\nfn dequant_group(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {\n    ${f}(base, g, v);\n}\n`;
}

/** The element-wise kernels: [source, entry point] (ops.wgsl, and kv.wgsl's store into the f16 KV cache). */
export const OPS = {
  copy: [OPS_WGSL, "copy"], scale: [OPS_WGSL, "scale"], add: [OPS_WGSL, "add"], add_bias: [OPS_WGSL, "add_bias"],
  store_kv: [KV_WGSL, "store"], gated: [OPS_WGSL, "gated"], rms_norm: [OPS_WGSL, "rms_norm"], rope: [OPS_WGSL, "rope"],
};

/** The bit pattern of `v` as an f32. */
const f32Bits = (() => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return (v) => ((f[0] = v), u[0]);
})();

export class Kernels {
  /** Compile the kernels a model needs: a matrix product for each of `types`, the row lookup for each of `lookups`. */
  static async create(gpu, types, lookups) {
    const device = gpu.device;
    const storage = (binding, readOnly) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: readOnly ? "read-only-storage" : "storage" } });
    const uniform = { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } };
    const layout = (label, entries) => device.createBindGroupLayout({ label, entries });
    const k = new Kernels();
    k.matmulLayout = layout("matmul", [uniform, storage(1, true), storage(2, true), storage(3, false), storage(4, true)]);
    k.opsLayout = layout("ops", [uniform, storage(1, false), storage(2, true)]);
    k.attentionLayout = layout("attention", [uniform, storage(1, true), storage(2, true), storage(3, true), storage(4, false)]);
    const modules = new Map();
    const pipeline = (label, code, bindLayout, entryPoint) => {
      if (!modules.has(code)) modules.set(code, device.createShaderModule({ label, code }));
      return device.createComputePipelineAsync({
        label,
        layout: device.createPipelineLayout({ bindGroupLayouts: [bindLayout] }),
        compute: { module: modules.get(code), entryPoint },
      });
    };
    const byType = async (list, entry) =>
      new Map(await Promise.all([...new Set(list)].map(async (t) => [t, await pipeline(`${entry} ${TYPES[t].name}`, matmulSource(t), k.matmulLayout, entry)])));
    [k.matmul, k.embed, k.ops, k.attention] = await Promise.all([
      byType(types, "main"),
      byType(lookups, "embed"),
      Promise.all(Object.entries(OPS).map(async ([op, [code, entry]]) => [op, await pipeline(op, code, k.opsLayout, entry)])).then((e) => new Map(e)),
      pipeline("attention", ATTENTION_WGSL, k.attentionLayout, "main"),
    ]);
    return k;
  }
}

/** Workgroups for `total` of them: [x, y] with x ≤ MAX_X. */
function grid(total) {
  return total <= MAX_X ? [Math.max(total, 1), 1] : [MAX_X, Math.ceil(total / MAX_X)];
}

/** A uniform buffer for `dispatches` dispatches' parameters. */
export function paramsBuffer(gpu, dispatches) {
  return gpu.device.createBuffer({ label: "params", size: dispatches * SLOT, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
}

/** One batch being recorded. A region of a buffer is `[buffer, offset in f32 elements]`. */
export class Pass {
  constructor(gpu, kernels, params) {
    this.gpu = gpu;
    this.k = kernels;
    this.params = params;
    this.words = new Uint32Array(params.size / 4);
    this.used = 0;
    this.encoder = gpu.device.createCommandEncoder();
    this.pass = this.encoder.beginComputePass();
  }

  /** Store one dispatch's parameters (u32 words; floats as their bits); returns their binding. */
  #slot(words) {
    const offset = this.used;
    if (offset + SLOT > this.params.size) throw new Error("the parameter buffer is sized for the model's dispatches");
    this.words.set(words, offset / 4);
    this.used += SLOT;
    return { buffer: this.params, offset, size: PARAMS };
  }

  #dispatch(pipeline, layout, resources, [x, y, z]) {
    const entries = resources.map((resource, binding) => ({ binding, resource: resource instanceof GPUBuffer ? { buffer: resource } : resource }));
    const group = this.gpu.device.createBindGroup({ layout, entries });
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
  }

  /** y[t·yStride + r] = W[r] · x[t] for `n` tokens, each piece of W in turn. */
  matmul(w, [x, xAt], [y, yAt], yStride, n) {
    for (const piece of w.pieces) {
      const [gx, gy] = grid(Math.ceil(piece.rows / ROWS));
      const params = this.#slot([piece.rows, w.cols, n, w.rowBytes, xAt, yAt + piece.row0, yStride, 0, gx, 0]);
      this.#dispatch(this.k.matmul.get(w.type), this.k.matmulLayout, [params, piece.buffer, x, y, piece.buffer], [gx, gy, Math.ceil(n / TILE)]);
    }
  }

  /** The rows listed in `ids` (per piece: [pairs, offset] of (row within the piece, output slot) pairs), for one token. */
  gather(w, [x, xAt], [y, yAt], ids, perPiece) {
    w.pieces.forEach((piece, i) => {
      const [pairs, offset] = perPiece[i];
      if (pairs === 0) return;
      const [gx, gy] = grid(Math.ceil(pairs / ROWS));
      const params = this.#slot([pairs, w.cols, 1, w.rowBytes, xAt, yAt, 0, 1, gx, offset]);
      this.#dispatch(this.k.matmul.get(w.type), this.k.matmulLayout, [params, piece.buffer, x, y, ids], [gx, gy, 1]);
    });
  }

  /** Rows of `w` decoded into `y` (rows `cols` apart), as listed in `ids` per piece. */
  embed(w, y, ids, perPiece) {
    w.pieces.forEach((piece, i) => {
      const [pairs, offset] = perPiece[i];
      if (pairs === 0) return;
      const [gx, gy] = grid(pairs);
      const params = this.#slot([pairs, w.cols, 0, w.rowBytes, 0, 0, 0, 0, gx, offset]);
      this.#dispatch(this.k.embed.get(w.type), this.k.matmulLayout, [params, piece.buffer, ids, y, ids], [gx, gy, 1]);
    });
  }

  /** An element-wise kernel over `a` (updated) and `b`; `items` is how many it covers (pairs for rope and store_kv, rows for rms_norm). */
  op(op, p, a, b, items) {
    const groups = op === "rms_norm" ? items : Math.ceil(items / WG);
    const [gx, gy] = grid(groups);
    const params = this.#slot([
      p.count ?? 0, p.width ?? 0, p.aOffset ?? 0, p.bOffset ?? 0, f32Bits(p.eps ?? 0), p.pos0 ?? 0, p.heads ?? 0, p.nRot ?? 0,
      f32Bits(p.base ?? 0), f32Bits(p.freqScale ?? 0), f32Bits(p.attnFactor ?? 0), p.neox ?? 0, f32Bits(p.postScale ?? 0), p.kind ?? 0, gx,
    ]);
    this.#dispatch(this.k.ops.get(op), this.k.opsLayout, [params, a, b], [gx, gy, 1]);
  }

  /** Attention for `n` tokens over one layer's cache. */
  attention(p, q, k, v, out, n) {
    const params = this.#slot([p.pos0, p.nHead, p.nHeadKv, p.headDim, p.window, f32Bits(p.scale), p.qDim, p.kvDim]);
    this.#dispatch(this.k.attention, this.k.attentionLayout, [params, q, k, v, out], [p.nHead, n, 1]);
  }

  /** Upload the parameters and submit everything recorded. */
  submit() {
    this.pass.end();
    this.gpu.queue.writeBuffer(this.params, 0, this.words.buffer, 0, this.used);
    this.gpu.queue.submit([this.encoder.finish()]);
  }
}
