// wasi:nn for the `runtime-nn` component, served by WebGPU: the host half of the step
// protocol (docs/wasi-nn.md; host-rust/src/nn.rs is the native one). The component keeps the
// tokenizer, the constraints, the sampler and classify's scoring; this host turns token ids
// into logits on the GPU. jco maps these classes and functions to the component's imports;
// `compute` is asynchronous (a GPU readback), which JSPI suspends the component for.

import { GpuSequence, StepError } from "./forward.js";

/** How many execution contexts one instance may hold open at once (host-rust/src/nn.rs's MAX_CONTEXTS). */
export const MAX_CONTEXTS = 32;

/** The method jco calls when the guest drops a host resource. */
const DISPOSE = Symbol.dispose || Symbol.for("dispose");

/** wasi:nn/errors `error`: a code and a message. */
export class NnError {
  #code;
  #data;
  constructor(code, data) {
    this.#code = code;
    this.#data = data;
  }
  code() { return this.#code; }
  data() { return this.#data; }
}

/** wasi:nn/tensor `tensor`. */
export class Tensor {
  constructor(dimensions, ty, data) {
    this._dimensions = Uint32Array.from(dimensions);
    this._ty = ty;
    this._data = data;
  }
  dimensions() { return this._dimensions; }
  ty() { return this._ty; }
  data() { return this._data; }
}

const fail = (code, message) => {
  throw new NnError(code, message);
};

/** One I32 vector input, checked against its declared shape (as ids_input in host-rust/src/nn.rs). */
function idsInput(name, t) {
  if (t.ty() !== "I32") fail("invalid-argument", `input '${name}' must be I32, not ${t.ty()}`);
  const dims = t.dimensions();
  if (dims.length !== 1) fail("invalid-argument", `input '${name}' must have one dimension, not [${dims.join(", ")}]`);
  const data = t.data();
  if (data.byteLength !== dims[0] * 4) fail("invalid-argument", `input '${name}': ${data.byteLength} bytes of data for ${dims[0]} I32 elements`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ids = new Uint32Array(dims[0]);
  for (let i = 0; i < ids.length; i++) {
    const v = view.getInt32(4 * i, true);
    if (v < 0) fail("invalid-argument", `input '${name}': invalid option: negative token id ${v}`);
    ids[i] = v;
  }
  return ids;
}

/** An execution context: one sequence on the GPU. */
export class GraphExecutionContext {
  constructor(graph) {
    this.graph = graph;
    this.seq = new GpuSequence(graph.model);
  }

  /** The guest dropped it: its KV cache goes now (GPU memory is not the garbage collector's). */
  [DISPOSE]() {
    if (!this.seq) return;
    this.seq.destroy();
    this.seq = null;
    this.graph.contexts--;
  }

  async compute(inputs) {
    let tokens = new Uint32Array(0), position, allowed;
    for (const [name, t] of inputs) {
      switch (name) {
        case "header": {
          const { header, size } = this.graph;
          const sizeBytes = new Uint8Array(8);
          new DataView(sizeBytes.buffer).setBigUint64(0, BigInt(size), true);
          return [["header", new Tensor([header.byteLength], "U8", header)], ["file-size", new Tensor([1], "I64", sizeBytes)]];
        }
        case "tokens":
          tokens = idsInput(name, t);
          break;
        case "position": {
          const p = idsInput(name, t);
          if (p.length !== 1) fail("invalid-argument", `input 'position' must hold one value, not ${p.length}`);
          position = p[0];
          break;
        }
        case "allowed":
          allowed = idsInput(name, t);
          break;
        default:
          fail("invalid-argument", `unknown input ${JSON.stringify(name)} (the protocol's inputs: tokens, position, allowed, header)`);
      }
    }
    let logits;
    try {
      logits = await this.seq.step({ tokens, position, allowed });
    } catch (e) {
      // A bad request, or a fault in the backend (anything else: no exception may unwind
      // through the suspended guest).
      fail(e instanceof StepError ? "invalid-argument" : "runtime-error", e?.message ?? String(e));
    }
    const bytes = new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength);
    return [["logits", new Tensor([logits.length], "FP32", bytes)]];
  }
}

/** A preloaded model: the GPU weights, and the file's header and size for the guest. */
export class Graph {
  constructor(model, header, size) {
    this.model = model;
    this.header = header;
    this.size = size;
    /** Execution contexts open now (at most MAX_CONTEXTS). */
    this.contexts = 0;
  }
  initExecutionContext() {
    if (this.contexts >= MAX_CONTEXTS) {
      fail("too-large", `${MAX_CONTEXTS} execution contexts are open in this instance, the most it may hold; drop one first`);
    }
    const ctx = new GraphExecutionContext(this);
    this.contexts++;
    return ctx;
  }
}

/**
 * The wasi:nn imports of the `runtime-nn` build, serving `graphs` (name → Graph): what the
 * guest's `model.load(name)` finds with `load-by-name`. Loading bytes is refused, as in the
 * native host: the protocol preloads.
 */
export function wasiNnImports(graphs) {
  return {
    "wasi:nn/errors": { Error: NnError },
    "wasi:nn/tensor": { Tensor },
    "wasi:nn/inference": { GraphExecutionContext },
    "wasi:nn/graph": {
      Graph,
      loadByName(name) {
        const g = graphs.get(name);
        if (!g) fail("not-found", `no model is served under the name ${JSON.stringify(name)}`);
        return g;
      },
      load(_builder, encoding) {
        if (encoding !== "ggml") fail("invalid-encoding", `this host serves only the ggml encoding, not ${encoding}`);
        fail("unsupported-operation", "load the model with load-by-name: this host preloads GGUF files and never copies weights from the guest");
      },
    },
  };
}
