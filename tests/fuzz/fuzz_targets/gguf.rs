//! GGUF files: the header, metadata and tensor table, and assembling a model from them (the
//! tokenizer, the architecture's hyperparameters and tensors), vocabulary-only files too,
//! received in two pieces as a host streams them. Every input is a typed error or a model.
#![no_main]
use edgeslm_engine::storage::Receiver;
use edgeslm_engine::Model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte says where the stream is split.
    let (split, file) = (data[0] as usize, &data[1..]);
    let cut = if file.is_empty() { 0 } else { split % (file.len() + 1) };
    let mut rx = Receiver::new(file.len());
    if rx.push(&file[..cut]).is_err() || rx.push(&file[cut..]).is_err() {
        return;
    }
    if let Ok((gguf, storage)) = rx.finish() {
        let _ = Model::load_parsed(gguf, storage);
    }
});
