// llama.cpp's perplexity of a text's first N tokens (BOS first), every position's logits
// from one causal pass: the reference for `edgeslm perplexity`.
//
//   node perplexity.mjs MODEL.gguf TEXT_FILE [--tokens 512] [--threads N]
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
};
const [modelPath, textPath] = args;
const window = Number(opt("--tokens", "512"));
const threads = Number(opt("--threads", "1"));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
// The model's trained context, as edgeslm always uses: llama.cpp picks Phi-3's LongRoPE
// factors (short or long) by the context it is given.
const context = await model.createContext({contextSize: Math.max(window, model.trainContextSize), batchSize: window, flashAttention: false, threads});
const seq = context.getSequence();
const bos = model.tokens.bos;
const addBos = model.tokens.shouldPrependBosToken ?? true;
let ids = Array.from(model.tokenize(readFileSync(textPath, "utf8"), false));
if (addBos && bos != null) ids = [bos, ...ids];
ids = ids.slice(0, window);
const out = await seq.controlledEvaluate(ids.map((t) => [t, {generateNext: {logits: true}}]));
let nll = 0;
for (let i = 0; i + 1 < ids.length; i++) {
    const logits = out[i].next.logits; // Map id -> logit, every id
    if (i === 0) console.error("logits per position:", logits.size);
    let max = -Infinity;
    for (const v of logits.values()) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits.values()) sum += Math.exp(v - max);
    nll -= logits.get(ids[i + 1]) - max - Math.log(sum);
}
const scored = ids.length - 1;
console.log(JSON.stringify({model: modelPath, tokens: ids.length, scored, nll: nll / scored, perplexity: Math.exp(nll / scored), threads}));
