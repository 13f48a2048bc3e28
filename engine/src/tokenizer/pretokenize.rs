//! Pre-tokenization for byte-level BPE: splitting text into words before merging, as
//! llama.cpp does for each `tokenizer.ggml.pre` (hand-written matchers for the regexes).

use unicode_general_category::{get_general_category, GeneralCategory as G};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// Every `\p{N}` on its own first, then the GPT-2 rules (smollm, starcoder, ...).
    DigitsThenGpt2,
}

impl PreTokenizer {
    pub fn from_name(pre: &str) -> Result<PreTokenizer> {
        Ok(match pre {
            "default" | "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
                PreTokenizer::DigitsThenGpt2
            }
            other => {
                return Err(Error::UnsupportedArchitecture(format!("BPE pre-tokenizer '{other}'")));
            }
        })
    }

    /// Split `text` into words (byte ranges, in order, covering the whole text).
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        match self {
            PreTokenizer::Gpt2 => gpt2_split(text, &mut out),
            PreTokenizer::DigitsThenGpt2 => {
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if flags(c).number {
                        if i > start {
                            gpt2_split(&text[start..i], &mut out);
                        }
                        out.push(&text[i..i + c.len_utf8()]);
                        start = i + c.len_utf8();
                    }
                }
                if start < text.len() {
                    gpt2_split(&text[start..], &mut out);
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy, Default)]
struct Flags {
    letter: bool,
    number: bool,
    whitespace: bool,
    /// Any category at all (unassigned code points have none).
    defined: bool,
}

fn flags(c: char) -> Flags {
    let cat = get_general_category(c);
    Flags {
        letter: matches!(cat, G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter),
        number: matches!(cat, G::DecimalNumber | G::LetterNumber | G::OtherNumber),
        whitespace: c.is_whitespace(),
        defined: cat != G::Unassigned || c.is_whitespace(),
    }
}

/// The GPT-2 pattern over one range, written out as a matcher (the `(?!\S)` look-ahead has
/// no equivalent in linear-time regex engines).
fn gpt2_split<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let cp = |i: usize| chars.get(i).map(|&(_, c)| c);
    let fl = |i: usize| chars.get(i).map(|&(_, c)| flags(c)).unwrap_or_default();
    let byte_at = |i: usize| chars.get(i).map(|&(b, _)| b).unwrap_or(text.len());
    let mut prev_end = 0usize; // in chars
    let mut add = |end: usize, out: &mut Vec<&'a str>| {
        if end > prev_end {
            out.push(&text[byte_at(prev_end)..byte_at(end)]);
        }
        prev_end = end;
    };
    let mut pos = 0usize;
    while pos < n {
        let c = cp(pos).unwrap();
        let f = fl(pos);
        if c == '\'' && pos + 1 < n {
            let c1 = cp(pos + 1).unwrap();
            if matches!(c1, 's' | 't' | 'm' | 'd') {
                pos += 2;
                add(pos, out);
                continue;
            }
            if pos + 2 < n {
                let c2 = cp(pos + 2).unwrap();
                if matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    pos += 3;
                    add(pos, out);
                    continue;
                }
            }
        }
        let space = c == ' ';
        let f2 = if space { fl(pos + 1) } else { f };
        if f2.letter {
            pos += space as usize;
            while fl(pos).letter {
                pos += 1;
            }
            add(pos, out);
            continue;
        }
        if f2.number {
            pos += space as usize;
            while fl(pos).number {
                pos += 1;
            }
            add(pos, out);
            continue;
        }
        let other = |f: Flags| !(f.whitespace || f.letter || f.number) && f.defined;
        if other(f2) {
            pos += space as usize;
            while other(fl(pos)) {
                pos += 1;
            }
            add(pos, out);
            continue;
        }
        let mut ws = 0;
        while fl(pos + ws).whitespace {
            ws += 1;
        }
        if ws > 1 && pos + ws < n {
            // \s+(?!\S): leave the last blank to the word that follows
            pos += ws - 1;
            add(pos, out);
            continue;
        }
        if ws > 0 {
            pos += ws;
            add(pos, out);
            continue;
        }
        pos += 1;
        add(pos, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn gpt2_rules() {
        let p = PreTokenizer::Gpt2;
        assert_eq!(p.split("Hello world's  end 123"), ["Hello", " world", "'s", " ", " end", " 123"]);
        assert_eq!(p.split("a   \n"), ["a", "   \n"]);
        assert_eq!(p.split("x!!  y"), ["x", "!!", " ", " y"]);
        let d = PreTokenizer::DigitsThenGpt2;
        assert_eq!(d.split("abc 123"), ["abc", " ", "1", "2", "3"]);
    }
}
