// The page's side of the inference worker: the Model API, asynchronous.
import * as errors from "./errors.js";

/**
 * Start a worker and load a model in it.
 * @param source a URL (downloaded and cached in IndexedDB unless `cache: false`), a Blob,
 *   an ArrayBuffer or a Uint8Array (transferred to the worker)
 * @param options.onProgress {phase: "download" | "cache" | "read" | "load", loaded, total, storage, message}
 * @param options.workerUrl the bundled worker (default: the package's dist/edgeslm-worker.js)
 * @param options.kernels "auto" (relaxed-simd where the engine has it), "relaxed-simd" or "simd128"
 * @param options.device "cpu" (default), "webgpu" (the forward pass on the GPU) or "auto" (WebGPU
 *   where a hardware adapter exists)
 */
export async function loadModelInWorker(source, { onProgress, workerUrl, cache = true, componentUrl, kernels, device } = {}) {
  const worker = new Worker(workerUrl ?? new URL("../dist/edgeslm-worker.js", import.meta.url), { type: "module" });
  const model = new WorkerModel(worker);
  const src = source instanceof URL ? source.href : source;
  const loaded = await model.call("load", [src, { cache, componentUrl: componentUrl && String(componentUrl), kernels, device }], onProgress);
  model.loadMs = loaded.loadMs;
  model.kernels = loaded.kernels;
  model.device = loaded.device;
  model.adapter = loaded.adapter;
  model.loaded = loaded;
  return model;
}

export class WorkerModel {
  #worker;
  #next = 1;
  #pending = new Map();

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const p = this.#pending.get(data.id);
      if (!p) return;
      if (data.progress) return p.onProgress?.(data.progress);
      this.#pending.delete(data.id);
      if (data.error) p.reject(toError(data.error));
      else p.resolve(data.result);
    };
    worker.onerror = (e) => {
      for (const p of this.#pending.values()) p.reject(new errors.EdgeSlmError("worker-failed", e.message ?? "the worker failed"));
      this.#pending.clear();
    };
  }

  /** @internal */
  call(op, args, onProgress) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, op, args });
    });
  }

  info() { return this.call("info", []); }
  tokenize(text, o) { return this.call("tokenize", [text, o]); }
  detokenize(ids) { return this.call("detokenize", [ids]); }
  generate(prompt, o) { return this.call("generate", [prompt, o]); }
  generateConstrained(prompt, c, o) { return this.call("generateConstrained", [prompt, c, o]); }
  classify(text, labels, o) { return this.call("classify", [text, labels, o]); }
  terminate() { this.#worker.terminate(); }
}

function toError({ name, code, message, detail }) {
  const Class = errors[name];
  if (Class && Class.prototype instanceof errors.EdgeSlmError) return new Class(code, message, detail);
  return Object.assign(new Error(message), { code });
}
