// The HTTP service benchmark: per-request overhead of the baked component vs the unbaked one
// (which loads the model file in every instance), and a load run with wrk on the baked
// service (classify, the seed's label set and few-shot examples, 40 distinct messages).
//
//   node bench/http-service.mjs [--duration 60] [--concurrency 1,2,8] [--samples 30]
//
// Needs `cargo xtask build`, the Gemma model (scripts/fetch-models gemma) and wrk (Debian's
// package; installed with apt-get when missing). Writes bench/results/http-service.{md,json}.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const duration = Number(args.duration ?? 60);
const concurrency = (args.concurrency ?? "1,2,8").split(",").map(Number);
const samples = Number(args.samples ?? 30);
const cli = path.join(root, "target/release/edgeslm");
const model = path.join(root, "models/gemma-3-270m-q4_k_m.gguf");
const cache = path.join(root, "bench/.cache");
const baked = path.join(cache, "edgeslm-service-gemma.wasm");
const say = (m) => process.stderr.write(`http-service: ${m}\n`);

for (const [f, how] of [[cli, "cargo xtask build"], [model, "scripts/fetch-models gemma"]]) {
  if (!existsSync(f)) throw new Error(`${f} is missing: run ${how}`);
}
try {
  execFileSync("wrk", ["--version"], { stdio: "ignore" });
} catch (e) {
  if (e.code === "ENOENT") {
    say("installing wrk (apt-get)");
    const sudo = process.getuid() === 0 ? [] : ["sudo"];
    execFileSync(sudo[0] ?? "apt-get", [...sudo.slice(1), ...(sudo.length ? ["apt-get"] : []), "install", "-y", "-qq", "wrk"], {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  }
}
mkdirSync(cache, { recursive: true });

// 1. Bake, with the seed's classify and ticket requests as warm-ups.
say("baking");
let t = performance.now();
execFileSync(cli, [
  "bake", "--model", model, "--out", baked,
  "--warm", `/v1/classify=${path.join(root, "examples/http-service/classify.json")}`,
  "--warm", `/v1/generate=${path.join(root, "examples/http-service/ticket.json")}`,
], { stdio: ["ignore", "ignore", "inherit"] });
const bake = { seconds: (performance.now() - t) / 1000, bytes: statSync(baked).size };

function startServer(extra) {
  return new Promise((resolve, reject) => {
    const p = spawn(cli, ["serve", "--quiet", "--addr", "127.0.0.1:0", ...extra], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => {
      err += d;
      const m = /listening on http:\/\/(\S+) \(ready in (\d+) ms\)/.exec(err);
      if (m && !p.addr) {
        p.addr = m[1];
        p.readyMs = Number(m[2]);
        resolve(p);
      }
    });
    p.on("exit", (code) => reject(new Error(`edgeslm serve exited ${code}: ${err}`)));
  });
}

function request(addr, method, url, body) {
  return new Promise((resolve, reject) => {
    const [host, port] = addr.split(":");
    const t0 = performance.now();
    const req = http.request({ host, port, method, path: url, headers: { "content-type": "application/json" }, agent: false }, (res) => {
      const ttfb = performance.now() - t0;
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, ttfb, total: performance.now() - t0, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

// RSS, and its anonymous part: the baked image is mapped from the compiled file, so its pages
// (clean, file-backed, shared, bounded by the image size) join RSS as instances read them;
// growth that would matter (a leak) shows in the anonymous memory.
const rss = (pid) => {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]);
  const r = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const anon = Number(/Anonymous:\s+(\d+)/.exec(r)[1]);
  // /proc counts KiB; the report's MB are 10^6 bytes, like the model file's size.
  const mb = (kib) => (kib * 1024) / 1e6;
  return { rss_mb: mb(kb("VmRSS")), hwm_mb: mb(kb("VmHWM")), anon_mb: mb(anon) };
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const summary = (xs) => ({ p50: pct(xs, 50), p99: pct(xs, 99), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });

const classify = JSON.parse(readFileSync(path.join(root, "examples/http-service/classify.json"), "utf8"));
const messages = readFileSync(path.join(root, "examples/support/messages.jsonl"), "utf8")
  .split("\n").filter(Boolean).map((l) => JSON.parse(l).text);
const body = (text) => JSON.stringify({ ...classify, text, route: "local" });

// 2. Per-request overhead: a fresh instance per request, so GET /v1/model is instantiate +
//    (unbaked: read and parse the model) + answer. And the seed classify latency.
const overhead = {};
for (const [name, extra] of [["baked", [baked]], ["unbaked", ["--model", model]]]) {
  say(`${name}: starting`);
  const server = await startServer(extra);
  const n = name === "baked" ? samples : Math.min(samples, 10);
  await request(server.addr, "GET", "/v1/health"); // first touch of the image
  const health = [], info = [], cls = [];
  for (let i = 0; i < n; i++) health.push((await request(server.addr, "GET", "/v1/health")).ttfb);
  for (let i = 0; i < n; i++) {
    const r = await request(server.addr, "GET", "/v1/model");
    if (r.status !== 200) throw new Error(`${name} /v1/model: ${r.status} ${r.body}`);
    info.push(r.ttfb);
  }
  for (let i = 0; i < n; i++) {
    const r = await request(server.addr, "POST", "/v1/classify", body(messages[i % messages.length]));
    if (r.status !== 200) throw new Error(`${name} classify: ${r.status} ${r.body}`);
    cls.push(r.total);
  }
  overhead[name] = { ready_ms: server.readyMs, health_ms: summary(health), model_ms: summary(info), classify_ms: summary(cls) };
  say(`${name}: /v1/model p50 ${overhead[name].model_ms.p50.toFixed(2)} ms, classify p50 ${overhead[name].classify_ms.p50.toFixed(0)} ms`);
  if (name === "unbaked") server.kill();
  else overhead.server = server;
}

// 3. Load: wrk on the baked service, 40 distinct messages in rotation.
const server = overhead.server;
delete overhead.server;
const lua = path.join(cache, "classify.lua");
writeFileSync(lua, `
local bodies = { ${messages.map((m) => `[==[${body(m)}]==]`).join(",\n")} }
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/classify", { ["content-type"] = "application/json" }, bodies[i])
end
`);
const load = [];
for (const c of concurrency) {
  const before = rss(server.pid);
  say(`load: concurrency ${c}, ${duration} s`);
  const out = execFileSync("wrk", ["-t", String(Math.min(c, 2)), "-c", String(c), "-d", `${duration}s`, "--timeout", "60s", "--latency", "-s", lua, `http://${server.addr}/v1/classify`], { encoding: "utf8" });
  const after = rss(server.pid);
  const ms = (v, u) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[u]);
  const lat = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? ms(m[1], m[2]) : null;
  };
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0;
  load.push({
    concurrency: c,
    requests,
    req_per_s: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]),
    p50_ms: lat(50),
    p99_ms: lat(99),
    errors: non2xx + socketErrors,
    rss_before_mb: before.rss_mb,
    rss_after_mb: after.rss_mb,
    anon_before_mb: before.anon_mb,
    anon_after_mb: after.anon_mb,
    peak_rss_mb: after.hwm_mb,
  });
  say(`load: ${JSON.stringify(load.at(-1))}`);
}
server.kill();

const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
const machine = { cpu: os.cpus()[0].model, cores: os.cpus().length, loadavg: os.loadavg().map((x) => x.toFixed(2)).join(" ") };
const result = { commit, date: new Date().toISOString(), machine, model: path.basename(model), bake, overhead, load, duration_s: duration };
writeFileSync(path.join(root, "bench/results/http-service.json"), JSON.stringify(result, null, 2) + "\n");

const f = (x, d = 1) => (x == null ? "–" : x.toFixed(d));
const rows = (name) => {
  const o = overhead[name];
  return `| ${name} | ${f(o.health_ms.p50, 2)} | ${f(o.model_ms.p50, 2)} / ${f(o.model_ms.p99, 2)} | ${f(o.classify_ms.p50, 0)} / ${f(o.classify_ms.p99, 0)} | ${o.model_ms.n} |`;
};
const md = `# HTTP service: baked vs unbaked, and load

Commit ${commit}, ${result.date}; ${machine.cpu}, ${machine.cores} cores, load average before the run ${machine.loadavg}.
Model ${result.model}. \`edgeslm serve\` (wasmtime-wasi-http, a fresh instance per request, portable in-component kernels, one thread per request).
Produced by \`node bench/http-service.mjs\`.

Bake: ${f(bake.seconds)} s, baked component ${f(bake.bytes / 1e6)} MB (model, parsed tokenizer, constraint engine's token trie, warm prompt state for the seed's classify and ticket prompts).

## Per-request overhead (sequential requests, time to first byte, ms)

| component | GET /v1/health p50 (instantiate, no model) | GET /v1/model p50 / p99 (instantiate + model ready) | POST /v1/classify p50 / p99 (seed prompt, distinct messages) | n |
|---|---|---|---|---|
${rows("baked")}
${rows("unbaked")}

Per-request model overhead, baked vs unbaked (GET /v1/model p50): **${f(overhead.baked.model_ms.p50, 2)} ms vs ${f(overhead.unbaked.model_ms.p50, 0)} ms** (${f(overhead.unbaked.model_ms.p50 / overhead.baked.model_ms.p50, 0)}×).

## Load (wrk, ${duration} s per row, POST /v1/classify on the baked service, 40 messages in rotation)

| concurrency | requests | req/s | p50 ms | p99 ms | errors | RSS before → after MB | anonymous before → after MB | peak RSS MB |
|---|---|---|---|---|---|---|---|---|
${load.map((l) => `| ${l.concurrency} | ${l.requests} | ${f(l.req_per_s, 2)} | ${f(l.p50_ms, 0)} | ${f(l.p99_ms, 0)} | ${l.errors} | ${f(l.rss_before_mb, 0)} → ${f(l.rss_after_mb, 0)} | ${f(l.anon_before_mb, 0)} → ${f(l.anon_after_mb, 0)} | ${f(l.peak_rss_mb, 0)} |`).join("\n")}

RSS counts the pages of the baked image that instances have read (clean, file-backed, shared
through the page cache, at most the image's size: the kernel can drop them at any time); the
anonymous column is the server's own heap and the instances' written pages, where a leak would
show. Peak RSS includes compiling the baked component at start (the first start after a bake
compiles it and caches the result beside it).
`;
writeFileSync(path.join(root, "bench/results/http-service.md"), md);
process.stdout.write(md);
