// Transpile the edgeslm component (built by `cargo xtask build`) into dist/: ES module glue,
// the core wasm modules, and TypeScript types generated from the WIT.
//   node build.mjs [path/to/edgeslm-component.wasm]
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const component = resolve(process.argv[2] ?? join(here, "../target/release/edgeslm-component.wasm"));
if (!existsSync(component)) {
  console.error(`build: ${component} not found; run \`cargo xtask build\` at the repository root first`);
  process.exit(1);
}
const out = join(here, "dist");
rmSync(out, { recursive: true, force: true });
// --instantiation async: the package compiles the core modules itself (from disk in Node,
// by fetch in browsers) and passes a sandboxed WASI shim per instance.
execFileSync(
  process.execPath,
  [join(here, "node_modules/@bytecodealliance/jco/dist/jco.js"), "transpile", component, "-o", out,
    "--name", "edgeslm", "--instantiation", "async", "--quiet"],
  { stdio: "inherit" },
);
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
const size = statSync(join(out, "edgeslm.core.wasm")).size;
console.error(`build: ${out} (core module ${(size / 1048576).toFixed(2)} MiB)`);
