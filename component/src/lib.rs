//! The edgeslm guest: the engine behind the `edgeslm:runtime` WIT interfaces.
//! Engine errors become the WIT `error` variant; nothing here panics on caller input.

use edgeslm_engine as engine;

#[cfg(not(feature = "wasi-nn"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "runtime",
});
#[cfg(feature = "wasi-nn")]
wit_bindgen::generate!({
    path: "../wit",
    world: "runtime-nn",
    generate_all,
});

#[cfg(feature = "wasi-nn")]
mod nn;

use exports::edgeslm::runtime::inference::{Guest, GuestModel, GuestModelLoader, Model as ModelHandle};
use std::cell::RefCell;

use exports::edgeslm::runtime::types::{
    Classification, ClassifyOptions, ClassifyTimings, Constraint, ContextOverflow, Error, FinishReason, GenerateOptions,
    Generation, LabelScore, ModelInfo, TensorTypeCount, Timings,
};

struct Component;


impl Guest for Component {
    type Model = Model;
    type ModelLoader = ModelLoader;
}

/// A model file arriving in pieces (`engine::storage::Receiver`: once the header has arrived
/// and parsed, only the tensor data is kept). `None` once finished or refused.
pub struct ModelLoader {
    size: u64,
    receiver: RefCell<Option<engine::storage::Receiver>>,
}

impl GuestModelLoader for ModelLoader {
    fn new(size: u64) -> Self {
        let receiver = usize::try_from(size).ok().map(engine::storage::Receiver::new);
        ModelLoader { size, receiver: RefCell::new(receiver) }
    }

    fn push(&self, piece: Vec<u8>) -> Result<(), Error> {
        let mut slot = self.receiver.borrow_mut();
        let receiver = slot.as_mut().ok_or_else(|| self.unusable())?;
        if receiver.received() as u64 + piece.len() as u64 > self.size {
            return Err(Error::InvalidOption(format!(
                "model-loader: more than the announced {} bytes were pushed",
                self.size
            )));
        }
        if let Err(e) = receiver.push(&piece) {
            *slot = None;
            return Err(to_wit(e));
        }
        Ok(())
    }

    fn finish(&self) -> Result<ModelHandle, Error> {
        let receiver = self.receiver.borrow_mut().take().ok_or_else(|| self.unusable())?;
        if receiver.received() as u64 != self.size {
            return Err(Error::InvalidOption(format!(
                "model-loader: {} of the announced {} bytes were pushed",
                receiver.received(),
                self.size
            )));
        }
        let (gguf, storage) = receiver.finish().map_err(to_wit)?;
        Ok(Model::new(engine::Model::load_parsed(gguf, storage).map_err(to_wit)?))
    }
}

impl ModelLoader {
    fn unusable(&self) -> Error {
        Error::Io(format!("model-loader: cannot hold {} bytes (already finished, or out of memory)", self.size))
    }
}

pub struct Model {
    inner: engine::Model,
    /// Prompt-prefix KV state (shared by classify and generate-constrained) and
    /// calibration priors, kept between calls.
    classifier: RefCell<engine::Classifier>,
    /// The constraint engine (token trie), built on the first constrained call.
    constrainer: RefCell<Option<engine::Constrainer>>,
}

impl Model {
    fn new(inner: engine::Model) -> ModelHandle {
        ModelHandle::new(Model {
            inner,
            classifier: RefCell::new(engine::Classifier::default()),
            constrainer: RefCell::new(None),
        })
    }
}

fn to_wit(e: engine::Error) -> Error {
    use engine::Error as E;
    match e {
        E::FileNotFound(p) => Error::FileNotFound(p),
        E::NotGguf(m) => Error::NotGguf(m),
        E::UnsupportedArchitecture(a) => Error::UnsupportedArchitecture(a),
        e @ E::UnsupportedTensorType { .. } => Error::UnsupportedTensorType(e.to_string()),
        E::Corrupt(m) => Error::CorruptFile(m),
        E::ContextOverflow { needed, limit } => {
            Error::ContextOverflow(ContextOverflow { needed: needed as u32, limit: limit as u32 })
        }
        E::InvalidOption(m) => Error::InvalidOption(m),
        E::Io(m) => Error::Io(m),
        E::InvalidLabels(m) => Error::InvalidLabels(m),
        E::InvalidSchema(m) => Error::InvalidSchema(m),
        E::UnsupportedSchema(m) => Error::UnsupportedSchema(m),
        E::InvalidRegex(m) => Error::InvalidRegex(m),
        E::InvalidGrammar(m) => Error::InvalidGrammar(m),
        E::ConstraintUnsatisfiable(m) => Error::ConstraintUnsatisfiable(m),
        E::OutputTruncated { tokens } => Error::OutputTruncated(tokens as u32),
    }
}

impl GuestModel for Model {
    fn load(path: String) -> Result<ModelHandle, Error> {
        // The accelerated build asks the host first; a host that has not preloaded this
        // model (wasi:nn `not-found`) gets the portable path.
        #[cfg(feature = "wasi-nn")]
        if let Some(m) = nn::load_by_name(&path).map_err(to_wit)? {
            return Ok(Model::new(m));
        }
        Ok(Model::new(engine::Model::open(&path).map_err(to_wit)?))
    }

