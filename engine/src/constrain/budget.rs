//! Valid within the token budget. A small model can loop inside a constraint (a number whose
//! digits never end, a string that never closes, a recursive tree that keeps opening) and
//! run out of `max-tokens` with nothing to return. Near the end of the budget, a token is
//! taken only if a complete output is still reachable after it within what is left.
//!
//! Reachability is shown by construction: the [`Closer`] walks the grammar alone (no model)
//! and returns the completion it finds. At each step it takes, among the tokens the grammar
//! allows, the one that leaves the JSON least open (fewest open strings, objects and arrays
//! after it); among equals, inside a string the longest token (a `minLength` or a format
//! fills fastest), elsewhere the first of a short list (`,` for the next required property
//! before digits that would only lengthen a number, then short values), then one that does
//! not end in `,` (which would commit to one more item). The walk is greedy,
//! so it can miss a completion that exists; then the model's choice stands and the call may
//! still end `output-truncated`.

use llguidance::toktrie::TokTrie;
use llguidance::Matcher;

/// Tie-breaks outside strings, best first.
const PREFERRED: &[&str] = &[",", "0", "1", "false", "true", "null", "\"\"", "[]", "{}", "@", "a", ".", "-", ":", "/", "T", "Z"];

/// How open a JSON text is: the brackets not yet closed, and whether it ends inside a string.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Openness {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Openness {
    fn after(mut self, bytes: &[u8]) -> Openness {
        for &b in bytes {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        self
    }

    fn score(self) -> u32 {
        self.depth + u32::from(self.in_string)
    }
}

/// The grammar-only walk toward a complete output. Token bytes come from the matcher's
/// own token trie (special tokens marked there, so they never look like JSON).
pub(crate) struct Closer {
    /// Token id → its place in [`PREFERRED`] (`u8::MAX`: not there).
    preferred: Vec<u8>,
}

impl Closer {
    pub fn new(words: &[Vec<u8>]) -> Closer {
        let preferred = words
            .iter()
            .map(|w| PREFERRED.iter().position(|p| p.as_bytes() == w.as_slice()).map_or(u8::MAX, |i| i as u8))
            .collect();
        Closer { preferred }
    }

    /// A completion of the output `so_far` from `m`'s state in at most `budget` tokens (the
    /// forced ones included), or `None` when the walk finds none.
    pub fn complete(&self, m: &Matcher, so_far: &[u32], budget: usize) -> Option<Vec<u32>> {
        let env = m.tok_env().ok()?;
        let trie: &TokTrie = env.tok_trie();
        let mut m = m.deep_clone();
        let mut open = so_far.iter().fold(Openness::default(), |o, &t| o.after(trie.token(t)));
        let mut path: Vec<u32> = Vec::new();
        loop {
            if m.is_stopped() || m.is_accepting().unwrap_or(false) {
                return Some(path);
            }
            let forced = m.compute_ff_tokens();
            if !forced.is_empty() {
                if path.len() + forced.len() > budget || m.consume_tokens(&forced).is_err() {
                    return None;
                }
                for &t in &forced {
                    open = open.after(trie.token(t));
                }
                path.extend(forced);
                continue;
            }
            if path.len() >= budget {
                return None;
            }
            let mask = m.compute_mask().ok()?;
            // (openness after, tie-break, id): the smallest wins.
            // Outside strings a token ending in `,` commits to one more item or property.
            let mut best: Option<(u32, (u8, bool, u32), u32)> = None;
            mask.iter_set_entries(|i| {
                if i >= self.preferred.len() {
                    return;
                }
                let w = trie.token(i as u32);
                let after = open.after(w);
                let longest_first = u32::MAX - w.len() as u32;
                let tie = if after.in_string { (0, false, longest_first) } else { (self.preferred[i], w.ends_with(b","), longest_first) };
                let key = (after.score(), tie, i as u32);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            });
            let next = best?.2;
            m.consume_token(next).ok()?;
            open = open.after(trie.token(next));
            path.push(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Openness;

    #[test]
    fn openness_follows_strings_and_brackets() {
        let o = Openness::default().after(br#"{"a":[1,{"b":"x\"}]"#);
        assert_eq!((o.depth, o.in_string), (3, true));
        let o = o.after(br#"y"}]}"#);
        assert_eq!((o.depth, o.in_string), (0, false));
    }
}
