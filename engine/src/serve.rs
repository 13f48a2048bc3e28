//! The host's half of the step protocol (`crate::remote`): one sequence of a portable
//! model driven by protocol steps, and [`InProcess`], which joins it to the guest's half in
//! one process, so the whole protocol is testable natively.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{Model, Output, Session};
use crate::remote::{RemoteForward, RemoteSequence, Step};

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

