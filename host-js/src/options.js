// The public API's options and results, shared by the CPU and WebGPU models: JS values to and
// from the component's WIT records.

export function generateOptions(o = {}) {
  const num = (v, name) => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || Number.isNaN(v)) throw new TypeError(`${name} must be a number`);
    return v;
  };
  return {
    maxTokens: num(o.maxTokens, "maxTokens"),
    temperature: num(o.temperature, "temperature"),
    topK: num(o.topK, "topK"),
    topP: num(o.topP, "topP"),
    seed: o.seed === undefined || o.seed === null ? undefined : BigInt(o.seed),
    stop: o.stop ?? [],
    parseSpecial: o.parseSpecial,
    chat: o.chat,
  };
}

export function generation(g) {
  return {
    text: g.text,
    tokens: Array.from(g.tokens),
    promptTokens: g.promptTokens,
    finishReason: g.finishReason,
    budgetSteered: g.budgetSteered,
    timings: g.timings,
  };
}

export function constraintOf(c) {
  if (!c || typeof c !== "object") throw new TypeError("constraint must be {jsonSchema} | {regex} | {grammar}");
  const given = ["jsonSchema", "regex", "grammar"].filter((k) => c[k] !== undefined);
  if (given.length !== 1) throw new TypeError("give exactly one of jsonSchema, regex, grammar");
  if (c.jsonSchema !== undefined) {
    return { tag: "json-schema", val: typeof c.jsonSchema === "string" ? c.jsonSchema : JSON.stringify(c.jsonSchema) };
  }
  if (c.regex !== undefined) return { tag: "regex", val: String(c.regex) };
  return { tag: "grammar", val: String(c.grammar) };
}

export function classification(c) {
  return {
    label: c.label,
    confidence: c.confidence,
    scores: Object.fromEntries(c.scores.map((s) => [s.label, s.probability])),
    uncalibrated: Object.fromEntries(c.scores.map((s) => [s.label, s.uncalibrated])),
    timings: c.timings,
  };
}
