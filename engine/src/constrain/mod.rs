//! Constrained generation: at every step only tokens that keep the output a valid prefix of
//! the constraint's language can be chosen (llguidance computes that token mask), tokens the
//! grammar forces are appended without sampling (jump-forward) and evaluated in the same
//! batch as the token before them (the output's opening ones with the prompt), and
//! generation that runs out of tokens before the output is complete is an error, never
//! silently invalid output.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::error::{Error, Result};
use crate::generate::{FinishReason, GenerateOptions, Generation, OnTokens, Timings};
use crate::model::{Model, Output, Session};
use crate::prompt_cache::PromptCache;
use crate::sampler::{log_softmax_at, Sampler};
use crate::timing::Stopwatch;
use crate::tokenizer::{Attr, Tokenizer};

mod budget;
mod bytes;
mod listed;
pub mod schema;

use budget::Closer;

/// What the output must match.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// A JSON Schema (drafts 4 to 2020-12): what it constrains is enforced exactly or refused,
    /// annotations and unknown keywords are ignored (see [`schema`]).
    JsonSchema(String),
    /// A regular expression the whole output must match.
    Regex(String),
    /// A context-free grammar in llguidance's Lark syntax.
    Grammar(String),
}

/// The model's vocabulary as llguidance sees it: token bytes in a trie, and our tokenizer
/// for the grammar's literal strings.
struct Vocabulary {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        match std::str::from_utf8(s) {
            // Mid-output bytes: a SentencePiece vocabulary must not add its space prefix.
            Ok(text) => self.tokenizer.encode_continuation(text),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// What [`Constrainer::check_instances`] found.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Per text: whether it is a complete output.
    pub accepted: Vec<bool>,
    /// The timed masks' durations, ms.
    pub mask_ms: Vec<f64>,
}

/// Per-model constraint state: the token trie (1-2 s to build for a 262k vocabulary) is
/// built once and reused by every constrained call.
pub struct Constrainer {
    factory: ParserFactory,
    eos: u32,
    closer: Closer,
}

impl Constrainer {
    pub fn new(model: &Model) -> Result<Constrainer> {
        let tok = &model.tokenizer;
        let n = model.vocab_size();
        // Special tokens are marked so grammars never produce them as text.
        let words: Vec<Vec<u8>> = (0..n as u32)
            .map(|id| {
                let a = tok.attrs.get(id as usize).copied().unwrap_or_default();
                let text = tok.tokens.get(id as usize).unwrap_or("");
                if a.has(Attr::CONTROL) || a.has(Attr::UNKNOWN) || a.has(Attr::UNUSED) || (id as usize) >= tok.vocab_size() {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(text.as_bytes());
                    w
                } else {
                    tok.piece(id)
                }
            })
            .collect();
        let eos = tok.eos.or(tok.eog.first().copied()).ok_or_else(|| {
            Error::ConstraintUnsatisfiable("the model has no end-of-sequence token to end constrained output".into())
        })?;
        let mut info = TokRxInfo::new(n as u32, eos);
        info.tok_bos = tok.bos;
        let trie = TokTrie::from(&info, &words);
        let closer = Closer::new(&words);
        let env: TokEnv = Arc::new(Vocabulary { trie, tokenizer: tok.clone() });
        // No token slices: llguidance's default JSON slices keep four more filtered copies of
        // the trie (measured on Gemma's 262k vocabulary: +69 MB resident, 0.6 ms faster
        // masks per step inside free-text strings natively). Memory is the scarcer resource
        // at the edge, and a wasm instance never gives memory back.
        let mut factory = ParserFactory::new(&env, Default::default(), &[])
            .map_err(|e| Error::Io(format!("constraint engine: {e}")))?;
        factory.quiet();
        Ok(Constrainer { factory, eos, closer })
    }

    /// Whether `text` is a complete output of `constraint` (used to check answers that come
    /// from elsewhere, e.g. a cloud model, against the grammar the local path enforces).
    pub fn accepts(&self, model: &Model, constraint: &Constraint, text: &str) -> Result<bool> {
        Ok(self.check_instances(model, constraint, &[text.to_string()], None)?.accepted[0])
    }

    /// Which of `texts` are complete outputs of `constraint`, compiled once. With
    /// `time_masks_of`, the token masks along that text are computed and timed as generation
    /// would (for the schema benchmark).
    pub fn check_instances(&self, model: &Model, constraint: &Constraint, texts: &[String], time_masks_of: Option<usize>) -> Result<Checks> {
        let compiled = self.matcher(constraint)?;
        let mut checks = Checks { accepted: Vec::with_capacity(texts.len()), mask_ms: Vec::new() };
        for (i, text) in texts.iter().enumerate() {
            let mut m = compiled.deep_clone();
            let tokens = model.tokenizer.encode_continuation(text);
            let consumed = if time_masks_of == Some(i) {
                let mut n = 0;
                for &t in &tokens {
                    let clock = Stopwatch::start();
                    let mask = m.compute_mask().map_err(engine_error)?;
                    checks.mask_ms.push(clock.ms());
                    if !mask.is_allowed(t) || m.consume_token(t).is_err() {
                        break;
                    }
                    n += 1;
                }
                n
            } else {
                m.try_consume_tokens(&tokens).unwrap_or(0)
            };
            checks.accepted.push(consumed == tokens.len() && (m.is_stopped() || m.is_accepting().unwrap_or(false)));
        }
        Ok(checks)
    }

