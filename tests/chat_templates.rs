//! Chat templates render as Python jinja2 renders them (Hugging Face's `apply_chat_template`
//! semantics): the templates of Llama 3.1/3.2, Qwen2.5, Qwen3, Phi-3.5, SmolLM3, Granite 3.3
//! and Gemma (llama.cpp's copies, scripts/fetch-vocab) and SmolLM2's own, on prompts with
//! surrounding whitespace, unicode and template syntax, byte for byte against
//! tests/fixtures/chat-templates.json (tools/chat-templates/record.py).

use edgeslm_engine::{chat, Model};
use edgeslm_tests::root;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    template: String,
    bos_token: String,
    eos_token: String,
    prompt: String,
    rendered: String,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn source(name: &str) -> String {
    match name.strip_prefix("gguf:") {
        Some(file) => {
            let m = Model::open(root().join("models").join(file).to_str().unwrap()).unwrap();
            m.gguf.get_str("tokenizer.chat_template").unwrap().to_string()
        }
        None => {
            let p = root().join("models/templates").join(name);
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-vocab)", p.display()))
        }
    }
}

#[test]
fn templates_render_as_jinja2_does() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/chat-templates.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.cases.len() >= 32, "{} cases", fixture.cases.len());
    let mut failed = Vec::new();
    for c in &fixture.cases {
        match chat::render(&source(&c.template), &[("user", &c.prompt)], &c.bos_token, &c.eos_token) {
            Ok(ours) if ours == c.rendered => {}
            Ok(ours) => failed.push(format!("{} on {:?}:\n  jinja2: {:?}\n  ours:   {:?}", c.template, c.prompt, c.rendered, ours)),
            Err(e) => failed.push(format!("{} on {:?}: {e}", c.template, c.prompt)),
        }
    }
    assert!(failed.is_empty(), "{} of {} differ:\n{}", failed.len(), fixture.cases.len(), failed.join("\n"));
}
