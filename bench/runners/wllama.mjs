// Benchmark runner: wllama (llama.cpp compiled to wasm, single-thread build) in Debian's
// Chromium, headless, on a page served from 127.0.0.1. The seed job uses a GBNF grammar
// for the ticket schema (wllama takes GBNF, not JSON Schema).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { withPage } from "./browser.mjs";
import { args, now } from "./common.mjs";

const { model: path, spec } = args();
const here = dirname(fileURLToPath(import.meta.url));
await withPage({ "/wllama/": join(here, "../node_modules/@wllama/wllama/esm"), "/models/": dirname(path) }, async (page) => {
  const t0 = now();
  const result = await page.evaluate(async ({ spec, modelUrl }) => {
    const { Wllama } = await import("/wllama/index.js");
    const ms = (t) => performance.now() - t;
    const t0 = performance.now();
    const wllama = new Wllama({ default: "/wllama/wasm/wllama.wasm" }, { suppressNativeLog: true });
    let t = performance.now();
    await wllama.loadModelFromUrl(modelUrl, { n_threads: 1, n_ctx: 2048, n_batch: 512, n_gpu_layers: 0, useCache: false });
    const loadMs = ms(t);
    const complete = (prompt, extra) => wllama.createCompletion({ prompt, temperature: 0, temp: 0, top_k: 1, ...extra });
    await complete(spec.cold_prompt, { max_tokens: 1 });
    const coldStartMs = ms(t0);
    const prefill = {};
    for (const p of spec.prefill) {
      const r = await complete(p.text, { max_tokens: 1 });
      prefill[p.name] = { tokens: r.timings.prompt_n, ms: r.timings.prompt_ms };
    }
    const d = await complete(spec.decode.prompt, { max_tokens: spec.decode.tokens, ignore_eos: true });
    const decode = { tokens: d.timings.predicted_n, ms: d.timings.predicted_ms };
    const prompt = (m) => `${spec.seed.prefix}Message: ${m}\nTicket:`;
    const seedOpts = { max_tokens: spec.seed.max_tokens, grammar: spec.seed.gbnf };
    t = performance.now();
    await complete(prompt("Hello, I have a question."), seedOpts);
    const firstMs = ms(t);
    const latencies = [];
    const outputs = [];
    for (const m of spec.seed.messages) {
      t = performance.now();
      const r = await complete(prompt(m), seedOpts);
      latencies.push(ms(t));
      outputs.push(r.choices[0].text);
    }
    return { load_ms: loadMs, cold_start_ms: coldStartMs, prefill, decode, seed: { first_ms: firstMs, latencies_ms: latencies, outputs } };
  }, { spec, modelUrl: `/models/${path.split("/").pop()}` });
  result.cold_start_ms_including_browser = now() - t0;
  console.log(JSON.stringify({ runtime: "wllama (Chromium, wasm)", threads: 1, ...result, peak_rss_mb: null }));
});
