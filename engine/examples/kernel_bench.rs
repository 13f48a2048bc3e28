//! Kernel benchmark: the quantized matrix products alone, one weight matrix per type, for
//! one token (decode: `Matrix::matvec`, one `vec_dot` per row) and for a batch of tokens
//! (prefill: `Matrix::matmul`, tiles of eight and four tokens), on one thread.
//! Runs natively or as wasm (the component's SIMD128 kernels):
//!   cargo run --release -p edgeslm-engine --example kernel_bench
//!   cargo build --release -p edgeslm-engine --example kernel_bench --target wasm32-wasip2 &&
//!     wasmtime target/wasm32-wasip2/release/examples/kernel_bench.wasm
//! Prints, per type, the million multiply-adds per second of each (median of 9 runs).
//! Arguments (optional): the weights' columns (default 1024; Gemma 3 270M's Q5_0 matrices
//! have 640), then the types to run (default all), e.g. `640 Q5_0 Q8_0`.
use std::sync::Arc;
use std::time::Instant;

use edgeslm_engine::gguf::TensorInfo;
use edgeslm_engine::quant::testdata::{random_row, Rng};
use edgeslm_engine::quant::{GgmlType, QuantizedRow};
use edgeslm_engine::tensor::Matrix;
use edgeslm_engine::Storage;

const ROWS: usize = 2048;
const TOKENS: usize = 64;
/// One token's product is short; repeated so each timing is tens of milliseconds.
const DECODE_REPEATS: usize = 32;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    edgeslm_engine::parallel::set_threads(1).expect("one thread");
    let mut rng = Rng(42);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cols: usize = args.first().map(|c| c.parse().expect("columns: a number")).unwrap_or(1024);
    let all = [GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K];
    let types: Vec<GgmlType> = all.into_iter().filter(|t| args.len() < 2 || args[1..].iter().any(|a| a == t.name())).collect();
    println!("{:<6} {:>14} {:>14}   ({ROWS}x{cols} weights; prefill: {TOKENS} tokens)", "type", "decode MMAC/s", "prefill MMAC/s");
    for ty in types {
        let w: Vec<u8> = (0..ROWS).flat_map(|_| random_row(ty, cols, 1.0, &mut rng)).collect();
        let info = TensorInfo { name: "w".into(), dims: vec![cols as u64, ROWS as u64], ggml_type: ty, offset: 0, size: w.len() };
        let m = Matrix::from_info(&info, &Arc::new(Storage::Owned(w))).unwrap();
        let mut out = vec![0.0f32; ROWS * TOKENS];
        let xs: Vec<QuantizedRow> = (0..TOKENS)
            .map(|_| {
                let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
                let mut q = QuantizedRow::new(ty.dot_type());
                q.quantize(&x);
                q
            })
            .collect();
        let mut sink = 0.0f32;
        let decode = median(
            (0..9)
                .map(|_| {
                    let t = Instant::now();
                    for k in 0..DECODE_REPEATS {
                        m.matvec(&xs[k % TOKENS], &mut out);
                        sink += out[k];
                    }
                    (DECODE_REPEATS * ROWS * cols) as f64 / t.elapsed().as_secs_f64() / 1e6
                })
                .collect(),
        );
        let prefill = median(
            (0..9)
                .map(|_| {
                    let t = Instant::now();
                    m.matmul(&xs, &mut out);
                    sink += out[0];
                    (ROWS * cols * TOKENS) as f64 / t.elapsed().as_secs_f64() / 1e6
                })
                .collect(),
        );
        println!("{:<6} {decode:>14.0} {prefill:>14.0}", ty.name());
        std::hint::black_box(sink);
    }
}
