//! Untrusted model files: every malformed input is a one-line typed error, quickly, with no
//! panic and no allocation sized by a lying header.

use edgeslm_engine::{Error, Model};
use edgeslm_tests::*;

/// A minimal GGUF v3 writer for hand-made (broken) headers.
#[derive(Default)]
struct Gguf {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

impl Gguf {
    fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }
    fn kv_str(mut self, k: &str, v: &str) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend(8u32.to_le_bytes());
        Self::string(&mut self.kv, v);
        self.n_kv += 1;
        self
    }
    fn kv_raw(mut self, k: &str, ty: u32, payload: &[u8]) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(payload);
        self.n_kv += 1;
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        Self::string(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    fn bytes_with_counts(&self, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.tensors);
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(vec![0u8; 4096]);
        b
    }
    fn bytes(&self) -> Vec<u8> {
        self.bytes_with_counts(self.n_tensors, self.n_kv)
    }
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
    let g = Gguf::default().kv_str("general.architecture", "llama");
    expect_corrupt(g.bytes_with_counts(u64::MAX, 1), "u64::MAX tensors");
    expect_corrupt(g.bytes_with_counts(0, 1 << 40), "2^40 metadata entries");
    // An array claiming 2^60 elements.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 60).to_le_bytes());
    expect_corrupt(Gguf::default().kv_raw("tokenizer.ggml.tokens", 9, &arr).bytes(), "2^60-element array");
    // A string claiming 2^62 bytes.
    let mut s = vec![];
    s.extend((1u64 << 62).to_le_bytes());
    expect_corrupt(Gguf::default().kv_raw("general.name", 8, &s).bytes(), "2^62-byte string");
    // Tensor dimensions whose product overflows, too many dimensions, data past the end.
    expect_corrupt(g.clone_with_tensor("t", &[1 << 40, 1 << 40], 0, 0), "overflowing dims");
    expect_corrupt(g.clone_with_tensor("t", &[32; 9], 0, 0), "nine dimensions");
    expect_corrupt(g.clone_with_tensor("t", &[1 << 30], 0, 0), "data past the end");
    expect_corrupt(g.clone_with_tensor("t", &[33], 2, 0), "row not a multiple of the block size");
    expect_corrupt(g.clone_with_tensor("t", &[32], 0, 3), "misaligned offset");
}

impl Gguf {
    fn clone_with_tensor(&self, name: &str, dims: &[u64], ty: u32, off: u64) -> Vec<u8> {
        let g = Gguf { kv: self.kv.clone(), n_kv: self.n_kv, tensors: vec![], n_tensors: 0 };
        g.tensor(name, dims, ty, off).bytes()
    }
}

#[test]
fn unsupported_things_are_named() {
    let g = Gguf::default().kv_str("general.architecture", "mamba").tensor("t", &[256], 10, 0);
    match load(g.bytes()) {
        Err(e @ Error::UnsupportedTensorType { .. }) => assert!(e.to_string().contains("Q2_K"), "{e}"),
        other => panic!("expected unsupported tensor type, got {:?}", other.err()),
    }
    let g = Gguf::default().kv_str("general.architecture", "mamba").tensor("t", &[32], 0, 0);
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
