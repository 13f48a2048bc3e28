//! Prompt-prefix reuse across calls: the KV state of the last few distinct prompts is kept,
//! and a new prompt that starts like one of them only evaluates what differs (repeated
//! instructions and few-shot examples are computed once). Distinct tasks (a classify prefix
//! and a ticket prefix, say) each keep their own slot instead of evicting each other.

use crate::error::Result;
use crate::model::{Model, Output, Session};

/// Prompts longer than this are evaluated but not kept, so the memory stays bounded.
pub const DEFAULT_MAX_CACHED_TOKENS: usize = 4096;

/// How many distinct prompt prefixes are kept.
pub const DEFAULT_SLOTS: usize = 4;

pub struct PromptCache {
    sessions: Vec<Session>,
    /// When each slot was last used (a counter), for least-recently-used eviction.
    used: Vec<u64>,
    clock: u64,
    /// The slot of the last evaluated prompt.
    current: usize,
    pub max_tokens: usize,
    pub slots: usize,
}

impl Default for PromptCache {
    fn default() -> Self {
        PromptCache {
            sessions: Vec::new(),
            used: Vec::new(),
            clock: 0,
            current: 0,
            max_tokens: DEFAULT_MAX_CACHED_TOKENS,
            slots: DEFAULT_SLOTS,
        }
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
        let common_with = |s: &Session| s.tokens.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        let best = (0..self.sessions.len()).max_by_key(|&i| (common_with(&self.sessions[i]), self.used[i]));
        // A prompt that shares no more than a BOS token with every slot is a different task:
        // it gets a free slot, or the least recently used one.
        self.current = match best {
            Some(i) if common_with(&self.sessions[i]) > 1 => i,
            _ if self.sessions.len() < self.slots.max(1) => {
                self.sessions.push(model.new_session());
                self.used.push(0);
                self.sessions.len() - 1
            }
            _ => (0..self.sessions.len()).min_by_key(|&i| self.used[i]).unwrap_or(0),
        };
        self.clock += 1;
        self.used[self.current] = self.clock;
        let s = &mut self.sessions[self.current];
        let common = common_with(s);
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
        if self.sessions.is_empty() {
            self.sessions.push(model.new_session());
            self.used.push(0);
            self.current = 0;
        }
        &mut self.sessions[self.current]
    }

    /// Drop the last prompt's state if it grew past the bound.
    pub fn trim(&mut self) {
        if self.sessions.get(self.current).is_some_and(|s| s.pos() > self.max_tokens) {
            self.sessions.remove(self.current);
            self.used.remove(self.current);
            self.current = 0;
        }
    }
}
