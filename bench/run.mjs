// The side-by-side benchmark: the same workloads on the same model files in every runtime,
// each runner a fresh process, repeated; medians with min–max. Run it with `cargo xtask bench`
// (which builds the runners and installs the peers first).
//   node bench/run.mjs [--runs N] [--models gemma,smollm2] [--only component,native,node,chromium,llamacpp,wllama]
//   node bench/run.mjs --report-only     # rewrite the report and chart from benchmark.json
//   node bench/run.mjs --only gpu,wasinn,llamacpp --merge   # re-measure some rows, keep the others
//                                        # from benchmark.json (marked, with their run's commit)
// Writes bench/results/benchmark.md, benchmark.json and benchmark.png.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../host-js/src/index.js";
import { writeChart } from "./chart.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const RUNS = Number(opt("--runs", "3"));
const KEPT_NOTE = "rows marked †";
const MODELS = {
  gemma: { file: "gemma-3-270m-q4_k_m.gguf", name: "Gemma 3 270M Q4_K_M" },
  smollm2: { file: "SmolLM2-135M-Instruct.Q4_1.gguf", name: "SmolLM2-135M-Instruct Q4_1" },
};
// --shapes: real models' shapes with random Q4_K_M weights (`write-tiny-models --shape`, in
// target/shapes/), on a short workload, into bench/results/shapes.md: what the 0.6B-3.8B
// models users bring cost in each runtime. Random weights: speeds and memory are real, the
// outputs mean nothing.
const SHAPES = {
  "qwen3-0.6b": { file: "qwen3-0.6b-random-q4_k_m.gguf", name: "Qwen3-0.6B shape (qwen3)" },
  "llama-3.2-1b": { file: "llama-3.2-1b-random-q4_k_m.gguf", name: "Llama-3.2-1B shape (llama)" },
  "qwen2.5-1.5b": { file: "qwen2.5-1.5b-random-q4_k_m.gguf", name: "Qwen2.5-1.5B shape (qwen2)" },
  "phi-3.5-mini": { file: "phi-3.5-mini-random-q4_k_m.gguf", name: "Phi-3.5-mini shape (phi3, 3.8B)" },
};
const shapes = argv.includes("--shapes");
const chosenModels = opt("--models", shapes ? Object.keys(SHAPES).join(",") : "gemma,smollm2").split(",");
const node = process.execPath;
const RUNNERS = [
  { id: "component", label: "edgeslm component, wasmtime", threads: 1, cmd: [join(repo, "target/release/edgeslm-bench")] },
  { id: "wasinn", label: "edgeslm component, wasmtime + wasi-nn", threads: 1, cmd: [join(repo, "target/release/edgeslm-bench"), "--backend", "wasi-nn", "--threads", "1"] },
  { id: "wasinn", label: "edgeslm component, wasmtime + wasi-nn", threads: 2, cmd: [join(repo, "target/release/edgeslm-bench"), "--backend", "wasi-nn", "--threads", "2"] },
  // Only when asked (`--only gpu,...`): the forward pass on the GPU; on a machine without one,
  // wgpu finds lavapipe (a CPU Vulkan driver), whose figures are not GPU speeds.
  { id: "gpu", label: "edgeslm component, wasmtime + wasi-nn on the GPU (wgpu)", threads: 1, cmd: [join(repo, "target/release/edgeslm-bench"), "--backend", "wasi-nn", "--threads", "1", "--device", "gpu"] },
  { id: "native", label: "edgeslm native engine", threads: 1, cmd: [join(repo, "target/release/examples/bench_runner"), "--threads", "1"] },
  { id: "native", label: "edgeslm native engine", threads: 2, cmd: [join(repo, "target/release/examples/bench_runner"), "--threads", "2"] },
  { id: "node", label: "edgeslm component, Node (jco)", threads: 1, cmd: [node, join(repo, "bench/runners/node.mjs")] },
  { id: "chromium", label: "edgeslm component, Chromium (jco)", threads: 1, cmd: [node, join(repo, "bench/runners/chromium.mjs")] },
  { id: "llamacpp", label: "llama.cpp native", threads: 1, reference: true, cmd: [node, join(repo, "bench/runners/llamacpp.mjs"), "--threads", "1"] },
  { id: "llamacpp", label: "llama.cpp native", threads: 2, cmd: [node, join(repo, "bench/runners/llamacpp.mjs"), "--threads", "2"] },
  { id: "wllama", label: "wllama, Chromium (wasm)", threads: 1, cmd: [node, join(repo, "bench/runners/wllama.mjs")] },
];
const only = opt("--only", shapes ? "component,wasinn,llamacpp" : null)?.split(",");
const runners = RUNNERS.filter((r) => (only ? only.includes(r.id) : r.id !== "gpu"));

