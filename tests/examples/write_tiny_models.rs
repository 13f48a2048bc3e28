//! Write every tiny test model to a directory (for recording llama.cpp fixtures on them):
//! `cargo run --release -p edgeslm-tests --example write-tiny-models -- DIR [--real-vocab]`
//! (the toy-vocabulary models of tests/tiny.rs, or with --real-vocab those of
//! tests/tiny_vocab.rs).
use edgeslm_engine::quant::GgmlType;
use edgeslm_tests::{tiny, tiny_vocab};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().expect("usage: write-tiny-models DIR [--real-vocab | --gpt-4o-vocab]");
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = format!("{dir}/{name}.gguf");
        std::fs::write(&path, bytes).unwrap();
        println!("{path}");
    };
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
