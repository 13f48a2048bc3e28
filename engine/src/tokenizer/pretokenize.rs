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
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// Qwen2: Llama 3's pattern with single digits (`\p{N}` for `\p{N}{1,3}`).
    Qwen2,
    /// Qwen3.5: Qwen2's, with combining marks (`\p{M}`) counted as letters.
    Qwen35,
    /// GPT-4o (o200k; Phi-4-mini, Llama 4): words split by case, contractions kept on their
    /// word, `\p{N}{1,3}`, punctuation runs taking trailing line breaks and slashes. As
    /// llama.cpp runs it: a letter is "upper" unless it is a-z and "lower" unless it is A-Z,
    /// so a non-ASCII letter is both.
    Gpt4o,
}

impl PreTokenizer {
    pub fn from_name(pre: &str) -> Result<PreTokenizer> {
        Ok(match pre {
            "default" | "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
                PreTokenizer::DigitsThenGpt2
            }
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" => {
                PreTokenizer::Llama3
            }
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" => PreTokenizer::Qwen2,
            "qwen35" => PreTokenizer::Qwen35,
            "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => PreTokenizer::Gpt4o,
            other => {
                return Err(Error::UnsupportedArchitecture(format!("BPE pre-tokenizer '{other}'")));
            }
        })
    }

    /// Whether a word that is a token as a whole is taken as it is, without merges
    /// (llama.cpp's `ignore_merges`: Llama 3's vocabulary has words its merges do not reach).
    pub fn ignores_merges(&self) -> bool {
        matches!(self, PreTokenizer::Llama3)
    }

    /// Whether text starts with BOS when the file has no `tokenizer.ggml.add_bos_token`.
    pub fn adds_bos_by_default(&self) -> bool {
        matches!(self, PreTokenizer::Llama3)
    }

    /// Split `text` into words (byte ranges, in order, covering the whole text).
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        match self {
            PreTokenizer::Gpt2 => gpt2_split(text, &mut out),
            PreTokenizer::Llama3 => llama3_split(text, 3, false, &mut out),
            PreTokenizer::Qwen2 => llama3_split(text, 1, false, &mut out),
            PreTokenizer::Qwen35 => llama3_split(text, 1, true, &mut out),
            PreTokenizer::Gpt4o => gpt4o_split(text, &mut out),
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
    /// A combining mark (`\p{M}`).
    mark: bool,
    number: bool,
    whitespace: bool,
    /// Any category at all (unassigned code points have none).
    defined: bool,
}