// The ticket schema as GBNF, for wllama (which takes grammars, not schemas): same language.
const TICKET_GBNF = `root ::= "{" ws "\\"category\\"" ws ":" ws category ws "," ws "\\"urgency\\"" ws ":" ws [1-5] ws "," ws "\\"resolvedOffline\\"" ws ":" ws boolean ws "}"
category ::= "\\"incident\\"" | "\\"billing\\"" | "\\"inquiry\\""
boolean ::= "true" | "false"
ws ::= [ ]?`;

const PARAGRAPH = readFileSync(join(repo, "README.md"), "utf8").replace(/```[\s\S]*?```/g, " ").replace(/[|#`*<>\[\]()]/g, " ").replace(/\s+/g, " ");

/** Texts of exactly 64 and 512 tokens (BOS included) for this model, from different offsets. */
async function spec(modelPath) {
  const model = await loadModel(modelPath);
  const bos = model.tokenize("x", { addSpecial: true }).length - model.tokenize("x").length;
  const ids = model.tokenize(PARAGRAPH);
  const cut = (from, n) => {
    for (let k = n - bos; k > 0; k--) {
      const text = model.detokenize(ids.slice(from, from + k));
      if (model.tokenize(text).length + bos === n) return text;
    }
    throw new Error(`cannot cut ${n} tokens`);
  };
  const messages = readFileSync(join(repo, "examples/support/messages.jsonl"), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l).text);
  const s = {
    cold_prompt: "Hello",
    prefill: [{ name: "64", text: cut(0, 64) }, { name: "512", text: cut(700, 512) }],
    decode: { prompt: "Once upon a time, in a village by the sea,", tokens: 128 },
    seed: {
      prefix: readFileSync(join(repo, "examples/support/seed-prefix.txt"), "utf8"),
      messages,
      schema: readFileSync(join(repo, "examples/support/ticket.schema.json"), "utf8"),
      gbnf: TICKET_GBNF,
      max_tokens: 48,
    },
  };
  model.dispose();
  if (shapes) {
    // The short workload: 64-token prefill, 16 decoded tokens, the seed job's first call and
    // two messages (a 3.8B model runs ~0.5 tok/s in one wasm thread here).
    s.prefill = s.prefill.slice(0, 1);
    s.decode.tokens = 16;
    s.seed.messages = s.seed.messages.slice(0, 2);
  }
  return s;
}

function validTicket(text) {
  if (typeof text !== "string") return false;
  try {
    const v = JSON.parse(text);
    const keys = Object.keys(v).sort().join(",");
    return keys === "category,resolvedOffline,urgency" && ["incident", "billing", "inquiry"].includes(v.category) &&
      Number.isInteger(v.urgency) && v.urgency >= 1 && v.urgency <= 5 && typeof v.resolvedOffline === "boolean";
  } catch {
    return false;
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.round((s.length - 1) * p)];
};
const median = (xs) => pct(xs, 0.5);

function summarize(runs) {
  const metric = (f) => {
    const v = runs.map(f).filter((x) => x != null && Number.isFinite(x));
    return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v) } : null;
  };
  return {
    prefill64: metric((r) => (r.prefill["64"].tokens / r.prefill["64"].ms) * 1000),
    prefill512: metric((r) => (r.prefill["512"] ? (r.prefill["512"].tokens / r.prefill["512"].ms) * 1000 : null)),
    decode: metric((r) => (r.decode.tokens / r.decode.ms) * 1000),
    seedP50: metric((r) => pct(r.seed.latencies_ms, 0.5)),
    seedP99: metric((r) => pct(r.seed.latencies_ms, 0.99)),
    seedFirst: metric((r) => r.seed.first_ms),
    valid: metric((r) => r.seed.outputs.filter(validTicket).length),
    total: runs[0].seed.outputs.length,
    load: metric((r) => r.load_ms),
    cold: metric((r) => r.cold_start_ms),
    rss: metric((r) => r.peak_rss_mb),
    prefillTokens: (runs[0].prefill["512"] ?? runs[0].prefill["64"]).tokens,
    decodeTokens: runs[0].decode.tokens,
    sample: runs[0].seed.outputs.slice(0, 3),
  };
}

