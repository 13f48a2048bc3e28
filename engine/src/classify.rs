//! Classification by scoring, not sampling: the probability of each label's text after the
//! prompt, normalised over the labels, optionally corrected by contextual calibration
//! (Zhao et al., 2021): the label distribution the same prompt gives to content-free inputs
//! is the model's prior, and dividing it out is what makes tiny models usable classifiers.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::prompt_cache::PromptCache;
use crate::timing::Stopwatch;

pub const MAX_LABELS: usize = 64;
const MAX_LABEL_TOKENS: usize = 32;
/// Inputs that carry no content; their average label distribution is the prior.
const CONTENT_FREE: [&str; 3] = ["N/A", "", "[MASK]"];

#[derive(Debug, Clone)]
pub struct ClassifyOptions {
    /// What to do, in words; the label list is appended. [Classify the text.]
    pub instruction: Option<String>,
    /// Few-shot examples: (text, label); each label must be one of the labels.
    pub examples: Vec<(String, String)>,
    /// Divide out the prior estimated from content-free inputs. [true]
    pub calibrate: bool,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions { instruction: None, examples: vec![], calibrate: true }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClassifyTimings {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state was reused from an earlier call.
    pub reused_tokens: usize,
    pub prompt_ms: f64,
    pub scoring_ms: f64,
    /// Time spent estimating the prior (zero when it was cached or calibration is off).
    pub calibration_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Classification {
    pub label: String,
    pub confidence: f64,
    /// Probability per label, in the order given; they sum to 1.
    pub scores: Vec<f64>,
    /// The same before calibration (equal to `scores` when calibration is off).
    pub uncalibrated: Vec<f64>,
    pub timings: ClassifyTimings,
}

/// Per-model classification state: the prompt cache and the priors already estimated.
#[derive(Default)]
pub struct Classifier {
    pub cache: PromptCache,
    priors: HashMap<String, Vec<f64>>,
}

fn validate(labels: &[String], opts: &ClassifyOptions) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidLabels(m));
    if labels.len() < 2 {
        return bad(format!("at least 2 labels are needed, got {}", labels.len()));
    }
    if labels.len() > MAX_LABELS {
        return bad(format!("at most {MAX_LABELS} labels are supported, got {}", labels.len()));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.trim().is_empty() {
            return bad(format!("label {i} is empty"));
        }
        if l.contains('\n') {
            return bad(format!("label {l:?} contains a newline"));
        }
        if labels[..i].contains(l) {
            return bad(format!("label {l:?} appears twice"));
        }
    }
    for (text, label) in &opts.examples {
        if !labels.contains(label) {
            return bad(format!("example {text:?} has label {label:?}, which is not one of the labels"));
        }
    }
    Ok(())
}

/// The few-shot prompt; the label continues it as " <label>\n".
fn prompt(labels: &[String], opts: &ClassifyOptions, text: &str) -> String {
    let mut p = String::new();
    p.push_str(opts.instruction.as_deref().unwrap_or("Classify the text."));
    p.push_str(&format!("\nLabels: {}.\n\n", labels.join(", ")));
    for (t, l) in &opts.examples {
        p.push_str(&format!("Text: {}\nLabel: {l}\n\n", one_line(t)));
    }
    p.push_str(&format!("Text: {}\nLabel:", one_line(text)));
    p
}

/// Newlines would break the prompt's layout.
fn one_line(t: &str) -> String {
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// log-softmax of one set of logits, its normaliser computed once for any number of ids.
struct LogSoftmax<'a> {
    logits: &'a [f32],
    max: f64,
    log_sum: f64,
}

impl<'a> LogSoftmax<'a> {
    fn new(logits: &'a [f32]) -> Self {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = logits.iter().map(|&l| libm::exp(l as f64 - max)).sum();
        LogSoftmax { logits, max, log_sum: libm::log(sum) }
    }

    fn at(&self, id: u32) -> f64 {
        self.logits[id as usize] as f64 - self.max - self.log_sum
    }
}

