// Record llama.cpp reference fixtures for one GGUF with node-llama-cpp's prebuilt CPU build.
//
//   node record-fixtures.mjs MODEL.gguf OUT.json [--strings FILE] [--prompts FILE] [--tokens N]
//
// Records: token ids of every string (plain, and with special-token parsing), greedy
// continuations of every prompt, and the top-20 final-position logits of every prompt.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync, writeFileSync} from "node:fs";
import {createHash} from "node:crypto";
import {basename, dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
};
const [modelPath, outPath] = args;
if (!modelPath || !outPath) {
    console.error("usage: node record-fixtures.mjs MODEL.gguf OUT.json [--strings F] [--prompts F] [--tokens N]");
    process.exit(2);
}
const fixtures = join(here, "..", "..", "tests", "fixtures");
const strings = JSON.parse(readFileSync(opt("--strings", join(fixtures, "tokenizer-strings.json")), "utf8"));
const prompts = JSON.parse(readFileSync(opt("--prompts", join(fixtures, "prompts.json")), "utf8"));
const nTokens = Number(opt("--tokens", "64"));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 1024, batchSize: 512, flashAttention: false, threads: 2});
const seq = context.getSequence();

const bos = model.tokens.bos;
const addBos = model.tokens.shouldPrependBosToken ?? true;
const withBos = (ids) => (addBos && bos != null ? [bos, ...ids] : [...ids]);

const tokenize = strings.map((text) => ({
    text,
    ids: Array.from(model.tokenize(text, false)),
    ids_special: Array.from(model.tokenize(text, true)),
}));

const greedy = [];
const logits = [];
for (const prompt of prompts) {
    const promptIds = withBos(model.tokenize(prompt, false));
    await seq.clearHistory();
    const out = await seq.controlledEvaluate([
        ...promptIds.slice(0, -1),
        [promptIds[promptIds.length - 1], {generateNext: {logits: true}}],
    ]);
    const last = out[out.length - 1].next.logits;
    logits.push({prompt, prompt_ids: promptIds, top: [...last.entries()].slice(0, 20)});

    await seq.clearHistory();
    const tokens = [];
    for await (const t of seq.evaluate(promptIds, {temperature: 0, yieldEogToken: true})) {
        tokens.push(t);
        if (model.isEogToken(t) || tokens.length >= nTokens) break;
    }
    const eog = tokens.length > 0 && model.isEogToken(tokens[tokens.length - 1]);
    const gen = eog ? tokens.slice(0, -1) : tokens;

    // The margin between the two best logits at every greedy step: where it is tiny, builds
    // of llama.cpp itself (AVX2 vs AVX-512, flash attention or not) can pick differently.
    await seq.clearHistory();
    const all = [...promptIds, ...tokens];
    const want = {generateNext: {logits: {filter: {tokens: [], includeTop: 2}}}};
    const steps = await seq.controlledEvaluate(all.map((t, i) => (i >= promptIds.length - 1 ? [t, want] : t)));
    const margins = [];
    for (let i = promptIds.length - 1; i < all.length; i++) {
        const top = [...steps[i].next.logits.values()];
        margins.push(top[0] - top[1]);
    }
    greedy.push({prompt, prompt_ids: promptIds, tokens: gen, eog, text: model.detokenize(gen), margins: margins.slice(0, tokens.length)});
    process.stderr.write(".");
}
process.stderr.write("\n");

const pkg = JSON.parse(readFileSync(join(here, "node_modules", "node-llama-cpp", "package.json"), "utf8"));
const info = JSON.parse(readFileSync(join(here, "node_modules", "node-llama-cpp", "llama", "llama.cpp.info.json"), "utf8"));
const sha256 = createHash("sha256").update(readFileSync(modelPath)).digest("hex");
writeFileSync(outPath, JSON.stringify({
    model: basename(modelPath),
    sha256,
    reference: `node-llama-cpp ${pkg.version}, llama.cpp ${info.tag}, CPU, context 1024, f16 KV cache, no flash attention`,
    add_bos: addBos,
    max_tokens: nTokens,
    tokenize,
    greedy,
    logits,
}, null, 1) + "\n");
console.error(`wrote ${outPath}: ${tokenize.length} strings, ${greedy.length} continuations`);
await context.dispose();
await model.dispose();
