// The package API on the real models: every source kind, progress, typed errors that
// leave the instance usable, constrained output with its parsed value, and the Node CLI.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  ContextOverflowError, EdgeSlmError, InvalidConstraintError, InvalidLabelsError, InvalidOptionError,
  ModelLoadError, OutputTruncatedError, hasRelaxedSimd, loadModel,
} from "../src/index.js";
import { MODELS, repo, requireModels, rustCli } from "./support.js";

requireModels();
const smol = readFileSync(MODELS.smollm2);
const nodeCli = join(repo, "host-js/bin/edgeslm.js");

test("loads from a path, file URL, Uint8Array, ArrayBuffer, Blob and Response, reporting progress", async () => {
  const sources = {
    path: MODELS.smollm2,
    url: pathToFileURL(MODELS.smollm2),
    bytes: new Uint8Array(smol),
    buffer: smol.buffer.slice(smol.byteOffset, smol.byteOffset + smol.byteLength),
    blob: new Blob([smol]),
    response: new Response(new Blob([smol]).stream(), { headers: { "content-length": String(smol.byteLength) } }),
    "response of unknown length": new Response(new Blob([smol]).stream()),
  };
  let reference;
  for (const [kind, source] of Object.entries(sources)) {
    const seen = [];
    const model = await loadModel(source, { onProgress: (p) => seen.push(p) });
    const reads = seen.filter((p) => p.phase === "read");
    assert.ok(reads.length >= 1, kind);
    assert.equal(reads.at(-1).loaded, smol.byteLength, kind);
    for (let i = 1; i < reads.length; i++) assert.ok(reads[i].loaded >= reads[i - 1].loaded, `${kind}: progress goes forward`);
    assert.deepEqual(seen.filter((p) => p.phase === "load").map((p) => p.loaded), [0, smol.byteLength], kind);
    const info = model.info();
    assert.equal(info.architecture, "llama");
    assert.equal(info.fileSize, smol.byteLength);
    assert.equal(info.backend, "portable");
    const ids = model.tokenize("Hello world");
    reference ??= ids;
    assert.deepEqual(ids, reference, kind);
    assert.equal(model.detokenize(ids), "Hello world");
  }
});

test("a model streamed from disk is not held twice: peak RSS stays under 2x the file", () => {
  // Pieces go through the component's model-loader; the whole file never sits in JS memory.
  // (VmHWM, not getrusage's maxRSS, which Linux carries over from the forking parent.)
  const script = `import { loadModel } from ${JSON.stringify(join(repo, "host-js/src/index.js"))};
    const m = await loadModel(${JSON.stringify(MODELS.gemma)});
    m.generate("Hello", { maxTokens: 2 });
    const hwm = (await import("node:fs")).readFileSync("/proc/self/status", "utf8").match(/VmHWM:\\s+(\\d+) kB/)[1];
    console.log(Number(hwm) * 1024);`;
  const rss = Number(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }).trim());
  const file = statSync(MODELS.gemma).size;
  assert.ok(rss < 2 * file, `peak RSS ${(rss / 1e6).toFixed(0)} MB for a ${(file / 1e6).toFixed(0)} MB file`);
});

test("the model-loader refuses more or fewer bytes than announced", async () => {
  await assert.rejects(
    loadModel(new Response(new Blob([smol]).stream(), { headers: { "content-length": String(smol.byteLength - 10) } })),
    (e) => e instanceof InvalidOptionError && /more than the announced/.test(e.message),
  );
  await assert.rejects(
    loadModel(new Response(new Blob([smol.subarray(0, 1000)]).stream(), { headers: { "content-length": "2000" } })),
    (e) => e instanceof InvalidOptionError && /1000 of the announced 2000 bytes/.test(e.message),
  );
});

test("bad models give ModelLoadError with the WIT code", async () => {
  await assert.rejects(loadModel(join(repo, "models/no-such.gguf")), (e) => e instanceof ModelLoadError && e.code === "file-not-found");
  await assert.rejects(loadModel(new TextEncoder().encode("definitely not a model file")), (e) => e instanceof ModelLoadError && e.code === "not-gguf");
  await assert.rejects(loadModel(smol.subarray(0, 100_000)), (e) => e instanceof ModelLoadError && e.code === "corrupt-file" && /truncated|corrupt/.test(e.message));
});

test("typed errors leave the instance usable", async () => {
  const model = await loadModel(MODELS.smollm2);
  const answer = () => model.generate("The capital of France is", { maxTokens: 4 }).text;
  const before = answer();
  const cases = [
    [() => model.classify("text", ["only-one"]), InvalidLabelsError, "invalid-labels"],
    [() => model.classify("text", ["a", "a"]), InvalidLabelsError, "invalid-labels"],
    [() => model.generateConstrained("x", { jsonSchema: "{not json" }), InvalidConstraintError, "invalid-schema"],
    [() => model.generateConstrained("x", { jsonSchema: { type: "array", items: { type: "string" }, uniqueItems: true } }), InvalidConstraintError, "unsupported-schema"],
    [() => model.generateConstrained("x", { regex: "(" }), InvalidConstraintError, "invalid-regex"],
    [() => model.generateConstrained("x", { grammar: "start: nothing_defined" }), InvalidConstraintError, "invalid-grammar"],
    [() => model.generateConstrained("Ticket:", { jsonSchema: { type: "object", properties: { a: { type: "string", minLength: 200 } }, required: ["a"] } }, { maxTokens: 5 }), OutputTruncatedError, "output-truncated"],
    [() => model.generate("", {}), InvalidOptionError, "invalid-option"],
    [() => model.generate("hello ".repeat(9000), { maxTokens: 8 }), ContextOverflowError, "context-overflow"],
  ];
  for (const [call, Class, code] of cases) {
    assert.throws(call, (e) => e instanceof Class && e instanceof EdgeSlmError && e.code === code && e.message.length > 0, code);
    assert.equal(answer(), before, `still answers after ${code}`);
  }
  assert.throws(() => model.generateConstrained("x", { regex: "a", grammar: "b" }), TypeError);
});

