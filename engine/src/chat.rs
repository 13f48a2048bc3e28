//! Chat templates: a prompt wrapped as a user turn (after any earlier messages) in the Jinja template the GGUF ships
//! (`tokenizer.chat_template`), rendered as Hugging Face's `apply_chat_template` renders it
//! with Python jinja2: `trim_blocks` and `lstrip_blocks`, loop controls, Python's string
//! methods, `raise_exception`, `tojson` and `strftime_now` (tests/chat_templates.rs compares
//! the two on the templates of the families edgeslm runs).

use crate::error::{Error, Result};
use crate::model::Model;

mod bounded;
pub use bounded::{MAX_BUILT_BYTES, MAX_RAW_BYTES, MAX_STEPS, MAX_VALUE_BYTES};

/// The date `strftime_now` reports: fixed, so that a prompt renders to the same bytes every
/// day and in every host (26 July 2024, the date Llama 3's template falls back to).
const TEMPLATE_DATE: (i32, u32, u32) = (2024, 7, 26);

/// The prompt as a user message, followed by the assistant turn's opening.
pub fn render_user_turn(model: &Model, prompt: &str) -> Result<String> {
    render_messages(model, &[("user", prompt)])
}

/// `(role, content)` messages in the model's template, followed by the assistant turn's opening.
pub fn render_messages(model: &Model, messages: &[(&str, &str)]) -> Result<String> {
    let tok = &model.tokenizer;
    let special = |id: Option<u32>| id.and_then(|i| tok.tokens.get(i as usize)).map(|t| t.as_ref()).unwrap_or_default();
    render(template_of(model)?, messages, special(tok.bos), special(tok.eos))
}

/// The template the GGUF ships or, for a file without one whose vocabulary has a known
/// family's turn markers, that family's: Gemma's (`<start_of_turn>`, as Google ships it for
/// Gemma 3's instruction-tuned models, system text merged into the first user turn) or ChatML
/// (`<|im_start|>`), as llama.cpp's server falls back to.
pub fn template_of(model: &Model) -> Result<&str> {
    if let Some(template) = model.gguf.get_str("tokenizer.chat_template") {
        return Ok(template);
    }
    let has = |marker: &str| model.tokenizer.token_id(marker).is_some();
    if has("<start_of_turn>") && has("<end_of_turn>") {
        Ok(GEMMA_TEMPLATE)
    } else if has("<|im_start|>") && has("<|im_end|>") {
        Ok(CHATML_TEMPLATE)
    } else {
        Err(Error::InvalidOption(
            "the model has no chat template (tokenizer.chat_template) and its vocabulary has no turn markers edgeslm knows".into(),
        ))
    }
}

const GEMMA_TEMPLATE: &str = include_str!("chat/templates/gemma.jinja");
const CHATML_TEMPLATE: &str = include_str!("chat/templates/chatml.jinja");

/// A conversation of `(role, content)` messages rendered with `template`, the assistant's
/// turn opened after it; `bos` and `eos` are the vocabulary's special tokens.
pub fn render(template: &str, messages: &[(&str, &str)], bos: &str, eos: &str) -> Result<String> {
    // One line, whatever the template put in its message (`raise_exception` takes any text).
    let bad = |e: minijinja::Error| {
        let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        Error::InvalidOption(format!("the model's chat template failed: {text}"))
    };
    // The template comes with the model file, which may be anyone's: it renders with bounded
    // steps and memory (bounded.rs).
    let template = bounded::Template::compile(template).map_err(bad)?;
    let (mut env, budget) = template.environment();
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |format: String| strftime(TEMPLATE_DATE, &format));
    let messages: Vec<_> = messages.iter().map(|(role, content)| minijinja::context! { role, content }).collect();
    let ctx = minijinja::context! { messages, add_generation_prompt => true, bos_token => bos, eos_token => eos };
    template.render(&env, &budget, ctx).map_err(bad)
}

/// Python's `strftime` on a date at midnight, for the directives templates use.
fn strftime((year, month, day): (i32, u32, u32), format: &str) -> std::result::Result<String, minijinja::Error> {
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let month_name = MONTHS[month as usize - 1];
    // Days since 1970-01-01 (a Thursday), by the civil-from-days inverse.
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m as i32 + 2) / 5 + day as i32 - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let weekday = DAYS[(days + 3).rem_euclid(7) as usize];
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let day_of_year = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][month as usize - 1] + day + u32::from(leap && month > 2);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out += &format!("{day:02}"),
            Some('-') if chars.clone().next() == Some('d') => {
                chars.next();
                out += &day.to_string();
            }
            Some('m') => out += &format!("{month:02}"),
            Some('Y') => out += &year.to_string(),
            Some('y') => out += &format!("{:02}", year % 100),
            Some('B') => out += month_name,
            Some('b') => out += &month_name[..3],
            Some('A') => out += weekday,
            Some('a') => out += &weekday[..3],
            Some('j') => out += &format!("{day_of_year:03}"),
            Some('H' | 'M' | 'S') => out += "00",
            Some('%') => out.push('%'),
            other => {
                let d = other.map(String::from).unwrap_or_default();
                return Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("strftime_now: unsupported directive %{d}")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in templates render as Python jinja2 renders them (the expected texts are
    /// jinja2's, trim_blocks and lstrip_blocks on, for this conversation).
    #[test]
    fn built_in_templates_render_as_jinja2_does() {
        let conversation = [("system", "Be brief."), ("user", " hi "), ("assistant", "yo"), ("user", "ok")];
        assert_eq!(
            render(GEMMA_TEMPLATE, &conversation, "<bos>", "<eos>").unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n<start_of_turn>user\nok<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            render(CHATML_TEMPLATE, &conversation, "<bos>", "<eos>").unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n hi <|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>user\nok<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn strftime_formats_the_fixed_date() {
        let f = |fmt: &str| strftime(TEMPLATE_DATE, fmt).unwrap();
        assert_eq!(f("%d %b %Y"), "26 Jul 2024");
        assert_eq!(f("%B %d, %Y"), "July 26, 2024");
        assert_eq!(f("%A %a %j %m/%y %H:%M:%S %%"), "Friday Fri 208 07/24 00:00:00 %");
        assert_eq!(strftime((2000, 3, 1), "%A %j").unwrap(), "Wednesday 061");
        assert!(strftime(TEMPLATE_DATE, "%Q").is_err());
    }
}
