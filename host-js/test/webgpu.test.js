// The WebGPU path in Debian's Chromium: the `runtime-nn` component in the worker, its wasi:nn
// served by this package's WebGPU host running the WGSL of gpu/src/shaders. Chromium here has
// no GPU, so WebGPU is SwiftShader (a CPU implementation, flagged as a fallback adapter): a
// correctness check, and slow (~2 s per token), so the cases are few and short. The greedy
// tokens, logits and constrained outputs of the same kernels are compared at length with
// llama.cpp on lavapipe natively (tests/gpu.rs).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { startServer } from "../../examples/browser/serve.mjs";
import { MODELS, requireModels } from "./support.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--enable-unsafe-webgpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];
const SCHEMA = {
  type: "object",
  properties: {
    category: { enum: ["incident", "billing", "inquiry"] },
    urgency: { type: "integer", minimum: 1, maximum: 5 },
    resolvedOffline: { type: "boolean" },
  },
  required: ["category", "urgency", "resolvedOffline"],
  additionalProperties: false,
};
/** Classify's probabilities on the GPU path stay this near the CPU path's (as in tests/gpu.rs). */
const PROBABILITY_TOLERANCE = 0.1;

requireModels();
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (.ci/run does)`);

let server, browser, page;
before(async () => {
  server = await startServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  page = await browser.newPage();
  await page.goto(`${server.url}heuristic.js`); // any same-origin page (WebGPU needs a secure context)
});
after(async () => {
  await browser?.close();
  server?.server.close();
});

test("WebGPU in Chromium is SwiftShader, a fallback adapter: device auto keeps the CPU path", async () => {
  const r = await page.evaluate(async (url) => {
    const adapter = await navigator.gpu.requestAdapter();
    const { loadModelInWorker } = await import("/host-js/src/worker-client.js");
    const m = await loadModelInWorker(url, { cache: false, device: "auto" });
    m.terminate();
    return { fallback: adapter.info.isFallbackAdapter, vendor: adapter.info.vendor, device: m.device, backend: m.loaded.info.backend };
  }, `/models/${basename(MODELS.smollm2)}`);
  assert.equal(r.fallback, true, JSON.stringify(r));
  assert.equal(r.device, "cpu");
  assert.equal(r.backend, "portable");
});

for (const [name, path] of Object.entries(MODELS)) {
  test(`loadModel(..., {device: "webgpu"}) gives the CPU path's answers: ${name}`, async () => {
    const r = await page.evaluate(async ({ url, schema }) => {
      const { loadModelInWorker } = await import("/host-js/src/worker-client.js");
      const run = async (device) => {
        const m = await loadModelInWorker(url, { cache: false, device });
        try {
          const out = { device: m.device, adapter: m.adapter, backend: m.loaded.info.backend };
          const t = performance.now();
          // A typed error first: the instance stays usable for everything after it.
          try {
            await m.classify("hello", []);
          } catch (e) {
            out.error = { name: e.name, code: e.code };
          }
          out.greedy = await m.generate("The capital of France is", { maxTokens: 3 });
          out.classify = [(await m.classify("I was charged twice this month.", ["incident", "billing", "inquiry"])).scores];
          out.ticket = await m.generateConstrained("Ticket JSON for: the site is down.\n", { jsonSchema: schema }, { maxTokens: 48 });
          out.ms = performance.now() - t;
          return out;
        } finally {
          m.terminate();
        }
      };
      return { gpu: await run("webgpu"), cpu: await run("cpu") };
    }, { url: `/models/${basename(path)}`, schema: SCHEMA });
    const { gpu, cpu } = r;
    assert.equal(gpu.device, "webgpu");
    assert.equal(gpu.backend, "wasi-nn", "the runtime-nn build, served by the WebGPU host");
    assert.match(gpu.adapter, /swiftshader/i);
    assert.equal(cpu.backend, "portable");
    // The first greedy token is the CPU's (later ones may part at near-ties: the CPU path
    // quantizes activations to 8 bits, the GPU keeps f32).
    assert.equal(gpu.greedy.tokens[0], cpu.greedy.tokens[0], `GPU ${JSON.stringify(gpu.greedy.text)}, CPU ${JSON.stringify(cpu.greedy.text)}`);
    let same = 0;
    while (same < cpu.greedy.tokens.length && gpu.greedy.tokens[same] === cpu.greedy.tokens[same]) same++;
    let worst = 0;
    gpu.classify.forEach((scores, i) => {
      const sum = Object.values(scores).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-6, `probabilities sum to ${sum}`);
      for (const label of Object.keys(cpu.classify[i])) worst = Math.max(worst, Math.abs(scores[label] - cpu.classify[i][label]));
    });
    assert.ok(worst < PROBABILITY_TOLERANCE, `GPU ${JSON.stringify(gpu.classify)}, CPU ${JSON.stringify(cpu.classify)}`);
    // The schema guarantee: a complete output (a truncated one is an error, not a result) that conforms.
    const v = JSON.parse(gpu.ticket.text);
    assert.deepEqual(Object.keys(v).sort(), ["category", "resolvedOffline", "urgency"], gpu.ticket.text);
    assert.ok(SCHEMA.properties.category.enum.includes(v.category), gpu.ticket.text);
    assert.ok(Number.isInteger(v.urgency) && v.urgency >= 1 && v.urgency <= 5, gpu.ticket.text);
    assert.equal(typeof v.resolvedOffline, "boolean", gpu.ticket.text);
    assert.equal(gpu.error.name, "InvalidLabelsError");
    assert.deepEqual(gpu.error, cpu.error);
    console.log(`${name} on ${gpu.adapter}: greedy ${same}/${cpu.greedy.tokens.length} tokens as the CPU's, classify within ${worst.toFixed(4)}, ticket ${gpu.ticket.text} (CPU ${cpu.ticket.text}); ${(gpu.ms / 1000).toFixed(0)} s on the GPU path, ${(cpu.ms / 1000).toFixed(1)} s on the CPU`);
  });
}