const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  loadBefore: loadavg()[0],
  date: new Date().toISOString(),
  commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repo, encoding: "utf8" }).trim(),
  componentBytes: statSync(join(repo, "target/release/edgeslm-component.wasm")).size,
};

// --report-only: rewrite the report and chart from the last benchmark.json.
if (argv.includes("--report-only")) {
  const last = JSON.parse(readFileSync(join(repo, "bench/results/benchmark.json"), "utf8"));
  const md = report(last.machine, last.results, last.runs, last.notes);
  writeFileSync(join(repo, "bench/results/benchmark.md"), md);
  await writeChart(last.results, join(repo, "bench/results/benchmark.png"));
  process.exit(0);
}

const results = {};
const dir = mkdtempSync(join(tmpdir(), "edgeslm-bench-"));
for (const key of chosenModels) {
  const m = shapes ? SHAPES[key] : MODELS[key];
  const path = shapes ? join(repo, "target/shapes", m.file) : join(repo, "models", m.file);
  const specPath = join(dir, `${key}.json`);
  writeFileSync(specPath, JSON.stringify(await spec(path)));
  results[key] = { model: m, fileMb: statSync(path).size / 1e6, rows: [] };
  for (const r of runners) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`bench: ${m.name} · ${r.label} (${r.threads}t) run ${i + 1}/${RUNS}\n`);
      try {
        const out = execFileSync(r.cmd[0], [...r.cmd.slice(1), "--model", path, "--spec", specPath], {
          encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "pipe"], timeout: 15 * 60 * 1000,
        });
        runs.push(JSON.parse(out.trim().split("\n").pop()));
      } catch (e) {
        process.stderr.write(`bench:   failed: ${(e.stderr || e.message).toString().slice(-400)}\n`);
      }
    }
    // The GPU row names the adapter it ran on (lavapipe is not a GPU).
    const label = r.id === "gpu" && runs[0]?.device ? `${r.label}: ${runs[0].device.replace(/^gpu: /, "")}` : r.label;
    results[key].rows.push({ ...r, label, cmd: undefined, summary: runs.length ? summarize(runs) : null, runs: runs.length });
  }
}
machine.loadAfter = loadavg()[0];
if (shapes) {
  writeFileSync(join(repo, "bench/results/shapes.json"), JSON.stringify({ machine, runs: RUNS, results }, null, 1));
  const md = shapeReport(machine, results, RUNS);
  writeFileSync(join(repo, "bench/results/shapes.md"), md);
  process.stdout.write(md);
  process.exit(0);
}
const measured = { commit: machine.commit, date: machine.date };
for (const m of Object.values(results)) for (const r of m.rows) r.measured = measured;

// --merge: the rows not re-measured now come from the last benchmark.json, in runner order.
let notes = [];
if (argv.includes("--merge")) {
  const last = JSON.parse(readFileSync(join(repo, "bench/results/benchmark.json"), "utf8"));
  const order = (r) => RUNNERS.findIndex((x) => x.id === r.id && x.threads === r.threads);
  for (const [key, old] of Object.entries(last.results)) {
    if (!results[key]) {
      results[key] = old;
      continue;
    }
    const fresh = results[key].rows;
    const kept = old.rows
      .filter((o) => !fresh.some((r) => r.id === o.id && r.threads === o.threads))
      .map((o) => ({ ...o, measured: o.measured ?? { commit: last.machine.commit, date: last.machine.date } }));
    results[key].rows = [...fresh, ...kept].sort((a, b) => order(a) - order(b));
  }
  // The note on kept rows is written by `report` from the rows themselves.
  notes = [...new Set((last.notes ?? []).filter((n) => !n.startsWith(KEPT_NOTE)))];
}

