#!/usr/bin/env bash
# Record llama.cpp fixtures for every tiny random-weight test model: each architecture x
# each tensor type of tests/tiny.rs (toy vocabularies), and the newer architectures with
# real vocabularies of tests/tiny_vocab.rs. Needs `npm install` in this directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$root/tests/fixtures/tiny"
(cd "$root" && cargo run --release -q -p edgeslm-tests --example write-tiny-models -- "$tmp/toy" >/dev/null)
for model in "$tmp"/toy/*.gguf; do
  node "$here/record-fixtures.mjs" "$model" "$root/tests/fixtures/tiny/$(basename "$model" .gguf).json" \
    --strings "$root/tests/fixtures/tiny-strings.json" \
    --prompts "$root/tests/fixtures/tiny-prompts.json" --tokens 16
done
(cd "$root" && cargo run --release -q -p edgeslm-tests --example write-tiny-models -- "$tmp/real" --real-vocab >/dev/null)
for model in "$tmp"/real/*.gguf; do
  node "$here/record-fixtures.mjs" "$model" "$root/tests/fixtures/tiny/$(basename "$model" .gguf).json" \
    --strings "$root/tests/fixtures/tokenizer-strings.json" \
    --prompts "$root/tests/fixtures/prompts.json" --tokens 16
done
