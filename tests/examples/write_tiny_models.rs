//! Write test models to a directory (for recording llama.cpp fixtures on them, and for the
//! benchmark): `cargo run --release -p edgeslm-tests --example write-tiny-models -- DIR
//! [--real-vocab | --gpt-4o-vocab | --shape NAME]`: the toy-vocabulary models of
//! tests/tiny.rs; with --real-vocab those of tests/tiny_vocab.rs; with --gpt-4o-vocab Llama 3's
//! vocabulary with the gpt-4o pre-tokenizer; with --shape one real model's shape with random
//! Q4_K_M weights (qwen3-0.6b, llama-3.2-1b, qwen2.5-1.5b, phi-3.5-mini).
use edgeslm_engine::quant::GgmlType;
use edgeslm_tests::{tiny, tiny_vocab};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().expect("usage: write-tiny-models DIR [--real-vocab | --gpt-4o-vocab | --shape NAME]");
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = format!("{dir}/{name}.gguf");
        std::fs::write(&path, bytes).unwrap();
        println!("{path}");
    };
    if let Some(i) = args.iter().position(|a| a == "--shape") {
        // A real model's shape with random Q4_K_M weights (tiny_vocab::REAL_SHAPES).
        let name = args.get(i + 1).expect("--shape NAME");
        let path = format!("{dir}/{name}-random-q4_k_m.gguf");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        tiny_vocab::write_real_shape(name, &mut out).unwrap();
        std::io::Write::flush(&mut out).unwrap();
        println!("{path}");
        return;
    }
    if args.iter().any(|a| a == "--gpt-4o-vocab") {
        // The gpt-4o pre-tokenizer over Llama 3's vocabulary (tests/vocab.rs).
        write("vocab-gpt-4o-on-llama-bpe", tiny_vocab::vocab_with_pre("llama-bpe", "gpt-4o"));
        return;
    }
    if args.iter().any(|a| a == "--real-vocab") {
        for (name, ..) in tiny_vocab::MODELS {
            write(name, tiny_vocab::model(name));
        }
        return;
    }
    for arch in tiny::ARCHS {
        for ty in GgmlType::ALL {
            write(&tiny::name(arch, ty), tiny::model(arch, ty));
        }
    }
}
