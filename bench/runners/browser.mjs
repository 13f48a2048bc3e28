// For the browser runners: a static server on 127.0.0.1 over a few folders, and Debian's
// Chromium (headless, never a downloaded browser) with one page on it.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { join, normalize, sep } from "node:path";
import { chromium } from "playwright-core";

const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };

export async function withPage(roots, f) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end("<!doctype html><title>edgeslm bench</title>");
    }
    const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
    const file = prefix && normalize(join(roots[prefix], decodeURIComponent(url.pathname.slice(prefix.length))));
    if (!file || !file.startsWith(roots[prefix] + sep)) return res.writeHead(404).end();
    let st;
    try {
      st = statSync(file);
    } catch {
      return res.writeHead(404).end();
    }
    if (!st.isFile()) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": TYPES[file.slice(file.lastIndexOf("."))] ?? "application/octet-stream", "content-length": st.size });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    return await f(page);
  } finally {
    await browser.close();
    server.close();
  }
}