fn normalise(logp: &[f64]) -> Vec<f64> {
    let max = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logp.iter().map(|&l| libm::exp(l - max)).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

impl Model {
    pub fn classify(&self, c: &mut Classifier, text: &str, labels: &[String], opts: &ClassifyOptions) -> Result<Classification> {
        validate(labels, opts)?;
        let total = Stopwatch::start();
        let label_tokens = labels
            .iter()
            .map(|l| {
                // Appended to the prompt: no SentencePiece space prefix of its own.
                let ids = self.tokenizer.encode_continuation(&format!(" {l}\n"));
                if ids.len() > MAX_LABEL_TOKENS {
                    Err(Error::InvalidLabels(format!("label {l:?} is {} tokens long (at most {MAX_LABEL_TOKENS})", ids.len())))
                } else {
                    Ok(ids)
                }
            })
            .collect::<Result<Vec<_>>>()?;

        let mut timings = ClassifyTimings::default();
        let logp = self.label_logprobs(c, &prompt(labels, opts, text), &label_tokens, &mut timings)?;
        let uncalibrated = normalise(&logp);

        let mut scores = uncalibrated.clone();
        if opts.calibrate {
            let clock = Stopwatch::start();
            let key = format!("{:?}\u{0}{:?}\u{0}{:?}", opts.instruction, opts.examples, labels);
            if !c.priors.contains_key(&key) {
                let mut prior = vec![0.0; labels.len()];
                for cf in CONTENT_FREE {
                    let mut t = ClassifyTimings::default();
                    let p = normalise(&self.label_logprobs(c, &prompt(labels, opts, cf), &label_tokens, &mut t)?);
                    prior.iter_mut().zip(&p).for_each(|(a, b)| *a += b / CONTENT_FREE.len() as f64);
                }
                c.priors.insert(key.clone(), prior);
                timings.calibration_ms = clock.ms();
            }
            let prior = &c.priors[&key];
            let divided: Vec<f64> = uncalibrated.iter().zip(prior).map(|(p, q)| p / q.max(1e-12)).collect();
            let s: f64 = divided.iter().sum();
            scores = divided.iter().map(|v| v / s).collect();
        }
        c.cache.trim();

        let best = (0..labels.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        timings.total_ms = total.ms();
        Ok(Classification { label: labels[best].clone(), confidence: scores[best], scores, uncalibrated, timings })
    }

    /// log P(label tokens | prompt) for every label, sharing the prompt's KV state.
    fn label_logprobs(
        &self,
        c: &mut Classifier,
        prompt: &str,
        labels: &[Vec<u32>],
        t: &mut ClassifyTimings,
    ) -> Result<Vec<f64>> {
        let ids = self.tokenizer.encode(prompt, true, false);
        let clock = Stopwatch::start();
        let ev = c.cache.eval(self, &ids)?;
        t.prompt_tokens = ids.len();
        t.reused_tokens = ev.reused;
        t.prompt_ms = clock.ms();

        let clock = Stopwatch::start();
        let prompt_logits = self.logits(&ev.output)?;
        let session = c.cache.session(self);
        let mut out = vec![0.0; labels.len()];
        let all: Vec<usize> = (0..labels.len()).collect();
        self.score_trie(session, &prompt_logits, labels, &all, 0, 0.0, &mut out)?;
        // Back to the end of the prompt; a label is far shorter than the rollback limit.
        let ok = session.truncate(ids.len());
        debug_assert!(ok);
        t.scoring_ms = clock.ms();
        Ok(out)
    }

    /// Walk the labels' token trie: `group` holds the labels that share their first `depth`
    /// tokens (log-probability `lp`), `logits` follow those tokens in `session`. Each distinct
    /// next token is evaluated once for all the labels that continue with it, and the
    /// session is rolled back to this node after each branch.
    #[allow(clippy::too_many_arguments)]
    fn score_trie(
        &self,
        session: &mut crate::model::Session,
        logits: &[f32],
        labels: &[Vec<u32>],
        group: &[usize],
        depth: usize,
        lp: f64,
        out: &mut [f64],
    ) -> Result<()> {
        let here = session.pos();
        let softmax = LogSoftmax::new(logits);
        let mut branches: Vec<(u32, Vec<usize>)> = vec![];
        for &i in group {
            let tok = labels[i][depth];
            match branches.iter_mut().find(|(t, _)| *t == tok) {
                Some((_, members)) => members.push(i),
                None => branches.push((tok, vec![i])),
            }
        }
        for (tok, members) in branches {
            let lp = lp + softmax.at(tok);
            let (ended, longer): (Vec<usize>, Vec<usize>) = members.into_iter().partition(|&i| labels[i].len() == depth + 1);
            for i in ended {
                out[i] = lp;
            }
            if !longer.is_empty() {
                let next = self.forward(session, &[tok])?;
                self.score_trie(session, &next, labels, &longer, depth + 1, lp, out)?;
                let ok = session.truncate(here);
                debug_assert!(ok);
            }
        }
        Ok(())
    }
}
