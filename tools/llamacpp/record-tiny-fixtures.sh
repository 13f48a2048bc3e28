#!/usr/bin/env bash
# Record llama.cpp fixtures for every tiny random-weight test model (tests/tiny.rs):
# each architecture x each tensor type. Needs `npm install` in this directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && cargo run --release -q -p edgeslm-tests --example write-tiny-models -- "$tmp" >/dev/null)
mkdir -p "$root/tests/fixtures/tiny"
for model in "$tmp"/*.gguf; do
  out="$root/tests/fixtures/tiny/$(basename "$model" .gguf).json"
  node "$here/record-fixtures.mjs" "$model" "$out" \
    --strings "$root/tests/fixtures/tiny-strings.json" \
    --prompts "$root/tests/fixtures/tiny-prompts.json" --tokens 16
done
