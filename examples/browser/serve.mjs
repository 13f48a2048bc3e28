#!/usr/bin/env node
// A tiny static server for the browser demo, on 127.0.0.1 only.
//   node examples/browser/serve.mjs [--port 8080] [--throttle-mbps N]
// Serves the demo at /, the JS package at /host-js/ (src, dist, test), the support examples at /support/,
// and the models at /models/ with HTTP Range requests (for resumable chunked downloads).
// --throttle-mbps slows model downloads (megabytes per second) to watch the progress bar.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const ROOTS = {
  "/host-js/": join(repo, "host-js"),
  "/models/": join(repo, "models"),
  "/support/": join(repo, "examples/support"),
  "/": join(repo, "examples/browser"),
};
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json", ".jsonl": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm", ".gguf": "application/octet-stream", ".css": "text/css",
};

export function startServer({ port = 8080, throttleMbps = 0, log = () => {} } = {}) {
  const stats = { requests: [] };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    stats.requests.push({ method: req.method, path: url.pathname, range: req.headers.range });
    log(`${req.method} ${url.pathname}${req.headers.range ? ` ${req.headers.range}` : ""}`);
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed");
    const prefix = Object.keys(ROOTS).find((p) => url.pathname.startsWith(p));
    const root = ROOTS[prefix];
    let rel = decodeURIComponent(url.pathname.slice(prefix.length)) || "index.html";
    if (prefix === "/host-js/" && !/^(src|dist|test)\//.test(rel)) return send(res, 404, "not found");
    const file = normalize(join(root, rel));
    if (!file.startsWith(root + sep) && file !== root) return send(res, 403, "forbidden");
    let st;
    try {
      st = statSync(file);
    } catch {
      return send(res, 404, "not found");
    }
    if (!st.isFile()) return send(res, 404, "not found");
    const headers = {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "accept-ranges": "bytes",
      "etag": `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      "cache-control": "no-cache",
    };
    let start = 0, end = st.size - 1, status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
      if (start > end) return send(res, 416, "range not satisfiable", { "content-range": `bytes */${st.size}` });
      status = 206;
      headers["content-range"] = `bytes ${start}-${end}/${st.size}`;
    }
    headers["content-length"] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === "HEAD") return res.end();
    const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
    if (!(throttleMbps > 0 && extname(file) === ".gguf")) return stream.pipe(res);
    // Throttled: pause so the average rate stays at throttleMbps.
    const began = Date.now();
    let sent = 0;
    stream.on("data", (chunk) => {
      sent += chunk.length;
      res.write(chunk);
      const due = (sent / (throttleMbps * 1e6)) * 1000 - (Date.now() - began);
      if (due > 0) {
        stream.pause();
        setTimeout(() => stream.resume(), due);
      }
    });
    stream.on("end", () => res.end());
    res.on("close", () => stream.destroy());
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve({ server, stats, url: `http://127.0.0.1:${server.address().port}/` })));
}

function send(res, status, text, headers = {}) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(text + "\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const { url } = await startServer({ port: arg("--port", 8080), throttleMbps: arg("--throttle-mbps", 0), log: (l) => console.error(l) });
  console.log(`edgeslm demo: ${url}  (model: ${url}?model=gemma-3-270m-q4_k_m.gguf)`);
}
