//! The GPU forward pass (`edgeslm-gpu`, wgpu) against llama.cpp's fixtures and the CPU path,
//! on both real models. CI has no GPU: it runs these on Mesa's lavapipe (a Vulkan driver on
//! the CPU, installed by `.ci/run`), which checks correctness only; speed needs a real GPU.
//!
//! The GPU multiplies f32 activations with the dequantized weights, where the CPU path (as
//! llama.cpp's CPU backend) first quantizes the activations to 8 bits; measured, that keeps
//! the GPU's top-20 logits as near llama.cpp's as the CPU path's, so the tolerance is the
//! same [`LOGIT_TOLERANCE`] (max 0.55 on Gemma 3, 0.59 on SmolLM2 over the 12 prompts each).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use edgeslm_engine::remote::{RemoteForward, Step};
use edgeslm_engine::*;
use edgeslm_gpu::{Gpu, GpuForward, GpuModel};
use edgeslm_host::nn::Device;
use edgeslm_host::{open_model, Backend, Host};
use edgeslm_tests::*;

/// One GPU user at a time: lavapipe runs on the same two cores as everything else.
static SERIAL: Mutex<()> = Mutex::new(());

fn gpu() -> Gpu {
    Gpu::open().unwrap_or_else(|e| panic!("{e}: these tests need a Vulkan driver (Mesa's lavapipe: apt-get install mesa-vulkan-drivers)"))
}

/// The CPU model and the same file on the GPU.
fn pair(file: &str) -> (Arc<Model>, Model) {
    let cpu = Arc::new(Model::open(model_path(file).to_str().unwrap()).unwrap());
    let gpu = edgeslm_gpu::open_model(gpu(), model_path(file).to_str().unwrap()).unwrap();
    (cpu, gpu)
}

fn check_logits(file: &str, fixture_file: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = pair(file);
    assert!(model.backend_name().starts_with("gpu: "), "{}", model.backend_name());
    let diffs = check_fixture_logits(&model, &fixture(fixture_file), LOGIT_TOLERANCE);
    eprintln!("{file} on {}: top-20 logits vs llama.cpp, max |Δ| per prompt {diffs:.3?}", model.backend_name());
}

