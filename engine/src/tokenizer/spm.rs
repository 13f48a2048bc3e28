//! SentencePiece-style tokenization as llama.cpp does it for `tokenizer.ggml.model = llama`:
//! start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is
//! the highest-scoring vocabulary entry, then fall back to `<0xXX>` byte tokens for any
//! piece that is not in the vocabulary.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Attr, Tokenizer};
use crate::error::Result;

#[derive(Debug)]
pub struct Spm {
    byte_tokens: [Option<u32>; 256],
}

/// `<0x0A>` → 0x0A.
pub fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

impl Spm {
    pub fn new(tokens: &[String], attrs: &[Attr]) -> Result<Spm> {
        let mut byte_tokens = [None; 256];
        for (i, t) in tokens.iter().enumerate() {
            if attrs[i].has(Attr::BYTE) {
                if let Some(b) = byte_token_value(t) {
                    byte_tokens[b as usize].get_or_insert(i as u32);
                }
            }
        }
        Ok(Spm { byte_tokens })
    }

    pub fn encode(&self, tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
        let text = text.replace(' ', "\u{2581}");
        if text.is_empty() {
            return;
        }
        // Symbols are byte ranges of `text`, linked as a list so a merge is O(1).
        let mut syms: Vec<Sym> = Vec::new();
        for (start, ch) in text.char_indices() {
            let i = syms.len() as isize;
            syms.push(Sym { start, len: ch.len_utf8(), prev: i - 1, next: i + 1 });
        }
        syms.last_mut().unwrap().next = -1;

        let mut queue = BinaryHeap::new();
        let push_pair = |l: isize, r: isize, syms: &[Sym], queue: &mut BinaryHeap<Bigram>| {
            if l < 0 || r < 0 {
                return;
            }
            let (l, r) = (l as usize, r as usize);
            let s = &text[syms[l].start..syms[r].start + syms[r].len];
            if let Some(id) = tok.token_id(s) {
                queue.push(Bigram { score: tok.scores[id as usize], left: l, right: r, size: s.len() });
            }
        };
        for i in 1..syms.len() {
            push_pair(i as isize - 1, i as isize, &syms, &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (b.left, b.right);
            // Stale entry: one side was merged away since this pair was queued.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if syms[r].next >= 0 {
                let n = syms[r].next as usize;
                syms[n].prev = l as isize;
            }
            let (prev, next) = (syms[l].prev, syms[l].next);
            push_pair(prev, l as isize, &syms, &mut queue);
            push_pair(l as isize, next, &syms, &mut queue);
        }
        // Every merged symbol is a vocabulary entry; a single character that is not falls
        // back to its UTF-8 bytes as <0xXX> tokens.
        let mut i: isize = 0;
        while i != -1 {
            let s = syms[i as usize];
            let piece = &text[s.start..s.start + s.len];
            match tok.token_id(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores the leftmost pair first.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then_with(|| o.left.cmp(&self.left))
    }
}
