// Transpile the edgeslm component (built by `cargo xtask build`) into dist/: ES module glue,
// the core wasm modules, and TypeScript types generated from the WIT; and the main core
// module of its relaxed-simd build as dist/edgeslm.relaxed.core.wasm, which loadModel uses
// where the engine has relaxed-simd (the glue and the other modules are the same).
//   node build.mjs [path/to/edgeslm-component.wasm [path/to/edgeslm-component-relaxed.wasm]]
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const component = resolve(process.argv[2] ?? join(here, "../target/release/edgeslm-component.wasm"));
const relaxed = resolve(process.argv[3] ?? join(here, "../target/release/edgeslm-component-relaxed.wasm"));
for (const c of [component, relaxed]) {
  if (!existsSync(c)) {
    console.error(`build: ${c} not found; run \`cargo xtask build\` at the repository root first`);
    process.exit(1);
  }
}
const out = join(here, "dist");
rmSync(out, { recursive: true, force: true });
// --instantiation async: the package compiles the core modules itself (from disk in Node,
// by fetch in browsers) and passes a sandboxed WASI shim per instance.
const transpile = (wasm, dir) =>
  execFileSync(
    process.execPath,
    [join(here, "node_modules/@bytecodealliance/jco/dist/jco.js"), "transpile", wasm, "-o", dir,
      "--name", "edgeslm", "--instantiation", "async", "--quiet"],
    { stdio: "inherit" },
  );
transpile(component, out);
// The relaxed-simd build: only its main core module may differ from the SIMD128 build's.
const scratch = mkdtempSync(join(tmpdir(), "edgeslm-relaxed-"));
try {
  transpile(relaxed, scratch);
  const files = (dir) => readdirSync(dir, { recursive: true }).filter((f) => statSync(join(dir, f)).isFile()).sort();
  const same = (f) => readFileSync(join(out, f)).equals(readFileSync(join(scratch, f)));
  const differing = files(scratch).filter((f) => f !== "edgeslm.core.wasm" && (!existsSync(join(out, f)) || !same(f)));
  if (differing.length || files(scratch).length !== files(out).length) {
    console.error(`build: the relaxed-simd build differs from the SIMD128 one beyond its main core module: ${differing.join(", ")}`);
    process.exit(1);
  }
  copyFileSync(join(scratch, "edgeslm.core.wasm"), join(out, "edgeslm.relaxed.core.wasm"));
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
// The browser's inference worker, bundled with the WASI shim (browser build) into one module.
const { build } = await import("esbuild");
await build({
  entryPoints: [join(here, "src/worker.js")],
  bundle: true,
  format: "esm",
  platform: "browser",
  external: ["node:*"],
  logLevel: "warning",
  outfile: join(out, "edgeslm-worker.js"),
});
const mib = (f) => (statSync(join(out, f)).size / 1048576).toFixed(2);
console.error(`build: ${out} (core module ${mib("edgeslm.core.wasm")} MiB, relaxed-simd ${mib("edgeslm.relaxed.core.wasm")} MiB)`);