#[test]
fn gemma3_logits_on_the_gpu_match_llama_cpp() {
    check_logits(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_logits_on_the_gpu_match_llama_cpp() {
    check_logits(SMOLLM2, SMOLLM2_FIXTURE);
}

/// Greedy continuations equal llama.cpp's except at its near-ties: the first `cases`
/// prompts, `tokens` tokens each (lavapipe takes ~1 s per step of Gemma's 262k-row head).
fn check_greedy(file: &str, fixture_file: &str, cases: usize, tokens: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = pair(file);
    let fx = fixture(fixture_file);
    let mut identical = 0;
    for case in fx.greedy.iter().take(cases) {
        let opts = GenerateOptions { max_tokens: tokens as u32, ..Default::default() };
        let g = model.generate_from_tokens(&case.prompt_ids, &opts).unwrap();
        // The fixture's continuation cut to as many tokens (llama.cpp's ending counts only
        // if it came within them).
        let n = tokens.min(case.tokens.len());
        let cut = GreedyCase {
            prompt: case.prompt.clone(),
            prompt_ids: case.prompt_ids.clone(),
            tokens: case.tokens[..n].to_vec(),
            eog: case.eog && case.tokens.len() <= tokens,
            text: String::new(),
            margins: case.margins[..n.min(case.margins.len())].to_vec(),
        };
        let ours = &g.tokens[..g.tokens.len().min(n)];
        identical += check_greedy_case(&cut, ours) as usize;
    }
    eprintln!("{file} on the GPU: {identical} of {cases} greedy continuations ({tokens} tokens) identical to llama.cpp");
}

#[test]
fn gemma3_greedy_on_the_gpu_matches_llama_cpp() {
    check_greedy(GEMMA, GEMMA_FIXTURE, 3, 12);
}

#[test]
fn smollm2_greedy_on_the_gpu_matches_llama_cpp() {
    check_greedy(SMOLLM2, SMOLLM2_FIXTURE, 4, 16);
}

/// The schema guarantee holds on the GPU path (the constraint engine is the same; only the
/// logits come from elsewhere), and classify's probabilities stay near the CPU's.
#[test]
fn constrained_and_classify_on_the_gpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let schema: serde_json::Value = serde_json::from_str(TICKET_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in [GEMMA, SMOLLM2] {
        let (cpu, gpu) = pair(file);
        let mut a = Instance::new(Arc::try_unwrap(cpu).ok().unwrap());
        let mut b = Instance::new(gpu);
        let opts = GenerateOptions { max_tokens: 48, ..Default::default() };
        let mut same = 0;
        for m in SUPPORT_MESSAGES {
            let prompt = format!("Turn the support message into a ticket.\nMessage: {m}\nTicket JSON:");
            let c = Constraint::JsonSchema(TICKET_SCHEMA.into());
            let x = a.generate_constrained(&prompt, &c, &opts).unwrap();
            // (An incomplete output would be an `output-truncated` error, not a result.)
            let y = b.generate_constrained(&prompt, &c, &opts).unwrap();
            let v: serde_json::Value = serde_json::from_str(&y.text).unwrap_or_else(|e| panic!("{file} {m:?}: {:?}: {e}", y.text));
            assert!(validator.is_valid(&v), "{file} {m:?}: {} does not conform", y.text);
            same += (x.text == y.text) as usize;
        }
        eprintln!("{file}: {same} of {} constrained outputs on the GPU identical to the CPU's", SUPPORT_MESSAGES.len());

        let labels: Vec<String> = ["incident", "billing", "inquiry"].map(String::from).to_vec();
        let copts = ClassifyOptions {
            examples: vec![("site down".into(), "incident".into()), ("refund please".into(), "billing".into())],
            ..Default::default()
        };
        let mut worst = 0f64;
        for m in SUPPORT_MESSAGES {
            let x = a.classify(m, &labels, &copts).unwrap();
            let y = b.classify(m, &labels, &copts).unwrap();
            let sum: f64 = y.scores.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "{file} {m:?}: probabilities sum to {sum}");
            let diff = x.scores.iter().zip(&y.scores).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            worst = worst.max(diff);
            assert!(diff < 0.1, "{file} {m:?}: GPU probabilities {:?}, CPU {:?}", y.scores, x.scores);
        }
        eprintln!("{file}: classify probabilities on the GPU within {worst:.4} of the CPU's");
    }
}

/// Malformed steps get the protocol's typed errors, and the sequence keeps working.
#[test]
fn gpu_sequences_reject_bad_steps_and_keep_working() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = Arc::new(Model::open(model_path(SMOLLM2).to_str().unwrap()).unwrap());
    let forward = GpuForward(Arc::new(GpuModel::new(gpu(), cpu.clone()).unwrap()));
    let mut seq = forward.new_sequence().unwrap();
    let past_vocab = [cpu.vocab_size() as u32];
    let ids = cpu.tokenizer.encode("The capital of France is", true, false);
    fn step_of<'a>(position: Option<usize>, tokens: &'a [u32], allowed: Option<&'a [u32]>) -> Step<'a> {
        Step { position, tokens, allowed }
    }
    let bad = |r: Result<Vec<f32>>| match r {
        Err(e @ Error::InvalidOption(_)) => e.to_string(),
        other => panic!("expected an invalid-option error, got {other:?}"),
    };
    eprintln!("{}", bad(seq.step(&step_of(None, &[], None))));
    eprintln!("{}", bad(seq.step(&step_of(None, &[u32::MAX], Some(&[])))));
    let first = seq.step(&step_of(None, &ids, Some(&[1, 2, 3]))).unwrap();
    eprintln!("{}", bad(seq.step(&step_of(None, &[], Some(&past_vocab)))));
    // More ids than the vocabulary (repeats are allowed, but the head has a slot per entry).
    let too_many = vec![1u32; cpu.vocab_size() + 1];
    eprintln!("{}", bad(seq.step(&step_of(None, &[], Some(&too_many)))));
    eprintln!("{}", bad(seq.step(&step_of(Some(ids.len() + 1), &[], None))));
    // Roll back and evaluate again: the same logits.
    let again = seq.step(&step_of(Some(0), &ids, Some(&[1, 2, 3]))).unwrap();
    assert_eq!(first, again);
    // The sparse head equals the dense one at those ids.
    let all = seq.step(&step_of(None, &[], None)).unwrap();
    assert_eq!(all.len(), cpu.vocab_size());
    assert_eq!(first, vec![all[1], all[2], all[3]]);
    // Prefill in one batch equals token by token, within float reordering.
    let mut one = forward.new_sequence().unwrap();
    let mut last = vec![];
    for t in ids.chunks(1) {
        last = one.step(&step_of(None, t, None)).unwrap();
    }
    let diff = all.iter().zip(&last).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-3, "batched and token-by-token prefill differ by {diff}");
}

/// `--device gpu` through the wasmtime host and the `runtime-nn` component: the guest keeps
/// tokenizer, constraints and sampling; the host's GPU runs the forward pass.
#[test]
fn the_wasi_nn_host_serves_the_gpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let component = root().join("target/release").join(Backend::WasiNn.component_file());
    assert!(component.exists(), "{} is missing: run `cargo xtask build` first", component.display());
    let host = Host::with_backend(&component, Backend::WasiNn).unwrap();
    host.registry.set_device(Device::Gpu);
    let path: PathBuf = model_path(SMOLLM2);
    let (mut s, m, _) = open_model(&host, &path).unwrap();
    let guest = edgeslm_host::guest_path(&path.canonicalize().unwrap()).unwrap();
    let backend = host.registry.backend_of(&guest).unwrap();
    assert!(backend.starts_with("gpu: "), "{backend}");
    let opts = edgeslm_host::GenerateOptions { max_tokens: Some(48), temperature: Some(0.0), ..Default::default() };
    let prompt = format!("Turn the support message into a ticket.\nMessage: {}\nTicket JSON:", SUPPORT_MESSAGES[1]);
    let g = s.generate_constrained(m, &prompt, &edgeslm_host::Constraint::JsonSchema(TICKET_SCHEMA.into()), &opts).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&g.text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(TICKET_SCHEMA).unwrap();
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&v), "{}", g.text);
    // A bad input is the same typed error as on the CPU, and the instance goes on working.
    let e = s.generate_constrained(m, "x", &edgeslm_host::Constraint::JsonSchema("{\"type\":".into()), &opts).unwrap().unwrap_err();
    assert_eq!(e.code(), "invalid-schema", "{}", e.message());
    let again = s.generate_constrained(m, &prompt, &edgeslm_host::Constraint::JsonSchema(TICKET_SCHEMA.into()), &opts).unwrap().unwrap();
    assert_eq!(again.text, g.text);
}
