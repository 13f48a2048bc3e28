//! classify through the component: probabilities, calibration, prompt-prefix reuse, label
//! validation, and the seed's support-ticket job on both real models.

use edgeslm_host::{open_model, ClassifyOptions, Example, Host};
use edgeslm_tests::*;

fn host() -> Host {
    let p = root().join("target/release/edgeslm-component.wasm");
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    Host::new(&p).unwrap()
}

fn labels() -> Vec<String> {
    ["incident", "billing", "inquiry"].iter().map(|s| s.to_string()).collect()
}

fn few_shot() -> Vec<Example> {
    let text = std::fs::read_to_string(root().join("examples/support/few-shot.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Example { text: v["text"].as_str().unwrap().into(), label: v["label"].as_str().unwrap().into() }
        })
        .collect()
}

fn check_distribution(c: &edgeslm_host::Classification, labels: &[String]) {
    let sum: f64 = c.scores.iter().map(|s| s.probability).sum();
    let raw: f64 = c.scores.iter().map(|s| s.uncalibrated).sum();
    assert!((sum - 1.0).abs() < 1e-9 && (raw - 1.0).abs() < 1e-9, "sums {sum} {raw}");
    assert_eq!(c.scores.iter().map(|s| s.label.clone()).collect::<Vec<_>>(), labels);
    let best = c.scores.iter().max_by(|a, b| a.probability.total_cmp(&b.probability)).unwrap();
    assert_eq!(best.label, c.label);
    assert_eq!(best.probability, c.confidence);
}

fn seed_job(model_file: &str) {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(model_file)).unwrap();
    let opts = ClassifyOptions { examples: few_shot(), ..Default::default() };
    let first = s.classify(m, "I was charged twice for my subscription this month.", &labels(), &opts).unwrap().unwrap();
    check_distribution(&first, &labels());
    assert_eq!(first.label, "billing", "{model_file}: {:?}", first.scores);
    assert_eq!(first.timings.reused_tokens, 0);
    assert!(first.timings.calibration_ms > 0.0);

    // Same instruction and examples: the prompt's state is reused, the prior is cached, and
    // the answer is what a fresh instance gives, to the bit.
    let text = "The app shows a blank screen and nobody can log in.";
    let second = s.classify(m, text, &labels(), &opts).unwrap().unwrap();
    check_distribution(&second, &labels());
    assert!(second.timings.reused_tokens as f64 > 0.8 * second.timings.prompt_tokens as f64, "{:?}", second.timings);
    assert_eq!(second.timings.calibration_ms, 0.0);
    let (mut fresh, fm, _) = open_model(&host, &model_path(model_file)).unwrap();
    let again = fresh.classify(fm, text, &labels(), &opts).unwrap().unwrap();
    assert_eq!(
        second.scores.iter().map(|s| s.probability.to_bits()).collect::<Vec<_>>(),
        again.scores.iter().map(|s| s.probability.to_bits()).collect::<Vec<_>>()
    );

    // The engine natively gives the same numbers as the component.
    let mut native = edgeslm_engine::Instance::new(edgeslm_engine::Model::open(model_path(model_file).to_str().unwrap()).unwrap());
    let nopts = edgeslm_engine::ClassifyOptions {
        examples: few_shot().into_iter().map(|e| (e.text, e.label)).collect(),
        ..Default::default()
    };
    let n = native.classify(text, &labels(), &nopts).unwrap();
    assert_eq!(n.scores, again.scores.iter().map(|s| s.probability).collect::<Vec<_>>());
}

#[test]
fn seed_job_gemma3() {
    seed_job(GEMMA);
}

#[test]
fn seed_job_smollm2() {
    seed_job(SMOLLM2);
}

