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

/// The dimensions of a model, and which tensor types its matrices get.
#[derive(Clone, Copy)]
pub struct Shape {
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_layer: usize,
    /// Rotated dimensions of a head.
    pub n_rot: usize,
    pub context: u32,
    /// Phi-3's `rope.scaling.original_context_length` (LongRoPE).
    pub original_context: u32,
    pub rope_base: f32,
    /// The output head is the embedding matrix.
    pub tied: bool,
    pub types: Types,
}

/// Tensor types: one for every layer matrix (the tiny models), or llama.cpp's Q4_K_M mix.
#[derive(Clone, Copy)]
pub enum Types {
    Uniform(GgmlType),
    Q4KM,
}

impl Types {
    /// The type of layer `l`'s matrix `name` (of `n_layer`), as llama.cpp's quantizer
    /// picks it for Q4_K_M: Q6_K for `attn_v` and `ffn_down` on the first and last eighth of
    /// the layers and every third between, Q5_K for a fused `attn_qkv`, Q4_K elsewhere.
    fn layer(self, name: &str, l: usize, n_layer: usize) -> GgmlType {
        match self {
            Types::Uniform(ty) => ty,
            Types::Q4KM => {
                let more_bits = l < n_layer / 8 || l >= 7 * n_layer / 8 || (l >= n_layer / 8 && (l - n_layer / 8) % 3 == 2);
                match name {
                    "attn_v" | "ffn_down" if more_bits => GgmlType::Q6K,
                    "attn_qkv" => GgmlType::Q5K,
                    _ => GgmlType::Q4K,
                }
            }
        }
    }
    /// The embedding matrix (Q6_K when it is also the output head) and the output head.
    fn embd(self, tied: bool) -> GgmlType {
        match self {
            Types::Uniform(_) => GgmlType::Q8_0,
            Types::Q4KM if tied => GgmlType::Q6K,
            Types::Q4KM => GgmlType::Q4K,
        }
    }
    fn output(self) -> GgmlType {
        match self {
            Types::Uniform(_) => GgmlType::Q8_0,
            Types::Q4KM => GgmlType::Q6K,
        }
    }
}

/// The tiny test shape of `arch`: 2 layers of 256.
fn tiny_shape(arch: &str, ty: GgmlType) -> Shape {
    const N_EMBD: usize = 256;
    const N_HEAD: usize = 4;
    // Qwen3's heads are wider than n_embd / n_head, as in the real models.
    let head_dim = if arch == "qwen3" { 128 } else { N_EMBD / N_HEAD };
    Shape {
        n_embd: N_EMBD,
        n_ff: 512,
        n_head: N_HEAD,
        n_head_kv: 2,
        head_dim,
        n_layer: 2,
        // Phi-3 rotates the first 3/4 of each head, as Phi-4-mini does.
        n_rot: if arch == "phi3" { head_dim * 3 / 4 } else { head_dim },
        context: 4096,
        // Trained for 512 positions, stretched to 4096: the long factors apply.
        original_context: 512,
        rope_base: if arch == "llama" { 500000.0 } else { 10000.0 },
        tied: !(arch == "llama" || arch == "phi3"),
        types: Types::Uniform(ty),
    }
}

/// Real model shapes (from the models' published configurations), written with random
/// Q4_K_M weights by `write-tiny-models --shape NAME` for the benchmark and the
/// large-model load checks: (name, architecture, vocabulary file, shape).
pub const REAL_SHAPES: [(&str, &str, &str, Shape); 4] = [
    ("qwen3-0.6b", "qwen3", "qwen2", real(1024, 3072, 16, 8, 128, 28, 128, 40960, 0, 1e6, true)),
    ("llama-3.2-1b", "llama", "llama-bpe", real(2048, 8192, 32, 8, 64, 16, 64, 131072, 0, 500000.0, true)),
    ("qwen2.5-1.5b", "qwen2", "qwen2", real(1536, 8960, 12, 2, 128, 28, 128, 32768, 0, 1e6, true)),
    ("phi-3.5-mini", "phi3", "phi-3", real(3072, 8192, 32, 32, 96, 32, 96, 131072, 4096, 10000.0, false)),
];

#[allow(clippy::too_many_arguments)]
const fn real(
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_layer: usize,
    n_rot: usize,
    context: u32,
    original_context: u32,
    rope_base: f32,
    tied: bool,
) -> Shape {
    Shape { n_embd, n_ff, n_head, n_head_kv, head_dim, n_layer, n_rot, context, original_context, rope_base, tied, types: Types::Q4KM }
}

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
    build(name, arch, vocab, &tiny_shape(arch, ty)).bytes()
}

