//! [`Instance`]: the one stateful object a guest holds. A loaded model with what its calls
//! keep between them — the prompt-prefix KV cache and calibration priors (shared by
//! classify and constrained generation) and the constraint engine, built on first use.
//! The component and the HTTP service are thin adapters over it.

use crate::classify::{Classification, ClassifyOptions, Classifier};
use crate::constrain::{Checks, Constrainer, Constraint};
use crate::error::{Error, Result};
use crate::generate::{GenerateOptions, Generation};
use crate::model::Model;

pub struct Instance {
    model: Model,
    classifier: Classifier,
    constrainer: Option<Constrainer>,
}

/// What `info` reports about the loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    pub parameter_count: u64,
    pub layers: usize,
    pub context_length: usize,
    pub embedding_length: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab_size: usize,
    /// spm or bpe.
    pub tokenizer: String,
    /// (ggml type name, tensors of that type), in the order first seen.
    pub tensor_types: Vec<(String, usize)>,
    pub file_size: usize,
    /// "portable", or the remote backend's name.
    pub backend: String,
}

impl Instance {
    pub fn new(model: Model) -> Instance {
        Instance { model, classifier: Classifier::default(), constrainer: None }
    }

    /// Build the constraint engine now (a bake does, so that it is part of the snapshot).
    pub fn with_constrainer(model: Model) -> Result<Instance> {
        let constrainer = Some(Constrainer::new(&model)?);
        Ok(Instance { model, classifier: Classifier::default(), constrainer })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Whether the constraint engine has been built.
    pub fn constrainer_ready(&self) -> bool {
        self.constrainer.is_some()
    }

    /// The constraint engine, built on the first call (the token trie: ~0.5 s for a 262k
    /// vocabulary).
    pub fn constrainer(&mut self) -> Result<&Constrainer> {
        if self.constrainer.is_none() {
            self.constrainer = Some(Constrainer::new(&self.model)?);
        }
        Ok(self.constrainer.as_ref().expect("built above"))
    }

    pub fn info(&self) -> ModelInfo {
        let m = &self.model;
        let c = &m.config;
        let mut tensor_types: Vec<(String, usize)> = Vec::new();
        for t in &m.gguf.tensors {
            let name = t.ggml_type.name();
            match tensor_types.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => tensor_types.push((name.to_string(), 1)),
            }
        }
        ModelInfo {
            architecture: c.arch.name.to_string(),
            name: m.gguf.get_str("general.name").map(str::to_string),
            parameter_count: m.parameter_count(),
            layers: c.n_layer,
            context_length: c.n_ctx_train,
            embedding_length: c.n_embd,
            heads: c.n_head,
            kv_heads: c.n_head_kv,
            vocab_size: m.vocab_size(),
            tokenizer: m.tokenizer.kind.to_string(),
            tensor_types,
            file_size: m.file_size,
            backend: m.backend_name(),
        }
    }

    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.model.tokenizer.encode(text, add_special, parse_special)
    }

    /// The text of `tokens`; an id outside the vocabulary is an error.
    pub fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        let n = self.model.tokenizer.vocab_size();
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= n) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({n})")));
        }
        Ok(self.model.tokenizer.decode(tokens))
    }

    pub fn generate(&self, prompt: &str, opts: &GenerateOptions) -> Result<Generation> {
        self.model.generate(prompt, opts)
    }

    /// Output guaranteed to match `constraint`; the prompt goes through the shared prefix cache.
    pub fn generate_constrained(&mut self, prompt: &str, constraint: &Constraint, opts: &GenerateOptions) -> Result<Generation> {
        self.constrainer()?;
        let Instance { model, classifier, constrainer } = self;
        let cons = constrainer.as_ref().expect("built above");
        model.generate_constrained(cons, &mut classifier.cache, prompt, constraint, opts)
    }

    /// Free text or, with a constraint, [`Instance::generate_constrained`], calling `on_tokens`
    /// with each step's ids as they are chosen.
    pub fn generate_streaming(
        &mut self,
        prompt: &str,
        constraint: Option<&Constraint>,
        opts: &GenerateOptions,
        on_tokens: crate::generate::OnTokens<'_>,
    ) -> Result<Generation> {
        let Some(constraint) = constraint else { return self.model.generate_streaming(prompt, opts, on_tokens) };
        self.constrainer()?;
        let Instance { model, classifier, constrainer } = self;
        let cons = constrainer.as_ref().expect("built above");
        model.generate_constrained_streaming(cons, &mut classifier.cache, prompt, constraint, opts, on_tokens)
    }

    /// Whether `text` is a complete output of `constraint` (answers from elsewhere are
    /// checked against the grammar the local path enforces).
    pub fn accepts(&mut self, constraint: &Constraint, text: &str) -> Result<bool> {
        self.constrainer()?;
        let cons = self.constrainer.as_ref().expect("built above");
        cons.accepts(&self.model, constraint, text)
    }

    /// Which of `texts` are complete outputs of `constraint` (see [`Constrainer::check_instances`]).
    pub fn check_instances(&mut self, constraint: &Constraint, texts: &[String], time_masks_of: Option<usize>) -> Result<Checks> {
        self.constrainer()?;
        let cons = self.constrainer.as_ref().expect("built above");
        cons.check_instances(&self.model, constraint, texts, time_masks_of)
    }

    pub fn classify(&mut self, text: &str, labels: &[String], opts: &ClassifyOptions) -> Result<Classification> {
        self.model.classify(&mut self.classifier, text, labels, opts)
    }
}
