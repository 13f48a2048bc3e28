//! Typed errors, and the one table every host derives from.
//!
//! Every fallible path in the engine returns an [`Error`]; none panics on bad input. Each
//! error has a stable [`ErrorCode`] (the WIT `error-code` enum, host-js's `code`, the HTTP
//! service's error `type`) and one message, its `Display`: the component passes that message
//! on whole, so every host shows the same line. [`ErrorCode::ALL`] is the table itself
//! (code, class, meaning); `docs/errors.md` and the WIT enum are checked against it.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The model file does not exist or cannot be opened.
    FileNotFound(String),
    /// The bytes do not start with the GGUF magic, or the version is not 2 or 3.
    NotGguf(String),
    /// A GGUF whose `general.architecture` this engine does not implement.
    UnsupportedArchitecture(String),
    /// A tensor stored in a ggml type this engine has no kernel for.
    UnsupportedTensorType { tensor: String, ggml_type: u32 },
    /// Counts, offsets or sizes that do not fit the file, or missing/ill-typed fields.
    Corrupt(String),
    /// The prompt plus requested tokens do not fit the context window.
    ContextOverflow { needed: usize, limit: usize },
    /// A generation option outside its domain (negative temperature, top-p > 1, ...).
    InvalidOption(String),
    /// An I/O error other than "not found" while reading the model.
    Io(String),
    /// A label set classify cannot use: too few or too many, empty, duplicated, too long.
    InvalidLabels(String),
    /// A JSON Schema that is not valid JSON or not a valid schema.
    InvalidSchema(String),
    /// A schema using a keyword that cannot be enforced (never silently ignored).
    UnsupportedSchema(String),
    InvalidRegex(String),
    InvalidGrammar(String),
    /// No output can satisfy the constraint.
    ConstraintUnsatisfiable(String),
    /// `max_tokens` ran out before the output was complete; nothing invalid is returned.
    OutputTruncated { tokens: usize },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Whose problem an error is: what a host does about it (the HTTP service's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The model cannot be used (HTTP 503).
    Model,
    /// The caller's request is wrong (HTTP 400).
    Request,
    /// The request was fine but no valid output came of it (HTTP 422).
    Output,
}

/// Declares [`ErrorCode`] and its table in one list: variant, code, class, meaning.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $class:ident, $meaning:literal;)*) => {
        /// An error's stable name: the same in the WIT enum, every host and the HTTP service.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the WIT enum's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The kebab-case name (`file-not-found`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn class(self) -> ErrorClass {
                match self {
                    $(ErrorCode::$variant => ErrorClass::$class,)*
                }
            }

            /// What the error means, for docs/errors.md.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }

            pub fn from_name(name: &str) -> Option<ErrorCode> {
                ErrorCode::ALL.iter().copied().find(|c| c.as_str() == name)
            }
        }
    };
}

error_codes! {
    FileNotFound = "file-not-found", Model, "The model path does not exist (in the directory the host preopened).";
    NotGguf = "not-gguf", Model, "The bytes are not a GGUF v2/v3 file.";
    UnsupportedArchitecture = "unsupported-architecture", Model, "`general.architecture`, the tokenizer model or a hyperparameter variant is not implemented.";
    UnsupportedTensorType = "unsupported-tensor-type", Model, "A tensor uses a ggml type without a kernel here (e.g. Q2_K, IQ4_XS).";
    CorruptFile = "corrupt-file", Model, "Counts, offsets or sizes that do not fit the file; missing or ill-typed fields or tensors.";
    ContextOverflow = "context-overflow", Request, "The prompt plus `max-tokens` exceed the context window.";
    InvalidOption = "invalid-option", Request, "An option outside its domain, an empty prompt, a token id outside the vocabulary.";
    Io = "io", Model, "Another I/O failure while reading the model (or from the host's wasi:nn backend).";
    InvalidLabels = "invalid-labels", Request, "A label set classify cannot use: fewer than 2, more than 64, empty, duplicated, too long, or an example whose label is not in the set.";
    InvalidSchema = "invalid-schema", Request, "The JSON Schema is not valid JSON or not a valid schema.";
    UnsupportedSchema = "unsupported-schema", Request, "The schema uses a keyword that cannot be enforced; it is never silently ignored.";
    InvalidRegex = "invalid-regex", Request, "The regular expression does not parse.";
    InvalidGrammar = "invalid-grammar", Request, "The Lark grammar does not parse or is inconsistent.";
    ConstraintUnsatisfiable = "constraint-unsatisfiable", Output, "No output can satisfy the constraint.";
    OutputTruncated = "output-truncated", Output, "`max-tokens` ran out before the constrained output was complete; no partial (invalid) output is returned.";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::FileNotFound(_) => ErrorCode::FileNotFound,
            Error::NotGguf(_) => ErrorCode::NotGguf,
            Error::UnsupportedArchitecture(_) => ErrorCode::UnsupportedArchitecture,
            Error::UnsupportedTensorType { .. } => ErrorCode::UnsupportedTensorType,
            Error::Corrupt(_) => ErrorCode::CorruptFile,
            Error::ContextOverflow { .. } => ErrorCode::ContextOverflow,
            Error::InvalidOption(_) => ErrorCode::InvalidOption,
            Error::Io(_) => ErrorCode::Io,
            Error::InvalidLabels(_) => ErrorCode::InvalidLabels,
            Error::InvalidSchema(_) => ErrorCode::InvalidSchema,
            Error::UnsupportedSchema(_) => ErrorCode::UnsupportedSchema,
            Error::InvalidRegex(_) => ErrorCode::InvalidRegex,
            Error::InvalidGrammar(_) => ErrorCode::InvalidGrammar,
            Error::ConstraintUnsatisfiable(_) => ErrorCode::ConstraintUnsatisfiable,
            Error::OutputTruncated { .. } => ErrorCode::OutputTruncated,
        }
    }

    pub fn class(&self) -> ErrorClass {
        self.code().class()
    }
}

