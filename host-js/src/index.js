// edgeslm for JavaScript: the edgeslm WebAssembly component (transpiled by jco into
// ../dist) behind a small API. Every loaded model is its own component instance with its
// own linear memory and a sandboxed WASI shim: no files, no environment, no network.

import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";
import { instantiate } from "../dist/edgeslm.js";
import { EdgeSlmError, fromComponent } from "./errors.js";
import { openModelSource } from "./source.js";
import { chooseKernels } from "./features.js";
import { classification, constraintOf, generateOptions, generation } from "./options.js";

export * from "./errors.js";
export { hasRelaxedSimd } from "./features.js";
export { WebGpuModel } from "./webgpu/model.js";
export { JobQueue, throttlePolicy, batterySource, pressureSource } from "./queue.js";

const isNode = typeof process !== "undefined" && !!process.versions?.node;
const compiled = new Map();

/** Compile a core module of the component once per process (or worker). */
function coreModule(base, path, kernels) {
  // The relaxed-simd build differs from the SIMD128 one only in its main core module
  // (build.mjs checks that the glue and the other modules are byte-identical).
  const file = kernels === "relaxed-simd" && path === "edgeslm.core.wasm" ? "edgeslm.relaxed.core.wasm" : path;
  const url = new URL(file, base);
  let module = compiled.get(url.href);
  if (!module) {
    module = (async () => {
      if (url.protocol === "file:") {
        const { readFile } = await import("node:fs/promises");
        return WebAssembly.compile(await readFile(url));
      }
      const response = await fetch(url);
      if (!response.ok) throw new Error(`cannot fetch ${url.href}: HTTP ${response.status}`);
      return WebAssembly.compileStreaming ? WebAssembly.compileStreaming(response) : WebAssembly.compile(await response.arrayBuffer());
    })();
    compiled.set(url.href, module);
  }
  return module;
}

/** Where the transpiled component (dist/) is: `componentUrl`, or the package's own. */
function componentDir(componentUrl) {
  const base = componentUrl ? new URL(componentUrl, isNode ? `file://${process.cwd()}/` : location.href) : new URL("../dist/", import.meta.url);
  return base.href.endsWith("/") ? base : new URL(base.href + "/");
}

function sandboxedWasi() {
  try {
    return new WASIShim({ sandbox: { preopens: {}, env: {}, args: ["edgeslm"], enableNetwork: false } });
  } catch {
    return new WASIShim(); // a shim without isolated preopens: the browser's is in-memory anyway
  }
}

/** Call into the component, turning WIT errors into typed errors and traps into a dead instance. */
function call(model, f) {
  if (model.trapped) throw model.trapped;
  try {
    return f();
  } catch (e) {
    throw fromComponent(model, e);
  }
}

export class Model {
  #model;
  #ms;
  #kernels;
  /** @internal */
  constructor(model, loadMs, kernels) {
    this.#model = model;
    this.#ms = loadMs;
    this.#kernels = kernels;
    this.trapped = null;
  }

  /** The component build running this model: "relaxed-simd" or "simd128" (same results). */
  get kernels() {
    return this.#kernels;
  }

  /** Where the forward pass runs: "cpu" (inside the component); a `WebGpuModel` says "webgpu". */
  get device() {
    return "cpu";
  }

  /** Milliseconds the component spent parsing the model. */
  get loadMs() {
    return this.#ms;
  }

