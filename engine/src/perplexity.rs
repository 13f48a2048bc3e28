//! Perplexity, as llama.cpp's `llama-perplexity` measures it on one window: the text's
//! tokens after BOS in one causal pass, each predicted from all before it;
//! PPL = exp(mean of −log p(token | prefix)).

use crate::error::{Error, Result};
use crate::model::Model;

#[derive(Debug, Clone)]
pub struct Perplexity {
    /// Tokens scored (the window less its first token, which nothing predicts).
    pub scored: usize,
    /// Mean negative log-likelihood per scored token, in nats.
    pub nll: f64,
    pub perplexity: f64,
}

impl Model {
    /// The perplexity of the first `window` tokens of `text` (BOS first when the model asks
    /// for it).
    pub fn perplexity(&self, text: &str, window: usize) -> Result<Perplexity> {
        let mut ids = self.tokenizer.encode(text, true, false);
        ids.truncate(window);
        if ids.len() < 2 {
            return Err(Error::InvalidOption(format!("{} tokens: perplexity needs at least 2", ids.len())));
        }
        let mut total = 0.0f64;
        self.forward_each(&mut self.new_session(), &ids, |i, logits| {
            if let Some(&next) = ids.get(i + 1) {
                total += -log_softmax_at(logits, next as usize);
            }
        })?;
        let scored = ids.len() - 1;
        let nll = total / scored as f64;
        Ok(Perplexity { scored, nll, perplexity: nll.exp() })
    }
}

/// log p(`at`) under softmax(`logits`), in f64.
fn log_softmax_at(logits: &[f32], at: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    logits[at] as f64 - max - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::log_softmax_at;

    #[test]
    fn log_softmax_of_uniform_logits() {
        let l = [3.0f32; 4];
        assert!((log_softmax_at(&l, 2) - (0.25f64).ln()).abs() < 1e-12);
    }
}
