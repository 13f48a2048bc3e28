//! Untrusted model files: every malformed input is a one-line typed error, quickly, with no
//! panic and no allocation sized by a lying header.

use edgeslm_engine::{Error, Model};
use edgeslm_tests::*;

/// A header with the architecture key, and `data` zero bytes after it.
fn base() -> GgufWriter {
    let mut g = GgufWriter::default();
    g.str("general.architecture", "llama").pad(4096);
    g
}

/// `base()` with one tensor info.
fn with_tensor(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    base().tensor_info(name, dims, ty, offset).bytes()
}

fn load(bytes: Vec<u8>) -> Result<Model, Error> {
    Model::from_bytes(bytes)
}

fn expect_corrupt(bytes: Vec<u8>, what: &str) {
    match load(bytes) {
        Err(Error::Corrupt(m)) => assert!(!m.contains('\n'), "{what}: multi-line message {m:?}"),
        Err(e) => panic!("{what}: expected a corrupt-file error, got {e:?}"),
        Ok(_) => panic!("{what}: loaded"),
    }
}

#[test]
fn empty_and_random_files_are_not_gguf() {
    assert!(matches!(load(vec![]), Err(Error::NotGguf(_))));
    let random: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    assert!(matches!(load(random), Err(Error::NotGguf(_))));
    let mut v1 = b"GGUF".to_vec();
    v1.extend(1u32.to_le_bytes());
    assert!(matches!(load(v1), Err(Error::NotGguf(_))));
}

#[test]
fn absurd_counts_and_sizes_are_rejected_before_allocating() {
    expect_corrupt(base().bytes_with_counts(u64::MAX, 1), "u64::MAX tensors");
    expect_corrupt(base().bytes_with_counts(0, 1 << 40), "2^40 metadata entries");
    // An array claiming 2^60 elements.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 60).to_le_bytes());
    expect_corrupt(GgufWriter::default().raw("tokenizer.ggml.tokens", 9, &arr).pad(4096).bytes(), "2^60-element array");
    // A string claiming 2^62 bytes.
    let s = (1u64 << 62).to_le_bytes();
    expect_corrupt(GgufWriter::default().raw("general.name", 8, &s).pad(4096).bytes(), "2^62-byte string");
    // Tensor dimensions whose product overflows, too many dimensions, data past the end.
    expect_corrupt(with_tensor("t", &[1 << 40, 1 << 40], 0, 0), "overflowing dims");
    expect_corrupt(with_tensor("t", &[32; 9], 0, 0), "nine dimensions");
    expect_corrupt(with_tensor("t", &[1 << 30], 0, 0), "data past the end");
    expect_corrupt(with_tensor("t", &[33], 2, 0), "row not a multiple of the block size");
    expect_corrupt(with_tensor("t", &[32], 0, 3), "misaligned offset");
}

#[test]
fn unsupported_things_are_named() {
    let mut g = GgufWriter::default();
    g.str("general.architecture", "mamba").tensor_info("t", &[256], 10, 0).pad(4096);
    match load(g.bytes()) {
        Err(e @ Error::UnsupportedTensorType { .. }) => assert!(e.to_string().contains("Q2_K"), "{e}"),
        other => panic!("expected unsupported tensor type, got {:?}", other.err()),
    }
    let mut g = GgufWriter::default();
    g.str("general.architecture", "mamba").tensor_info("t", &[32], 0, 0).pad(4096);
    match load(g.bytes()) {
        Err(Error::UnsupportedArchitecture(a)) => assert_eq!(a, "mamba"),
        other => panic!("expected unsupported architecture, got {:?}", other.err()),
    }
}

#[test]
fn truncated_real_models_are_corrupt() {
    for file in [SMOLLM2, GEMMA] {
        let bytes = std::fs::read(model_path(file)).unwrap();
        let mut cuts: Vec<usize> = (1..40).map(|i| i * 997 + 5).collect(); // inside the header
        cuts.extend((1..40).map(|i| i * 150_001)); // inside the metadata (vocabulary)
        cuts.extend([bytes.len() / 3, bytes.len() / 2, bytes.len() - 1]); // inside the tensor data
        for cut in cuts {
            let err = load(bytes[..cut].to_vec()).err().unwrap_or_else(|| panic!("{file} cut at {cut} loaded"));
            assert!(matches!(err, Error::Corrupt(_)), "{file} cut at {cut}: {err:?}");
        }
    }
}

/// Random byte flips in a real header: any outcome but a panic is fine.
#[test]
fn flipped_header_bytes_never_panic() {
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let header = &bytes[..2_000_000];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200 {
        let mut b = header.to_vec();
        for _ in 0..4 {
            let at = (next() % 4096) as usize; // the counts, keys and first strings live here
            b[at] = next() as u8;
        }
        let _ = std::panic::catch_unwind(|| load(b)).expect("parser panicked");
    }
}
