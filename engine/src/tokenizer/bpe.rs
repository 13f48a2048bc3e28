//! GPT-2 byte-level BPE as llama.cpp does it for `tokenizer.ggml.model = gpt2`:
//! pre-tokenize into words, map each byte to its printable stand-in character, then merge
//! adjacent symbols by merge rank (lowest first, leftmost on ties).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use super::pretokenize::PreTokenizer;
use super::Tokenizer;
use crate::error::Result;

#[derive(Debug)]
pub struct Bpe {
    /// "left right" → rank.
    ranks: HashMap<String, u32>,
    pre: PreTokenizer,
}

/// GPT-2's byte → character table: printable Latin-1 bytes stand for themselves, the rest
/// are shifted to U+0100 and up.
fn byte_to_char() -> &'static [char; 256] {
    static T: OnceLock<[char; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..256u32 {
            let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
            t[b as usize] = if printable {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            };
        }
        t
    })
}

fn char_to_byte() -> &'static HashMap<char, u8> {
    static T: OnceLock<HashMap<char, u8>> = OnceLock::new();
    T.get_or_init(|| byte_to_char().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect())
}

/// A byte-level token text back to its bytes.
pub fn decode_byte_level(text: &str) -> Vec<u8> {
    let m = char_to_byte();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match m.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

impl Bpe {
    pub fn new(merges: &[String], pre: &str) -> Result<Bpe> {
        let ranks = merges.iter().enumerate().map(|(i, m)| (m.clone(), i as u32)).collect();
        Ok(Bpe { ranks, pre: PreTokenizer::from_name(pre)? })
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }

    pub fn encode(&self, tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
        let table = byte_to_char();
        let mut key = String::new();
        for word in self.pre.split(text) {
            let word: String = word.bytes().map(|b| table[b as usize]).collect();
            let mut syms: Vec<Sym> = Vec::new();
            for (start, ch) in word.char_indices() {
                let i = syms.len() as isize;
                syms.push(Sym { start, len: ch.len_utf8(), prev: i - 1, next: i + 1 });
            }
            if syms.is_empty() {
                continue;
            }
            syms.last_mut().unwrap().next = -1;
            let text_of = |s: &Sym| &word[s.start..s.start + s.len];

            let mut queue = BinaryHeap::new();
            let mut push_pair = |l: isize, r: isize, syms: &[Sym], queue: &mut BinaryHeap<Pair>| {
                if l < 0 || r < 0 {
                    return;
                }
                let (l, r) = (l as usize, r as usize);
                if let Some(rank) = self.rank(&mut key, text_of(&syms[l]), text_of(&syms[r])) {
                    queue.push(Pair { rank, left: l, right: r, size: syms[l].len + syms[r].len });
                }
            };
            for i in 1..syms.len() {
                push_pair(i as isize - 1, i as isize, &syms, &mut queue);
            }
            while let Some(p) = queue.pop() {
                let (l, r) = (p.left, p.right);
                if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != p.size || syms[l].next != r as isize {
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
            let mut i: isize = 0;
            while i != -1 {
                let s = syms[i as usize];
                let piece = text_of(&s);
                match tok.token_id(piece) {
                    Some(id) => out.push(id),
                    // Not in the vocabulary: llama.cpp looks each byte of the piece up alone.
                    None => {
                        for b in piece.bytes() {
                            if let Some(id) = std::str::from_utf8(&[b]).ok().and_then(|s| tok.token_id(s)) {
                                out.push(id);
                            }
                        }
                    }
                }
                i = s.next;
            }
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

struct Pair {
    rank: u32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Pair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pair {
    /// BinaryHeap is a max-heap: the lowest rank, then the leftmost pair, must compare greatest.
    fn cmp(&self, o: &Self) -> Ordering {
        o.rank.cmp(&self.rank).then_with(|| o.left.cmp(&self.left))
    }
}
