//! Untrusted model files: every malformed input is a one-line typed error, quickly, with no
//! panic and no allocation sized by a lying header.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use edgeslm_engine::{Error, Model};
use edgeslm_tests::*;

/// The system allocator, noting the largest single request made on each thread, so a test
/// can show that no allocation is sized by what a hostile file claims.
struct NotingLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for NotingLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: NotingLargest = NotingLargest;

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

/// How wasm reads a model file: the header's bytes alone (as many as `gguf::header_len`
/// finds), parsed and dropped, then the tensor data. The scanner stops exactly where the
/// parser does, and the model is the same one the whole file gives.
#[test]
fn reading_only_the_tensor_data_gives_the_same_model() {
    use edgeslm_engine::gguf::{self, Gguf};
    use edgeslm_engine::storage::Storage;
    for file in [SMOLLM2, GEMMA] {
        let path = model_path(file);
        let bytes = std::fs::read(&path).unwrap();
        let n = gguf::header_len(&bytes).unwrap_or_else(|| panic!("{file}: no header length"));
        assert_eq!(gguf::header_len(&bytes[..n]), Some(n), "{file}");
        assert_eq!(gguf::header_len(&bytes[..n - 1]), None, "{file}");
        let whole = Gguf::parse(&bytes).unwrap();
        assert!(Gguf::parse_header(&bytes[..n], bytes.len() as u64).is_ok(), "{file}: the header alone parses");
        assert!(Gguf::parse_header(&bytes[..n - 1], bytes.len() as u64).is_err(), "{file}: one byte short");

        let (g, storage) = Storage::read_gguf(path.to_str().unwrap()).unwrap();
        assert_eq!((storage.base(), storage.held().concat().len()), (whole.data_offset, bytes.len() - whole.data_offset), "{file}");
        let read = Model::load_parsed(g, storage).unwrap();
        let mapped = Model::open(path.to_str().unwrap()).unwrap();
        assert!(read.header().is_none(), "{file}: the header was not kept");
        let ids = mapped.tokenizer.encode("The quick brown fox", true, false);
        assert_eq!(read.tokenizer.encode("The quick brown fox", true, false), ids, "{file}");
        let logits = |m: &Model| m.forward(&mut m.new_session(), &ids).unwrap();
        assert_eq!(logits(&read), logits(&mapped), "{file}: logits");
    }
}

