// Shared by the Node tests and the browser test: the repository's files, the real models,
// the fixed determinism inputs, and the Rust CLI (wasmtime) as the reference host.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const MODELS = {
  gemma: join(repo, "models/gemma-3-270m-q4_k_m.gguf"),
  smollm2: join(repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf"),
};
export const rustCli = join(repo, "target/release/edgeslm");
export { runCases } from "./cases.js";

export function requireModels() {
  for (const p of [...Object.values(MODELS), rustCli]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run scripts/test (it fetches the models and builds the CLI)`);
  }
}

const lines = (p) => readFileSync(join(repo, p), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));

/**
 * The fixed inputs on which every host must give the same bytes: 8 free-form prompts,
 * 8 ticket JSONs (the seed job) and 8 classifications per model (24 in all).
 */
export function determinismCases() {
  const messages = lines("examples/support/messages.jsonl").filter((_, i) => i % 5 === 0).slice(0, 8).map((m) => m.text);
  const prefix = readFileSync(join(repo, "examples/support/seed-prefix.txt"), "utf8");
  return {
    generate: {
      options: { maxTokens: 12 },
      prompts: [
        "The capital of France is",
        "Once upon a time",
        "def fibonacci(n):",
        "The three primary colors are",
        "Q: What is 12 times 12?\nA:",
        "Translate to French: good morning",
        "A haiku about the sea:\n",
        "Water boils at",
      ],
    },
    constrained: {
      schema: readFileSync(join(repo, "examples/support/ticket.schema.json"), "utf8"),
      options: { maxTokens: 48 },
      prompts: messages.map((m) => `${prefix}\n\nMessage: ${m}\nTicket:`),
    },
    classify: {
      labels: ["incident", "billing", "inquiry"],
      examples: lines("examples/support/few-shot.jsonl"),
      texts: messages,
    },
  };
}

/** The same cases through the Rust CLI: the same (portable) component in wasmtime. */
export function runCasesInWasmtime(modelPath, cases) {
  const dir = mkdtempSync(join(tmpdir(), "edgeslm-det-"));
  const batch = (name, items) => {
    const p = join(dir, `${name}.jsonl`);
    writeFileSync(p, items.map((t) => JSON.stringify({ text: t })).join("\n") + "\n");
    return p;
  };
  const run = (args) =>
    execFileSync(rustCli, [...args, "--quiet", "--backend", "portable", "--model", modelPath], { encoding: "utf8", maxBuffer: 1 << 26 })
      .split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  const gen = (r) => {
    if (r.error) throw new Error(`wasmtime: ${r.error}`);
    return { text: r.text, tokens: r.tokens, finish_reason: r.finish_reason };
  };
  const schema = join(dir, "schema.json");
  writeFileSync(schema, cases.constrained.schema);
  const examples = join(dir, "examples.jsonl");
  writeFileSync(examples, cases.classify.examples.map((e) => JSON.stringify(e)).join("\n") + "\n");
  return {
    generate: run(["generate", "--max-tokens", String(cases.generate.options.maxTokens), "--batch", batch("gen", cases.generate.prompts)]).map(gen),
    constrained: run(["generate", "--max-tokens", String(cases.constrained.options.maxTokens), "--schema", schema,
      "--batch", batch("con", cases.constrained.prompts)]).map(gen),
    classify: run(["classify", "--labels", cases.classify.labels.join(","), "--examples", examples,
      "--batch", batch("cls", cases.classify.texts)]).map((r) => {
      if (r.error) throw new Error(`wasmtime: ${r.error}`);
      return { label: r.label, confidence: r.confidence, scores: r.scores, uncalibrated: r.uncalibrated };
    }),
  };
}