/// One of [`REAL_SHAPES`] with random weights, written to `out` (2.3 GB for Phi-3.5-mini).
pub fn write_real_shape(name: &str, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let (_, arch, vocab, shape) = REAL_SHAPES.iter().find(|m| m.0 == name).unwrap_or_else(|| panic!("no shape {name}"));
    build(name, arch, vocab, shape).write_to(out)
}

fn build(name: &str, arch: &str, vocab: &str, shape: &Shape) -> GgufWriter {
    let &Shape { n_embd, n_ff, n_head, n_head_kv, head_dim, n_layer, n_rot, .. } = shape;
    let vocab_bytes = std::fs::read(root().join(format!("models/vocab/ggml-vocab-{vocab}.gguf"))).unwrap();
    let kv = tokenizer_kv(&vocab_bytes);
    let n_vocab = {
        let (_, _, tokens) = kv.iter().find(|(k, _, _)| k == "tokenizer.ggml.tokens").unwrap();
        u64::from_le_bytes(tokens[4..12].try_into().unwrap()) as usize
    };
    let (q_dim, kv_dim) = (n_head * head_dim, n_head_kv * head_dim);

    let mut rng = Rng(seed(name));
    let mut w = GgufWriter::default();
    w.str("general.architecture", arch);
    w.str("general.name", name);
    let k = |s: &str| format!("{arch}.{s}");
    w.u32(&k("context_length"), shape.context);
    w.u32(&k("embedding_length"), n_embd as u32);
    w.u32(&k("block_count"), n_layer as u32);
    w.u32(&k("feed_forward_length"), n_ff as u32);
    w.u32(&k("attention.head_count"), n_head as u32);
    w.u32(&k("attention.head_count_kv"), n_head_kv as u32);
    w.u32(&k("attention.key_length"), head_dim as u32);
    w.u32(&k("attention.value_length"), head_dim as u32);
    w.u32(&k("rope.dimension_count"), n_rot as u32);
    w.f32(&k("attention.layer_norm_rms_epsilon"), 1e-5);
    w.f32(&k("rope.freq_base"), shape.rope_base);
    if arch == "phi3" {
        let (orig, ctx) = (shape.original_context as f32, shape.context as f32);
        w.u32(&k("rope.scaling.original_context_length"), shape.original_context);
        w.f32(&k("rope.scaling.attn_factor"), (1.0 + (ctx / orig).ln() / orig.ln()).sqrt());
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
    // The tiny models' embeddings are Q8_0 whatever the layers' type (150k-row vocabularies).
    let types = shape.types;
    matrix(&mut w, "token_embd.weight", types.embd(shape.tied), n_vocab, n_embd, &mut rng);
    vector(&mut w, "output_norm.weight", n_embd, &mut rng);
    if !shape.tied {
        matrix(&mut w, "output.weight", types.output(), n_vocab, n_embd, &mut rng);
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
    for l in 0..n_layer {
        let p = |s: &str| format!("blk.{l}.{s}");
        let ty = |s: &str| types.layer(s, l, n_layer);
        vector(&mut w, &p("attn_norm.weight"), n_embd, &mut rng);
        if arch == "phi3" {
            matrix(&mut w, &p("attn_qkv.weight"), ty("attn_qkv"), q_dim + 2 * kv_dim, n_embd, &mut rng);
        } else {
            matrix(&mut w, &p("attn_q.weight"), ty("attn_q"), q_dim, n_embd, &mut rng);
            matrix(&mut w, &p("attn_k.weight"), ty("attn_k"), kv_dim, n_embd, &mut rng);
            matrix(&mut w, &p("attn_v.weight"), ty("attn_v"), kv_dim, n_embd, &mut rng);
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
        matrix(&mut w, &p("attn_output.weight"), ty("attn_output"), n_embd, q_dim, &mut rng);
        vector(&mut w, &p("ffn_norm.weight"), n_embd, &mut rng);
        if arch == "phi3" {
            matrix(&mut w, &p("ffn_up.weight"), ty("ffn_up"), 2 * n_ff, n_embd, &mut rng);
        } else {
            matrix(&mut w, &p("ffn_gate.weight"), ty("ffn_gate"), n_ff, n_embd, &mut rng);
            matrix(&mut w, &p("ffn_up.weight"), ty("ffn_up"), n_ff, n_embd, &mut rng);
        }
        matrix(&mut w, &p("ffn_down.weight"), ty("ffn_down"), n_embd, n_ff, &mut rng);
    }
    w
}
