//! Tokenizers built from GGUF metadata, producing the same ids as llama.cpp:
//! SentencePiece-style score merging (`tokenizer.ggml.model = llama`, Gemma) and GPT-2
//! byte-level BPE (`gpt2`, SmolLM2).

mod bpe;
mod merge;
mod pretokenize;
mod spm;

pub use bpe::byte_to_char;

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};

/// Token attributes, a bit set as in llama.cpp (a token can be user-defined *and* control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr(u8);

impl Attr {
    pub const NORMAL: Attr = Attr(1);
    pub const UNKNOWN: Attr = Attr(2);
    pub const CONTROL: Attr = Attr(4);
    pub const USER_DEFINED: Attr = Attr(8);
    pub const UNUSED: Attr = Attr(16);
    pub const BYTE: Attr = Attr(32);

    /// From `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte).
    fn from_gguf(v: i64) -> Attr {
        match v {
            2 => Attr::UNKNOWN,
            3 => Attr::CONTROL,
            4 => Attr::USER_DEFINED,
            5 => Attr::UNUSED,
            6 => Attr::BYTE,
            _ => Attr::NORMAL,
        }
    }

    pub fn has(self, other: Attr) -> bool {
        self.0 & other.0 != 0
    }
}

#[derive(Debug)]
enum Model {
    Spm(spm::Spm),
    Bpe(bpe::Bpe),
}

#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    pub tokens: Vocab,
    pub attrs: Vec<Attr>,
    pub scores: Vec<f32>,
    index: VocabIndex,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// SentencePiece: text that starts the input or follows a special token gets a leading
    /// space (`tokenizer.ggml.add_space_prefix`; llama.cpp's default for SPM is true, Gemma's
    /// files say false).
    pub add_space_prefix: bool,
    /// End-of-generation tokens: eos plus the turn/end markers llama.cpp recognises.
    pub eog: Vec<u32>,
    /// Control, user-defined and unknown tokens, longest text first: the strings the input
    /// is split on before the model tokenizer runs (control ones only when asked).
    special: Vec<u32>,
    pub kind: &'static str,
}

/// A piece of the input after splitting out special tokens.
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Token texts llama.cpp treats as end-of-generation in any vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
];

/// Every token's text, in one buffer: as a `String` each, 262k short texts take about three
/// times their bytes (a header and an allocation apiece).
#[derive(Debug, Default)]
pub struct Vocab {
    text: String,
    /// Where each token's text ends in `text`.
    ends: Vec<u32>,
}

impl Vocab {
    fn new(texts: Vec<String>) -> Result<Vocab> {
        let mut v = Vocab { text: String::with_capacity(texts.iter().map(String::len).sum()), ends: Vec::with_capacity(texts.len()) };
        for t in texts {
            v.text.push_str(&t);
            v.ends.push(u32::try_from(v.text.len()).map_err(|_| Error::Corrupt("the vocabulary's texts exceed 4 GiB".into()))?);
        }
        Ok(v)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, id: usize) -> Option<&str> {
        let end = *self.ends.get(id)? as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] as usize };
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| &self[i])
    }
}

impl std::ops::Index<usize> for Vocab {
    type Output = str;
    fn index(&self, id: usize) -> &str {
        self.get(id).unwrap_or_else(|| panic!("token id {id} is outside the vocabulary ({})", self.len()))
    }
}

/// Token ids by text, without a second copy of the texts: a hash table of ids whose keys
/// are read from the vocabulary (a `HashMap<String, u32>` holds every text twice, ~14 MB
/// for a 262k vocabulary).
#[derive(Debug)]
struct VocabIndex {
    ids: HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
}

impl VocabIndex {
    fn new(tokens: &Vocab) -> VocabIndex {
        let mut index = VocabIndex { ids: HashTable::with_capacity(tokens.len()), hasher: Default::default() };
        for (i, t) in tokens.iter().enumerate() {
            // llama.cpp keeps the first id for a duplicated text.
            if index.get(tokens, t).is_none() {
                let hasher = &index.hasher;
                index.ids.insert_unique(hasher.hash_one(t), i as u32, |&id| hasher.hash_one(&tokens[id as usize]));
            }
        }
        index
    }

