// Temperature 0 gives the same bytes in every host: the component in Node (jco) against
// the same component in wasmtime (the Rust CLI), on 24 fixed inputs per real model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadModel } from "../src/index.js";
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
