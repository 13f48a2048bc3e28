// The benchmark's workloads on an edgeslm model: a `Model` (Node) or a `WorkerModel`
// (browser; every call awaited). No Node imports: the Chromium runner loads it too.
export async function runWorkload(model, spec) {
  const now = () => performance.now();
  const prefill = {};
  for (const p of spec.prefill) {
    const g = await model.generate(p.text, { maxTokens: 1 });
    prefill[p.name] = { tokens: g.timings.prefillTokens, ms: g.timings.prefillMs };
  }
  const g = await model.generate(spec.decode.prompt, { maxTokens: spec.decode.tokens });
  const decode = { tokens: g.timings.decodeTokens, ms: g.timings.decodeMs };
  const prompt = (m) => `${spec.seed.prefix}Message: ${m}\nTicket:`;
  const schema = { jsonSchema: spec.seed.schema };
  const opts = { maxTokens: spec.seed.max_tokens };
  let t = now();
  await model.generateConstrained(prompt("Hello, I have a question."), schema, opts);
  const firstMs = now() - t;
  const latencies = [];
  const outputs = [];
  for (const m of spec.seed.messages) {
    t = now();
    try {
      outputs.push((await model.generateConstrained(prompt(m), schema, opts)).text);
    } catch (e) {
      outputs.push({ error: e.message });
    }
    latencies.push(now() - t);
  }
  return { prefill, decode, seed: { first_ms: firstMs, latencies_ms: latencies, outputs } };
}
