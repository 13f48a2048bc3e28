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
use crate::generate::{FinishReason, GenerateOptions, Generation, Timings};
use crate::model::{Model, Output, Session};
use crate::prompt_cache::PromptCache;
use crate::sampler::Sampler;
use crate::timing::Stopwatch;
use crate::tokenizer::{Attr, Tokenizer};

/// What the output must match.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// A JSON Schema (draft 2020-12 subset); unknown keywords are an error.
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
            Ok(text) => self.tokenizer.encode(text, false, false),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Per-model constraint state: the token trie (1-2 s to build for a 262k vocabulary) is
/// built once and reused by every constrained call.
pub struct Constrainer {
    factory: ParserFactory,
    eos: u32,
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
        let env: TokEnv = Arc::new(Vocabulary { trie, tokenizer: tok.clone() });
        // No token slices: llguidance's default JSON slices keep four more filtered copies of
        // the trie (measured on Gemma's 262k vocabulary: +69 MB resident, 0.6 ms faster
        // masks per step inside free-text strings natively). Memory is the scarcer resource
        // at the edge, and a wasm instance never gives memory back.
        let mut factory = ParserFactory::new(&env, Default::default(), &[])
            .map_err(|e| Error::Io(format!("constraint engine: {e}")))?;
        factory.quiet();
        Ok(Constrainer { factory, eos })
    }

    /// Whether `text` is a complete output of `constraint` (used to check answers that come
    /// from elsewhere, e.g. a cloud model, against the grammar the local path enforces).
    pub fn accepts(&self, model: &Model, constraint: &Constraint, text: &str) -> Result<bool> {
        let mut m = self.matcher(constraint)?;
        let tokens = model.tokenizer.encode(text, false, false);
        let consumed = m.try_consume_tokens(&tokens).map_err(engine_error)?;
        Ok(consumed == tokens.len() && (m.is_stopped() || m.is_accepting().unwrap_or(false)))
    }

    /// Compile a constraint, or say precisely why it cannot be enforced.
    fn matcher(&self, c: &Constraint) -> Result<Matcher> {
        let grammar = match c {
            Constraint::JsonSchema(s) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(s).map_err(|e| Error::InvalidSchema(format!("not valid JSON: {e}")))?;
                let lenient = v.pointer("/x-guidance/lenient").and_then(serde_json::Value::as_bool) == Some(true);
                if !lenient {
                    check_keywords(&v, &mut String::new())?;
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

/// Every JSON Schema keyword (2020-12, with draft-07's `definitions` and `dependencies`).
/// Anything else, such as a misspelt `maximun`, would be silently ignored by a validator and
/// so by the grammar: it is an error instead, naming the keyword and where it is (fail
/// closed). Keywords llguidance cannot enforce are reported by it in the same way.
const KEYWORDS: &[&str] = &[
    "$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$comment", "$vocabulary",
    "definitions", "type", "enum", "const", "properties", "patternProperties", "additionalProperties",
    "required", "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
    "dependencies", "items", "prefixItems", "additionalItems", "contains", "minContains", "maxContains",
    "minItems", "maxItems", "uniqueItems", "unevaluatedItems", "unevaluatedProperties", "allOf", "anyOf", "oneOf",
    "not", "if", "then", "else", "minLength", "maxLength", "pattern", "format", "contentEncoding",
    "contentMediaType", "contentSchema", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
    "x-guidance",
];

/// Keywords whose value is a schema, a map of schemas, or a list of schemas.
const SCHEMA_VALUED: &[&str] = &[
    "additionalProperties", "propertyNames", "items", "additionalItems", "contains", "not", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema",
];
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

fn check_keywords(v: &serde_json::Value, pointer: &mut String) -> Result<()> {
    let Some(obj) = v.as_object() else { return Ok(()) };
    for (k, sub) in obj {
        if !KEYWORDS.contains(&k.as_str()) {
            return Err(Error::UnsupportedSchema(format!(
                "unknown keyword \"{k}\" at {} (add \"x-guidance\": {{\"lenient\": true}} to ignore unknown keywords)",
                if pointer.is_empty() { "/" } else { pointer }
            )));
        }
        let len = pointer.len();
        let escaped = k.replace('~', "~0").replace('/', "~1");
        if SCHEMA_VALUED.contains(&k.as_str()) {
            pointer.push_str(&format!("/{escaped}"));
            check_keywords(sub, pointer)?;
        } else if SCHEMA_MAPS.contains(&k.as_str()) {
            for (name, s) in sub.as_object().into_iter().flatten() {
                pointer.push_str(&format!("/{escaped}/{}", name.replace('~', "~0").replace('/', "~1")));
                check_keywords(s, pointer)?;
                pointer.truncate(len);
            }
        } else if SCHEMA_LISTS.contains(&k.as_str()) {
            for (i, s) in sub.as_array().into_iter().flatten().enumerate() {
                pointer.push_str(&format!("/{escaped}/{i}"));
                check_keywords(s, pointer)?;
                pointer.truncate(len);
            }
        }
        pointer.truncate(len);
    }
    Ok(())
}

/// llguidance reports every compile failure as text; sort it into our typed errors.
fn classify_error(c: &Constraint, msg: &str) -> Error {
    let one_line = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    match c {
        Constraint::JsonSchema(_) => {
            let lower = one_line.to_lowercase();
            if lower.contains("unimplemented") || lower.contains("unsupported") || lower.contains("unknown") {
                Error::UnsupportedSchema(one_line)
            } else if lower.contains("unsatisfiable") {
                Error::ConstraintUnsatisfiable(one_line)
            } else {
                Error::InvalidSchema(one_line)
            }
        }
        Constraint::Regex(_) => Error::InvalidRegex(one_line),
        Constraint::Grammar(_) => Error::InvalidGrammar(one_line),
    }
}

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::ConstraintUnsatisfiable(e.to_string())
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
        let result =
            self.constrained_steps(cons, cache.session(self), &mut matcher, &mut sampler, &mut output, opening, opts, &mut timings);
        // Leave the cache holding the prompt for the next call.
        let session = cache.session(self);
        if !session.truncate(prompt_ids.len()) {
            session.reset();
        }
        cache.trim();
        let (tokens, logprobs) = result?;
        let text = self.tokenizer.decode(&tokens);
        Ok(Generation {
            text,
            tokens,
            prompt_tokens: prompt_ids.len(),
            finish_reason: FinishReason::EndOfGeneration,
            timings,
            logprobs,
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
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        let clock = Stopwatch::start();
        let max = opts.max_tokens as usize;
        // The output so far: the opening forced tokens, already evaluated with the prompt.
        let mut tokens: Vec<u32> = opening;
        let mut logprobs: Vec<f32> = Vec::new();
        let mut allowed: Vec<u32> = Vec::new();
        while !matcher.is_stopped() && tokens.len() < max {
            let mask_clock = Stopwatch::start();
            let mask = matcher.compute_mask().map_err(engine_error)?;
            timings.mask_ms.push(mask_clock.ms());
            if mask.is_zero() {
                return Err(Error::ConstraintUnsatisfiable("no token can continue the output".into()));
            }
            let sparse = mask.num_set() <= SPARSE_HEAD_LIMIT;
            let logits = if sparse {
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
            let next = sampler.sample(&logits);
            // Over the allowed ids only where they were listed: a few values, not the vocabulary.
            logprobs.push(log_softmax_at(&logits, next, sparse.then_some(allowed.as_slice())));
            if next == cons.eos {
                break; // only allowed where the output is complete
            }
            matcher.consume_token(next).map_err(engine_error)?;
            tokens.push(next);
            // Jump-forward: what the grammar now forces is appended, and evaluated in one
            // batch with the chosen token (a forward pass streams every layer's weights).
            let forced = jump_forward(matcher, tokens.len(), max)?;
            tokens.extend_from_slice(&forced);
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
        Ok((tokens, logprobs))
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

/// log p(id) under softmax(logits); -inf entries (masked tokens) contribute nothing. With
/// `ids` (the allowed ids, ascending: exactly the finite entries) only those are read; the
/// sums run in the same order, so the result is the same either way.
fn log_softmax_at(logits: &[f32], id: u32, ids: Option<&[u32]>) -> f32 {
    let finite = || -> Box<dyn Iterator<Item = f32> + '_> {
        match ids {
            Some(ids) => Box::new(ids.iter().map(|&i| logits[i as usize])),
            None => Box::new(logits.iter().copied().filter(|v| v.is_finite())),
        }
    };
    let max = finite().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = finite().map(|v| ((v - max) as f64).exp()).sum();
    (logits[id as usize] - max) - sum.ln() as f32
}
