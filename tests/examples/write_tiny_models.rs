//! Write every tiny test model to a directory (for recording llama.cpp fixtures on them):
//! `cargo run --release -p edgeslm-tests --example write-tiny-models -- DIR`
use edgeslm_engine::quant::GgmlType;
use edgeslm_tests::tiny;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: write-tiny-models DIR");
    std::fs::create_dir_all(&dir).unwrap();
    for arch in tiny::ARCHS {
        for ty in GgmlType::ALL {
            let path = format!("{dir}/{}.gguf", tiny::name(arch, ty));
            std::fs::write(&path, tiny::model(arch, ty)).unwrap();
            println!("{path}");
        }
    }
}