    fn from_bytes(bytes: Vec<u8>) -> Result<ModelHandle, Error> {
        Ok(Model::new(engine::Model::from_bytes(bytes).map_err(to_wit)?))
    }

    fn info(&self) -> ModelInfo {
        let m = &self.inner;
        let c = &m.config;
        let mut types: Vec<TensorTypeCount> = Vec::new();
        for t in &m.gguf.tensors {
            let name = t.ggml_type.name();
            match types.iter_mut().find(|x| x.type_name == name) {
                Some(x) => x.tensors += 1,
                None => types.push(TensorTypeCount { type_name: name.to_string(), tensors: 1 }),
            }
        }
        ModelInfo {
            architecture: c.arch.name().to_string(),
            name: m.gguf.get_str("general.name").map(str::to_string),
            parameter_count: m.parameter_count(),
            layers: c.n_layer as u32,
            context_length: c.n_ctx_train as u32,
            embedding_length: c.n_embd as u32,
            heads: c.n_head as u32,
            kv_heads: c.n_head_kv as u32,
            vocab_size: m.vocab_size() as u32,
            tokenizer: m.tokenizer.kind.to_string(),
            tensor_types: types,
            file_size: m.file_size as u64,
            backend: m.backend_name(),
        }
    }

    fn tokenize(&self, text: String, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.inner.tokenizer.encode(&text, add_special, parse_special)
    }

    fn detokenize(&self, tokens: Vec<u32>) -> Result<String, Error> {
        let n = self.inner.tokenizer.vocab_size();
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= n) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({n})")));
        }
        Ok(self.inner.tokenizer.decode(&tokens))
    }

    fn generate(&self, prompt: String, o: GenerateOptions) -> Result<Generation, Error> {
        let g = self.inner.generate(&prompt, &options(o)).map_err(to_wit)?;
        Ok(generation(g))
    }

    fn generate_constrained(&self, prompt: String, c: Constraint, o: GenerateOptions) -> Result<Generation, Error> {
        let constraint = match c {
            Constraint::JsonSchema(s) => engine::Constraint::JsonSchema(s),
            Constraint::Regex(r) => engine::Constraint::Regex(r),
            Constraint::Grammar(g) => engine::Constraint::Grammar(g),
        };
        let mut slot = self.constrainer.borrow_mut();
        if slot.is_none() {
            *slot = Some(engine::Constrainer::new(&self.inner).map_err(to_wit)?);
        }
        let cache = &mut self.classifier.borrow_mut().cache;
        let g = self
            .inner
            .generate_constrained(slot.as_ref().unwrap(), cache, &prompt, &constraint, &options(o))
            .map_err(to_wit)?;
        Ok(generation(g))
    }

    fn classify(&self, text: String, labels: Vec<String>, o: ClassifyOptions) -> Result<Classification, Error> {
        let opts = engine::ClassifyOptions {
            instruction: o.instruction,
            examples: o.examples.into_iter().map(|e| (e.text, e.label)).collect(),
            calibrate: o.calibrate.unwrap_or(true),
        };
        let c = self.inner.classify(&mut self.classifier.borrow_mut(), &text, &labels, &opts).map_err(to_wit)?;
        let t = &c.timings;
        Ok(Classification {
            label: c.label,
            confidence: c.confidence,
            scores: labels
                .into_iter()
                .zip(c.scores.iter().zip(&c.uncalibrated))
                .map(|(label, (&probability, &uncalibrated))| LabelScore { label, probability, uncalibrated })
                .collect(),
            timings: ClassifyTimings {
                prompt_tokens: t.prompt_tokens as u32,
                reused_tokens: t.reused_tokens as u32,
                prompt_ms: t.prompt_ms,
                scoring_ms: t.scoring_ms,
                calibration_ms: t.calibration_ms,
                total_ms: t.total_ms,
            },
        })
    }
}

fn options(o: GenerateOptions) -> engine::GenerateOptions {
    let d = engine::GenerateOptions::default();
    engine::GenerateOptions {
        max_tokens: o.max_tokens.unwrap_or(d.max_tokens),
        sampler: engine::SamplerConfig::with(o.temperature, o.top_k, o.top_p, o.seed),
        stop: o.stop,
        parse_special: o.parse_special.unwrap_or(d.parse_special),
        chat: o.chat.unwrap_or(d.chat),
    }
}

fn generation(g: engine::Generation) -> Generation {
    let t = &g.timings;
    Generation {
        prompt_tokens: g.prompt_tokens as u32,
        finish_reason: match g.finish_reason {
            engine::FinishReason::EndOfGeneration => FinishReason::Stop,
            engine::FinishReason::MaxTokens => FinishReason::Length,
            engine::FinishReason::StopString => FinishReason::StopString,
        },
        timings: Timings {
            prefill_ms: t.prefill_ms,
            decode_ms: t.decode_ms,
            prefill_tokens: t.prefill_tokens as u32,
            decode_tokens: t.decode_tokens as u32,
            prefill_tok_s: t.prefill_tok_s(),
            decode_tok_s: t.decode_tok_s(),
        },
        text: g.text,
        tokens: g.tokens,
    }
}

export!(Component);
