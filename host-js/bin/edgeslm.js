#!/usr/bin/env node
// `edgeslm` for Node: the Rust CLI's subcommands, flags and JSON output, running the same
// component through jco.
import { readFileSync } from "node:fs";
import { loadModel, EdgeSlmError } from "../src/index.js";

const USAGE = `usage:
  edgeslm info     --model FILE
  edgeslm tokenize --model FILE [--special] TEXT
  edgeslm generate --model FILE [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
                   [--seed S] [--stop STR]... [--special] [--chat] [--json]
                   [--schema FILE.json | --regex RE | --grammar FILE.lark] (PROMPT | --batch FILE.jsonl)
     with a constraint, the output is guaranteed to match it (JSON Schema, regex, Lark grammar);
     --chat wraps the prompt as a user turn in the model's chat template
  edgeslm classify --model FILE --labels A,B,C [--instruction TEXT] [--examples FILE.jsonl]
                   [--no-calibrate] (TEXT | --batch FILE.jsonl)
     examples: one {"text": ..., "label": ...} per line; batch: one {"text": ...} (or a JSON
     string) per line, one JSON result per line out, p50/p99 latency on stderr
options for all commands:
  --quiet            no progress on stderr`;

class UsageError extends Error {}

function parse(argv) {
  const a = { command: argv[0], positional: [], opts: { stop: [] }, classify: {}, json: false, quiet: false, special: false };
  if (!a.command) throw new UsageError("no command given");
  if (["--help", "-h", "help"].includes(a.command)) {
    console.log(USAGE);
    process.exit(0);
  }
  const it = argv.slice(1)[Symbol.iterator]();
  const value = (flag) => {
    const { value: v, done } = it.next();
    if (done) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const number = (flag, int) => {
    const v = value(flag);
    const n = Number(v);
    if (v.trim() === "" || Number.isNaN(n) || (int && !Number.isInteger(n)) || (int && n < 0)) throw new UsageError(`${flag}: cannot parse '${v}'`);
    return n;
  };
  for (let step = it.next(); !step.done; step = it.next()) {
    const arg = step.value;
    switch (arg) {
      case "--model": case "-m": a.model = value(arg); break;
      case "--max-tokens": case "-n": a.opts.maxTokens = number(arg, true); break;
      case "--temperature": a.opts.temperature = number(arg); break;
      case "--top-k": a.opts.topK = number(arg, true); break;
      case "--top-p": a.opts.topP = number(arg); break;
      case "--seed": a.opts.seed = BigInt(number(arg, true)); break;
      case "--stop": a.opts.stop.push(value(arg)); break;
      case "--json": a.json = true; break;
      case "--labels": a.labels = value(arg).split(",").map((l) => l.trim()); break;
      case "--instruction": a.classify.instruction = value(arg); break;
      case "--examples": a.examplesFile = value(arg); break;
      case "--no-calibrate": a.classify.calibrate = false; break;
      case "--batch": a.batch = value(arg); break;
      case "--schema": case "--grammar": case "--regex": {
        if (a.constraint) throw new UsageError("give one of --schema, --regex, --grammar");
        const v = value(arg);
        const read = (p) => {
          try { return readFileSync(p, "utf8"); } catch (e) { throw new Error(`cannot read ${p}: ${e.message}`); }
        };
        a.constraint = arg === "--schema" ? { jsonSchema: read(v) } : arg === "--grammar" ? { grammar: read(v) } : { regex: v };
        break;
      }
      case "--special": a.special = true; break;
      case "--chat": a.opts.chat = true; break;
      case "--quiet": case "-q": a.quiet = true; break;
      case "--help": case "-h": console.log(USAGE); process.exit(0);
      case "--": for (let s = it.next(); !s.done; s = it.next()) a.positional.push(s.value); break;
      default:
        if (arg.startsWith("--")) throw new UsageError(`unknown option ${arg}`);
        a.positional.push(arg);
    }
  }
  if (a.special) a.opts.parseSpecial = true;
  return a;
}

const round2 = (v) => Math.round(v * 100) / 100;

function onePositional(a, what) {
  if (a.positional.length === 1) return a.positional[0];
  if (a.positional.length === 0) throw new UsageError(`${what} is missing`);
  throw new Error(`expected one ${what} argument, got ${a.positional.length} (quote it)`);
}

function readExamples(path) {
  return readFileSync(path, "utf8").split("\n").map((l, n) => [l, n]).filter(([l]) => l.trim()).map(([line, n]) => {
    let v;
    try { v = JSON.parse(line); } catch { throw new Error(`${path}:${n + 1}: not JSON`); }
    for (const k of ["text", "label"]) if (typeof v[k] !== "string") throw new Error(`${path}:${n + 1}: missing string field "${k}"`);
    return { text: v.text, label: v.label };
  });
}

function batchText(line) {
  let v;
  try { v = JSON.parse(line); } catch (e) { throw new Error(`not JSON: ${e.message}`); }
  if (typeof v === "string") return v;
  const t = v?.text ?? v?.prompt;
  if (typeof t !== "string") throw new Error('no "text" or "prompt" field');
  return t;
}

/** One JSON result line per input line; a failing line gets an error line and the batch goes on. */
function runBatch(path, say, run) {
  const latencies = [];
  let ok = 0, failed = 0;
  readFileSync(path, "utf8").split("\n").forEach((line, n) => {
    if (!line.trim()) return;
    const t = performance.now();
    try {
      const v = run(batchText(line));
      latencies.push(performance.now() - t);
      ok++;
      console.log(JSON.stringify(v));
    } catch (e) {
      failed++;
      console.log(JSON.stringify({ error: e.message, line: n + 1 }));
    }
  });
  latencies.sort((x, y) => x - y);
  const pct = (p) => latencies[Math.round((latencies.length - 1) * p)] ?? 0;
  say(`edgeslm: ${ok} done, ${failed} failed; latency p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms`);
}

/** The Rust CLI prints JSON objects with sorted keys. */
function sorted(v) {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]));
  return v;
}

