//! The remote forward-pass protocol (engine::remote), natively: a model whose forward pass
//! is served through protocol steps (`InProcess`, the same host half the wasi-nn backend
//! runs) gives exactly the portable model's outputs on both real models — generate,
//! generate-constrained (sparse head, jump-forward, prefix reuse) and classify (label trie,
//! rollbacks, calibration) — and the host half rejects malformed steps with typed errors.

use std::sync::Arc;

use edgeslm_engine::remote::{codec, Step};
use edgeslm_engine::serve::{InProcess, ServedSequence};
use edgeslm_engine::*;
use edgeslm_tests::*;

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "Write a haiku about the sea:",
    "1, 2, 3, 4, 5,",
];

fn pair(file: &str) -> (Arc<Model>, Model) {
    let local = Arc::new(Model::open(model_path(file).to_str().unwrap()).unwrap());
    let header = local.header().unwrap().to_vec();
    let remote = Model::remote(&header, local.file_size as u64, Arc::new(InProcess(local.clone()))).unwrap();
    (local, remote)
}

#[test]
fn remote_forward_gives_the_portable_outputs() {
    for file in [GEMMA, SMOLLM2] {
        let (served, remote) = pair(file);
        assert_eq!(remote.backend_name(), "in-process");
        assert_eq!(remote.vocab_size(), served.vocab_size());
        // The same calls on two instances: one portable, one whose forward pass is `served`.
        let mut a = Instance::new(Model::open(model_path(file).to_str().unwrap()).unwrap());
        let mut b = Instance::new(remote);
        assert_eq!(b.tokenize("héllo wörld", true, false), a.tokenize("héllo wörld", true, false));

        let opts = GenerateOptions { max_tokens: 24, ..Default::default() };
        for p in PROMPTS {
            let (x, y) = (a.generate(p, &opts).unwrap(), b.generate(p, &opts).unwrap());
            assert_eq!(x.tokens, y.tokens, "{file} {p:?}");
            assert_eq!(x.text, y.text);
        }

        let copts = GenerateOptions { max_tokens: 48, ..Default::default() };
        for m in SUPPORT_MESSAGES {
            let prompt = format!("Turn the support message into a ticket.\nMessage: {m}\nTicket JSON:");
            let c = Constraint::JsonSchema(TICKET_SCHEMA.into());
            let x = a.generate_constrained(&prompt, &c, &copts).unwrap();
            let y = b.generate_constrained(&prompt, &c, &copts).unwrap();
            assert_eq!(x.text, y.text, "{file} {m:?}");
            assert_eq!(x.timings.prefill_tokens, y.timings.prefill_tokens, "prefix reuse is the same");
        }

        let labels: Vec<String> = ["incident", "billing", "inquiry"].map(String::from).to_vec();
        let copts = ClassifyOptions {
            examples: vec![("site down".into(), "incident".into()), ("refund please".into(), "billing".into())],
            ..Default::default()
        };
        for m in SUPPORT_MESSAGES {
            let x = a.classify(m, &labels, &copts).unwrap();
            let y = b.classify(m, &labels, &copts).unwrap();
            assert_eq!(x.label, y.label, "{file} {m:?}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x.scores), bits(&y.scores), "{file} {m:?}: probabilities bit-identical");
        }
    }
}

fn step<'a>(position: Option<usize>, tokens: &'a [u32], allowed: Option<&'a [u32]>) -> Step<'a> {
    Step { position, tokens, allowed }
}

#[test]
fn served_sequence_rejects_malformed_steps_and_keeps_working() {
    let local = Model::open(model_path(SMOLLM2).to_str().unwrap()).unwrap();
    let ids = local.tokenizer.encode("Hello there, general", true, false);
    let mut seq = ServedSequence::new(&local);

    let err = |r: Result<Vec<f32>>| r.expect_err("must be rejected").to_string();
    assert!(err(seq.step(&local, &step(None, &[], None))).contains("no evaluated position"));
    assert!(err(seq.step(&local, &step(None, &[u32::MAX], None))).contains("outside the vocabulary"));
    assert!(err(seq.step(&local, &step(Some(5), &ids, None))).contains("cannot roll back to position 5"));
    let too_many = vec![1u32; local.config.n_ctx_train + 1];
    assert!(err(seq.step(&local, &step(None, &too_many, Some(&[])))).contains("context overflow"));
    assert_eq!(seq.pos(), 0, "rejected steps leave the sequence as it was");

    // A good step after all that; then logits of a few ids, and one bad id.
    assert!(seq.step(&local, &step(None, &ids, Some(&[]))).unwrap().is_empty());
    let all = seq.step(&local, &step(None, &[], None)).unwrap();
    assert_eq!(all.len(), local.vocab_size());
    let some = seq.step(&local, &step(None, &[], Some(&[0, 42, 7]))).unwrap();
    assert_eq!(some, vec![all[0], all[42], all[7]]);
    assert!(err(seq.step(&local, &step(None, &[], Some(&[1 << 30])))).contains("outside the vocabulary"));

    // Roll back one token and re-evaluate it: the same logits.
    let last = *ids.last().unwrap();
    let again = seq.step(&local, &step(Some(ids.len() - 1), &[last], None)).unwrap();
    assert_eq!(again, all);
    // Back to the start.
    let fresh = seq.step(&local, &step(Some(0), &ids, None)).unwrap();
    assert_eq!(fresh, all);

    // Codecs: negative ids and ragged data are errors.
    assert_eq!(codec::ids_from_bytes(&codec::ids_to_bytes(&[1, 2, 262143])).unwrap(), vec![1, 2, 262143]);
    assert!(codec::ids_from_bytes(&(-1i32).to_le_bytes()).is_err());
    assert!(codec::ids_from_bytes(&[1, 2, 3]).is_err());
    assert!(codec::f32s_from_bytes(&[0; 5]).is_err());
}
