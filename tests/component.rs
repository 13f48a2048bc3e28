//! The component in wasmtime: conformance with llama.cpp through the WIT interface, the
//! guarantee that it imports no network interface, and typed errors that leave the
//! instance usable. Needs `cargo xtask build` (the README's test command runs it).

use std::path::PathBuf;

use edgeslm_host::{open_model, GenerateOptions, Host};
use edgeslm_tests::*;

fn host() -> Host {
    let p = root().join("target/release/edgeslm-component.wasm");
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    Host::new(&p).unwrap()
}

#[test]
fn component_imports_no_network() {
    let imports = host().imports();
    assert!(!imports.is_empty());
    for i in &imports {
        let allowed = ["wasi:cli/", "wasi:filesystem/", "wasi:random/", "wasi:clocks/", "wasi:io/"];
        assert!(allowed.iter().any(|a| i.starts_with(a)), "unexpected import {i}");
        assert!(!i.contains("sockets") && !i.contains("http"), "network import {i}");
    }
}

fn check_model(model_file: &str, fixture_file: &str) {
    let host = host();
    let fx = fixture(fixture_file);
    let (mut s, m, _) = open_model(&host, &model_path(model_file)).unwrap();
    let mut bad = vec![];
    for case in &fx.tokenize {
        let ids = s.tokenize(m, &case.text, false, false).unwrap();
        if ids != case.ids {
            bad.push(format!("{:?}: {:?} vs {:?}", case.text, ids, case.ids));
        }
    }
    assert!(bad.is_empty(), "component tokenization differs:\n{}", bad.join("\n"));

    let native = edgeslm_engine::Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    let mut identical = 0;
    let mut same_as_native = 0;
    for case in &fx.greedy {
        let opts = GenerateOptions { max_tokens: Some(fx.max_tokens as u32), temperature: Some(0.0), ..Default::default() };
        let g = s.generate(m, &case.prompt, &opts).unwrap().unwrap();
        assert_eq!(g.prompt_tokens as usize, case.prompt_ids.len());
        if check_greedy_case(case, &g.tokens) {
            identical += 1;
            assert_eq!(g.text, case.text);
        }
        let n = native
            .generate(&case.prompt, &edgeslm_engine::GenerateOptions { max_tokens: fx.max_tokens as u32, ..Default::default() })
            .unwrap();
        if n.tokens == g.tokens {
            same_as_native += 1;
        }
    }
    eprintln!(
        "{model_file} in the component: {identical}/{} greedy continuations identical to llama.cpp, {same_as_native}/{} identical to the native engine",
        fx.greedy.len(),
        fx.greedy.len()
    );
    // SIMD128 and AVX2 kernels sum in different orders; only a near-tie could split them.
    assert!(same_as_native + 1 >= fx.greedy.len(), "component and native engine disagree on {} prompts", fx.greedy.len() - same_as_native);
}

