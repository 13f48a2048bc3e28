//! Tiny random-weight GGUF models for tests: each architecture with its linear weights in
//! one tensor type, generated deterministically from a seed (the same bytes everywhere), so
//! tests can write them and llama.cpp fixtures recorded on them stay valid.

use edgeslm_engine::quant::testdata::{random_row, Rng};
use edgeslm_engine::quant::GgmlType;
use edgeslm_engine::tokenizer::byte_to_char;

use crate::GgufWriter;

pub const ARCHS: [&str; 2] = ["llama", "gemma3"];

const N_EMBD: usize = 256;
const N_FF: usize = 512;
const HEAD_DIM: usize = 64;
const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;
/// Six layers: Gemma 3's pattern makes the last one global, the others sliding-window.
const N_LAYER: usize = 6;
/// A window far smaller than the tests' sequences, so the KV ring wraps.
pub const SLIDING_WINDOW: u32 = 5;

/// The file name of a tiny model (and of its fixture, with .json).
pub fn name(arch: &str, ty: GgmlType) -> String {
    format!("tiny-{arch}-{}", ty.name().to_lowercase())
}

/// The seed of each model: fixed per (architecture, type).
fn seed(arch: &str, ty: GgmlType) -> u64 {
    let a = ARCHS.iter().position(|&x| x == arch).unwrap() as u64;
    1000 + 100 * a + ty.id() as u64
}

/// Tokens, GGUF token types and scores. SentencePiece: specials, 256 `<0xXX>` byte tokens
/// and a few pieces. BPE: specials, the 256 byte-level characters and a few merges.
fn vocab(spm: bool) -> (Vec<String>, Vec<i32>, Vec<f32>, Vec<String>) {
    let mut toks: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"].iter().map(|s| s.to_string()).collect();
    let mut types = vec![3, 3, 3, 2];
    for b in 0..=255u8 {
        if spm {
            toks.push(format!("<0x{b:02X}>"));
            types.push(6);
        } else {
            toks.push(byte_to_char()[b as usize].to_string());
            types.push(1);
        }
    }
    let (pieces, merges): (&[&str], &[&str]) = if spm {
        (&["\u{2581}", "\u{2581}the", "\u{2581}a", "th", "he", "the", "in", "an", "e", "t", "h", "a", "n", "i"], &[])
    } else {
        (&["th", "he", "in", "an", "\u{120}t", "\u{120}the"], &["t h", "h e", "i n", "a n", "\u{120} t", "\u{120}t he"])
    };
    for p in pieces {
        toks.push(p.to_string());
        types.push(1);
    }
    let scores = (0..toks.len()).map(|i| -(i as f32)).collect();
    (toks, types, scores, merges.iter().map(|s| s.to_string()).collect())
}

/// The GGUF bytes of a tiny `arch` model whose matrices are all of type `ty`.
pub fn model(arch: &str, ty: GgmlType) -> Vec<u8> {
    let mut rng = Rng(seed(arch, ty));
    let spm = arch == "gemma3";
    let n_vocab = vocab(spm).0.len();
    let mut w = metadata(arch, ty);
    let norm = |rng: &mut Rng, n: usize| -> Vec<u8> { (0..n).flat_map(|_| (1.0 + 0.1 * rng.f32()).to_le_bytes()).collect() };
    let vector = |w: &mut GgufWriter, name: &str, n: usize, rng: &mut Rng| {
        w.tensor(name, &[n as u64], GgmlType::F32.id(), &norm(rng, n));
    };
    let matrix = |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, rng: &mut Rng| {
        let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(ty, cols, 0.5, rng)).collect();
        w.tensor(name, &[cols as u64, rows as u64], ty.id(), &bytes);
    };
    matrix(&mut w, "token_embd.weight", n_vocab, N_EMBD, &mut rng);
    vector(&mut w, "output_norm.weight", N_EMBD, &mut rng);
    for l in 0..N_LAYER {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        vector(&mut w, &p("attn_norm"), N_EMBD, &mut rng);
        matrix(&mut w, &p("attn_q"), N_HEAD * HEAD_DIM, N_EMBD, &mut rng);
        matrix(&mut w, &p("attn_k"), N_HEAD_KV * HEAD_DIM, N_EMBD, &mut rng);
        matrix(&mut w, &p("attn_v"), N_HEAD_KV * HEAD_DIM, N_EMBD, &mut rng);
        matrix(&mut w, &p("attn_output"), N_EMBD, N_HEAD * HEAD_DIM, &mut rng);
        vector(&mut w, &p("ffn_norm"), N_EMBD, &mut rng);
        matrix(&mut w, &p("ffn_gate"), N_FF, N_EMBD, &mut rng);
        matrix(&mut w, &p("ffn_up"), N_FF, N_EMBD, &mut rng);
        matrix(&mut w, &p("ffn_down"), N_EMBD, N_FF, &mut rng);
        if spm {
            vector(&mut w, &p("attn_q_norm"), HEAD_DIM, &mut rng);
            vector(&mut w, &p("attn_k_norm"), HEAD_DIM, &mut rng);
            vector(&mut w, &p("post_attention_norm"), N_EMBD, &mut rng);
            vector(&mut w, &p("post_ffw_norm"), N_EMBD, &mut rng);
        }
    }
    w.bytes()
}

