// Temperature 0 gives the same bytes in every host: the component in Node (jco) against
// the same component in wasmtime (the Rust CLI), on 24 fixed inputs per real model.
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import { hasRelaxedSimd, loadModel } from "../src/index.js";
import { validatesRelaxedSimd } from "../src/features.js";
import { MODELS, determinismCases, requireModels, runCases, runCasesInWasmtime } from "./support.js";

requireModels();
const cases = determinismCases();

for (const [name, path] of Object.entries(MODELS)) {
  test(`${name}: Node gives wasmtime's exact text, tokens and probabilities`, async () => {
    const expected = runCasesInWasmtime(path, cases);
    const model = await loadModel(path);
    const got = await runCases(model, cases);
    for (const kind of ["generate", "constrained", "classify"]) {
      assert.equal(got[kind].length, 8);
      got[kind].forEach((g, i) => assert.deepStrictEqual(g, expected[kind][i], `${name} ${kind} #${i}`));
    }
    // Not vacuous: the model said something, and the ticket JSONs parse.
    assert.ok(got.generate.every((g) => g.tokens.length > 0));
    for (const g of got.constrained) assert.ok(["incident", "billing", "inquiry"].includes(JSON.parse(g.text).category));
  });
}

// Both builds of the component in this process: the SIMD128 one and the relaxed-simd one,
// whose kernels compute the same integer sums, so the bytes are the same. Node 20's V8 has
// relaxed-simd only behind a flag (set here), and computes its dot-add wrongly there: then
// "auto" must not pick it, and asking for it is refused. Node 22's V8 and Chromium's do it
// right (the browser test compares Chromium's relaxed-simd bytes with wasmtime's).
test("relaxed-simd: only where the engine computes it exactly, and then the SIMD128 build's bytes", async (t) => {
  if (!validatesRelaxedSimd()) v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  assert.ok(validatesRelaxedSimd(), "this V8 cannot enable relaxed-simd");
  if (!hasRelaxedSimd()) {
    const model = await loadModel(MODELS.smollm2);
    assert.equal(model.kernels, "simd128");
    model.dispose();
    await assert.rejects(loadModel(MODELS.smollm2, { kernels: "relaxed-simd" }), (e) => e instanceof TypeError && /inexactly/.test(e.message));
    t.diagnostic(`Node ${process.version}: relaxed-simd validates but computes the probe inexactly; the SIMD128 build runs. The byte comparison ran in Chromium only.`);
    return;
  }
  for (const [name, path] of Object.entries(MODELS)) {
    const [plain, relaxed] = [await loadModel(path, { kernels: "simd128" }), await loadModel(path, { kernels: "relaxed-simd" })];
    assert.equal(plain.kernels, "simd128");
    assert.equal(relaxed.kernels, "relaxed-simd");
    const [a, b] = [await runCases(plain, cases), await runCases(relaxed, cases)];
    for (const kind of ["generate", "constrained", "classify"]) {
      assert.equal(a[kind].length, 8);
      a[kind].forEach((g, i) => assert.deepStrictEqual(b[kind][i], g, `${name} ${kind} #${i}`));
    }
    plain.dispose();
    relaxed.dispose();
  }
});
