// Runs the determinism cases on a model: a `Model` (Node) or a `WorkerModel` (browser),
// keeping the deterministic part of each result. No Node imports: the browser loads it too.
export async function runCases(model, cases) {
  const gen = (g) => ({ text: g.text, tokens: g.tokens, finish_reason: g.finishReason });
  const out = { generate: [], constrained: [], classify: [] };
  for (const p of cases.generate.prompts) out.generate.push(gen(await model.generate(p, cases.generate.options)));
  for (const p of cases.constrained.prompts) {
    out.constrained.push(gen(await model.generateConstrained(p, { jsonSchema: cases.constrained.schema }, cases.constrained.options)));
  }
  for (const t of cases.classify.texts) {
    const c = await model.classify(t, cases.classify.labels, { examples: cases.classify.examples });
    out.classify.push({ label: c.label, confidence: c.confidence, scores: c.scores, uncalibrated: c.uncalibrated });
  }
  return out;
}

const canonical = (v) => JSON.stringify(v, (_, x) =>
  x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]])) : x);

/** Compare two runs (every number exactly); returns the first difference, or null. */
export function firstDifference(got, expected) {
  for (const kind of ["generate", "constrained", "classify"]) {
    if (got[kind].length !== expected[kind].length) return `${kind}: ${got[kind].length} results, expected ${expected[kind].length}`;
    for (let i = 0; i < got[kind].length; i++) {
      const a = canonical(got[kind][i]);
      const b = canonical(expected[kind][i]);
      if (a !== b) return `${kind} #${i}: ${a} vs ${b}`;
    }
  }
  return null;
}