    /// Compile a constraint, or say precisely why it cannot be enforced.
    fn matcher(&self, c: &Constraint) -> Result<Matcher> {
        check_limits(c)?;
        let grammar = match c {
            Constraint::JsonSchema(s) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(s).map_err(|e| Error::InvalidSchema(format!("not valid JSON: {e}")))?;
                let lenient = v.pointer("/x-guidance/lenient").and_then(serde_json::Value::as_bool) == Some(true);
                // Lenient mode is llguidance's: keywords it cannot enforce are dropped (fail
                // open), so none of the policy below applies.
                if !lenient {
                    schema::prepare(&mut v)?;
                }
                // Compact JSON: no whitespace to loop on, fewer tokens. A schema's own
                // "x-guidance" options (e.g. lenient mode) take precedence.
                if let Some(obj) = v.as_object_mut() {
                    obj.entry("x-guidance").or_insert_with(|| serde_json::json!({ "whitespace_flexible": false }));
                }
                TopLevelGrammar::from_json_schema(v)
            }
            Constraint::Regex(r) => TopLevelGrammar::from_regex(r),
            Constraint::Grammar(g) => TopLevelGrammar::from_lark(g.clone()),
        };
        let parser = self.factory.create_parser(grammar).map_err(|e| classify_error(c, &e.to_string()))?;
        let m = Matcher::new(Ok(parser));
        if let Some(e) = m.get_error() {
            return Err(classify_error(c, &e));
        }
        Ok(m)
    }
}

/// The longest constraint text compiled (a schema, regex or grammar): 2 MiB, twice the
/// largest of MaskBench's 11,305 real-world schemas.
pub const MAX_CONSTRAINT_BYTES: usize = 2 << 20;
/// How deep a schema's JSON may nest: 100 levels (MaskBench's deepest is 63; serde_json
/// stops at 128). Checked first, so the error names the limit and where it was passed.
pub const MAX_SCHEMA_DEPTH: usize = 100;

/// The documented bounds on a constraint, each its kind's typed error.
fn check_limits(c: &Constraint) -> Result<()> {
    let (text, what) = match c {
        Constraint::JsonSchema(s) => (s, "schema"),
        Constraint::Regex(r) => (r, "regex"),
        Constraint::Grammar(g) => (g, "grammar"),
    };
    if text.len() > MAX_CONSTRAINT_BYTES {
        let m = format!("the {what} is {} bytes, over the limit of {MAX_CONSTRAINT_BYTES}", text.len());
        return Err(match c {
            Constraint::JsonSchema(_) => Error::UnsupportedSchema(m),
            Constraint::Regex(_) => Error::InvalidRegex(m),
            Constraint::Grammar(_) => Error::InvalidGrammar(m),
        });
    }
    if let Constraint::JsonSchema(s) = c {
        if let Some(offset) = nesting_past(s.as_bytes(), MAX_SCHEMA_DEPTH) {
            let m = format!("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels (at byte offset {offset})");
            return Err(Error::UnsupportedSchema(m));
        }
    }
    Ok(())
}

/// The byte offset where JSON text first opens its `max + 1`th nested array or object
/// (brackets inside strings do not count), if it does.
fn nesting_past(json: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// llguidance reports every compile failure as text; sort it into our typed errors.
fn classify_error(c: &Constraint, msg: &str) -> Error {
    let message = llguidance_message(msg);
    match c {
        Constraint::JsonSchema(_) => {
            let lower = message.to_lowercase();
            if lower.contains("unimplemented") || lower.contains("unsupported") || lower.contains("unknown") {
                Error::UnsupportedSchema(message)
            } else if lower.contains("unsatisfiable") {
                Error::ConstraintUnsatisfiable(message)
            } else {
                Error::InvalidSchema(message)
            }
        }
        Constraint::Regex(_) => Error::InvalidRegex(message),
        Constraint::Grammar(_) => Error::InvalidGrammar(message),
    }
}

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::ConstraintUnsatisfiable(llguidance_message(&e.to_string()))
}

