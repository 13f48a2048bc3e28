#!/usr/bin/env python3
"""Record how Python jinja2 renders each chat template on the prompts edgeslm wraps, with
the semantics of Hugging Face's `apply_chat_template` (a sandboxed environment, trim_blocks,
lstrip_blocks, loop controls, `raise_exception`, `tojson`, `strftime_now` — at a fixed date,
26 July 2024, Llama 3's own default, so that a prompt renders the same bytes every day).

    tools/chat-templates/record.py > tests/fixtures/chat-templates.json

Templates: llama.cpp's models/templates/*.jinja of the families edgeslm runs (copied into
models/templates/ by scripts/fetch-vocab), and the real models' own
`tokenizer.chat_template` where it has one (SmolLM2; the Gemma 3 270M file has none, and
llama.cpp keeps Gemma 2's, which Gemma 3's follows). Only the rendered text is
recorded; tests/chat_templates.rs renders the same templates with the engine and compares.
"""
import datetime
import json
import os
import struct
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# (template source, bos token, eos token): the special tokens of each family's vocabulary.
TEMPLATES = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen-Qwen2.5-7B-Instruct.jinja": ("", "<|im_end|>"),
    "Qwen-Qwen3-0.6B.jinja": ("", "<|im_end|>"),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "HuggingFaceTB-SmolLM3-3B.jinja": ("", "<|im_end|>"),
    "ibm-granite-granite-3.3-2B-Instruct.jinja": ("", "<|end_of_text|>"),
    "google-gemma-2-2b-it.jinja": ("<bos>", "<eos>"),
    "gguf:SmolLM2-135M-Instruct.Q4_1.gguf": ("<|im_start|>", "<|im_end|>"),
}

PROMPTS = [
    "What is the capital of France?",
    "  Leading and trailing spaces, a tab\tand\nnew lines.\n\n",
    "Unicode: naïve café, 日本語, emoji 🙂, and {{ braces }} {% raw %} that are text.",
    "<think>not a real thought</think> Ticket: {\"urgency\": 5}",
]


def gguf_chat_template(path):
    """tokenizer.chat_template from a GGUF v2/v3 header."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    assert data[:4] == b"GGUF", path
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    pos = 24

    def string(p):
        (n,) = struct.unpack_from("<Q", data, p)
        return data[p + 8 : p + 8 + n].decode("utf-8"), p + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(ty, p):
        if ty == 8:
            return string(p)[1]
        if ty == 9:
            elem, n = struct.unpack_from("<IQ", data, p)
            p += 12
            if elem in sizes:
                return p + n * sizes[elem]
            for _ in range(n):
                p = skip(elem, p)
            return p
        return p + sizes[ty]

    for _ in range(n_kv):
        key, pos = string(pos)
        (ty,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if key == "tokenizer.chat_template":
            return string(pos)[0]
        pos = skip(ty, pos)
    raise KeyError(f"{path} has no tokenizer.chat_template")


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime(2024, 7, 26).strftime(fmt)
    cases = []
    for name, (bos, eos) in TEMPLATES.items():
        if name.startswith("gguf:"):
            source = gguf_chat_template(os.path.join(ROOT, "models", name[5:]))
        else:
            with open(os.path.join(ROOT, "models", "templates", name), encoding="utf-8") as f:
                source = f.read()
        template = env.from_string(source)
        for prompt in PROMPTS:
            text = template.render(messages=[{"role": "user", "content": prompt}], add_generation_prompt=True, bos_token=bos, eos_token=eos)
            cases.append({"template": name, "bos_token": bos, "eos_token": eos, "prompt": prompt, "rendered": text})
    json.dump({"generator": f"Python jinja2 {jinja2.__version__}, tools/chat-templates/record.py", "cases": cases}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