/// A vocabulary-only GGUF: a tiny model's metadata and no tensors, as llama.cpp's
/// `ggml-vocab-*.gguf` files are.
/// `padded`: with the zero bytes up to the (empty) data section's alignment; llama.cpp's
/// vocabulary files end with their metadata.
pub fn vocab_only(arch: &str, padded: bool) -> Vec<u8> {
    let w = metadata(arch, GgmlType::F32);
    let mut b = w.bytes();
    if !padded {
        b.truncate(24 + w.kv.len() + w.infos.len());
    }
    b
}

/// The hyperparameters and vocabulary of a tiny `arch` model.
fn metadata(arch: &str, ty: GgmlType) -> GgufWriter {
    let spm = arch == "gemma3";
    let (toks, types, scores, merges) = vocab(spm);
    let mut w = GgufWriter::default();
    w.str("general.architecture", arch);
    w.str("general.name", &name(arch, ty));
    w.u32(&format!("{arch}.context_length"), 4096);
    w.u32(&format!("{arch}.embedding_length"), N_EMBD as u32);
    w.u32(&format!("{arch}.block_count"), N_LAYER as u32);
    w.u32(&format!("{arch}.feed_forward_length"), N_FF as u32);
    w.u32(&format!("{arch}.attention.head_count"), N_HEAD as u32);
    w.u32(&format!("{arch}.attention.head_count_kv"), N_HEAD_KV as u32);
    w.u32(&format!("{arch}.attention.key_length"), HEAD_DIM as u32);
    w.u32(&format!("{arch}.attention.value_length"), HEAD_DIM as u32);
    w.f32(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-6);
    w.f32(&format!("{arch}.rope.freq_base"), 10000.0);
    if spm {
        w.u32("gemma3.attention.sliding_window", SLIDING_WINDOW);
    }
    w.str("tokenizer.ggml.model", if spm { "llama" } else { "gpt2" });
    if !spm {
        w.str("tokenizer.ggml.pre", "gpt-2");
    }
    w.strs("tokenizer.ggml.tokens", &toks);
    let tb: Vec<u8> = types.iter().flat_map(|t| t.to_le_bytes()).collect();
    w.nums("tokenizer.ggml.token_type", 5, &tb, types.len());
    let sb: Vec<u8> = scores.iter().flat_map(|t| t.to_le_bytes()).collect();
    w.nums("tokenizer.ggml.scores", 6, &sb, scores.len());
    if !spm {
        w.strs("tokenizer.ggml.merges", &merges);
    }
    w.u32("tokenizer.ggml.bos_token_id", 2);
    w.u32("tokenizer.ggml.eos_token_id", 1);
    w.u32("tokenizer.ggml.unknown_token_id", 3);
    w.bool("tokenizer.ggml.add_bos_token", true);
    w.bool("tokenizer.ggml.add_space_prefix", false);
    w
}
