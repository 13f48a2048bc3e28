//! The guest's half of the step protocol (`crate::remote`): a session whose forward pass
//! runs elsewhere keeps a remote sequence and steps it.

use std::sync::{Arc, Mutex};

use super::Session;
use crate::error::{Error, Result};
use crate::remote::{RemoteForward, RemoteSequence, Step};

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
pub(super) fn forward(backend: &dyn RemoteForward, s: &mut Session, tokens: &[u32]) -> Result<RemoteOutput> {
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