/// llguidance's message on one line, without the parser state some of them carry after a
/// `<state>` line (internal, and many lines long).
fn llguidance_message(msg: &str) -> String {
    let msg = msg.split("<state>").next().unwrap_or(msg);
    msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Below this many allowed tokens, logits are computed for those rows only.
const SPARSE_HEAD_LIMIT: usize = 4096;

impl Model {
    /// Generate output that matches `constraint`. The prompt goes through `cache`, so a
    /// prompt that starts like the previous call's (instruction, few-shot examples) only
    /// evaluates what is new; the cache is left holding the prompt.
    pub fn generate_constrained(
        &self,
        cons: &Constrainer,
        cache: &mut PromptCache,
        prompt: &str,
        constraint: &Constraint,
        opts: &GenerateOptions,
    ) -> Result<Generation> {
        self.generate_constrained_streaming(cons, cache, prompt, constraint, opts, &mut |_, _| {})
    }

    /// As [`Model::generate_constrained`], calling `on_tokens` with each step's ids as they are
    /// chosen (the opening the grammar forces first, then each sampled token with what it forces).
    pub fn generate_constrained_streaming(
        &self,
        cons: &Constrainer,
        cache: &mut PromptCache,
        prompt: &str,
        constraint: &Constraint,
        opts: &GenerateOptions,
        on_tokens: OnTokens<'_>,
    ) -> Result<Generation> {
        let mut matcher = cons.matcher(constraint)?;
        let prompt_ids = self.prompt_tokens(prompt, opts)?;
        let mut sampler = self.start_generation(&prompt_ids, opts)?;

        // The tokens every output starts with (e.g. `{"category":"`) are known before the
        // model runs: they are evaluated in the prompt's batch, not in one of their own.
        let opening = jump_forward(&mut matcher, 0, opts.max_tokens as usize)?;

        let mut timings = Timings::default();
        let clock = Stopwatch::start();
        let ev = cache.eval(self, &[prompt_ids.as_slice(), &opening].concat())?;
        timings.prefill_tokens = prompt_ids.len() + opening.len() - ev.reused;
        timings.prefill_ms = clock.ms();
        let mut output = ev.output;
        if !opening.is_empty() {
            on_tokens(&opening, &self.tokenizer.decode_bytes(&opening));
        }
        let result = self.constrained_steps(
            cons,
            cache.session(self),
            &mut matcher,
            &mut sampler,
            &mut output,
            opening,
            opts,
            &mut timings,
            on_tokens,
        );
        // Leave the cache holding the prompt for the next call.
        let session = cache.session(self);
        if !session.truncate(prompt_ids.len()) {
            session.reset();
        }
        cache.trim();
        let (tokens, logprobs, token_logprobs, budget_steered) = result?;
        let text = self.tokenizer.decode(&tokens);
        Ok(Generation {
            text,
            tokens,
            prompt_tokens: prompt_ids.len(),
            finish_reason: FinishReason::EndOfGeneration,
            timings,
            logprobs,
            token_logprobs,
            budget_steered,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn constrained_steps(
        &self,
        cons: &Constrainer,
        session: &mut Session,
        matcher: &mut Matcher,
        sampler: &mut Sampler,
        output: &mut Output,
        opening: Vec<u32>,
        opts: &GenerateOptions,
        timings: &mut Timings,
        on_tokens: OnTokens<'_>,
    ) -> Result<(Vec<u32>, Vec<f32>, Vec<f32>, usize)> {
        let clock = Stopwatch::start();
        let max = opts.max_tokens as usize;
        // The output so far: the opening forced tokens, already evaluated with the prompt.
        let mut token_logprobs: Vec<f32> = if opts.logprobs { vec![0.0; opening.len()] } else { Vec::new() };
        let mut tokens: Vec<u32> = opening;
        let mut logprobs: Vec<f32> = Vec::new();
        let mut allowed: Vec<u32> = Vec::new();
        let mut step_bytes: Vec<u8> = Vec::new();
        let mut budget = Budget::default();
        while !matcher.is_stopped() && tokens.len() < max {
            let mask_clock = Stopwatch::start();
            let mask = matcher.compute_mask().map_err(engine_error)?;
            timings.mask_ms.push(mask_clock.ms());
            if mask.is_zero() {
                return Err(Error::ConstraintUnsatisfiable("no token can continue the output".into()));
            }
            let sparse = mask.num_set() <= SPARSE_HEAD_LIMIT;
            let mut logits = if sparse {
                allowed.clear();
                mask.iter_set_entries(|i| allowed.push(i as u32));
                self.logits_for(output, &allowed)?
            } else {
                let mut l = self.logits(output)?;
                for (i, v) in l.iter_mut().enumerate() {
                    if !mask.is_allowed(i as u32) {
                        *v = f32::NEG_INFINITY;
                    }
                }
                l
            };
            let next = cons.choose_within_budget(matcher, sampler, &mut logits, &tokens, max, &mut budget);
            // Over the allowed ids only where they were listed: a few values, not the vocabulary.
            let logprob = log_softmax_at(&logits, next, sparse.then_some(allowed.as_slice()));
            logprobs.push(logprob);
            if next == cons.eos {
                break; // only allowed where the output is complete
            }
            matcher.consume_token(next).map_err(engine_error)?;
            tokens.push(next);
            // Jump-forward: what the grammar now forces is appended, and evaluated in one
            // batch with the chosen token (a forward pass streams every layer's weights).
            let forced = jump_forward(matcher, tokens.len(), max)?;
            tokens.extend_from_slice(&forced);
            if opts.logprobs {
                token_logprobs.push(logprob);
                token_logprobs.extend(std::iter::repeat_n(0.0, forced.len()));
            }
            let step = &tokens[tokens.len() - 1 - forced.len()..];
            step_bytes.clear();
            step.iter().for_each(|&id| self.tokenizer.push_piece(id, &mut step_bytes));
            on_tokens(step, &step_bytes);
            if matcher.is_stopped() || tokens.len() >= max {
                break;
            }
            let batch = &tokens[tokens.len() - 1 - forced.len()..];
            *output = self.forward_to_output(session, batch)?;
            timings.decode_tokens += batch.len();
        }
        timings.decode_ms = clock.ms();
        if !matcher.is_stopped() && !matcher.is_accepting().unwrap_or(false) {
            return Err(Error::OutputTruncated { tokens: max });
        }
        Ok((tokens, logprobs, token_logprobs, budget.steered))
    }
}

/// Start checking that a completion stays reachable when this few tokens are left, or
/// earlier when the last completion found was nearly as long as what is left.
const BUDGET_WINDOW: usize = 32;
const BUDGET_SLACK: usize = 8;
/// The model's choices tried, best first, before the walk's own token is taken.
const BUDGET_CANDIDATES: usize = 4;

#[derive(Default)]
struct Budget {
    /// The length of the completion last found (from the state it was found in).
    known: Option<usize>,
    /// Steps where the budget set the model's first choice aside.
    steered: usize,
}

impl Constrainer {
    /// The sampler's choice, unless the output has `have` of `max` tokens and that choice
    /// would leave no complete output reachable in what is left: then the next-best choice
    /// that does, and failing those, the first token of a completion the grammar walk finds.
    fn choose_within_budget(&self, matcher: &Matcher, sampler: &mut Sampler, logits: &mut [f32], tokens: &[u32], max: usize, budget: &mut Budget) -> u32 {
        let first = sampler.sample(logits);
        let have = tokens.len();
        let left = max - have;
        // From half the budget on, every 16 tokens: how long a completion is from here, so
        // that a deep structure starts closing before the window would be too late.
        if have >= max / 2 && (have - max / 2) % 16 == 0 {
            budget.known = self.closer.complete(matcher, tokens, left).map(|p| p.len()).or(budget.known);
        }
        if left > BUDGET_WINDOW && budget.known.is_none_or(|k| left > k + BUDGET_SLACK) {
            return first;
        }
        let mut next = first;
        for _ in 0..BUDGET_CANDIDATES {
            if next == self.eos {
                return next; // allowed only where the output is complete
            }
            let mut probe = matcher.deep_clone();
            if probe.consume_token(next).is_ok() {
                let forced = jump_forward(&mut probe, have + 1, max).unwrap_or_default();
                let used = 1 + forced.len();
                let so_far = [tokens, &[next], &forced].concat();
                if let Some(rest) = (used <= left).then(|| self.closer.complete(&probe, &so_far, left - used)).flatten() {
                    budget.known = Some(used + rest.len());
                    budget.steered += usize::from(next != first);
                    return next;
                }
            }
            logits[next as usize] = f32::NEG_INFINITY;
            if !logits.iter().any(|v| v.is_finite()) {
                break;
            }
            next = sampler.sample(logits);
        }
        match self.closer.complete(matcher, tokens, left) {
            Some(path) => {
                budget.known = Some(path.len());
                budget.steered += 1;
                path.first().copied().unwrap_or(self.eos)
            }
            // No completion found: the model's choice stands (the call may end truncated).
            None => first,
        }
    }
}

/// The tokens the grammar forces now (jump-forward), consumed by `matcher`: as many as it
/// forces, or until the output (`have` tokens so far) reaches `max`.
fn jump_forward(matcher: &mut Matcher, have: usize, max: usize) -> Result<Vec<u32>> {
    let mut all = Vec::new();
    while !matcher.is_stopped() && have + all.len() < max {
        let mut forced = matcher.compute_ff_tokens();
        forced.truncate(max - have - all.len());
        if forced.is_empty() {
            break;
        }
        matcher.consume_tokens(&forced).map_err(engine_error)?;
        all.extend(forced);
    }
    Ok(all)
}