/// Truncated and corrupted files through the same reader: typed errors, never a panic.
#[test]
fn the_tensor_data_reader_reports_truncation_and_corruption() {
    use edgeslm_engine::storage::Storage;
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let dir = std::env::temp_dir().join(format!("edgeslm-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.gguf");
    let header = edgeslm_engine::gguf::header_len(&bytes).unwrap();
    for cut in [0, 3, 100, 5000, header - 1, header, header + 1, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = Storage::read_gguf(path.to_str().unwrap()).err().unwrap_or_else(|| panic!("cut at {cut} was read"));
        assert!(matches!(err, Error::Corrupt(_) | Error::NotGguf(_)), "cut at {cut}: {err:?}");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..100 {
        let mut b = bytes[..3_000_000].to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b[(state % 4096) as usize] = (state >> 32) as u8;
        }
        std::fs::write(&path, &b).unwrap();
        let _ = std::panic::catch_unwind(|| Storage::read_gguf(path.to_str().unwrap())).expect("reader panicked");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file streamed in pieces (the component's model-loader): wherever the pieces split it,
/// around the end of the header and the padding before the tensor data included, only the
/// tensor data is kept and the model is the same.
#[test]
fn a_file_received_in_pieces_keeps_only_its_tensor_data() {
    use edgeslm_engine::gguf::{self, Gguf};
    use edgeslm_engine::storage::Receiver;
    // Gemma's header ends 8 bytes before its 32-aligned tensor data; SmolLM2's is aligned.
    let path = model_path(GEMMA);
    let bytes = std::fs::read(&path).unwrap();
    let header = gguf::header_len(&bytes).unwrap();
    let data = Gguf::parse(&bytes).unwrap().data_offset;
    assert!(data > header + 1, "the test wants padding to split");
    let receive = |cuts: &[usize]| {
        let mut r = Receiver::new(bytes.len());
        let mut cuts = cuts.to_vec();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut at = 0;
        for cut in cuts {
            r.push(&bytes[at..cut]).unwrap();
            at = cut;
        }
        r.finish().unwrap()
    };
    let mut splits: Vec<Vec<usize>> = (header.saturating_sub(2)..=data + 2).map(|c| vec![c]).collect();
    splits.push(vec![1, 2, 3, header, header + 1, data]);
    splits.push((1..200).map(|i| i * 65_536).collect()); // a browser stream's pieces
    for cuts in &splits {
        let (g, storage) = receive(cuts);
        assert_eq!(g.data_offset, data, "{cuts:?}");
        assert_eq!(storage.base(), data, "{cuts:?}");
        assert!(storage.held().concat() == bytes[data..], "{cuts:?}: the tensor data differs");
    }
    let (g, storage) = receive(&[header + 1]);
    let received = Model::load_parsed(g, storage).unwrap();
    let mapped = Model::open(path.to_str().unwrap()).unwrap();
    let ids = mapped.tokenizer.encode("The quick brown fox", true, false);
    let logits = |m: &Model| m.forward(&mut m.new_session(), &ids).unwrap();
    assert_eq!(logits(&received), logits(&mapped));

    // Too many or too few bytes, a truncated file, a corrupt header: typed errors.
    let mut r = Receiver::new(1000);
    assert!(matches!(r.push(&bytes[..1001]), Err(Error::InvalidOption(_))));
    let mut r = Receiver::new(2000);
    r.push(&bytes[..1000]).unwrap();
    assert!(matches!(r.finish(), Err(Error::InvalidOption(_))));
    for cut in [100, header - 1, header, data + 10] {
        let mut r = Receiver::new(cut);
        r.push(&bytes[..cut]).unwrap();
        assert!(matches!(r.finish(), Err(Error::Corrupt(_))), "cut at {cut}");
    }
    let mut bad = bytes[..header].to_vec();
    bad[4] = 9; // GGUF version 9
    let mut r = Receiver::new(bad.len());
    r.push(&bad).unwrap();
    assert!(matches!(r.finish(), Err(Error::NotGguf(_))));
}

/// A chat template is part of an untrusted file: one that would render for hours (nested
/// loops) runs out of its step budget and is a one-line typed error; real ones render.
#[test]
fn chat_templates_render_in_bounded_steps() {
    let mut model = edgeslm_engine::Model::load(edgeslm_engine::Storage::open(model_path(SMOLLM2).to_str().unwrap()).unwrap()).unwrap();
    let turn = edgeslm_engine::chat::render_user_turn(&model, "hi").unwrap();
    assert!(turn.contains("<|im_start|>user\nhi<|im_end|>"), "{turn}");
    let forever = "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}";
    model.gguf.metadata.insert("tokenizer.chat_template".into(), edgeslm_engine::gguf::Value::String(forever.into()));
    let e = edgeslm_engine::chat::render_user_turn(&model, "hi").unwrap_err();
    assert_eq!(e.code().as_str(), "invalid-option", "{e}");
    assert!(e.to_string().contains("fuel") && !e.to_string().contains('\n'), "{e}");
    // Found by fuzzing: a template's own message is any text, newlines too; still one line.
    model.gguf.metadata.insert("tokenizer.chat_template".into(), edgeslm_engine::gguf::Value::String("{{ raise_exception('no system\nrole') }}".into()));
    let e = edgeslm_engine::chat::render_user_turn(&model, "hi").unwrap_err().to_string();
    assert!(e.contains("no system role") && !e.contains('\n'), "{e}");
}

/// Found by fuzzing (scripts/fuzz gguf): a header claiming 2^32 layers made the loader
/// reserve room for them (4.5 GB) before looking for their tensors.
#[test]
fn a_lying_block_count_sizes_no_allocation() {
    let bytes = std::fs::read(root().join("tests/fixtures/fuzz/huge-block-count.bin")).unwrap();
    LARGEST.with(|l| l.set(0));
    let e = Model::from_bytes(bytes.clone()).err().expect("a model with no layer tensors loaded");
    let largest = LARGEST.with(Cell::get);
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    assert!(largest <= 4 * bytes.len() + (1 << 20), "an allocation of {largest} bytes for a {}-byte file", bytes.len());
}