writeFileSync(join(repo, "bench/results/benchmark.json"), JSON.stringify({ machine, runs: RUNS, results, notes }, null, 1));
const md = report(machine, results, RUNS, notes);
writeFileSync(join(repo, "bench/results/benchmark.md"), md);
await writeChart(results, join(repo, "bench/results/benchmark.png"));
process.stdout.write(md);

function report(machine, results, runs, notes = []) {
  const f = (v, d = 0) => (v == null ? "–" : v.toFixed(d));
  const cell = (s, d = 0) => (s ? `${f(s.median, d)} <sub>${f(s.min, d)}–${f(s.max, d)}</sub>` : "–");
  const ratio = (s, ref, inverse = false) => (s && ref ? ` (${(inverse ? ref.median / s.median : s.median / ref.median).toFixed(2)}×)` : "");
  // Rows kept by --merge from another run (even of the same commit) are marked.
  const earlierRun = (r) => r.measured && r.measured.date !== machine.date;
  const earlier = [...new Set(Object.values(results).flatMap((m) => m.rows).filter(earlierRun)
    .map((r) => `commit ${r.measured.commit}, ${r.measured.date.slice(0, 16).replace("T", " ")} UTC`))];
  if (earlier.length) {
    notes = [`${KEPT_NOTE} were measured in an earlier run (${earlier.join("; ")}) and kept by \`--merge\`; every ratio is to the llama.cpp row shown (itself kept from an earlier run where it is marked).`, ...notes];
  }
  let out = `# edgeslm benchmark\n\n`;
  out += `\`cargo xtask bench\` on ${machine.cpu}, ${machine.cores} cores; load average ${machine.loadBefore.toFixed(2)} before, ${machine.loadAfter.toFixed(2)} after; ${machine.date.slice(0, 10)}, commit ${machine.commit}. `;
  out += `Each runner is a fresh process, run ${runs}× after its own warm-up call; cells are medians with min–max below. `;
  out += `Ratios in parentheses are to **llama.cpp native, 1 thread, measured in the same run** (higher is better for speeds; for latencies the ratio is llama.cpp's over this runtime's, so higher is better too). `;
  out += `Component size: ${(machine.componentBytes / 1048576).toFixed(2)} MiB.\n\n`;
  out += `Workloads: prefill of 64 and 512 tokens (BOS included); decode of 128 greedy tokens; the seed job — ticket JSON (category ∈ {incident, billing, inquiry}, urgency 1..5, resolvedOffline) after a ~150-token few-shot prefix for each of 40 support messages, p50/p99 per message with the prefix already evaluated (each runtime's own prefix reuse), and how many outputs validate against the schema; model load; cold start (runtime start + load + first token); peak RSS of the runner process.\n\n`;
  for (const { model, fileMb, rows } of Object.values(results)) {
    const ref = rows.find((r) => r.reference)?.summary;
    out += `## ${model.name} (${fileMb.toFixed(0)} MB)\n\n`;
    out += `| runtime | threads | prefill 64 tok/s | prefill 512 tok/s | decode tok/s | seed p50 ms | seed p99 ms | valid | load ms | cold start ms | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n`;
    for (const r of rows) {
      const s = r.summary;
      const label = r.label + (earlierRun(r) ? " †" : "");
      if (!s) {
        out += `| ${label} | ${r.threads} | failed |||||||||\n`;
        continue;
      }
      out += `| ${label} | ${r.threads} | ${cell(s.prefill64)}${ratio(s.prefill64, ref?.prefill64)} | ${cell(s.prefill512)}${ratio(s.prefill512, ref?.prefill512)} | ${cell(s.decode, 1)}${ratio(s.decode, ref?.decode)} | ${cell(s.seedP50)}${ratio(s.seedP50, ref?.seedP50, true)} | ${cell(s.seedP99)}${ratio(s.seedP99, ref?.seedP99, true)} | ${f(s.valid?.median)}/${s.total} | ${cell(s.load)} | ${cell(s.cold)} | ${cell(s.rss)}${s.rss ? ` (${(s.rss.median / fileMb).toFixed(2)}× file)` : ""} |\n`;
    }
    out += `\nFirst seed-job call (prefix not yet evaluated; edgeslm native includes building the constraint engine's token trie): `;
    out += rows.filter((r) => r.summary).map((r) => `${r.label} ${r.threads}t ${f(r.summary.seedFirst?.median)} ms`).join("; ") + ".\n\n";
    out += `Sample seed outputs: ` + rows.filter((r) => r.summary).map((r) => `${r.label} ${r.threads}t: \`${JSON.stringify(r.summary.sample[0])}\``).join("; ") + "\n\n";
  }
  out += `![benchmark chart](benchmark.png)\n\n`;
  for (const n of notes) out += `Note: ${n}\n\n`;
  out += `Notes: llama.cpp runs through node-llama-cpp's prebuilt CPU binaries (\`getLlama({gpu: false, build: "never"})\`), its seed job on its own JSON-Schema grammar path (\`createGrammarForJsonSchema\`, LlamaCompletion reusing the sequence's common prefix, no repeat penalty). wllama is the npm package's single-thread wasm build in Debian's Chromium (headless, page on 127.0.0.1); it takes GBNF, so its seed job uses an equivalent hand-written grammar; its peak RSS is not measured (it lives in the browser's processes). Raw numbers: [benchmark.json](benchmark.json).\n`;
  return out;
}

