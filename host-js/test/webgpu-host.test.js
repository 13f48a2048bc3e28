// The WebGPU host's CPU-side parts, in Node (no WebGPU here): the GGUF header reader and the
// architecture table against the Rust CLI's reading of the same files, typed errors for bad
// files, and the wasi:nn input checks (host-rust/src/nn.rs's, message for message).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { configOf } from "../src/webgpu/config.js";
import { FileBytes, GgufError, TYPES, parseGguf } from "../src/webgpu/gguf.js";
import { Graph, MAX_CONTEXTS, NnError, Tensor, wasiNnImports } from "../src/webgpu/nn.js";
import { MODELS, requireModels, rustCli } from "./support.js";

requireModels();

/** A file split into 1 MiB pieces, as a download's chunks: values straddle piece boundaries. */
function pieces(bytes) {
  const out = [];
  for (let i = 0; i < bytes.length; i += 1 << 20) out.push(bytes.subarray(i, i + (1 << 20)));
  return new FileBytes(out);
}

for (const [name, path] of Object.entries(MODELS)) {
  test(`the GGUF reader and architecture table read ${name} as the engine does`, () => {
    const info = JSON.parse(execFileSync(rustCli, ["info", "--quiet", "--backend", "portable", "--model", path], { encoding: "utf8" }));
    const gguf = parseGguf(pieces(readFileSync(path)));
    const c = configOf(gguf.metadata);
    assert.equal(c.arch.name, info.architecture);
    assert.equal(c.nLayer, info.layers);
    assert.equal(c.nEmbd, info.embedding_length);
    assert.equal(c.nHead, info.heads);
    assert.equal(c.nHeadKv, info.kv_heads);
    assert.equal(c.nCtxTrain, info.context_length);
    assert.equal(gguf.tensors.get("token_embd.weight").dims[1], info.vocab_size);
    assert.deepEqual(gguf.metadata.get("tokenizer.ggml.tokens"), { skipped: info.vocab_size });
    const types = {};
    for (const t of gguf.tensors.values()) types[TYPES[t.type].name] = (types[TYPES[t.type].name] ?? 0) + 1;
    assert.deepEqual(types, info.tensor_types);
    const elements = [...gguf.tensors.values()].reduce((a, t) => a + t.elements, 0);
    assert.equal(elements, info.parameter_count);
    // The tensor data starts after the header, aligned, and the last tensor ends in the file.
    assert.equal(gguf.dataOffset % 32, 0);
    const end = Math.max(...[...gguf.tensors.values()].map((t) => t.offset + t.size));
    assert.ok(end <= info.file_size && info.file_size - end < 32, `${end} of ${info.file_size}`);
  });
}

test("bad files are typed errors: not GGUF, truncated, an unknown architecture", () => {
  const smol = readFileSync(MODELS.smollm2);
  const code = (f) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof GgufError, e.stack);
      return e.code;
    }
    return "no error";
  };
  assert.equal(code(() => parseGguf(new FileBytes([new TextEncoder().encode("definitely not a model file")]))), "not-gguf");
  for (const n of [30, 1000, 100_000, 1_785_000, smol.length - 1]) {
    assert.equal(code(() => parseGguf(pieces(smol.subarray(0, n)))), "corrupt-file", `truncated at ${n}`);
  }
  const metadata = parseGguf(pieces(smol)).metadata;
  metadata.set("general.architecture", "mamba");
  assert.equal(code(() => configOf(metadata)), "unsupported-architecture");
  metadata.set("general.architecture", "llama");
  metadata.set("llama.attention.head_count_kv", 4); // 9 heads cannot share 4
  assert.equal(code(() => configOf(metadata)), "corrupt-file");
});

test("the wasi:nn host checks every input as the native host does, and serves the header", async () => {
  const header = new Uint8Array([1, 2, 3]);
  // A model stand-in: these checks all happen before anything reaches the GPU.
  let destroyed = 0;
  const model = { gpu: { buffer: () => ({ destroy: () => destroyed++ }) }, config: { nEmbd: 4 } };
  const nn = wasiNnImports(new Map([["/model/m.gguf", new Graph(model, header, 1234)]]));
  assert.throws(() => nn["wasi:nn/graph"].loadByName("/model/other.gguf"), (e) => e instanceof NnError && e.code() === "not-found");
  assert.throws(() => nn["wasi:nn/graph"].load([], "ggml", "gpu"), (e) => e instanceof NnError && e.code() === "unsupported-operation");
  assert.throws(() => nn["wasi:nn/graph"].load([], "onnx", "gpu"), (e) => e instanceof NnError && e.code() === "invalid-encoding");
  const ctx = nn["wasi:nn/graph"].loadByName("/model/m.gguf").initExecutionContext();
  const out = await ctx.compute([["header", new Tensor([0], "U8", new Uint8Array())]]);
  assert.deepEqual(out.map(([n]) => n), ["header", "file-size"]);
  assert.deepEqual(out[0][1].data(), header);
  assert.equal(new DataView(out[1][1].data().buffer).getBigUint64(0, true), 1234n);
  const i32s = (v) => new Uint8Array(Int32Array.from(v).buffer);
  const cases = [
    [[["tokens", new Tensor([2], "FP32", new Uint8Array(8))]], /must be I32/],
    [[["tokens", new Tensor([1, 2], "I32", i32s([1, 2]))]], /one dimension/],
    [[["tokens", new Tensor([3], "I32", i32s([1, 2]))]], /8 bytes of data for 3/],
    [[["tokens", new Tensor([1], "I32", i32s([-4]))]], /^input 'tokens': invalid option: negative token id -4$/],
    [[["tokens", new Tensor([1], "I32", i32s([1]))], ["position", new Tensor([2], "I32", i32s([0, 0]))]], /one value/],
    [[["weights", new Tensor([1], "U8", new Uint8Array(1))]], /unknown input/],
  ];
  for (const [inputs, message] of cases) {
    await assert.rejects(ctx.compute(inputs), (e) => e instanceof NnError && e.code() === "invalid-argument" && message.test(e.data()), String(message));
  }
  // Contexts are counted (the native host's limit) and a dropped one frees its KV cache.
  const graph = nn["wasi:nn/graph"].loadByName("/model/m.gguf");
  const open = [ctx];
  while (open.length < MAX_CONTEXTS) open.push(graph.initExecutionContext());
  assert.throws(() => graph.initExecutionContext(), (e) => e instanceof NnError && e.code() === "too-large");
  const dispose = Symbol.dispose || Symbol.for("dispose");
  open.pop()[dispose]();
  assert.equal(destroyed, 1, "the dropped context's buffers were destroyed");
  open.push(graph.initExecutionContext());
});

test("device auto: where the GPU path cannot serve (here: no WebGPU), the bytes already read go to the CPU path", async () => {
  const { loadWebGpuModel } = await import("../src/webgpu/model.js");
  const { loadModel } = await import("../src/index.js");
  const unused = () => assert.fail("the component is not instantiated on this path");
  const r = await loadWebGpuModel(MODELS.smollm2, { auto: true, componentUrl: new URL("file:///"), coreModule: unused, sandboxedWasi: unused });
  assert.match(r.reason, /no WebGPU/);
  const model = await loadModel(r.cpuSource);
  assert.equal(model.info().backend, "portable");
  assert.equal(model.info().fileSize, readFileSync(MODELS.smollm2).length);
  assert.equal(model.generate("The capital of France is", { maxTokens: 2 }).tokens.length, 2);
  model.dispose();
});