    fn get(&self, tokens: &Vocab, text: &str) -> Option<u32> {
        self.ids.find(self.hasher.hash_one(text), |&id| &tokens[id as usize] == text).copied()
    }
}

impl Tokenizer {
    /// Build the tokenizer from the `tokenizer.ggml.*` metadata. The vocabulary arrays are
    /// taken out of `g` (they live here afterwards): parsed, they are a few times the size
    /// of the vocabulary itself.
    pub fn from_gguf(g: &mut Gguf) -> Result<Tokenizer> {
        let kind = g.require_str("tokenizer.ggml.model")?.to_string();
        let tokens = Vocab::new(
            take_string_array(g, "tokenizer.ggml.tokens")?
                .ok_or_else(|| Error::Corrupt("missing tokenizer.ggml.tokens".into()))?,
        )?;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Corrupt("empty vocabulary".into()));
        }
        let scores = match g.metadata.remove("tokenizer.ggml.scores").as_ref().and_then(Value::as_array) {
            Some(a) if a.len() == n => a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
            Some(_) => return Err(Error::Corrupt("tokenizer.ggml.scores has the wrong length".into())),
            None => vec![0.0; n],
        };
        let mut attrs: Vec<Attr> = match g.metadata.remove("tokenizer.ggml.token_type").as_ref().and_then(Value::as_array) {
            Some(a) if a.len() == n => a
                .iter()
                .map(|v| match v {
                    Value::I32(x) => Attr::from_gguf(*x as i64),
                    other => Attr::from_gguf(other.as_u64().unwrap_or(1) as i64),
                })
                .collect(),
            Some(_) => return Err(Error::Corrupt("tokenizer.ggml.token_type has the wrong length".into())),
            None => vec![Attr::NORMAL; n],
        };
        let index = VocabIndex::new(&tokens);
        let (model, kind, default_add_bos) = match kind.as_str() {
            "llama" => (Model::Spm(spm::Spm::new(&tokens, &attrs)?), "spm", true),
            "gpt2" => {
                let merges = take_string_array(g, "tokenizer.ggml.merges")?
                    .ok_or_else(|| Error::Corrupt("gpt2 tokenizer without tokenizer.ggml.merges".into()))?;
                let pre = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
                let bpe = bpe::Bpe::new(merges, pre)?;
                // Llama 3's vocabulary starts with BOS when the file does not say (llama.cpp's default).
                let add_bos = bpe.pre_tokenizer().adds_bos_by_default();
                (Model::Bpe(bpe), "bpe", add_bos)
            }
            other => return Err(Error::UnsupportedArchitecture(format!("tokenizer model '{other}'"))),
        };
        let id_key = |k: &str| -> Option<u32> { g.get_u64(k).filter(|&v| (v as usize) < n).map(|v| v as u32) };
        let bos = id_key("tokenizer.ggml.bos_token_id");
        let eos = id_key("tokenizer.ggml.eos_token_id");
        let add_bos = g.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
        let add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(matches!(model, Model::Spm(_)));

        // End-of-generation tokens are found by their text, as llama.cpp does; such a token
        // also becomes a control token (so plain-text tokenization never produces it).
        let mut eog: Vec<u32> = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if EOG_TEXTS.contains(&t) {
                eog.push(i as u32);
                attrs[i].0 |= Attr::CONTROL.0;
            }
        }
        // Gemma 4 / PaddleOCR: `</s>` is text when the vocabulary has `<|tool_response>`.
        if let (Some(s), Some(_)) = (index.get(&tokens, "</s>"), index.get(&tokens, "<|tool_response>")) {
            eog.retain(|&e| e != s);
            attrs[s as usize] = Attr::NORMAL;
        }
        for e in eos.into_iter().chain(id_key("tokenizer.ggml.eot_token_id")) {
            if !eog.contains(&e) {
                eog.push(e);
            }
        }

        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                let a = attrs[i as usize];
                (a.has(Attr::CONTROL) || a.has(Attr::USER_DEFINED) || a.has(Attr::UNKNOWN)) && !tokens[i as usize].is_empty()
            })
            .collect();
        special.sort_by(|&a, &b| tokens[b as usize].len().cmp(&tokens[a as usize].len()));

        Ok(Tokenizer { model, tokens, attrs, scores, index, bos, eos, add_bos, add_space_prefix, eog, special, kind })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.index.get(&self.tokens, text)
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Tokenize `text`. `add_special` prepends BOS when the model asks for it;
    /// `parse_special` lets control-token markup (e.g. `<start_of_turn>`) become its token.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.encode_from(text, add_special, parse_special, true)
    }

    /// Tokenize `text` as the continuation of earlier text (what a grammar's literal bytes
    /// are): no BOS, no special tokens parsed, and no SentencePiece space prefix, which
    /// belongs to the start of a text only.
    pub fn encode_continuation(&self, text: &str) -> Vec<u32> {
        self.encode_from(text, false, false, false)
    }

    fn encode_from(&self, text: &str, add_special: bool, parse_special: bool, at_start: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special && self.add_bos {
            if let Some(b) = self.bos {
                out.push(b);
            }
        }
        let mut after_special = at_start;
        for frag in self.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    match &self.model {
                        Model::Spm(m) if self.add_space_prefix && after_special => m.encode(self, &format!(" {t}"), &mut out),
                        Model::Spm(m) => m.encode(self, t, &mut out),
                        Model::Bpe(m) => m.encode(self, t, &mut out),
                    }
                    after_special = false;
                }
            }
        }
        out
    }

    /// Split the text on special-token strings, longest first, as llama.cpp does.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut frags = vec![Fragment::Text(text)];
        if text.is_empty() {
            return vec![];
        }
        for &id in &self.special {
            // Without special parsing only user-defined tokens split the text.
            let a = self.attrs[id as usize];
            if !parse_special && (a.has(Attr::CONTROL) || a.has(Attr::UNKNOWN)) {
                continue;
            }
            let pat = &self.tokens[id as usize];
            if !frags.iter().any(|f| matches!(f, Fragment::Text(t) if t.contains(pat))) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(t) => {
                        let mut rest = t;
                        while let Some(at) = rest.find(pat) {
                            if at > 0 {
                                next.push(Fragment::Text(&rest[..at]));
                            }
                            next.push(Fragment::Token(id));
                            rest = &rest[at + pat.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            frags = next;
        }
        frags
    }

    /// The bytes a token stands for in output text (control and unknown tokens render as
    /// nothing, as in llama.cpp's detokenizer without `special`).
    pub fn piece(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.push_piece(id, &mut out);
        out
    }

    /// Append `piece(id)` to `out` (a decode loop's output, without a vector per token).
    pub fn push_piece(&self, id: u32, out: &mut Vec<u8>) {
        let Some(text) = self.tokens.get(id as usize) else { return };
        let a = self.attrs[id as usize];
        if a.has(Attr::CONTROL) || a.has(Attr::UNKNOWN) {
            return;
        }
        if a.has(Attr::USER_DEFINED) {
            out.extend_from_slice(text.as_bytes());
        } else if a.has(Attr::NORMAL) {
            match &self.model {
                Model::Spm(_) => {
                    for (i, part) in text.split('\u{2581}').enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        out.extend_from_slice(part.as_bytes());
                    }
                }
                Model::Bpe(_) => bpe::push_byte_level(text, out),
            }
        } else if a.has(Attr::BYTE) {
            out.extend(spm::byte_token_value(text));
        }
    }

    /// Detokenize ids into text (invalid UTF-8 sequences are replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// The bytes of `ids`' pieces, one after the other (a character may be split at either end).
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &id in ids {
            self.push_piece(id, &mut bytes);
        }
        bytes
    }
}

/// Take a string array out of the metadata, moving its strings rather than copying them.
fn take_string_array(g: &mut Gguf, key: &str) -> Result<Option<Vec<String>>> {
    match g.metadata.remove(key) {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(Error::Corrupt(format!("{key}: non-string element"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::Corrupt(format!("{key} is not an array"))),
    }
}
