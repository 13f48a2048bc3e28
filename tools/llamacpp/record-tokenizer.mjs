// Record llama.cpp's token ids for a vocabulary-only GGUF (node-llama-cpp's prebuilt CPU
// build), without BOS and without special-token parsing, as llama.cpp's own .inp/.out tests.
//
//   node record-tokenizer.mjs VOCAB.gguf INPUTS.inp OUT.json [EXTRA.json]
//
// INPUTS.inp: inputs separated by "\n__ggml_vocab_test__\n" (llama.cpp's format); EXTRA.json:
// a JSON list of more strings. OUT.json: [{text, ids}].
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync, writeFileSync} from "node:fs";

const [vocabPath, inpPath, outPath, extraPath] = process.argv.slice(2);
if (!vocabPath || !inpPath || !outPath) {
    console.error("usage: node record-tokenizer.mjs VOCAB.gguf INPUTS.inp OUT.json [EXTRA.json]");
    process.exit(2);
}
const inputs = readFileSync(inpPath, "utf8").split("\n__ggml_vocab_test__\n");
if (inputs.pop() !== "") throw new Error(`${inpPath} does not end with a separator`);
if (extraPath) inputs.push(...JSON.parse(readFileSync(extraPath, "utf8")));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: vocabPath, vocabOnly: true});
const cases = inputs.map((text) => ({text, ids: Array.from(model.tokenize(text, false))}));
writeFileSync(outPath, "[\n" + cases.map((c) => JSON.stringify(c)).join(",\n") + "\n]\n");
console.error(`${outPath}: ${cases.length} cases (llama.cpp ${llama.llamaCppRelease?.release ?? "?"})`);
