//! SentencePiece-style tokenization as llama.cpp does it for `tokenizer.ggml.model = llama`:
//! start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is
//! the highest-scoring vocabulary entry, then fall back to `<0xXX>` byte tokens for any
//! piece that is not in the vocabulary.

use super::merge::merge;
use super::{Attr, Tokenizer, Vocab};
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
    pub fn new(tokens: &Vocab, attrs: &[Attr]) -> Result<Spm> {
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
        // A pair ranks by the score of the vocabulary entry it would form.
        let pieces = merge(&text, |_, _, joined| tok.token_id(joined).map(|id| TotalF32(tok.scores[id as usize])));
        // Every merged piece is a vocabulary entry; a single character that is not falls
        // back to its UTF-8 bytes as <0xXX> tokens.
        for piece in pieces {
            match tok.token_id(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
        }
    }
}

/// An f32 ordered totally (scores are finite in practice; NaN sorts consistently anyway).
#[derive(PartialEq)]
struct TotalF32(f32);
impl Eq for TotalF32 {}
impl PartialOrd for TotalF32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TotalF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}
