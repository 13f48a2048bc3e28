//! The wasi-nn backend through the real components: on both real models, generate,
//! generate-constrained and classify give the same outputs through the `runtime-nn` build
//! (forward pass in this host, native kernels, 2 threads) as through the portable build —
//! same text, same tokens, bit-identical probabilities (tolerance 0: the engine's float
//! math is the same code natively and in wasm). A model the host does not serve falls back
//! to the portable path; the weights are shared by every instance.

use std::path::PathBuf;
use std::sync::Mutex;

use edgeslm_host::{open_model, Backend, ClassifyOptions, Constraint, Example, GenerateOptions, Host};
use edgeslm_tests::*;

/// One test at a time: the thread count is global and the memory test reads this
/// process's RSS.
static SERIAL: Mutex<()> = Mutex::new(());

fn component(backend: Backend) -> PathBuf {
    let p = root().join("target/release").join(backend.component_file());
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    p
}

fn host(backend: Backend) -> Host {
    Host::with_backend(&component(backend), backend).unwrap()
}

const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Write a short poem about rain:",
    "def fibonacci(n):",
    "Translate to French: good morning, my friend.",
];

/// Everything the fixed inputs produce, as comparable values.
fn outputs(backend: Backend, file: &str) -> (String, Vec<String>) {
    edgeslm_engine::parallel::set_threads(2).unwrap();
    let host = host(backend);
    let (mut s, m, _) = open_model(&host, &model_path(file)).unwrap();
    let info = s.info(m).unwrap();
    let mut out = vec![];
    let greedy = GenerateOptions { max_tokens: Some(32), temperature: Some(0.0), ..Default::default() };
    for p in PROMPTS {
        let g = s.generate(m, p, &greedy).unwrap().unwrap();
        out.push(format!("generate {p:?}: {:?} {:?} {:?}", g.text, g.tokens, g.finish_reason));
    }
    let json = GenerateOptions { max_tokens: Some(64), temperature: Some(0.0), ..Default::default() };
    for msg in SUPPORT_MESSAGES {
        let prompt = format!("Turn the support message into a ticket.\nMessage: {msg}\nTicket JSON:");
        let g = s.generate_constrained(m, &prompt, &Constraint::JsonSchema(TICKET_SCHEMA.into()), &json).unwrap().unwrap();
        out.push(format!("constrained {msg:?}: {:?} {:?}", g.text, g.tokens));
    }
    let labels: Vec<String> = ["incident", "billing", "inquiry"].map(String::from).to_vec();
    let opts = ClassifyOptions {
        examples: vec![
            Example { text: "the site is down".into(), label: "incident".into() },
            Example { text: "refund my last payment".into(), label: "billing".into() },
            Example { text: "where can I find the API docs?".into(), label: "inquiry".into() },
        ],
        ..Default::default()
    };
    for msg in SUPPORT_MESSAGES {
        let c = s.classify(m, msg, &labels, &opts).unwrap().unwrap();
        let bits: Vec<(String, u64, u64)> =
            c.scores.iter().map(|x| (x.label.clone(), x.probability.to_bits(), x.uncalibrated.to_bits())).collect();
        out.push(format!("classify {msg:?}: {} {bits:?}", c.label));
    }
    (info.backend, out)
}

#[test]
fn wasi_nn_and_portable_give_the_same_outputs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for file in [GEMMA, SMOLLM2] {
        let (portable_backend, portable) = outputs(Backend::Portable, file);
        let (nn_backend, nn) = outputs(Backend::WasiNn, file);
        assert_eq!(portable_backend, "portable");
        assert_eq!(nn_backend, "wasi-nn");
        for (a, b) in portable.iter().zip(&nn) {
            assert_eq!(a, b, "{file}: portable vs wasi-nn");
        }
        assert_eq!(portable.len(), nn.len());
    }
}

#[test]
fn unserved_models_fall_back_to_the_portable_path() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The nn build in a host that serves nothing: load-by-name says not-found.
    let host = host(Backend::Portable);
    let nn = Host::with_backend(&component(Backend::WasiNn), Backend::Portable).unwrap();
    for h in [&host, &nn] {
        let (mut s, m, _) = open_model(h, &model_path(SMOLLM2)).unwrap();
        assert_eq!(s.info(m).unwrap().backend, "portable");
    }
    // And the nn build imports wasi:nn; the portable one imports nothing of the kind.
    assert!(nn.imports().iter().any(|i| i.starts_with("wasi:nn/inference")));
    assert!(!host.imports().iter().any(|i| i.starts_with("wasi:nn")));
    for i in nn.imports() {
        assert!(!i.contains("sockets") && !i.contains("http"), "the runtime-nn build imports {i}");
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn instances_share_one_copy_of_the_weights() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = model_path(GEMMA);
    let size = std::fs::metadata(&file).unwrap().len();
    let host = host(Backend::WasiNn);
    let labels: Vec<String> = ["incident", "billing", "inquiry"].map(String::from).to_vec();
    let mut sessions = vec![];
    let mut after = vec![];
    for i in 0..8 {
        let (mut s, m, _) = open_model(&host, &file).unwrap();
        let c = s.classify(m, SUPPORT_MESSAGES[i % SUPPORT_MESSAGES.len()], &labels, &ClassifyOptions::default()).unwrap().unwrap();
        assert!(labels.contains(&c.label));
        sessions.push(s);
        after.push(rss());
    }
    let per_instance = (after[7] - after[0]) / 7;
    eprintln!(
        "wasi-nn, Gemma 3 270M ({:.0} MB file): RSS {:.0} MB with 1 instance, {:.0} MB with 8 ({:.0} MB per extra instance)",
        size as f64 / 1e6,
        after[0] as f64 / 1e6,
        after[7] as f64 / 1e6,
        per_instance as f64 / 1e6
    );
    // A copy of the weights per instance would add the file's size each time.
    assert!(per_instance < size / 2, "each extra instance adds {per_instance} bytes (file: {size})");
}
