// Benchmark runner: llama.cpp natively through node-llama-cpp's prebuilt CPU build, with
// the seed job on its own JSON-schema grammar path (LlamaCompletion reuses the common
// prompt prefix of the sequence, as an application would).
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { args, now, peakRssMb, seedPrompt } from "./common.mjs";

const { model: path, spec, threads } = args();
const t0 = now();
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const tl = now();
const model = await llama.loadModel({ modelPath: path });
const loadMs = now() - tl;
const context = await model.createContext({ contextSize: 2048, batchSize: 512, threads, flashAttention: false });
const seq = context.getSequence();
const withBos = (text) => {
  const ids = model.tokenize(text, false);
  return model.tokens.bos != null && (model.tokens.shouldPrependBosToken ?? true) ? [model.tokens.bos, ...ids] : ids;
};
async function firstToken(tokens) {
  for await (const _ of seq.evaluate(tokens, { temperature: 0 })) break;
}
await firstToken(withBos(spec.cold_prompt));
const coldStartMs = now() - t0;

const prefill = {};
for (const p of spec.prefill) {
  const tokens = withBos(p.text);
  await seq.clearHistory();
  const t = now();
  await seq.evaluateWithoutGeneratingNewTokens(tokens);
  prefill[p.name] = { tokens: tokens.length, ms: now() - t };
}

// Decode: time between the first generated token and the last of `n` (prefill excluded).
await seq.clearHistory();
let count = 0, tFirst = 0, tLast = 0;
for await (const _ of seq.evaluate(withBos(spec.decode.prompt), { temperature: 0 })) {
  tLast = now();
  if (count === 0) tFirst = tLast;
  if (++count >= spec.decode.tokens) break;
}
const decode = { tokens: count - 1, ms: tLast - tFirst };

await seq.clearHistory();
const grammar = await llama.createGrammarForJsonSchema(JSON.parse(spec.seed.schema));
const completion = new LlamaCompletion({ contextSequence: seq });
const opts = { grammar, maxTokens: spec.seed.max_tokens, temperature: 0, repeatPenalty: false };
let t = now();
await completion.generateCompletion(seedPrompt(spec.seed.prefix, "Hello, I have a question."), opts);
const firstMs = now() - t;
const latencies = [];
const outputs = [];
for (const m of spec.seed.messages) {
  t = now();
  outputs.push(await completion.generateCompletion(seedPrompt(spec.seed.prefix, m), opts));
  latencies.push(now() - t);
}
console.log(JSON.stringify({
  runtime: "llama.cpp native (node-llama-cpp)", threads, load_ms: loadMs, cold_start_ms: coldStartMs,
  prefill, decode, seed: { first_ms: firstMs, latencies_ms: latencies, outputs }, peak_rss_mb: peakRssMb(),
}));
