// The demo page: progressive enhancement from a heuristic to the model, throttled jobs.
import { loadModelInWorker } from "./host-js/src/worker-client.js";
import { JobQueue } from "./host-js/src/queue.js";
import { heuristicClassify } from "./heuristic.js";

const params = new URLSearchParams(location.search);
const MODEL_URL = new URL(`./models/${params.get("model") ?? "gemma-3-270m-q4_k_m.gguf"}`, location.href).href;
const LABELS = ["incident", "billing", "inquiry"];
const $ = (id) => document.getElementById(id);

const state = { phase: "starting", progress: 0, storage: null, from: null, message: null, error: null };
const queue = new JobQueue(); // battery and compute pressure, when the browser offers them
let model = null;
let examples = [];

function status(text, warn = false) {
  $("status").textContent = text;
  $("status").className = warn ? "warn" : "";
}

async function start() {
  if ("serviceWorker" in navigator) {
    await navigator.serviceWorker.register("./sw.js").catch((e) => console.warn("service worker:", e));
  }
  examples = await fetch("./support/few-shot.jsonl").then((r) => r.text())
    .then((t) => t.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)))
    .catch(() => []);
  state.phase = "downloading";
  status("Downloading the model in the background… the heuristic answers meanwhile.");
  const loaded = await loadModelInWorker(MODEL_URL, {
    onProgress(p) {
      if (p.message) {
        state.message = p.message;
        status(p.message, true);
      }
      if (p.total) {
        // One bar for the whole start: download, then reading the stored chunks back.
        const fraction = Math.max(state.progress, p.phase === "load" ? 1 : p.loaded / p.total);
        state.progress = fraction;
        $("progress").value = fraction;
        if (!p.message && p.phase !== "load") {
          const verb = p.phase === "cache" ? "Reading the stored model" : "Downloading the model";
          status(`${verb}: ${(p.loaded / 1e6).toFixed(0)} / ${(p.total / 1e6).toFixed(0)} MB`);
        }
      }
      if (p.phase === "load") status("Loading the model…");
    },
  });
  model = loaded;
  Object.assign(state, { phase: "ready", progress: 1, storage: loaded.loaded.storage, from: loaded.loaded.from });
  $("progress").value = 1;
  status(`Model ready (${loaded.loaded.info.name ?? loaded.loaded.info.architecture}, from ${loaded.loaded.from === "cache" ? "this device" : "the network"}; load ${loaded.loadMs.toFixed(0)} ms).`);
}

/** Classify with the model when it is ready, else with the heuristic. */
async function classify(text, { urgent = true } = {}) {
  if (!model) return { ...heuristicClassify(text, LABELS), text };
  return queue.add(async () => {
    const c = await model.classify(text, LABELS, { instruction: "Classify the customer support message.", examples });
    return { text, label: c.label, confidence: c.confidence, scores: c.scores, source: "model", ms: c.timings.totalMs };
  }, { urgent });
}

function show(r) {
  const li = document.createElement("li");
  const conf = r.confidence == null ? "" : ` ${(r.confidence * 100).toFixed(0)}%`;
  li.innerHTML = `<b></b>${conf} <span class="source ${r.source}">${r.source}</span> — <span></span>`;
  li.querySelector("b").textContent = r.label;
  li.querySelector("span:last-child").textContent = r.text;
  $("results").prepend(li);
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await classify($("text").value);
  show(r);
});

const ready = start().catch((e) => {
  state.phase = "failed";
  state.error = e.message;
  status(`The model could not be loaded (${e.message}); the heuristic keeps answering.`, true);
});

// For tests and the console.
window.edgeslmDemo = { state, ready, classify, queue, get model() { return model; } };