  info() {
    const i = call(this, () => this.#model.info());
    return { ...i, parameterCount: Number(i.parameterCount), fileSize: Number(i.fileSize) };
  }

  tokenize(text, { addSpecial = false, parseSpecial = false } = {}) {
    return Array.from(call(this, () => this.#model.tokenize(text, addSpecial, parseSpecial)));
  }

  detokenize(tokens) {
    return call(this, () => this.#model.detokenize(Uint32Array.from(tokens)));
  }

  /** Free-form generation. */
  generate(prompt, options) {
    return generation(call(this, () => this.#model.generate(prompt, generateOptions(options))));
  }

  /**
   * Generation guaranteed to match a constraint: `{jsonSchema}` (object or JSON text),
   * `{regex}` or `{grammar}` (Lark). With a JSON Schema, `value` holds the parsed output.
   */
  generateConstrained(prompt, constraint, options) {
    const c = constraintOf(constraint);
    const g = generation(call(this, () => this.#model.generateConstrained(prompt, c, generateOptions(options))));
    if (c.tag === "json-schema") g.value = JSON.parse(g.text);
    return g;
  }

  /**
   * Put `text` into one of `labels`, with a probability for every label.
   * Options: instruction, examples [{text, label}], calibrate (default true).
   */
  classify(text, labels, { instruction, examples = [], calibrate } = {}) {
    return classification(call(this, () => this.#model.classify(text, labels, { instruction, examples, calibrate })));
  }

  /** Drop the component instance's model (its memory is reclaimed with the instance). */
  dispose() {
    this.#model?.[Symbol.dispose]?.();
    this.#model = null;
    this.trapped = new EdgeSlmError("disposed", "the model was disposed");
  }
}

/**
 * Load a GGUF model into a fresh component instance.
 * @param source a path (Node), URL, Blob/File, ArrayBuffer/Uint8Array or Response
 * @param options.onProgress called with {phase: "read" | "load", loaded, total}
 * @param options.componentUrl where the transpiled component (dist/) is served from
 * @param options.kernels "auto" (default: relaxed-simd where the engine has it), "relaxed-simd"
 *   or "simd128"; both builds give the same bytes
 * @param options.device "cpu" (default: the forward pass inside the component), "webgpu" (on
 *   the GPU through WebGPU; a `WebGpuModel`, whose methods return promises) or "auto" (WebGPU
 *   where a hardware adapter exists, else the CPU)
 */
export async function loadModel(source, { onProgress, componentUrl, kernels = "auto", device = "cpu" } = {}) {
  if (!["cpu", "webgpu", "auto"].includes(device)) throw new TypeError(`device must be "cpu", "webgpu" or "auto", not ${JSON.stringify(device)}`);
  if (device !== "cpu") {
    const { loadWebGpuModel, hardwareAdapter } = await import("./webgpu/model.js");
    if (device === "webgpu" || (await hardwareAdapter())) {
      const auto = device === "auto";
      const loaded = await loadWebGpuModel(source, { onProgress, componentUrl: componentDir(componentUrl), coreModule, sandboxedWasi, auto });
      if (!loaded.cpuSource) return loaded;
      // auto, and the GPU path cannot serve this model or has no device: the CPU path, from the bytes already read.
      onProgress?.({ phase: "load", loaded: 0, message: `WebGPU: ${loaded.reason}; the forward pass runs on the CPU` });
      source = loaded.cpuSource;
    }
  }
  const chosen = chooseKernels(kernels);
  const dir = componentDir(componentUrl);
  const componentReady = instantiate((path) => coreModule(dir, path, chosen), sandboxedWasi().getImportObject());
  componentReady.catch(() => {}); // awaited below; avoid an unhandled rejection while reading
  const opened = await openModelSource(source, onProgress);
  const root = await componentReady;
  const holder = { trapped: null };
  const { Model: WitModel, ModelLoader } = root.inference;
  let model, loadMs, size;
  if (opened.bytes) {
    size = opened.bytes.byteLength;
    onProgress?.({ phase: "load", loaded: 0, total: size });
    const t = performance.now();
    model = call(holder, () => WitModel.fromBytes(opened.bytes));
    loadMs = performance.now() - t;
  } else {
    // Streamed into the component piece by piece: the file is never held twice.
    size = opened.size;
    const loader = new ModelLoader(BigInt(size));
    try {
      for await (const piece of opened.chunks) call(holder, () => loader.push(piece));
      onProgress?.({ phase: "load", loaded: 0, total: size });
      const t = performance.now();
      model = call(holder, () => loader.finish());
      loadMs = performance.now() - t;
    } finally {
      loader[Symbol.dispose]?.();
    }
  }
  onProgress?.({ phase: "load", loaded: size, total: size });
  return new Model(model, loadMs, chosen);
}
