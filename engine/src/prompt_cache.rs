//! Prompt-prefix reuse across calls: one sequence's KV state is kept, and a new prompt that
//! starts like the previous one only evaluates what differs (repeated instructions and
//! few-shot examples are computed once).

use crate::error::Result;
use crate::model::{Model, Output, Session};

/// Prompts longer than this are evaluated but not kept, so the memory stays bounded.
pub const DEFAULT_MAX_CACHED_TOKENS: usize = 4096;

pub struct PromptCache {
    session: Option<Session>,
    pub max_tokens: usize,
}

impl Default for PromptCache {
    fn default() -> Self {
        PromptCache { session: None, max_tokens: DEFAULT_MAX_CACHED_TOKENS }
    }
}

/// The state after evaluating a prompt through the cache.
pub struct Evaluated {
    /// The prompt's last token, ready for the vocabulary projection.
    pub output: Output,
    /// How many leading tokens were reused rather than evaluated.
    pub reused: usize,
}

impl PromptCache {
    /// Evaluate `tokens` (non-empty), reusing the longest prefix shared with the last call.
    pub fn eval(&mut self, model: &Model, tokens: &[u32]) -> Result<Evaluated> {
        let s = self.session.get_or_insert_with(|| model.new_session());
        let common = s.tokens.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        // The last token is always evaluated again: its logits are the result.
        let mut keep = common.min(tokens.len().saturating_sub(1));
        if !s.truncate(keep) {
            s.reset();
            keep = 0;
        }
        let output = match model.forward_to_output(s, &tokens[keep..]) {
            Ok(o) => o,
            Err(e) => {
                s.reset();
                return Err(e);
            }
        };
        Ok(Evaluated { output, reused: keep })
    }

    /// The session holding the last evaluated prompt (for scoring continuations of it).
    pub fn session(&mut self, model: &Model) -> &mut Session {
        self.session.get_or_insert_with(|| model.new_session())
    }

    /// Drop the kept state if it grew past the bound.
    pub fn trim(&mut self) {
        if self.session.as_ref().is_some_and(|s| s.pos() > self.max_tokens) {
            self.session = None;
        }
    }
}
