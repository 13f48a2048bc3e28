// A model whose forward pass runs on WebGPU: the `runtime-nn` build of the component (the
// tokenizer, constraints, sampler and classify's scoring inside, as in every host) with its
// wasi:nn imports served by this package's WebGPU host (nn.js). jco transpiled that build
// with JSPI (build.mjs), so the component waits for the GPU without blocking the thread, and
// the model's methods return promises.

import { EdgeSlmError, ModelLoadError, fromComponent } from "../errors.js";
import { classification, constraintOf, generateOptions, generation } from "../options.js";
import { openModelSource } from "../source.js";
import { Gpu, NoGpuError } from "./device.js";
import { GpuModel } from "./forward.js";
import { FileBytes, GgufError, parseGguf } from "./gguf.js";
import { Graph, wasiNnImports } from "./nn.js";

/** Whether WebGPU offers a hardware adapter (a software one such as SwiftShader is slower than the CPU path). */
export async function hardwareAdapter() {
  try {
    const adapter = await globalThis.navigator?.gpu?.requestAdapter();
    return !!adapter && !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
  } catch {
    return false;
  }
}

/** Call an export of the component (a promise for those that reach the GPU), as index.js's `call`. */
async function call(model, f) {
  if (model.trapped) throw model.trapped;
  try {
    return await f();
  } catch (e) {
    throw fromComponent(model, e);
  }
}

export class WebGpuModel {
  #model;
  #gpu;
  /** @internal */
  constructor(model, loadMs, gpu) {
    this.#model = model;
    this.#gpu = gpu;
    this.loadMs = loadMs;
    /** The WebGPU adapter the forward pass runs on. */
    this.adapter = gpu.name;
    this.device = "webgpu";
    this.kernels = "webgpu";
    this.trapped = null;
  }

  async info() {
    const i = await call(this, () => this.#model.info());
    return { ...i, parameterCount: Number(i.parameterCount), fileSize: Number(i.fileSize) };
  }

  async tokenize(text, { addSpecial = false, parseSpecial = false } = {}) {
    return Array.from(await call(this, () => this.#model.tokenize(text, addSpecial, parseSpecial)));
  }

  async detokenize(tokens) {
    return call(this, () => this.#model.detokenize(Uint32Array.from(tokens)));
  }

  async generate(prompt, options) {
    return generation(await call(this, () => this.#model.generate(prompt, generateOptions(options))));
  }

  async generateConstrained(prompt, constraint, options) {
    const c = constraintOf(constraint);
    const g = generation(await call(this, () => this.#model.generateConstrained(prompt, c, generateOptions(options))));
    if (c.tag === "json-schema") g.value = JSON.parse(g.text);
    return g;
  }

  async classify(text, labels, { instruction, examples = [], calibrate } = {}) {
    return classification(await call(this, () => this.#model.classify(text, labels, { instruction, examples, calibrate })));
  }

  /** Drop the component's model and free the GPU's memory (the weights and KV caches go with the device). */
  dispose() {
    this.#model?.[Symbol.dispose]?.();
    this.#model = null;
    this.#gpu?.device.destroy();
    this.#gpu = null;
    this.trapped = new EdgeSlmError("disposed", "the model was disposed");
  }
}

/** The file's bytes, kept as the pieces they arrived in (copied: readers reuse their buffers). */
async function readPieces(opened) {
  if (opened.bytes) return new FileBytes([opened.bytes]);
  const pieces = [];
  for await (const piece of opened.chunks) pieces.push(piece.slice());
  return new FileBytes(pieces);
}

/**
 * Load a GGUF model for the WebGPU path: its weights uploaded to the GPU once, the
 * `runtime-nn` component instantiated with wasi:nn served from them. With `auto`, a model or
 * adapter the GPU path cannot serve (no adapter, an unsupported shape) gives
 * `{ cpuSource, reason }` instead: the file, for the CPU path to load without reading it again.
 */
export async function loadWebGpuModel(source, { onProgress, componentUrl, coreModule, sandboxedWasi, auto = false }) {
  const gpuReady = Gpu.open();
  gpuReady.catch(() => {}); // awaited below, or handled where the load fails
  let gpu, graph, file, t;
  try {
    file = await readPieces(await openModelSource(source, onProgress));
    t = performance.now();
    onProgress?.({ phase: "load", loaded: 0, total: file.size });
    const gguf = parseGguf(file);
    gpu = await gpuReady;
    const model = await GpuModel.create(gpu, file, gguf);
    graph = new Graph(model, file.read(0, gguf.dataOffset).slice(), file.size);
  } catch (e) {
    // The device goes with a failed load, whenever it opens.
    gpuReady.then((g) => g.device.destroy(), () => {});
    const gpuOnly = e instanceof NoGpuError || (e instanceof GgufError && e.code === "unsupported-architecture");
    if (auto && gpuOnly && file) {
      const pieces = file.pieces;
      return { reason: e.message, cpuSource: { size: file.size, chunks: (async function* () { yield* pieces; })() } };
    }
    if (e instanceof ModelLoadError) throw e;
    if (e instanceof GgufError) throw new ModelLoadError(e.code, e.message);
    // No adapter, a GPU fault, a kernel the adapter cannot compile.
    throw new ModelLoadError("io", `WebGPU: ${e?.message ?? e}`);
  }
  const name = "/model/model.gguf";
  const dir = new URL("nn/", componentUrl);
  let witModel;
  try {
    const { instantiate } = await import("../../dist/nn/edgeslm.js");
    const root = await instantiate((path) => coreModule(dir, path, "simd128"), { ...sandboxedWasi().getImportObject(), ...wasiNnImports(new Map([[name, graph]])) });
    // The guest finds the model with load-by-name and reads its header through `compute`.
    witModel = await call({ trapped: null }, () => root.inference.Model.load(name));
  } catch (e) {
    gpu.device.destroy();
    throw e;
  }
  const loadMs = performance.now() - t;
  onProgress?.({ phase: "load", loaded: file.size, total: file.size });
  return new WebGpuModel(witModel, loadMs, gpu);
}
