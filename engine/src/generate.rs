//! The generation loop: tokenize, prefill, then sample one token at a time until an
//! end-of-generation token, a stop string, or the token budget.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampler::{Sampler, SamplerConfig};
use crate::timing::Stopwatch;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: u32,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
    /// Turn special-token markup in the prompt (e.g. `<start_of_turn>`) into those tokens.
    pub parse_special: bool,
    /// Wrap the prompt as a user turn in the model's chat template.
    pub chat: bool,
    /// With `chat`: the `(role, content)` messages before the prompt's user turn (a system
    /// message, earlier turns). An empty prompt then adds no user turn: the conversation
    /// ends with the last of these.
    pub history: Vec<(String, String)>,
    /// Record each generated token's log-probability under the model (`token_logprobs`):
    /// a log-softmax over the vocabulary per step, so only when asked.
    pub logprobs: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_tokens: 128, sampler: SamplerConfig::default(), stop: vec![], parse_special: false, chat: false, history: vec![], logprobs: false }
    }
}

/// What a streaming caller is given at each step: the ids chosen (with constraints, the
/// sampled token and the ones the grammar then forces) and their bytes (a character may be
/// split between steps).
pub type OnTokens<'a> = &'a mut dyn FnMut(&[u32], &[u8]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// A stop string appeared; the text is cut before it.
    StopString,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::EndOfGeneration => "stop",
            FinishReason::MaxTokens => "length",
            FinishReason::StopString => "stop-string",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Tokens evaluated in the prompt's batch: the prompt's (those a prompt cache did not
    /// already hold) and, for constrained output, the tokens every output starts with.
    pub prefill_tokens: usize,
    /// Tokens evaluated after it, one batch per sampled token and the tokens it forces.
    pub decode_tokens: usize,
    /// Constrained generation: the time of each token-mask computation, in ms.
    pub mask_ms: Vec<f64>,
}

impl Timings {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_ms)
    }
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.decode_tokens, self.decode_ms)
    }
}

fn rate(n: usize, ms: f64) -> f64 {
    if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 }
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    /// The generated ids (not the prompt's), end-of-generation token excluded.
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish_reason: FinishReason,
    pub timings: Timings,
    /// Constrained generation: the natural-log probability of each token the sampler chose,
    /// among the tokens the constraint allowed at that step (forced tokens are certain and
    /// not listed). Empty for unconstrained generation.
    pub logprobs: Vec<f32>,
    /// With `logprobs`: the natural-log probability of each of `tokens` under the model's
    /// distribution at its step (over the tokens the constraint allowed; 0 for the tokens the
    /// grammar forced). Empty otherwise.
    pub token_logprobs: Vec<f32>,
    /// Constrained generation: steps where the token budget set the model's choice aside
    /// because it left no complete output reachable within `max_tokens`.
    pub budget_steered: usize,
}

impl Generation {
    /// The mean of `logprobs`: how sure the model was where it had a choice (0 = certain;
    /// 0 too when the constraint forced every token). Routing uses it as a confidence.
    pub fn mean_logprob(&self) -> f64 {
        if self.logprobs.is_empty() {
            return 0.0;
        }
        self.logprobs.iter().map(|&l| l as f64).sum::<f64>() / self.logprobs.len() as f64
    }
}

impl Model {
    pub fn generate(&self, prompt: &str, opts: &GenerateOptions) -> Result<Generation> {
        self.generate_from_tokens(&self.prompt_tokens(prompt, opts)?, opts)
    }

    /// As [`Model::generate`], calling `on_tokens` with each token as it is chosen (for
    /// streaming; not the token that completes a stop string, and a stop string's first
    /// bytes may have been given before it is known to be one).
    pub fn generate_streaming(&self, prompt: &str, opts: &GenerateOptions, on_tokens: OnTokens<'_>) -> Result<Generation> {
        self.generate_from_tokens_streaming(&self.prompt_tokens(prompt, opts)?, opts, on_tokens)
    }