fn flags(c: char) -> Flags {
    let cat = get_general_category(c);
    Flags {
        letter: matches!(cat, G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter),
        mark: matches!(cat, G::NonspacingMark | G::SpacingMark | G::EnclosingMark),
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

/// The Llama 3 pattern (Qwen2's with `max_digits` = 1; Qwen3.5's with `marks_are_letters`
/// too) as a matcher, rule by rule in the pattern's order, as llama.cpp's hand-written
/// splitter reads it.
fn llama3_split<'a>(text: &'a str, max_digits: usize, marks_are_letters: bool, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let cp = |i: usize| chars.get(i).map(|&(_, c)| c);
    let fl = |i: usize| {
        let mut f = chars.get(i).map(|&(_, c)| flags(c)).unwrap_or_default();
        f.letter |= marks_are_letters && f.mark;
        f
    };
    let byte_at = |i: usize| chars.get(i).map(|&(b, _)| b).unwrap_or(text.len());
    let mut prev_end = 0usize; // in chars
    let mut add = |end: usize, out: &mut Vec<&'a str>| {
        if end > prev_end {
            out.push(&text[byte_at(prev_end)..byte_at(end)]);
        }
        prev_end = end;
    };
    let lower = |i: usize| cp(i).and_then(|c| c.to_lowercase().next());
    let newline = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    let mut pos = 0usize;
    while pos < n {
        let c = cp(pos).unwrap();
        let f = fl(pos);
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == '\'' && pos + 1 < n {
            if matches!(lower(pos + 1), Some('s' | 't' | 'm' | 'd')) {
                pos += 2;
                add(pos, out);
                continue;
            }
            if pos + 2 < n && matches!((lower(pos + 1), lower(pos + 2)), (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))) {
                pos += 3;
                add(pos, out);
                continue;
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(newline(Some(c)) || f.number) && (f.letter || fl(pos + 1).letter) {
            pos += 1;
            while fl(pos).letter {
                pos += 1;
            }
            add(pos, out);
            continue;
        }
        // \p{N}{1,3}: a run of digits in threes from the left (one by one for Qwen2)
        if f.number {
            let mut run = 0;
            while fl(pos).number {
                pos += 1;
                run += 1;
                if run == max_digits {
                    add(pos, out);
                    run = 0;
                }
            }
            add(pos, out);
            continue;
        }
        // ' '?[^\s\p{L}\p{N}]+[\r\n]*  (only an ASCII space may lead)
        let f2 = if c == ' ' { fl(pos + 1) } else { f };
        let other = |i: usize, f: Flags| i < n && !(f.whitespace || f.letter || f.number);
        if other(pos + (c == ' ') as usize, f2) || (c == ' ' && pos + 1 == n) {
            pos += (c == ' ') as usize;
            while other(pos, fl(pos)) {
                pos += 1;
            }
            while newline(cp(pos)) {
                pos += 1;
            }
            add(pos, out);
            continue;
        }
        let mut ws = 0;
        let mut after_newline = 0;
        while fl(pos + ws).whitespace {
            if newline(cp(pos + ws)) {
                after_newline = pos + ws + 1;
            }
            ws += 1;
        }
        // \s*[\r\n]+: up to the run's last line break
        if after_newline > 0 {
            pos = after_newline;
            add(pos, out);
            continue;
        }
        // \s+(?!\S): leave the last blank to the word that follows
        if ws > 1 && pos + ws < n {
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

/// The GPT-4o pattern as llama.cpp rewrites it for std::regex (first alternative that
/// matches, greedy with backtracking), alternative by alternative, with
/// U = a letter but not a-z, W = a letter but not A-Z, X = `[^\r\n\p{L}\p{N}]`:
///   X? U* W+ C? | X? U+ W* C? | \p{N}{1,3} | ' '?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ |
///   \s+(?!\S) | \s+
/// where C is one of 's 't 're 've 'm 'll 'd in any case.
fn gpt4o_split<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let cp = |i: usize| chars.get(i).map(|&(_, c)| c);
    // Each rule asks several times about the same characters: their categories once.
    let categories: Vec<Flags> = chars.iter().map(|&(_, c)| flags(c)).collect();
    let fl = |i: usize| categories.get(i).copied().unwrap_or_default();
    let upper = |i: usize| fl(i).letter && !cp(i).is_some_and(|c| c.is_ascii_lowercase());
    let lower = |i: usize| fl(i).letter && !cp(i).is_some_and(|c| c.is_ascii_uppercase());
    let newline = |i: usize| matches!(cp(i), Some('\r' | '\n'));
    let x = |i: usize| i < n && !(newline(i) || fl(i).letter || fl(i).number);
    let run = |mut i: usize, class: &dyn Fn(usize) -> bool| {
        while i < n && class(i) {
            i += 1;
        }
        i
    };
    // The contraction at `i`, if any: its length in chars.
    let contraction = |i: usize| -> usize {
        if cp(i) != Some('\'') {
            return 0;
        }
        let l = |k: usize| cp(i + k).map(|c| c.to_ascii_lowercase());
        match (l(1), l(2)) {
            (Some('s' | 't'), _) => 2,
            (Some('r'), Some('e')) | (Some('v'), Some('e')) => 3,
            (Some('m'), _) => 2,
            (Some('l'), Some('l')) => 3,
            (Some('d'), _) => 2,
            _ => 0,
        }
    };
    let byte_at = |i: usize| chars.get(i).map(|&(b, _)| b).unwrap_or(text.len());
    let mut pos = 0usize;
    while pos < n {
        let end = (|| {
            let lead: &[usize] = if x(pos) { &[1, 0] } else { &[0] };
            // X? U* W+ C?: U* gives back letters until a W can follow.
            for &l in lead {
                let q = pos + l;
                let mut k = run(q, &upper);
                loop {
                    if lower(k) {
                        let e = run(k, &lower);
                        return e + contraction(e);
                    }
                    if k == q {
                        break;
                    }
                    k -= 1;
                }
            }
            // X? U+ W* C?
            for &l in lead {
                let q = pos + l;
                if upper(q) {
                    let e = run(run(q, &upper), &lower);
                    return e + contraction(e);
                }
            }
            // \p{N}{1,3}
            if fl(pos).number {
                return run(pos, &|i| i < pos + 3 && fl(i).number);
            }
            // ' '?[^\s\p{L}\p{N}]+[\r\n/]*
            let other = |i: usize| i < n && !(fl(i).whitespace || fl(i).letter || fl(i).number);
            let q = pos + (cp(pos) == Some(' ') && other(pos + 1)) as usize;
            if other(q) {
                return run(run(q, &other), &|i| matches!(cp(i), Some('\r' | '\n' | '/')));
            }
            let ws = run(pos, &|i| fl(i).whitespace);
            // \s*[\r\n]+: up to the run's last line break
            if let Some(last) = (pos..ws).rev().find(|&i| newline(i)) {
                return last + 1;
            }
            // \s+(?!\S): leave the last blank to the word that follows; else \s+
            if ws > pos + 1 && ws < n {
                return ws - 1;
            }
            if ws > pos {
                return ws;
            }
            pos + 1
        })();
        out.push(&text[byte_at(pos)..byte_at(end)]);
        pos = end;
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

    #[test]
    fn llama3_rules() {
        let p = PreTokenizer::Llama3;
        assert_eq!(p.split("   Hello"), ["  ", " Hello"]);
        assert_eq!(p.split("  3"), [" ", " ", "3"]);
        assert_eq!(p.split("1234567 x"), ["123", "456", "7", " x"]);
        assert_eq!(p.split("I'M here\n\n  \tok!!\n"), ["I", "'M", " here", "\n\n", "  ", "\tok", "!!\n"]);
        assert_eq!(p.split("a   "), ["a", "   "]);
        assert_eq!(PreTokenizer::Qwen2.split("x 123"), ["x", " ", "1", "2", "3"]);
        // A combining acute accent after a space: punctuation for Qwen2, a letter for Qwen3.5.
        assert_eq!(PreTokenizer::Qwen2.split("e \u{301}x"), ["e", " \u{301}", "x"]);
        assert_eq!(PreTokenizer::Qwen35.split("e \u{301}x"), ["e", " \u{301}x"]);
    }

    #[test]
    fn gpt4o_rules() {
        let p = PreTokenizer::Gpt4o;
        assert_eq!(p.split("HelloWorld's JSONParser"), ["Hello", "World's", " JSONParser"]);
        assert_eq!(p.split("HELLO there"), ["HELLO", " there"]);
        assert_eq!(p.split("1234567 x"), ["123", "456", "7", " x"]);
        assert_eq!(p.split("a/b!!/\n/c"), ["a", "/b", "!!/\n/", "c"]);
        assert_eq!(p.split("   Hello\n\n  x"), ["  ", " Hello", "\n\n", " ", " x"]);
        // Non-ASCII letters count as both cases: É ends the word "coleÉ" runs on with.
        assert_eq!(p.split("ÉcoleÉTÉ déjà"), ["ÉcoleÉ", "TÉ", " déjà"]);
        assert_eq!(p.split("(I'M"), ["(I'M"]);
    }
}
