//! Typed errors. Every fallible path in the engine returns one of these; none panics
//! on bad input, so the component can turn them into its WIT `error` variant.

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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
