// Benchmark runner: the edgeslm component in Debian's Chromium, in the package's Web Worker.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { withPage } from "./browser.mjs";
import { args } from "./common.mjs";

const { model: path, spec } = args();
const here = dirname(fileURLToPath(import.meta.url));
const result = await withPage(
  { "/host-js/": join(here, "../../host-js"), "/bench/": join(here), "/models/": dirname(path) },
  (page) => page.evaluate(async ({ spec, modelUrl }) => {
    const { loadModelInWorker } = await import("/host-js/src/worker-client.js");
    const { runWorkload } = await import("/bench/workload.mjs");
    const t0 = performance.now();
    const model = await loadModelInWorker(modelUrl, { cache: false });
    await model.generate(spec.cold_prompt, { maxTokens: 1 });
    const coldStartMs = performance.now() - t0;
    const work = await runWorkload(model, spec);
    model.terminate();
    return { load_ms: model.loadMs, cold_start_ms: coldStartMs, ...work };
  }, { spec, modelUrl: `/models/${path.split("/").pop()}` }),
);
console.log(JSON.stringify({ runtime: "edgeslm component (Chromium, jco)", threads: 1, ...result, peak_rss_mb: null }));