export function generationJson(g, loadMs, constraint) {
  const t = g.timings;
  const out = {
    text: g.text,
    tokens: g.tokens,
    prompt_tokens: g.promptTokens,
    finish_reason: g.finishReason,
    budget_steered: g.budgetSteered,
    timings: {
      load_ms: round2(loadMs),
      prefill_ms: round2(t.prefillMs),
      decode_ms: round2(t.decodeMs),
      prefill_tok_s: round2(t.prefillTokS),
      decode_tok_s: round2(t.decodeTokS),
    },
  };
  if (constraint?.jsonSchema !== undefined) out.value = g.value ?? null;
  return sorted(out);
}

export function classificationJson(c) {
  const t = c.timings;
  return sorted({
    label: c.label,
    confidence: c.confidence,
    scores: c.scores,
    uncalibrated: c.uncalibrated,
    timings: {
      prompt_tokens: t.promptTokens,
      reused_tokens: t.reusedTokens,
      prompt_ms: round2(t.promptMs),
      scoring_ms: round2(t.scoringMs),
      calibration_ms: round2(t.calibrationMs),
      total_ms: round2(t.totalMs),
    },
  });
}

async function main(argv) {
  const a = parse(argv);
  if (!["info", "tokenize", "generate", "classify"].includes(a.command)) throw new UsageError(`unknown command '${a.command}'`);
  if (!a.model) throw new UsageError("--model FILE is required");
  const say = (m) => a.quiet || console.error(m);
  say(`edgeslm: loading ${a.model} in the component (Node)...`);
  const model = await loadModel(a.model);
  say(`edgeslm: loaded in ${model.loadMs.toFixed(0)} ms`);
  switch (a.command) {
    case "info": {
      const i = model.info();
      console.log(JSON.stringify(sorted({
        architecture: i.architecture, name: i.name ?? null, parameter_count: i.parameterCount, layers: i.layers,
        context_length: i.contextLength, embedding_length: i.embeddingLength, heads: i.heads, kv_heads: i.kvHeads,
        vocab_size: i.vocabSize, tokenizer: i.tokenizer, file_size: i.fileSize, backend: i.backend,
        tensor_types: Object.fromEntries(i.tensorTypes.map((t) => [t.typeName, t.tensors])),
      }), null, 2));
      break;
    }
    case "tokenize":
      console.log(JSON.stringify(model.tokenize(onePositional(a, "TEXT"), { parseSpecial: a.special })));
      break;
    case "generate": {
      const run = (prompt) => {
        const g = a.constraint ? model.generateConstrained(prompt, a.constraint, a.opts) : model.generate(prompt, a.opts);
        const t = g.timings;
        say(`edgeslm: ${g.promptTokens} prompt tokens, ${g.tokens.length} generated (${g.finishReason}); prefill ${t.prefillTokS.toFixed(1)} tok/s, decode ${t.decodeTokS.toFixed(1)} tok/s`);
        return generationJson(g, model.loadMs, a.constraint);
      };
      if (a.batch) runBatch(a.batch, say, run);
      else {
        const out = run(onePositional(a, "PROMPT"));
        console.log(a.json ? JSON.stringify(out, null, 2) : out.text);
      }
      break;
    }
    case "classify": {
      if (!a.labels?.length) throw new UsageError("--labels A,B,C is required");
      const opts = { ...a.classify, examples: a.examplesFile ? readExamples(a.examplesFile) : [] };
      const run = (text) => classificationJson(model.classify(text, a.labels, opts));
      if (a.batch) runBatch(a.batch, say, run);
      else console.log(JSON.stringify(run(onePositional(a, "TEXT")), null, 2));
      break;
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/edgeslm") || process.argv[1]?.endsWith("edgeslm.js")) {
  main(process.argv.slice(2)).catch((e) => {
    const usage = e instanceof UsageError ? `\n${USAGE}` : "";
    console.error(`edgeslm: error: ${e instanceof EdgeSlmError || e instanceof UsageError ? e.message : e.message ?? e}${usage}`);
    process.exit(1);
  });
}
