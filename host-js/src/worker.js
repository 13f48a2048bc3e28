// The inference Web Worker: the page stays responsive while the component loads and runs.
// Protocol: {id, op, args} in; {id, result} or {id, error} out; {id, progress} while loading.
import { loadModel } from "./index.js";
import { cachedModel } from "./weights-store.js";

let model = null;

const ops = {
  async load(id, source, { cache = true, componentUrl, kernels, device } = {}) {
    model?.dispose();
    model = null;
    const progress = (p) => postMessage({ id, progress: p });
    let input = source;
    let stored = { from: "given", storage: "none" };
    if (typeof source === "string" && cache) {
      // Stored chunks are streamed from IndexedDB into the component one at a time.
      stored = await cachedModel(new URL(source, self.location.href).href, { onProgress: progress });
      input = stored.source;
      if (stored.message) progress({ phase: "download", message: stored.message, storage: stored.storage });
    }
    model = await loadModel(input, { onProgress: progress, componentUrl, kernels, device });
    return { info: await model.info(), loadMs: model.loadMs, kernels: model.kernels, device: model.device, adapter: model.adapter, from: stored.from, storage: stored.storage, message: stored.message };
  },
  info: () => need().info(),
  tokenize: (_, text, o) => need().tokenize(text, o),
  detokenize: (_, ids) => need().detokenize(ids),
  generate: (_, prompt, o) => need().generate(prompt, o),
  generateConstrained: (_, prompt, c, o) => need().generateConstrained(prompt, c, o),
  classify: (_, text, labels, o) => need().classify(text, labels, o),
};

function need() {
  if (!model) throw Object.assign(new Error("no model is loaded"), { code: "no-model" });
  return model;
}

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (!ops[op]) throw new Error(`unknown operation ${op}`);
    postMessage({ id, result: await ops[op](id, ...(args ?? [])) });
  } catch (e) {
    postMessage({ id, error: { name: e.name, code: e.code, message: e.message ?? String(e), detail: e.detail } });
  }
};
