//! Tiny random-weight models of the newer architectures with the real vocabularies of
//! llama.cpp's vocabulary-only files (fetched by scripts/fetch-vocab into models/vocab/): Llama 3 (llama with
//! `rope_freqs`), Qwen2 (Q/K/V biases), Qwen3 (QK-norm, heads wider than n_embd / n_head)
//! and Phi-3 (fused QKV and gate/up, partial rotary, LongRoPE factors and attention factor).
//! Deterministic bytes, so llama.cpp fixtures recorded on them stay valid.

use edgeslm_engine::quant::testdata::{random_row, Rng};
use edgeslm_engine::quant::GgmlType;

use crate::{root, GgufWriter};

/// (model name, architecture, vocabulary file, tensor type of the layers).
pub const MODELS: [(&str, &str, &str, GgmlType); 4] = [
    ("tiny-llama3-q4_k", "llama", "llama-bpe", GgmlType::Q4K),
    ("tiny-qwen2-q8_0", "qwen2", "qwen2", GgmlType::Q8_0),
    ("tiny-qwen3-q6_k", "qwen3", "qwen2", GgmlType::Q6K),
    ("tiny-phi3-q5_0", "phi3", "phi-3", GgmlType::Q5_0),
];

const N_EMBD: usize = 256;
const N_FF: usize = 512;
const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;
const N_LAYER: usize = 2;

/// The raw `tokenizer.*` key-value pairs of a GGUF file: (key, value type, value bytes).
fn tokenizer_kv(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    all_kv(bytes).into_iter().filter(|(k, _, _)| k.starts_with("tokenizer.")).collect()
}

/// A vocabulary-only file: every key of llama.cpp's `ggml-vocab-{vocab}.gguf` but with
/// `tokenizer.ggml.pre` = `pre`. For pre-tokenizers whose models' vocabularies are not among
/// llama.cpp's files (gpt-4o: Phi-4-mini, Llama 4): the split is the pre-tokenizer's, the
/// merges the file's.
pub fn vocab_with_pre(vocab: &str, pre: &str) -> Vec<u8> {
    let bytes = std::fs::read(root().join(format!("models/vocab/ggml-vocab-{vocab}.gguf"))).unwrap();
    let mut w = GgufWriter::default();
    for (key, ty, value) in all_kv(&bytes) {
        if key == "tokenizer.ggml.pre" {
            w.str(&key, pre);
        } else {
            w.raw(&key, ty, &value);
        }
    }
    w.bytes()
}

/// The raw key-value pairs of a GGUF file: (key, value type, value bytes).
fn all_kv(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let mut at = 24usize;
    let n_kv = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    // The size of one value of type `ty` at `at`.
    fn size(b: &[u8], at: usize, ty: u32) -> usize {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => 8 + u64_at(at),
            9 => {
                let elem = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                let n = u64_at(at + 4);
                let mut p = at + 12;
                for _ in 0..n {
                    p += size(b, p, elem);
                }
                p - at
            }
            _ => panic!("GGUF value type {ty}"),
        }
    }
    let mut out = Vec::new();
    for _ in 0..n_kv {
        let len = u64_at(bytes, at);
        let key = String::from_utf8(bytes[at + 8..at + 8 + len].to_vec()).unwrap();
        at += 8 + len;
        let ty = u32_at(bytes, at);
        at += 4;
        let n = size(bytes, at, ty);
        out.push((key, ty, bytes[at..at + n].to_vec()));
        at += n;
    }
    out
}

fn seed(name: &str) -> u64 {
    name.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
}