/// Every message is one line, even where it quotes the caller's input (a file name, a label,
/// a template's text): line breaks and other control characters are written as escapes.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&one_line(&Message(self).to_string()))
    }
}

/// A message as one line: control characters (`\n`, `\r`, `\t`, NUL…) become escapes.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// An error's message as written, before [`one_line`].
struct Message<'a>(&'a Error);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::FileNotFound(p) => write!(f, "file not found: {p}"),
            Error::NotGguf(m) => write!(f, "not a GGUF file: {m}"),
            Error::UnsupportedArchitecture(a) => write!(f, "unsupported architecture: {a}"),
            Error::UnsupportedTensorType { tensor, ggml_type } => {
                let name = crate::quant::GgmlType::name_of(*ggml_type);
                write!(f, "unsupported tensor type {name} (ggml type {ggml_type}) in tensor '{tensor}'")
            }
            Error::Corrupt(m) => write!(f, "corrupt or truncated model file: {m}"),
            Error::ContextOverflow { needed, limit } => {
                write!(f, "context overflow: {needed} tokens needed, the context holds {limit}")
            }
            Error::InvalidOption(m) => write!(f, "invalid option: {m}"),
            Error::Io(m) => write!(f, "i/o error: {m}"),
            Error::InvalidLabels(m) => write!(f, "invalid labels: {m}"),
            Error::InvalidSchema(m) => write!(f, "invalid JSON schema: {m}"),
            Error::UnsupportedSchema(m) => write!(f, "unsupported JSON schema: {m}"),
            Error::InvalidRegex(m) => write!(f, "invalid regex: {m}"),
            Error::InvalidGrammar(m) => write!(f, "invalid grammar: {m}"),
            Error::ConstraintUnsatisfiable(m) => write!(f, "constraint cannot be satisfied: {m}"),
            Error::OutputTruncated { tokens } => {
                write!(f, "output truncated: max-tokens ({tokens}) reached before the constrained output was complete")
            }
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn corrupt<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt(msg.into()))
}

/// The error table as Markdown (docs/errors.md is this, checked by a test).
pub fn table_markdown() -> String {
    let mut s = String::from("| code | class | meaning |\n|---|---|---|\n");
    for c in ErrorCode::ALL {
        let class = match c.class() {
            ErrorClass::Model => "model (HTTP 503)",
            ErrorClass::Request => "request (HTTP 400)",
            ErrorClass::Output => "output (HTTP 422)",
        };
        s += &format!("| `{}` | {class} | {} |\n", c.as_str(), c.meaning());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::InvalidLabels("label \"a\nb\r\u{0}\" twice".into());
        assert_eq!(e.to_string(), r#"invalid labels: label "a\nb\r\u{0}" twice"#);
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(ErrorCode::from_name(c.as_str()), Some(*c));
            assert!(ErrorCode::ALL[..i].iter().all(|o| o.as_str() != c.as_str()));
        }
    }
}