#[test]
fn gemma3_in_component_matches_llama_cpp() {
    check_model(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_in_component_matches_llama_cpp() {
    check_model(SMOLLM2, SMOLLM2_FIXTURE);
}

fn scratch_dir(name: &str) -> PathBuf {
    let d = root().join("target/test-scratch").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Bad files give typed errors, and the same instance then loads a real model.
#[test]
fn bad_files_give_typed_errors_and_the_instance_survives() {
    let host = host();
    let dir = scratch_dir("component-bad-files");
    let real = std::fs::read(model_path(SMOLLM2)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.gguf", vec![], "not-gguf"),
        ("random.gguf", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "not-gguf"),
        ("truncated-header.gguf", real[..1000].to_vec(), "corrupt-file"),
        ("truncated-data.gguf", real[..real.len() / 2].to_vec(), "corrupt-file"),
    ];
    let mut s = host.instantiate(Some(&dir)).unwrap();
    for (name, bytes, code) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = s.load(&p).unwrap().err().unwrap_or_else(|| panic!("{name} loaded"));
        assert_eq!(err.code(), *code, "{name}: {err:?}");
    }
    let err = s.load(&dir.join("missing.gguf")).unwrap().err().unwrap();
    assert_eq!(err.code(), "file-not-found", "{err:?}");
    // From bytes too.
    let err = s.load_bytes(b"GGUF\x03\x00\x00\x00").unwrap().err().unwrap();
    assert_eq!(err.code(), "corrupt-file");

    // Still usable: a real model loads and answers, and bad options are typed errors.
    std::fs::copy(model_path(SMOLLM2), dir.join("ok.gguf")).unwrap();
    let m = s.load(&dir.join("ok.gguf")).unwrap().unwrap();
    let bad_temp = GenerateOptions { temperature: Some(-1.0), ..Default::default() };
    assert_eq!(s.generate(m, "hi", &bad_temp).unwrap().unwrap_err().code(), "invalid-option");
    let bad_p = GenerateOptions { top_p: Some(1.5), ..Default::default() };
    assert_eq!(s.generate(m, "hi", &bad_p).unwrap().unwrap_err().code(), "invalid-option");
    let too_long = GenerateOptions { max_tokens: Some(1 << 30), ..Default::default() };
    assert_eq!(s.generate(m, "hi", &too_long).unwrap().unwrap_err().code(), "context-overflow");
    assert_eq!(s.detokenize(m, &[u32::MAX]).unwrap().unwrap_err().code(), "invalid-option");
    let g = s.generate(m, "The capital of France is", &GenerateOptions { max_tokens: Some(3), ..Default::default() });
    assert_eq!(g.unwrap().unwrap().tokens.len(), 3);
    std::fs::remove_file(dir.join("ok.gguf")).ok();
}

/// Same seed, same sampled text; stop strings cut the text.
#[test]
fn sampling_is_seeded_and_stop_strings_cut() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let opts = GenerateOptions { max_tokens: Some(24), temperature: Some(0.9), top_k: Some(40), top_p: Some(0.95), seed: Some(7), ..Default::default() };
    let a = s.generate(m, "Once upon a time", &opts).unwrap().unwrap();
    let b = s.generate(m, "Once upon a time", &opts).unwrap().unwrap();
    assert_eq!(a.tokens, b.tokens);
    let other = GenerateOptions { seed: Some(8), ..opts.clone() };
    let c = s.generate(m, "Once upon a time", &other).unwrap().unwrap();
    assert_ne!(a.tokens, c.tokens, "different seeds gave the same 24 tokens");
    let stop = GenerateOptions { max_tokens: Some(64), stop: vec![".".into()], ..Default::default() };
    let g = s.generate(m, "The capital of France is", &stop).unwrap().unwrap();
    assert!(!g.text.contains('.'), "{:?}", g.text);
    assert!(matches!(g.finish_reason, edgeslm_host::FinishReason::StopString));
}

/// `chat` wraps the prompt in the GGUF's chat template (SmolLM2 ships ChatML), or for a file
/// without one (this Gemma) the template its vocabulary's turn markers name.
#[test]
fn chat_template_is_applied_when_asked() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let chat = GenerateOptions { max_tokens: Some(12), chat: Some(true), ..Default::default() };
    let g = s.generate(m, "What is the capital of France?", &chat).unwrap().unwrap();
    let plain = s.tokenize(m, "What is the capital of France?", true, false).unwrap();
    // ChatML: <|im_start|>system ... <|im_end|> <|im_start|>user ... <|im_end|> <|im_start|>assistant
    let im_start = s.tokenize(m, "<|im_start|>", false, true).unwrap();
    assert_eq!(im_start.len(), 1);
    assert!(g.prompt_tokens as usize > plain.len() + 10, "{} vs {}", g.prompt_tokens, plain.len());
    assert!(!g.tokens.is_empty());
    // The same turn written out by hand, with special-token parsing, is the same prompt.
    let by_hand = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let special = GenerateOptions { max_tokens: Some(12), parse_special: Some(true), ..Default::default() };
    let h = s.generate(m, by_hand, &special).unwrap().unwrap();
    assert_eq!((h.prompt_tokens, &h.tokens), (g.prompt_tokens, &g.tokens));
    // This Gemma file ships no template: its vocabulary's turn markers select Gemma's own.
    let (mut gs, gm, _) = open_model(&host, &model_path(GEMMA)).unwrap();
    let g = gs.generate(gm, "hi", &chat).unwrap().unwrap();
    let by_hand = "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n";
    let h = gs.generate(gm, by_hand, &special).unwrap().unwrap();
    assert_eq!((h.prompt_tokens, &h.tokens), (g.prompt_tokens, &g.tokens));
}

/// The relaxed-simd build (`cargo xtask build` writes it; the CLI picks it by default where
/// wasmtime compiles it) gives the SIMD128 build's bytes: the same generated tokens and text,
/// the same constrained JSON, the same classify probabilities to the last bit, on both models.
#[test]
fn relaxed_simd_build_gives_the_same_bytes_as_simd128() {
    let relaxed = root().join("target/release/edgeslm-component-relaxed.wasm");
    assert!(relaxed.exists(), "{} is missing: run `cargo xtask build` first", relaxed.display());
    let (plain, relaxed) = (host(), Host::new(&relaxed).unwrap());
    let labels: Vec<String> = ["incident", "billing", "inquiry"].map(String::from).to_vec();
    let schema = edgeslm_host::Constraint::JsonSchema(TICKET_SCHEMA.into());
    for model_file in [GEMMA, SMOLLM2] {
        let mut runs = vec![];
        for host in [&plain, &relaxed] {
            let (mut s, m, _) = open_model(host, &model_path(model_file)).unwrap();
            let opts = GenerateOptions { max_tokens: Some(24), temperature: Some(0.0), ..Default::default() };
            let mut out = vec![];
            for text in SUPPORT_MESSAGES {
                let g = s.generate(m, text, &opts).unwrap().unwrap();
                out.push(format!("{:?} {}", g.tokens, g.text));
                let prompt = format!("Message: {text}\nTicket:");
                let g = s.generate_constrained(m, &prompt, &schema, &opts).unwrap().unwrap();
                out.push(g.text);
                let c = s.classify(m, text, &labels, &Default::default()).unwrap().unwrap();
                out.push(format!("{} {:?}", c.label, c.scores.iter().map(|x| (x.probability.to_bits(), x.uncalibrated.to_bits())).collect::<Vec<_>>()));
            }
            runs.push(out);
        }
        assert_eq!(runs[0], runs[1], "{model_file}: the relaxed-simd build differs from the SIMD128 one");
    }
}
