#!/usr/bin/env bash
# Perplexity, edgeslm vs llama.cpp on the same files and ids: the real models and the tiny
# random-weight models of every other supported architecture (real vocabularies), on the
# first 512 tokens of Debian's GPL-3 text (BOS first). Writes bench/results/perplexity.md.
#
#   tools/llamacpp/perplexity-report.sh [TEXT_FILE]
#
# Needs: `cargo xtask build` (the CLI), scripts/fetch-models and scripts/fetch-vocab, and
# `npm install` in tools/llamacpp (node-llama-cpp's prebuilt CPU build). Not part of CI.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
text="${1:-/usr/share/common-licenses/GPL-3}"
tiny="$root/target/tiny-vocab-models"
[ -s "$tiny/tiny-phi3-q5_0.gguf" ] || cargo run --release -q -p edgeslm-tests --example write-tiny-models -- "$tiny" --real-vocab >/dev/null
models=("$root/models/gemma-3-270m-q4_k_m.gguf" "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  "$tiny/tiny-llama3-q4_k.gguf" "$tiny/tiny-qwen2-q8_0.gguf" "$tiny/tiny-qwen3-q6_k.gguf" "$tiny/tiny-phi3-q5_0.gguf")
out=bench/results/perplexity.md
{
  echo "# Perplexity: edgeslm vs llama.cpp"
  echo
  echo "\`tools/llamacpp/perplexity-report.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD):"
  echo "the first 512 tokens of \`$text\` (BOS first), every token predicted from all before"
  echo "it in one causal pass; \`edgeslm perplexity\` (the native engine, 2 threads) against"
  echo "node-llama-cpp 3.22.1's llama.cpp (CPU, 1 thread, f16 KV cache, no flash attention,"
  echo "\`tools/llamacpp/perplexity.mjs\`). The tiny models are random-weight (\`tests/tiny_vocab.rs\`):"
  echo "their perplexity means nothing as quality, but both engines compute the same function."
  echo "Their logits are large (random weights), so their perplexities are huge: the mean"
  echo "negative log-likelihood per token (nats) is the readable figure; a difference of d nats"
  echo "is a factor e^d in perplexity. llama.cpp runs with the model's trained context, as"
  echo "edgeslm does: it picks Phi-3's LongRoPE factors by the context it is given."
  echo
  echo "| model | architecture | tokens | llama.cpp NLL | edgeslm NLL | llama.cpp perplexity | edgeslm perplexity | difference |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
} > "$out.tmp"
for m in "${models[@]}"; do
  log="$root/target/perplexity-$(basename "$m").log"
  ours=$(target/release/edgeslm perplexity --model "$m" "$text" 2>"$log")
  # Every position's logits as a JS Map: 262k entries each for Gemma, hence the heap.
  ref=$(cd tools/llamacpp && node --max-old-space-size=16384 perplexity.mjs "$m" "$(realpath "$text")" 2>>"$log")
  arch=$(target/release/edgeslm info --quiet --model "$m" 2>/dev/null | grep -o '"architecture": *"[^"]*"' | grep -o '"[^"]*"$' | tr -d '"')
  python3 - "$m" "$arch" "$ours" "$ref" >> "$out.tmp" <<'PY'
import json, os, sys
m, arch, ours, ref = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
assert ours["tokens"] == ref["tokens"], (ours, ref)
d = (ours["perplexity"] / ref["perplexity"] - 1) * 100
ppl = lambda p: f"{p:.3f}" if p < 1e6 else f"{p:.4e}"
print(f"| {os.path.basename(m)} | {arch} | {ours['tokens']} | {ref['nll']:.4f} | {ours['nll']:.4f} | {ppl(ref['perplexity'])} | {ppl(ours['perplexity'])} | {d:+.2f}% |")
PY
done
mv "$out.tmp" "$out"
cat "$out"
