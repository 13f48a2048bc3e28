//! The forward pass served elsewhere: the step-wise decoding protocol (docs/wasi-nn.md).
//!
//! A component is single-threaded and 32-bit, so a host that can do better runs the
//! transformer itself and the guest keeps everything that makes outputs what they are:
//! tokenizer, constraint engine, sampler. One remote *sequence* per session holds the KV
//! cache; each step may roll it back, appends tokens, and returns the last position's
//! logits, for a few allowed ids only when asked (bytes instead of 1 MB per step).
//!
//! Both halves live here: [`forward`] is the guest's (behind [`RemoteForward`], which the
//! component implements over wasi:nn), [`ServedSequence`] the host's, over a portable
//! [`Model`]. [`InProcess`] joins them directly, so the whole protocol is testable natively.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::model::{Model, Output, Session};

/// wasi:nn tensor names of the protocol.
pub mod names {
    /// Input, I32 `[n]`: token ids to append (n may be 0).
    pub const TOKENS: &str = "tokens";
    /// Input, I32 `[1]`, optional: first keep only this many tokens of the sequence.
    pub const POSITION: &str = "position";
    /// Input, I32 `[m]`, optional: return logits for these ids only (m = 0: none).
    pub const ALLOWED: &str = "allowed";
    /// Input, U8 `[0]`: ask for the GGUF header instead of a step.
    pub const HEADER: &str = "header";
    /// Output, FP32 `[vocab]` or `[m]`: the last position's logits.
    pub const LOGITS: &str = "logits";
    /// Output, I64 `[1]`: the model file's size (with `header`).
    pub const FILE_SIZE: &str = "file-size";
}

/// One protocol step: roll back to `position` (when given), evaluate `tokens`, and return
/// the last position's logits (for `allowed` only, when given).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub position: Option<usize>,
    pub tokens: &'a [u32],
    pub allowed: Option<&'a [u32]>,
}

/// A backend that serves sequences (the guest's view of the host).
pub trait RemoteForward: Send + Sync {
    /// For `info()`: e.g. "wasi-nn".
    fn name(&self) -> String;
    fn new_sequence(&self) -> Result<Box<dyn RemoteSequence>>;
}

/// One sequence on the remote side: its KV cache and last output.
pub trait RemoteSequence: Send {
    fn step(&mut self, step: &Step) -> Result<Vec<f32>>;
}

/// A session's remote sequence, and how many tokens it is known to hold (None after a
/// failed step: the next step then states the position explicitly).
pub struct RemoteSequenceState {
    seq: Box<dyn RemoteSequence>,
    held: Option<usize>,
}

/// The output of a remote step: its logits are fetched from the sequence on demand.
pub struct RemoteOutput {
    seq: Arc<Mutex<RemoteSequenceState>>,
    pos: usize,
}

impl RemoteOutput {
    pub(crate) fn logits(&self, allowed: Option<&[u32]>, vocab: usize) -> Result<Vec<f32>> {
        let mut st = self.seq.lock().map_err(|_| Error::Io("remote sequence poisoned".into()))?;
        if st.held != Some(self.pos) {
            return Err(Error::InvalidOption("stale output: the sequence has moved on since".into()));
        }
        let logits = st.seq.step(&Step { position: None, tokens: &[], allowed })?;
        let want = allowed.map_or(vocab, <[u32]>::len);
        if logits.len() != want {
            return Err(Error::Io(format!("remote backend returned {} logits, expected {want}", logits.len())));
        }
        Ok(logits)
    }
}

/// The guest's half of a forward step (checks on `tokens` are done by the caller).
pub(crate) fn forward(backend: &dyn RemoteForward, s: &mut Session, tokens: &[u32]) -> Result<RemoteOutput> {
    let shared = match &s.remote {
        Some(r) => r.clone(),
        None => {
            let r = Arc::new(Mutex::new(RemoteSequenceState { seq: backend.new_sequence()?, held: Some(0) }));
            s.remote = Some(r.clone());
            r
        }
    };
    let mut st = shared.lock().map_err(|_| Error::Io("remote sequence poisoned".into()))?;
    let pos = s.pos();
    // Say where to continue from only when the remote side holds something else (after a
    // rollback or reset here, or a failed step).
    let position = (st.held != Some(pos)).then_some(pos);
    match st.seq.step(&Step { position, tokens, allowed: Some(&[]) }) {
        Ok(_) => {
            s.advance(tokens);
            st.held = Some(s.pos());
            drop(st);
            Ok(RemoteOutput { seq: shared, pos: s.pos() })
        }
        Err(e) => {
            st.held = None;
            Err(e)
        }
    }
}

