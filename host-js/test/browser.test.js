// End to end in Debian's Chromium (driven by playwright-core, never a downloaded browser):
// the demo page answers with the heuristic while the model downloads, shows progress,
// then answers with the model; a reload reads the weights from IndexedDB with no network
// request for them; the page keeps classifying offline; the weight cache resumes an
// interrupted download and falls back to memory when the quota is short; and the component
// in Chromium gives wasmtime's exact bytes on the determinism inputs for both real models.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { startServer } from "../../examples/browser/serve.mjs";
import { MODELS, determinismCases, requireModels, runCasesInWasmtime } from "./support.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];

requireModels();
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (.ci/run does)`);

let server, context, profile;
before(async () => {
  // Throttled so the download takes a few seconds: long enough to see the heuristic and the bar.
  server = await startServer({ port: 0, throttleMbps: 30 });
  profile = mkdtempSync(join(tmpdir(), "edgeslm-chromium-"));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
});
after(async () => {
  await context?.close();
  server?.server.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const modelRequests = () => server.stats.requests.filter((r) => r.path.startsWith("/models/")).length;

test("progressive enhancement: heuristic first, progress, model, cached reload, offline", async () => {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const smol = basename(MODELS.smollm2);
  await page.goto(`${server.url}?model=${smol}`);
  await page.waitForFunction(() => window.edgeslmDemo?.state.phase === "downloading");

  // While the weights download, the app's heuristic answers.
  const early = await page.evaluate(() => window.edgeslmDemo.classify("I was charged twice, please refund me."));
  assert.equal(early.source, "heuristic");
  assert.equal(early.label, "billing");

  // The progress bar advances.
  const seen = [];
  while ((await page.evaluate(() => window.edgeslmDemo.state.phase)) !== "ready") {
    const [v, phase] = await page.evaluate(() => [document.getElementById("progress").value, window.edgeslmDemo.state.phase]);
    assert.notEqual(phase, "failed", await page.evaluate(() => window.edgeslmDemo.state.error));
    seen.push(v);
    await page.waitForTimeout(150);
  }
  const distinct = [...new Set(seen.filter((v) => v > 0 && v < 1))];
  assert.ok(distinct.length >= 3, `progress values seen: ${seen.join(", ")}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], "progress never goes back");
  assert.equal(await page.evaluate(() => window.edgeslmDemo.state.storage), "indexeddb");

  // Now the model answers, through the form.
  await page.fill("#text", "The checkout page shows a 500 error and nobody can pay.");
  await page.click("#classify");
  await page.waitForSelector("#results li .source.model");
  const answered = await page.evaluate(() => window.edgeslmDemo.classify("Do you offer a discount for nonprofits?"));
  assert.equal(answered.source, "model");
  const sum = Object.values(answered.scores).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9);

  // A reload: weights come from IndexedDB, not the network.
  const before = modelRequests();
  const seenByBrowser = [];
  const onRequest = (r) => r.url().includes("/models/") && seenByBrowser.push(r.url());
  context.on("request", onRequest);
  await page.reload();
  await page.waitForFunction(() => ["ready", "failed"].includes(window.edgeslmDemo?.state.phase), null, { timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.edgeslmDemo.state.from), "cache");
  assert.equal(modelRequests() - before, 0, "no weight request reached the server");
  assert.deepEqual(seenByBrowser, [], "no weight request left the browser");
  assert.equal((await page.evaluate(() => window.edgeslmDemo.classify("The app crashes on start."))).source, "model");

  // Offline: the service worker serves the page and component, IndexedDB the weights.
  await context.setOffline(true);
  try {
    await page.reload();
    await page.waitForFunction(() => ["ready", "failed"].includes(window.edgeslmDemo?.state.phase), null, { timeout: 60_000 });
    assert.equal(await page.evaluate(() => window.edgeslmDemo.state.phase), "ready", await page.evaluate(() => window.edgeslmDemo.state.error));
    const offline = await page.evaluate(() => window.edgeslmDemo.classify("My invoice shows the wrong VAT number."));
    assert.equal(offline.source, "model");
  } finally {
    await context.setOffline(false);
    context.off("request", onRequest);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test("the weight cache resumes an interrupted download and falls back to memory when quota is short", async () => {
  const page = await context.newPage();
  await page.goto(`${server.url}heuristic.js`);
  const url = `${server.url}models/${basename(MODELS.smollm2)}`;
  const size = statSync(MODELS.smollm2).size;
  const chunk = 16 * 1024 * 1024;
  const rangesBefore = server.stats.requests.filter((r) => r.range).length;
  const result = await page.evaluate(async ({ url, chunk }) => {
    const store = await import("/host-js/src/weights-store.js");
    await store.deleteStoredModel(url);
    // A connection that dies after two chunks.
    let served = 0;
    const flaky = (u, init) => {
      if (init?.headers?.range && ++served > 2) return Promise.reject(new TypeError("network connection lost"));
      return fetch(u, init);
    };
    let interrupted = null;
    try {
      await store.cachedModelBytes(url, { chunkBytes: chunk, fetchImpl: flaky });
    } catch (e) {
      interrupted = e.message;
    }
    const partial = await store.storedModel(url);
    const resumed = await store.cachedModelBytes(url, { chunkBytes: chunk });
    const again = await store.cachedModelBytes(url, { chunkBytes: chunk });
    // Too little quota: a clear message and an in-memory download.
    const tiny = { estimate: async () => ({ quota: 50e6, usage: 10e6 }), persist: async () => false };
    await store.deleteStoredModel(url);
    const memory = await store.cachedModelBytes(url, { chunkBytes: chunk, storage: tiny });
    const sum = (b) => b.reduce((a, x, i) => (a + x * (i % 251 + 1)) % 1000000007, 0);
    return {
      interrupted, storedChunks: partial?.done.length, resumedFrom: resumed.from, resumedSize: resumed.bytes.byteLength,
      againFrom: again.from, same: sum(resumed.bytes.subarray(0, 1 << 20)) === sum(again.bytes.subarray(0, 1 << 20)),
      memoryStorage: memory.storage, memoryMessage: memory.message, memorySize: memory.bytes.byteLength,
      storedAfterMemory: await store.storedModel(url),
    };
  }, { url, chunk });
  assert.equal(result.interrupted, "network connection lost");
  assert.equal(result.storedChunks, 2, "the two chunks that arrived were kept");
  assert.equal(result.resumedFrom, "partial");
  assert.equal(result.resumedSize, size);
  assert.equal(result.againFrom, "cache");
  assert.ok(result.same);
  const ranges = server.stats.requests.filter((r) => r.range).length - rangesBefore;
  const chunks = Math.ceil(size / chunk);
  assert.equal(ranges, 2 + (chunks - 2), "the resumed download fetched only the missing chunks");
  assert.equal(result.memoryStorage, "memory");
  assert.match(result.memoryMessage, /not enough storage .* kept in memory for this visit only/);
  assert.equal(result.memorySize, size);
  assert.equal(result.storedAfterMemory, undefined);
  await page.close();
});

test("Chromium runs the relaxed-simd build and gives wasmtime's exact bytes on the determinism inputs, both models", async () => {
  const cases = determinismCases();
  const page = await context.newPage();
  await page.goto(`${server.url}heuristic.js`); // any same-origin page
  for (const path of Object.values(MODELS)) {
    const expected = runCasesInWasmtime(path, cases);
    const result = await page.evaluate(async ({ url, cases, expected }) => {
      const { loadModelInWorker } = await import("/host-js/src/worker-client.js");
      const { runCases, firstDifference } = await import("/host-js/test/cases.js");
      const model = await loadModelInWorker(url, { cache: false });
      try {
        const got = await runCases(model, cases);
        return { difference: firstDifference(got, expected), n: got.generate.length + got.constrained.length + got.classify.length, kernels: model.kernels };
      } finally {
        model.terminate();
      }
    }, { url: `/models/${basename(path)}`, cases, expected });
    assert.equal(result.difference, null, basename(path));
    assert.equal(result.n, 24);
    // Chromium's V8 has relaxed-simd: "auto" picks that build.
    assert.equal(result.kernels, "relaxed-simd");
  }
  await page.close();
});
