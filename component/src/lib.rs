//! The edgeslm guest: the engine behind the `edgeslm:runtime` WIT interfaces.
//! A thin adapter over `engine::Instance`: WIT types in and out, engine errors as the WIT
//! `error` record (code and message from the engine's table); nothing panics on caller input.

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
    Classification, ClassifyOptions, ClassifyTimings, Constraint, ContextOverflow, Error, ErrorCode, ErrorDetail,
    FinishReason, GenerateOptions, Generation, LabelScore, ModelInfo, TensorTypeCount, Timings,
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
            return Err(to_wit(engine::Error::InvalidOption(format!(
                "model-loader: more than the announced {} bytes were pushed",
                self.size
            ))));
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
            return Err(to_wit(engine::Error::InvalidOption(format!(
                "model-loader: {} of the announced {} bytes were pushed",
                receiver.received(),
                self.size
            ))));
        }
        let (gguf, storage) = receiver.finish().map_err(to_wit)?;
        Ok(Model::new(engine::Model::load_parsed(gguf, storage).map_err(to_wit)?))
    }
}

impl ModelLoader {
    fn unusable(&self) -> Error {
        to_wit(engine::Error::Io(format!("model-loader: cannot hold {} bytes (already finished, or out of memory)", self.size)))
    }
}

/// A model resource: the engine's [`engine::Instance`] (model, prompt cache, calibration
/// priors, constraint engine). Resource methods take `&self`; the instance is one-threaded.
pub struct Model(RefCell<engine::Instance>);

impl Model {
    fn new(model: engine::Model) -> ModelHandle {
        ModelHandle::new(Model(RefCell::new(engine::Instance::new(model))))
    }
}

/// An engine error as the WIT record: its code and its message, whole.
fn to_wit(e: engine::Error) -> Error {
    let detail = match e {
        engine::Error::ContextOverflow { needed, limit } => {
            Some(ErrorDetail::ContextOverflow(ContextOverflow { needed: needed as u32, limit: limit as u32 }))
        }
        engine::Error::OutputTruncated { tokens } => Some(ErrorDetail::OutputTruncated(tokens as u32)),
        _ => None,
    };
    Error { code: code(e.code()), message: e.to_string(), detail }
}

/// The engine's error table in WIT (both enums list the same codes: tests/errors.rs).
fn code(c: engine::ErrorCode) -> ErrorCode {
    use engine::ErrorCode as E;
    match c {
        E::FileNotFound => ErrorCode::FileNotFound,
        E::NotGguf => ErrorCode::NotGguf,
        E::UnsupportedArchitecture => ErrorCode::UnsupportedArchitecture,
        E::UnsupportedTensorType => ErrorCode::UnsupportedTensorType,
        E::CorruptFile => ErrorCode::CorruptFile,
        E::ContextOverflow => ErrorCode::ContextOverflow,
        E::InvalidOption => ErrorCode::InvalidOption,
        E::Io => ErrorCode::Io,
        E::InvalidLabels => ErrorCode::InvalidLabels,
        E::InvalidSchema => ErrorCode::InvalidSchema,
        E::UnsupportedSchema => ErrorCode::UnsupportedSchema,
        E::InvalidRegex => ErrorCode::InvalidRegex,
        E::InvalidGrammar => ErrorCode::InvalidGrammar,
        E::ConstraintUnsatisfiable => ErrorCode::ConstraintUnsatisfiable,
        E::OutputTruncated => ErrorCode::OutputTruncated,
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
        let i = self.0.borrow().info();
        ModelInfo {
            architecture: i.architecture,
            name: i.name,
            parameter_count: i.parameter_count,
            layers: i.layers as u32,
            context_length: i.context_length as u32,
            embedding_length: i.embedding_length as u32,
            heads: i.heads as u32,
            kv_heads: i.kv_heads as u32,
            vocab_size: i.vocab_size as u32,
            tokenizer: i.tokenizer,
            tensor_types: i
                .tensor_types
                .into_iter()
                .map(|(type_name, n)| TensorTypeCount { type_name, tensors: n as u32 })
                .collect(),
            file_size: i.file_size as u64,
            backend: i.backend,
        }
    }

    fn tokenize(&self, text: String, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.0.borrow().tokenize(&text, add_special, parse_special)
    }

    fn detokenize(&self, tokens: Vec<u32>) -> Result<String, Error> {
        self.0.borrow().detokenize(&tokens).map_err(to_wit)
    }

    fn generate(&self, prompt: String, o: GenerateOptions) -> Result<Generation, Error> {
        self.0.borrow().generate(&prompt, &options(o)).map(generation).map_err(to_wit)
    }

    fn generate_constrained(&self, prompt: String, c: Constraint, o: GenerateOptions) -> Result<Generation, Error> {
        let constraint = match c {
            Constraint::JsonSchema(s) => engine::Constraint::JsonSchema(s),
            Constraint::Regex(r) => engine::Constraint::Regex(r),
            Constraint::Grammar(g) => engine::Constraint::Grammar(g),
        };
        self.0.borrow_mut().generate_constrained(&prompt, &constraint, &options(o)).map(generation).map_err(to_wit)
    }

    fn classify(&self, text: String, labels: Vec<String>, o: ClassifyOptions) -> Result<Classification, Error> {
        let opts = engine::ClassifyOptions {
            instruction: o.instruction,
            examples: o.examples.into_iter().map(|e| (e.text, e.label)).collect(),
            calibrate: o.calibrate.unwrap_or(true),
        };
        let c = self.0.borrow_mut().classify(&text, &labels, &opts).map_err(to_wit)?;
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
        history: Vec::new(),
        logprobs: false,
    }
}

fn generation(g: engine::Generation) -> Generation {
    let t = &g.timings;
    Generation {
        prompt_tokens: g.prompt_tokens as u32,
        budget_steered: g.budget_steered as u32,
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