/// The host's half: one sequence of a portable model, driven by protocol steps.
pub struct ServedSequence {
    session: Session,
    last: Option<Output>,
}

impl ServedSequence {
    pub fn new(model: &Model) -> Self {
        ServedSequence { session: model.new_session(), last: None }
    }

    /// Tokens the sequence holds.
    pub fn pos(&self) -> usize {
        self.session.pos()
    }

    pub fn step(&mut self, model: &Model, step: &Step) -> Result<Vec<f32>> {
        if let Some(p) = step.position {
            if p > self.session.pos() {
                return Err(Error::InvalidOption(format!(
                    "cannot roll back to position {p}: the sequence holds {} tokens",
                    self.session.pos()
                )));
            }
            if p < self.session.pos() {
                if p == 0 {
                    self.session.reset();
                } else if !self.session.truncate(p) {
                    return Err(Error::InvalidOption(format!(
                        "cannot roll back to position {p}: the sliding-window cache no longer holds it (roll back to 0)"
                    )));
                }
                self.last = None;
            }
        }
        if !step.tokens.is_empty() {
            self.last = None;
            match model.forward_to_output(&mut self.session, step.tokens) {
                Ok(out) => self.last = Some(out),
                Err(e) => {
                    // A failed batch may have written part of the cache: start over.
                    if !matches!(e, Error::InvalidOption(_) | Error::ContextOverflow { .. }) {
                        self.session.reset();
                    }
                    return Err(e);
                }
            }
        }
        match step.allowed {
            Some([]) => Ok(Vec::new()),
            allowed => {
                let out = self.last.as_ref().ok_or_else(|| {
                    Error::InvalidOption("no evaluated position to take logits from (send tokens first)".into())
                })?;
                match allowed {
                    None => model.logits(out),
                    Some(ids) => model.logits_of(out, ids),
                }
            }
        }
    }
}

/// A local model served through the protocol in the same process (tests, and hosts that
/// embed the engine without wasm).
pub struct InProcess(pub Arc<Model>);

impl RemoteForward for InProcess {
    fn name(&self) -> String {
        "in-process".into()
    }
    fn new_sequence(&self) -> Result<Box<dyn RemoteSequence>> {
        Ok(Box::new(InProcessSequence { model: self.0.clone(), seq: ServedSequence::new(&self.0) }))
    }
}

struct InProcessSequence {
    model: Arc<Model>,
    seq: ServedSequence,
}

impl RemoteSequence for InProcessSequence {
    fn step(&mut self, step: &Step) -> Result<Vec<f32>> {
        self.seq.step(&self.model, step)
    }
}

/// Tensor data codecs: ids as I32 and logits as FP32, little-endian, as wasi:nn lays them out.
pub mod codec {
    use crate::error::{Error, Result};

    pub fn ids_to_bytes(ids: &[u32]) -> Vec<u8> {
        ids.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect()
    }

    /// I32 little-endian ids; negative ones are an error.
    pub fn ids_from_bytes(bytes: &[u8]) -> Result<Vec<u32>> {
        if bytes.len() % 4 != 0 {
            return Err(Error::InvalidOption(format!("I32 tensor data of {} bytes is not a multiple of 4", bytes.len())));
        }
        bytes
            .chunks_exact(4)
            .map(|b| {
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                u32::try_from(v).map_err(|_| Error::InvalidOption(format!("negative token id {v}")))
            })
            .collect()
    }

    pub fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub fn f32s_from_bytes(bytes: &[u8]) -> Result<Vec<f32>> {
        if bytes.len() % 4 != 0 {
            return Err(Error::Io(format!("FP32 tensor data of {} bytes is not a multiple of 4", bytes.len())));
        }
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}
