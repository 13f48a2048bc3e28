// Benchmark runner: the edgeslm component in Node through the jco package (host-js).
import { loadModel } from "../../host-js/src/index.js";
import { args, now, peakRssMb } from "./common.mjs";
import { runWorkload } from "./workload.mjs";

const { model: path, spec } = args();
const t0 = now();
const model = await loadModel(path);
model.generate(spec.cold_prompt, { maxTokens: 1 });
const coldStartMs = now() - t0;
const work = await runWorkload(model, spec);
console.log(JSON.stringify({
  runtime: "edgeslm component (Node, jco)", threads: 1, load_ms: model.loadMs, cold_start_ms: coldStartMs, ...work, peak_rss_mb: peakRssMb(),
}));
