// The benchmark chart: an SVG of grouped bars rendered to PNG by Debian's Chromium.
import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const METRICS = [
  ["decode", "decode tok/s", false],
  ["prefill64", "prefill 64 tok/s", false],
  ["seedP50", "seed p50 ms, lower is better", true],
];
const COLORS = ["#2e7d32", "#66bb6a", "#1565c0", "#ef6c00", "#ffa726", "#8e24aa", "#757575", "#c62828", "#00838f", "#4e342e"];

export async function writeChart(results, pngPath) {
  const models = Object.values(results);
  const rows = models[0]?.rows ?? [];
  const W = 360, H = 260, pad = 40;
  let svg = "";
  models.forEach((m, mi) => {
    METRICS.forEach(([key, title], ki) => {
      const x0 = ki * W, y0 = mi * (H + 30);
      const values = m.rows.map((r) => r.summary?.[key]?.median ?? 0);
      const max = Math.max(...values, 1e-9);
      const bw = (W - 2 * pad) / values.length;
      svg += `<text x="${x0 + W / 2}" y="${y0 + 18}" text-anchor="middle" font-size="12" font-weight="bold">${m.model.name.split(" ").slice(0, 3).join(" ")}: ${title}</text>`;
      values.forEach((v, i) => {
        const h = ((H - 2 * pad) * v) / max;
        const x = x0 + pad + i * bw, y = y0 + H - pad - h;
        svg += `<rect x="${x + 2}" y="${y}" width="${bw - 4}" height="${h}" fill="${COLORS[i % COLORS.length]}"/>`;
        svg += `<text x="${x + bw / 2}" y="${y - 3}" text-anchor="middle" font-size="10">${v ? v.toFixed(v < 10 ? 1 : 0) : "–"}</text>`;
      });
      svg += `<line x1="${x0 + pad}" y1="${y0 + H - pad}" x2="${x0 + W - pad}" y2="${y0 + H - pad}" stroke="#333"/>`;
    });
  });
  const legendY = models.length * (H + 30);
  rows.forEach((r, i) => {
    const x = 20 + (i % 3) * 360, y = legendY + 10 + Math.floor(i / 3) * 20;
    svg += `<rect x="${x}" y="${y}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 18}" y="${y + 11}" font-size="12">${r.label} (${r.threads}t)</text>`;
  });
  const width = METRICS.length * W, height = legendY + 20 + Math.ceil(rows.length / 3) * 20;
  const html = `<!doctype html><body style="margin:0;background:#fff;font-family:sans-serif"><svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg}</svg></body>`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width, height } });
    await page.setContent(html);
    writeFileSync(pngPath, await page.screenshot({ type: "png" }));
  } finally {
    await browser.close();
  }
}