function shapeReport(machine, results, runs) {
  const f = (v, d = 0) => (v == null ? "–" : v.toFixed(d));
  const cell = (s, d = 0) => (s ? (runs > 1 ? `${f(s.median, d)} <sub>${f(s.min, d)}–${f(s.max, d)}</sub>` : f(s.median, d)) : "–");
  let out = `# Real model shapes: edgeslm vs llama.cpp\n\n`;
  out += `\`node bench/run.mjs --shapes\` on ${machine.cpu}, ${machine.cores} cores; load average ${machine.loadBefore.toFixed(2)} before, ${machine.loadAfter.toFixed(2)} after; ${machine.date.slice(0, 10)}, commit ${machine.commit}; ${runs} run(s) per row, each a fresh process after its own warm-up call. `;
  out += `The files are random-weight GGUFs with the exact tensor shapes, vocabularies and Q4_K_M type mix of the real models (\`cargo run --release -p edgeslm-tests --example write-tiny-models -- target/shapes --shape NAME\`, not committed): speeds and memory are those of the real sizes; the text they produce means nothing, so the seed job's validity column counts schema-valid outputs only.\n\n`;
  out += `Workload (shorter than bench/results/benchmark.md's, so the 3.8B model's single-thread wasm row fits): prefill of 64 tokens; decode of 16 greedy tokens; the seed job's first call (its ~150-token few-shot prefix and one message, constrained to the ticket schema, 48 tokens at most) and then 2 messages with the prefix reused; model load; peak RSS of the runner process.\n\n`;
  out += `| model | file MB | runtime | threads | load ms | prefill 64 tok/s | decode tok/s | seed first call ms | seed per message ms | valid | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n`;
  for (const { model, fileMb, rows } of Object.values(results)) {
    for (const r of rows) {
      const s = r.summary;
      if (!s) {
        out += `| ${model.name} | ${fileMb.toFixed(0)} | ${r.label} | ${r.threads} | failed |||||||\n`;
        continue;
      }
      out += `| ${model.name} | ${fileMb.toFixed(0)} | ${r.label} | ${r.threads} | ${cell(s.load)} | ${cell(s.prefill64, 1)} | ${cell(s.decode, 2)} | ${cell(s.seedFirst)} | ${cell(s.seedP50)} | ${f(s.valid?.median)}/${s.total} | ${cell(s.rss)}${s.rss ? ` (${(s.rss.median / fileMb).toFixed(2)}× file)` : ""} |\n`;
    }
  }
  out += `\nRaw numbers: [shapes.json](shapes.json).\n`;
  return out;
}