/// Contextual calibration: on a content-free input (one of the three the prior averages),
/// the calibrated distribution is clearly closer to uniform than the raw one.
#[test]
fn calibration_flattens_the_prior() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let opts = ClassifyOptions { examples: few_shot(), ..Default::default() };
    let c = s.classify(m, "N/A", &labels(), &opts).unwrap().unwrap();
    let off_uniform = |f: &dyn Fn(&edgeslm_host::exports::edgeslm::runtime::types::LabelScore) -> f64| {
        c.scores.iter().map(|x| (f(x) - 1.0 / 3.0).abs()).sum::<f64>()
    };
    let calibrated = off_uniform(&|x| x.probability);
    let raw = off_uniform(&|x| x.uncalibrated);
    assert!(calibrated < 0.8 * raw, "calibrated {calibrated} vs raw {raw}: {:?}", c.scores);
    let off = ClassifyOptions { calibrate: Some(false), ..opts };
    let u = s.classify(m, "N/A", &labels(), &off).unwrap().unwrap();
    assert!(u.scores.iter().all(|x| x.probability == x.uncalibrated));
}

#[test]
fn bad_label_sets_are_typed_errors_and_the_instance_survives() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let opts = ClassifyOptions::default();
    let many: Vec<String> = (0..1000).map(|i| format!("label{i}")).collect();
    let cases: Vec<(Vec<String>, ClassifyOptions)> = vec![
        (vec!["a".into(), "a".into()], opts.clone()),
        (vec!["a".into(), "".into()], opts.clone()),
        (vec!["a".into(), "  ".into()], opts.clone()),
        (vec!["only".into()], opts.clone()),
        (vec![], opts.clone()),
        (many, opts.clone()),
        (vec!["a".into(), "b\nc".into()], opts.clone()),
        (vec!["a".into(), "x".repeat(400)], opts.clone()),
        (labels(), ClassifyOptions { examples: vec![Example { text: "t".into(), label: "nope".into() }], ..opts.clone() }),
    ];
    for (labels, o) in cases {
        let err = s.classify(m, "some text", &labels, &o).unwrap().unwrap_err();
        assert_eq!(err.code(), "invalid-labels", "{labels:?}: {err:?}");
        assert!(!err.message().contains('\n'));
    }
    let ok = s.classify(m, "My invoice is wrong.", &labels(), &opts).unwrap().unwrap();
    check_distribution(&ok, &labels());
}

/// Labels that share their first tokens are scored through a token trie (each shared prefix
/// evaluated once, the session rolled back between branches). Against an independent
/// reference: each label's tokens evaluated one by one on a fresh session after the prompt.
#[test]
fn labels_sharing_prefixes_score_as_one_by_one() {
    let model = edgeslm_engine::Model::open(model_path(SMOLLM2).to_str().unwrap()).unwrap();
    let opts = edgeslm_engine::ClassifyOptions { calibrate: false, ..Default::default() };
    let text = "I was charged twice for my order, please refund one payment.";
    let labels: Vec<String> =
        vec!["billing refund".into(), "billing question".into(), "incident".into(), "incident report".into(), "inquiry".into()];
    let seq = |l: &str| model.tokenizer.encode(&format!(" {l}\n"), false, false);
    assert_eq!(seq(&labels[0])[..1], seq(&labels[1])[..1], "the labels must share a prefix token");
    let got = model.classify(&mut edgeslm_engine::Classifier::default(), text, &labels, &opts).unwrap();

    // The classify prompt, as documented: instruction, label list, then the text.
    let prompt = format!("Classify the text.\nLabels: {}.\n\nText: {text}\nLabel:", labels.join(", "));
    let ids = model.tokenizer.encode(&prompt, true, false);
    let log_softmax = |logits: &[f32], id: u32| {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        logits[id as usize] as f64 - max - sum.ln()
    };
    let logp: Vec<f64> = labels
        .iter()
        .map(|l| {
            let mut s = model.new_session();
            let mut logits = model.forward(&mut s, &ids).unwrap();
            let mut lp = 0.0;
            for &t in &seq(l) {
                lp += log_softmax(&logits, t);
                logits = model.forward(&mut s, &[t]).unwrap();
            }
            lp
        })
        .collect();
    let max = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logp.iter().map(|l| (l - max).exp()).sum();
    for (i, l) in logp.iter().enumerate() {
        let p = (l - max).exp() / z;
        assert!((p - got.uncalibrated[i]).abs() < 1e-6, "{}: {p} vs {}", labels[i], got.uncalibrated[i]);
    }
    assert!((got.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}
