//! llguidance's JSON-schema grammars over single bytes, to decide questions about a schema
//! while preparing it: whether one value matches it, and whether any value does. Answered by
//! the same compiler that will enforce the schema, so the answers agree with generation.

use std::cell::OnceCell;
use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

/// The parser factory over the 256 byte tokens, built on first use (most schemas never ask).
#[derive(Default)]
pub(crate) struct ByteGrammar {
    factory: OnceCell<Option<ParserFactory>>,
}

impl ByteGrammar {
    fn factory(&self) -> Option<&ParserFactory> {
        self.factory
            .get_or_init(|| {
                let env: TokEnv = Arc::new(ApproximateTokEnv::single_byte());
                let mut f = ParserFactory::new_simple(&env).ok()?;
                f.quiet();
                Some(f)
            })
            .as_ref()
    }

    fn compile(&self, mut schema: Value, options: Value) -> std::result::Result<Matcher, String> {
        let factory = self.factory().ok_or("no byte-level grammar")?;
        schema["x-guidance"] = options;
        let parser = factory.create_parser(TopLevelGrammar::from_json_schema(schema)).map_err(|e| e.to_string())?;
        let m = Matcher::new(Ok(parser));
        match m.get_error() {
            Some(e) => Err(e),
            None => Ok(m),
        }
    }

    /// Whether `schema`'s grammar accepts `v` serialised compactly; `None` when the schema
    /// does not compile.
    pub(crate) fn accepts(&self, schema: Value, v: &Value) -> Option<bool> {
        let mut m = self.compile(schema, json!({ "whitespace_flexible": false })).ok()?;
        let tokens: Vec<u32> = serde_json::to_string(v).ok()?.bytes().map(u32::from).collect();
        let consumed = m.try_consume_tokens(&tokens).ok()?;
        Some(consumed == tokens.len() && m.is_accepting().unwrap_or(false))
    }

    /// Whether the compiler shows that no value matches `schema` (it intersects types,
    /// listed values, bounds and regular expressions); `false` when it cannot tell. Asked
    /// leniently (keywords it lacks dropped, `oneOf` read as `anyOf`): both only widen the
    /// schema, and a wider schema with no value shows the schema has none.
    pub(crate) fn proves_empty(&self, schema: Value) -> bool {
        match self.compile(schema, json!({ "whitespace_flexible": false, "lenient": true, "coerce_one_of": true })) {
            Ok(_) => false,
            Err(e) => e.contains("Unsatisfiable schema") && !e.contains("Unable to determine"),
        }
    }
}
