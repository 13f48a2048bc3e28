//! GPT-2 byte-level BPE as llama.cpp does it for `tokenizer.ggml.model = gpt2`:
//! pre-tokenize into words, map each byte to its printable stand-in character, then merge
//! adjacent symbols by merge rank (lowest first, leftmost on ties).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::OnceLock;

use super::merge::merge;
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
pub fn byte_to_char() -> &'static [char; 256] {
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

/// A byte-level token text back to its bytes, appended to `out`.
pub fn push_byte_level(text: &str, out: &mut Vec<u8>) {
    let m = char_to_byte();
    for c in text.chars() {
        match m.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

impl Bpe {
    pub fn new(merges: Vec<String>, pre: &str) -> Result<Bpe> {
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i as u32)).collect();
        Ok(Bpe { ranks, pre: PreTokenizer::from_name(pre)? })
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
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
        let key = RefCell::new(String::new());
        for word in self.pre.split(text) {
            let word: String = word.bytes().map(|b| table[b as usize]).collect();
            if self.pre.ignores_merges() {
                if let Some(id) = tok.token_id(&word) {
                    out.push(id);
                    continue;
                }
            }
            // Lowest merge rank first.
            let pieces = merge(&word, |l, r, _| {
                let mut key = key.borrow_mut();
                self.rank(&mut key, l, r).map(Reverse)
            });
            for piece in pieces {
                match tok.token_id(piece) {
                    Some(id) => out.push(id),
                    // Not in the vocabulary (a merge whose result the vocabulary lacks): each
                    // byte's own token. llama.cpp looks up each UTF-8 byte of the stand-in
                    // text instead, which drops every byte whose stand-in is not ASCII;
                    // the ids agree wherever llama.cpp keeps the text.
                    None => {
                        let mut buf = [0; 4];
                        out.extend(piece.chars().filter_map(|c| tok.token_id(c.encode_utf8(&mut buf))));
                    }
                }
            }
        }
    }
}
