//! Chat templates: a prompt wrapped as one user turn in the Jinja template the GGUF ships
//! (`tokenizer.chat_template`), rendered with minijinja as Hugging Face's tokenizers do.

use crate::error::{Error, Result};
use crate::model::Model;

/// Rendering steps (minijinja's fuel) a chat template may take for one turn.
pub const TEMPLATE_FUEL: u64 = 100_000;

/// The prompt as a user message, followed by the assistant turn's opening.
pub fn render_user_turn(model: &Model, prompt: &str) -> Result<String> {
    let template = model
        .gguf
        .get_str("tokenizer.chat_template")
        .ok_or_else(|| Error::InvalidOption("the model has no chat template (tokenizer.chat_template)".into()))?;
    let mut env = minijinja::Environment::new();
    // A template comes with the model file, which may be anyone's: nested loops could render
    // for hours. Real templates take a few hundred steps for one turn.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    // One line, whatever the template put in its message (`raise_exception` takes any text).
    let bad = |e: minijinja::Error| {
        let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        Error::InvalidOption(format!("the model's chat template failed: {text}"))
    };
    env.add_template("chat", template).map_err(bad)?;
    let tok = &model.tokenizer;
    let special = |id: Option<u32>| id.and_then(|i| tok.tokens.get(i as usize)).unwrap_or_default().to_string();
    let ctx = minijinja::context! {
        messages => vec![minijinja::context! { role => "user", content => prompt }],
        add_generation_prompt => true,
        bos_token => special(tok.bos),
        eos_token => special(tok.eos),
    };
    env.get_template("chat").and_then(|t| t.render(ctx)).map_err(bad)
}