    /// The prompt's token ids: plain text with BOS where the model wants it (as llama.cpp
    /// does), or, with `chat`, a user turn in the model's chat template.
    pub fn prompt_tokens(&self, prompt: &str, opts: &GenerateOptions) -> Result<Vec<u32>> {
        if !opts.chat {
            return Ok(self.tokenizer.encode(prompt, true, opts.parse_special));
        }
        let mut messages: Vec<(&str, &str)> = opts.history.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
        if !prompt.is_empty() || messages.is_empty() {
            messages.push(("user", prompt));
        }
        let text = crate::chat::render_messages(self, &messages)?;
        // Templates that write the BOS text themselves must not get a second one.
        let tok = &self.tokenizer;
        let has_bos = tok.bos.is_some_and(|b| text.starts_with(&tok.tokens[b as usize]));
        Ok(tok.encode(&text, !has_bos, true))
    }

    /// The checks every generation makes before evaluating anything; returns its sampler.
    pub(crate) fn start_generation(&self, prompt_ids: &[u32], opts: &GenerateOptions) -> Result<Sampler> {
        if matches!(self.backend, crate::model::Backend::VocabOnly(_)) {
            return Err(self.no_weights());
        }
        if prompt_ids.is_empty() {
            return Err(Error::InvalidOption("the prompt is empty and the model adds no BOS token".into()));
        }
        if opts.stop.iter().any(String::is_empty) {
            return Err(Error::InvalidOption("stop strings must not be empty".into()));
        }
        let limit = self.config.n_ctx_train;
        let needed = prompt_ids.len() + opts.max_tokens as usize;
        if needed > limit {
            return Err(Error::ContextOverflow { needed, limit });
        }
        Sampler::new(opts.sampler.clone())
    }

    pub fn generate_from_tokens(&self, prompt_ids: &[u32], opts: &GenerateOptions) -> Result<Generation> {
        self.generate_from_tokens_streaming(prompt_ids, opts, &mut |_, _| {})
    }

    pub fn generate_from_tokens_streaming(&self, prompt_ids: &[u32], opts: &GenerateOptions, on_tokens: OnTokens<'_>) -> Result<Generation> {
        let mut sampler = self.start_generation(prompt_ids, opts)?;

        let mut session = self.new_session();
        // Everything the decode loop fills is sized up front: a step allocates nothing.
        session.reserve(prompt_ids.len() + opts.max_tokens as usize);
        let mut timings = Timings { prefill_tokens: prompt_ids.len(), ..Default::default() };
        let clock = Stopwatch::start();
        let mut logits = Vec::new();
        self.forward_into(&mut session, prompt_ids, &mut logits)?;
        timings.prefill_ms = clock.ms();

        let clock = Stopwatch::start();
        let mut tokens = Vec::with_capacity(opts.max_tokens as usize);
        let mut token_logprobs = Vec::new();
        let mut bytes: Vec<u8> = Vec::with_capacity(16 * opts.max_tokens as usize);
        let mut finish = FinishReason::MaxTokens;
        let mut cut = None;
        for step in 0..opts.max_tokens {
            let next = sampler.sample(&logits);
            if self.tokenizer.is_eog(next) {
                finish = FinishReason::EndOfGeneration;
                break;
            }
            if opts.logprobs {
                token_logprobs.push(crate::sampler::log_softmax_at(&logits, next, None));
            }
            tokens.push(next);
            let before = bytes.len();
            self.tokenizer.push_piece(next, &mut bytes);
            if let Some(at) = find_stop(&bytes, &opts.stop) {
                cut = Some(at);
                finish = FinishReason::StopString;
                break;
            }
            on_tokens(&[next], &bytes[before..]);
            if step + 1 < opts.max_tokens {
                self.forward_into(&mut session, &[next], &mut logits)?;
                timings.decode_tokens += 1;
            }
        }
        timings.decode_ms = clock.ms();
        if let Some(at) = cut {
            bytes.truncate(at);
        }
        Ok(Generation {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            tokens,
            prompt_tokens: prompt_ids.len(),
            finish_reason: finish,
            timings,
            logprobs: Vec::new(),
            token_logprobs,
            budget_steered: 0,
        })
    }
}

/// Byte offset of the earliest stop string in the output so far.
fn find_stop(text: &[u8], stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|s| text.windows(s.len()).position(|w| w == s.as_bytes()))
        .min()
}