/// The GGUF bytes of one of [`MODELS`].
pub fn model(name: &str) -> Vec<u8> {
    let &(_, arch, vocab, ty) = MODELS.iter().find(|m| m.0 == name).unwrap_or_else(|| panic!("no tiny model {name}"));
    let vocab_bytes = std::fs::read(root().join(format!("models/vocab/ggml-vocab-{vocab}.gguf"))).unwrap();
    let kv = tokenizer_kv(&vocab_bytes);
    let n_vocab = {
        let (_, _, tokens) = kv.iter().find(|(k, _, _)| k == "tokenizer.ggml.tokens").unwrap();
        u64::from_le_bytes(tokens[4..12].try_into().unwrap()) as usize
    };
    // Qwen3's heads are wider than n_embd / n_head, as in the real models.
    let head_dim = if arch == "qwen3" { 128 } else { N_EMBD / N_HEAD };
    let (q_dim, kv_dim) = (N_HEAD * head_dim, N_HEAD_KV * head_dim);
    // Phi-3 rotates the first 3/4 of each head, as Phi-4-mini does.
    let n_rot = if arch == "phi3" { head_dim * 3 / 4 } else { head_dim };

    let mut rng = Rng(seed(name));
    let mut w = GgufWriter::default();
    w.str("general.architecture", arch);
    w.str("general.name", name);
    let k = |s: &str| format!("{arch}.{s}");
    w.u32(&k("context_length"), 4096);
    w.u32(&k("embedding_length"), N_EMBD as u32);
    w.u32(&k("block_count"), N_LAYER as u32);
    w.u32(&k("feed_forward_length"), N_FF as u32);
    w.u32(&k("attention.head_count"), N_HEAD as u32);
    w.u32(&k("attention.head_count_kv"), N_HEAD_KV as u32);
    w.u32(&k("attention.key_length"), head_dim as u32);
    w.u32(&k("attention.value_length"), head_dim as u32);
    w.u32(&k("rope.dimension_count"), n_rot as u32);
    w.f32(&k("attention.layer_norm_rms_epsilon"), 1e-5);
    w.f32(&k("rope.freq_base"), if arch == "llama" { 500000.0 } else { 10000.0 });
    if arch == "phi3" {
        // Trained for 512 positions, stretched to 4096: the long factors apply.
        w.u32(&k("rope.scaling.original_context_length"), 512);
        w.f32(&k("rope.scaling.attn_factor"), (1.0 + (8f32).ln() / (512f32).ln()).sqrt());
    }
    for (key, ty, value) in &kv {
        w.raw(key, *ty, value);
    }

    let norm = |rng: &mut Rng, n: usize| -> Vec<u8> { (0..n).flat_map(|_| (1.0 + 0.1 * rng.f32()).to_le_bytes()).collect() };
    let vector = |w: &mut GgufWriter, name: &str, n: usize, rng: &mut Rng| {
        w.tensor(name, &[n as u64], GgmlType::F32.id(), &norm(rng, n));
    };
    let bias = |w: &mut GgufWriter, name: &str, n: usize, rng: &mut Rng| {
        let b: Vec<u8> = (0..n).flat_map(|_| (0.5 * rng.f32()).to_le_bytes()).collect();
        w.tensor(name, &[n as u64], GgmlType::F32.id(), &b);
    };
    let matrix = |w: &mut GgufWriter, name: &str, ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng| {
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(ty, cols, 0.5, rng)).collect();
        w.tensor(name, &[cols as u64, rows as u64], ty.id(), &bytes);
    };
    // Embeddings in Q8_0 whatever the layers' type (150k-row vocabularies).
    matrix(&mut w, "token_embd.weight", GgmlType::Q8_0, n_vocab, N_EMBD, &mut rng);
    vector(&mut w, "output_norm.weight", N_EMBD, &mut rng);
    if arch == "llama" || arch == "phi3" {
        matrix(&mut w, "output.weight", GgmlType::Q8_0, n_vocab, N_EMBD, &mut rng);
    }
    let factors = |w: &mut GgufWriter, name: &str, rng: &mut Rng| {
        let f: Vec<u8> = (0..n_rot / 2).flat_map(|i| (1.0 + i as f32 * (0.5 + 0.5 * rng.f32().abs())).to_le_bytes()).collect();
        w.tensor(name, &[(n_rot / 2) as u64], GgmlType::F32.id(), &f);
    };
    match arch {
        "llama" => factors(&mut w, "rope_freqs.weight", &mut rng),
        "phi3" => {
            factors(&mut w, "rope_factors_long.weight", &mut rng);
            factors(&mut w, "rope_factors_short.weight", &mut rng);
        }
        _ => {}
    }
    for l in 0..N_LAYER {
        let p = |s: &str| format!("blk.{l}.{s}");
        vector(&mut w, &p("attn_norm.weight"), N_EMBD, &mut rng);
        if arch == "phi3" {
            matrix(&mut w, &p("attn_qkv.weight"), ty, q_dim + 2 * kv_dim, N_EMBD, &mut rng);
        } else {
            matrix(&mut w, &p("attn_q.weight"), ty, q_dim, N_EMBD, &mut rng);
            matrix(&mut w, &p("attn_k.weight"), ty, kv_dim, N_EMBD, &mut rng);
            matrix(&mut w, &p("attn_v.weight"), ty, kv_dim, N_EMBD, &mut rng);
        }
        if arch == "qwen2" {
            bias(&mut w, &p("attn_q.bias"), q_dim, &mut rng);
            bias(&mut w, &p("attn_k.bias"), kv_dim, &mut rng);
            bias(&mut w, &p("attn_v.bias"), kv_dim, &mut rng);
        }
        if arch == "qwen3" {
            vector(&mut w, &p("attn_q_norm.weight"), head_dim, &mut rng);
            vector(&mut w, &p("attn_k_norm.weight"), head_dim, &mut rng);
        }
        matrix(&mut w, &p("attn_output.weight"), ty, N_EMBD, q_dim, &mut rng);
        vector(&mut w, &p("ffn_norm.weight"), N_EMBD, &mut rng);
        if arch == "phi3" {
            matrix(&mut w, &p("ffn_up.weight"), ty, 2 * N_FF, N_EMBD, &mut rng);
        } else {
            matrix(&mut w, &p("ffn_gate.weight"), ty, N_FF, N_EMBD, &mut rng);
            matrix(&mut w, &p("ffn_up.weight"), ty, N_FF, N_EMBD, &mut rng);
        }
        matrix(&mut w, &p("ffn_down.weight"), ty, N_EMBD, N_FF, &mut rng);
    }
    w.bytes()
}