test("generateConstrained returns the text and its parsed value", async () => {
  const model = await loadModel(MODELS.smollm2);
  const schema = JSON.parse(readFileSync(join(repo, "examples/support/ticket.schema.json"), "utf8"));
  const prefix = readFileSync(join(repo, "examples/support/seed-prefix.txt"), "utf8");
  const g = model.generateConstrained(`${prefix}\n\nMessage: The website is down for everyone.\nTicket:`, { jsonSchema: schema }, { maxTokens: 48 });
  assert.deepEqual(g.value, JSON.parse(g.text));
  assert.deepEqual(Object.keys(g.value).sort(), ["category", "resolvedOffline", "urgency"]);
  assert.ok(Number.isInteger(g.value.urgency) && g.value.urgency >= 1 && g.value.urgency <= 5);
  const r = model.generateConstrained("My phone number is ", { regex: "[0-9]{3}-[0-9]{4}" }, { maxTokens: 16 });
  assert.match(r.text, /^[0-9]{3}-[0-9]{4}$/);
  assert.equal(r.value, undefined);
});

test("classify gives a probability for every label, summing to 1", async () => {
  const model = await loadModel(MODELS.gemma);
  const c = model.classify("I was charged twice this month.", ["incident", "billing", "inquiry"], { instruction: "Classify the support message." });
  assert.deepEqual(Object.keys(c.scores), ["incident", "billing", "inquiry"]);
  const sum = Object.values(c.scores).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9, `sum ${sum}`);
  assert.equal(c.confidence, Math.max(...Object.values(c.scores)));
  assert.equal(c.scores[c.label], c.confidence);
});

const withoutTimings = (json) => {
  const v = JSON.parse(json);
  delete v.timings;
  return v;
};

test("the Node CLI prints what the Rust CLI prints (timings aside)", () => {
  const args = [
    ["classify", "--model", MODELS.smollm2, "--labels", "incident,billing,inquiry", "--examples", join(repo, "examples/support/few-shot.jsonl"), "The app crashes on start"],
    ["generate", "--model", MODELS.smollm2, "--json", "--max-tokens", "8", "The capital of France is"],
    ["generate", "--model", MODELS.smollm2, "--json", "--schema", join(repo, "examples/support/ticket.schema.json"), "--max-tokens", "48", "Ticket for 'refund please':"],
  ];
  for (const a of args) {
    const node = execFileSync(process.execPath, [nodeCli, ...a, "--quiet"], { encoding: "utf8" });
    const rust = execFileSync(rustCli, [...a, "--quiet", "--backend", "portable"], { encoding: "utf8" });
    assert.deepEqual(withoutTimings(node), withoutTimings(rust), a[0]);
    assert.deepEqual(Object.keys(JSON.parse(node).timings), Object.keys(JSON.parse(rust).timings));
  }
  const tokenize = (cli, pre) => execFileSync(cli, [...pre, "tokenize", "--model", MODELS.smollm2, "--quiet", "<|im_start|>user hi", "--special"], { encoding: "utf8" });
  assert.equal(tokenize(process.execPath, [nodeCli]), tokenize(rustCli, []));
  const bad = spawnSync(process.execPath, [nodeCli, "classify", "--model", MODELS.smollm2, "--labels", "a", "--quiet", "x"], { encoding: "utf8" });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^edgeslm: error: invalid labels: /);
});

test("kernels: auto picks relaxed-simd only where the engine has it; a wrong choice is a TypeError", async () => {
  const auto = await loadModel(MODELS.smollm2);
  assert.equal(auto.kernels, hasRelaxedSimd() ? "relaxed-simd" : "simd128");
  auto.dispose();
  const plain = await loadModel(MODELS.smollm2, { kernels: "simd128" });
  assert.equal(plain.kernels, "simd128");
  plain.dispose();
  await assert.rejects(loadModel(MODELS.smollm2, { kernels: "avx2" }), (e) => e instanceof TypeError && /kernels must be/.test(e.message));
  if (!hasRelaxedSimd()) {
    // Node 20 (no relaxed-simd without --experimental-wasm-relaxed-simd).
    await assert.rejects(loadModel(MODELS.smollm2, { kernels: "relaxed-simd" }), (e) => e instanceof TypeError && /"relaxed-simd" was asked for/.test(e.message));
  }
});

test("device: webgpu without WebGPU (Node) is a ModelLoadError; auto falls back to the CPU; bad files fail as on the CPU path", async () => {
  await assert.rejects(loadModel(smol, { device: "webgpu" }), (e) => e instanceof ModelLoadError && /WebGPU/.test(e.message));
  await assert.rejects(loadModel(new TextEncoder().encode("definitely not a model file"), { device: "webgpu" }), (e) => e instanceof ModelLoadError && e.code === "not-gguf");
  await assert.rejects(loadModel(smol.subarray(0, 100_000), { device: "webgpu" }), (e) => e instanceof ModelLoadError && e.code === "corrupt-file");
  await assert.rejects(loadModel(smol, { device: "gpu" }), (e) => e instanceof TypeError && /device must be/.test(e.message));
  const auto = await loadModel(smol, { device: "auto" });
  assert.equal(auto.device, "cpu");
  assert.equal(auto.info().backend, "portable");
  auto.dispose();
});
