//! Schemas whose instances are a list of values: an `enum` or `const`, of the schema itself or
//! of one of its `allOf` members. Every other keyword can then be decided now, on each listed
//! value, and the schema becomes the values that pass. That is exact whatever the keywords
//! are (`not`, `oneOf`, `uniqueItems`, `contains`, `propertyNames`…) as long as each one can be
//! decided on a concrete value: the combinators and the structure are evaluated here; a
//! string's `pattern` and `format` and a number's `multipleOf` by the grammar llguidance
//! would enforce for them, run over single bytes, so that a folded value passes exactly
//! where generation would let it through.

use serde_json::{json, Value};

use super::bytes::ByteGrammar;
use super::schema::{format_pattern, json_equal, local_target, FORMATS, UNENFORCEABLE_FORMATS};

/// Keywords llguidance does not enforce itself: a listed-values schema with one of these
/// inside (directly or through a `$ref`) is folded rather than rewritten.
const NOT_NATIVE: &[&str] = &[
    "not", "oneOf", "if", "uniqueItems", "propertyNames", "contains", "unevaluatedProperties", "unevaluatedItems",
    "dependentSchemas", "dependentRequired", "dependencies",
];

/// More listed values than this are left to the rewrites (each one is evaluated).
const MAX_VALUES: usize = 1024;

/// Nesting of schemas (through `$ref` too) past which a value is not decided.
const MAX_DEPTH: usize = 64;

/// The values `s` lists: its own `enum`/`const`, else the first `allOf` member's.
pub(crate) fn listed_values(s: &Value) -> Option<Vec<Value>> {
    let own = |o: &serde_json::Map<String, Value>| match (o.get("const"), o.get("enum")) {
        (Some(c), _) => Some(vec![c.clone()]),
        (None, Some(Value::Array(e))) => Some(e.clone()),
        _ => None,
    };
    let obj = s.as_object()?;
    own(obj).or_else(|| obj.get("allOf")?.as_array()?.iter().find_map(|m| own(m.as_object()?)))
}

/// Whether `s` uses a keyword llguidance lacks, in itself or in any schema it reaches.
pub(crate) fn needs_folding(s: &Value, root: &Value) -> bool {
    fn visit<'a>(v: &'a Value, root: &'a Value, seen: &mut Vec<String>) -> bool {
        match v {
            Value::Object(o) => o.iter().any(|(k, x)| {
                if NOT_NATIVE.contains(&k.as_str()) {
                    return true;
                }
                if k == "$ref" {
                    if let Some(p) = x.as_str().and_then(local_target) {
                        if !seen.contains(&p) {
                            seen.push(p.clone());
                            if let Some(t) = root.pointer(&p) {
                                return visit(t, root, seen);
                            }
                        }
                    }
                    return false;
                }
                // Definitions are reached through `$ref` only; enum/const values are data.
                !matches!(k.as_str(), "$defs" | "definitions" | "enum" | "const" | "default" | "examples")
                    && visit(x, root, seen)
            }),
            Value::Array(a) => a.iter().any(|x| visit(x, root, seen)),
            _ => false,
        }
    }
    visit(s, root, &mut Vec::new())
}

/// Decides schemas on concrete values. `root` resolves local `$ref`s.
pub(crate) struct Evaluator<'a> {
    root: &'a Value,
    bytes: &'a ByteGrammar,
}

/// Three-valued logic: `None` is "cannot be decided here".
type Decided = Option<bool>;

impl<'a> Evaluator<'a> {
    pub(crate) fn new(root: &'a Value, bytes: &'a ByteGrammar) -> Self {
        Evaluator { root, bytes }
    }

    pub(crate) fn root(&self) -> &Value {
        self.root
    }

    pub(crate) fn bytes(&self) -> &ByteGrammar {
        self.bytes
    }

    /// The listed values of `s` that match all of `s`, in their order; `None` when there are
    /// too many or some keyword cannot be decided on one of them.
    pub(crate) fn fold(&self, s: &Value) -> Option<Vec<Value>> {
        let values = listed_values(s)?;
        if values.len() > MAX_VALUES {
            return None;
        }
        let mut kept = Vec::new();
        for v in values {
            if self.holds(s, &v, 0)? && !kept.iter().any(|k| json_equal(k, &v)) {
                kept.push(v);
            }
        }
        Some(kept)
    }

    /// Whether `v` matches `s`.
    fn holds(&self, s: &Value, v: &Value, depth: usize) -> Decided {
        if depth > MAX_DEPTH {
            return None;
        }
        let o = match s {
            Value::Bool(b) => return Some(*b),
            Value::Object(o) => o,
            _ => return None,
        };
        // A conjunction: false as soon as one keyword is false, undecided if one is and none
        // is false.
        let mut undecided = false;
        let mut and = |d: Decided| match d {
            Some(false) => true,
            None => {
                undecided = true;
                false
            }
            Some(true) => false,
        };
        let sub = |s: &Value| self.holds(s, v, depth + 1);
        for (k, x) in o {
            let d: Decided = match k.as_str() {
                "$ref" => {
                    let target = x.as_str().and_then(local_target).and_then(|p| self.root.pointer(&p));
                    target.and_then(sub)
                }
                "type" => type_matches(x, v),
                "enum" => x.as_array().map(|e| e.iter().any(|e| json_equal(e, v))),
                "const" => Some(json_equal(x, v)),
                "allOf" => all(x.as_array(), sub),
                "anyOf" => any(x.as_array(), sub),
                "oneOf" => match x.as_array() {
                    Some(branches) => {
                        let mut matched = 0;
                        let mut unknown = false;
                        for b in branches {
                            match sub(b) {
                                Some(true) => matched += 1,
                                Some(false) => {}
                                None => unknown = true,
                            }
                        }
                        if matched > 1 {
                            Some(false)
                        } else if unknown {
                            None
                        } else {
                            Some(matched == 1)
                        }
                    }
                    None => None,
                },
                "not" => sub(x).map(|b| !b),
                "if" => match sub(x) {
                    Some(true) => o.get("then").map_or(Some(true), sub),
                    Some(false) => o.get("else").map_or(Some(true), sub),
                    None => None,
                },
                // Decided with `if`, with `contains`.
                "then" | "else" | "minContains" | "maxContains" => Some(true),
                "dependencies" | "dependentRequired" | "dependentSchemas" => self.dependencies(x, v, depth),
                // Evaluated annotations and dynamic scopes: not decided here.
                "unevaluatedProperties" | "unevaluatedItems" | "$dynamicRef" | "$recursiveRef" => None,
                _ => match v {
                    Value::Number(_) => self.number(k, x, o, v),
                    Value::String(text) => self.string(k, x, text),
                    Value::Array(items) => self.array(k, x, o, items, depth),
                    Value::Object(_) => self.object(k, x, o, v, depth),
                    _ => Some(true),
                },
            };
            if and(d) {
                return Some(false);
            }
        }
        if undecided {
            None
        } else {
            Some(true)
        }
    }

    fn number(&self, k: &str, x: &Value, o: &serde_json::Map<String, Value>, v: &Value) -> Decided {
        let n = v.as_f64()?;
        // Draft 4: `exclusiveMinimum: true` makes `minimum` strict.
        let strict = |flag: &str| o.get(flag) == Some(&Value::Bool(true));
        match k {
            "minimum" => Some(if strict("exclusiveMinimum") { n > x.as_f64()? } else { n >= x.as_f64()? }),
            "maximum" => Some(if strict("exclusiveMaximum") { n < x.as_f64()? } else { n <= x.as_f64()? }),
            "exclusiveMinimum" if x.is_number() => Some(n > x.as_f64()?),
            "exclusiveMaximum" if x.is_number() => Some(n < x.as_f64()?),
            "multipleOf" => self.bytes.accepts(json!({ "type": "number", "multipleOf": x }), v),
            _ => Some(true),
        }
    }

    fn string(&self, k: &str, x: &Value, text: &str) -> Decided {
        let len = text.chars().count() as u64;
        let s = Value::from(text);
        match k {
            "minLength" => Some(len >= x.as_u64()?),
            "maxLength" => Some(len <= x.as_u64()?),
            "pattern" => self.bytes.accepts(json!({ "type": "string", "pattern": x }), &s),
            "format" => {
                let f = x.as_str()?;
                if FORMATS.contains(&f) {
                    self.bytes.accepts(json!({ "type": "string", "format": f }), &s)
                } else if let Some(p) = format_pattern(f) {
                    self.bytes.accepts(json!({ "type": "string", "pattern": p }), &s)
                } else if UNENFORCEABLE_FORMATS.contains(&f) {
                    None
                } else {
                    Some(true) // an annotation
                }
            }
            _ => Some(true),
        }
    }

    fn array(&self, k: &str, x: &Value, o: &serde_json::Map<String, Value>, items: &[Value], depth: usize) -> Decided {
        let at = |s: &Value, v: &Value| self.holds(s, v, depth + 1);
        match k {
            "minItems" => Some(items.len() as u64 >= x.as_u64()?),
            "maxItems" => Some(items.len() as u64 <= x.as_u64()?),
            "uniqueItems" => Some(x != &Value::Bool(true) || (0..items.len()).all(|i| (0..i).all(|j| !json_equal(&items[i], &items[j])))),
            "items" => {
                // Draft 2020-12: `prefixItems` then `items` for the rest; earlier drafts: a
                // list in `items` then `additionalItems` for the rest.
                let (prefix, rest): (&[Value], Option<&Value>) = match (o.get("prefixItems"), x) {
                    (Some(Value::Array(p)), _) => (p, Some(x)),
                    (_, Value::Array(p)) => (p, o.get("additionalItems")),
                    _ => (&[], Some(x)),
                };
                let pairs = items.iter().enumerate().map(|(i, item)| (prefix.get(i).or(if i >= prefix.len() { rest } else { None }), item));
                let decided: Vec<Decided> = pairs.map(|(s, item)| s.map_or(Some(true), |s| at(s, item))).collect();
                all_decided(decided)
            }
            "prefixItems" if !o.contains_key("items") => {
                let p = x.as_array()?;
                all_decided(items.iter().zip(p).map(|(item, s)| at(s, item)).collect())
            }
            "contains" => {
                let mut count = 0u64;
                for item in items {
                    match at(x, item) {
                        Some(true) => count += 1,
                        Some(false) => {}
                        None => return None,
                    }
                }
                let min = o.get("minContains").and_then(Value::as_u64).unwrap_or(1);
                let max = o.get("maxContains").and_then(Value::as_u64).unwrap_or(u64::MAX);
                Some(count >= min && count <= max)
            }
            _ => Some(true),
        }
    }

    fn object(&self, k: &str, x: &Value, o: &serde_json::Map<String, Value>, v: &Value, depth: usize) -> Decided {
        let props = v.as_object()?;
        let has = |k: &str| o.contains_key(k);
        match k {
            "required" => Some(x.as_array()?.iter().all(|n| n.as_str().is_some_and(|n| props.contains_key(n)))),
            "minProperties" => Some(props.len() as u64 >= x.as_u64()?),
            "maxProperties" => Some(props.len() as u64 <= x.as_u64()?),
            "propertyNames" => all_decided(props.keys().map(|name| self.holds(x, &Value::from(name.as_str()), depth + 1)).collect()),
            // The three decide together, once: at the first of them present.
            "properties" => self.properties(o, props, depth),
            "patternProperties" if !has("properties") => self.properties(o, props, depth),
            "additionalProperties" if !has("properties") && !has("patternProperties") => self.properties(o, props, depth),
            _ => Some(true),
        }
    }

    /// `properties`, `patternProperties` and `additionalProperties` together: each property
    /// by the schemas of its name and of the patterns it matches, else the additional one.
    fn properties(&self, o: &serde_json::Map<String, Value>, props: &serde_json::Map<String, Value>, depth: usize) -> Decided {
        let listed = o.get("properties");
        let patterns = o.get("patternProperties").and_then(Value::as_object);
        let additional = o.get("additionalProperties");
        let mut decided = Vec::new();
        for (name, value) in props {
            let mut applied = false;
            if let Some(s) = listed.and_then(|l| l.get(name)) {
                applied = true;
                decided.push(self.holds(s, value, depth + 1));
            }
            for (p, s) in patterns.into_iter().flatten() {
                match self.bytes.accepts(json!({ "type": "string", "pattern": p }), &Value::from(name.as_str())) {
                    Some(true) => {
                        applied = true;
                        decided.push(self.holds(s, value, depth + 1));
                    }
                    Some(false) => {}
                    None => return None,
                }
            }
            if !applied {
                if let Some(s) = additional {
                    decided.push(self.holds(s, value, depth + 1));
                }
            }
        }
        all_decided(decided)
    }

    /// `dependencies` (draft 7), `dependentRequired`, `dependentSchemas`.
    fn dependencies(&self, x: &Value, v: &Value, depth: usize) -> Decided {
        let Some(props) = v.as_object() else { return Some(true) };
        let mut decided = Vec::new();
        for (name, d) in x.as_object()? {
            if !props.contains_key(name) {
                continue;
            }
            decided.push(match d {
                Value::Array(also) => Some(also.iter().all(|n| n.as_str().is_some_and(|n| props.contains_key(n)))),
                s => self.holds(s, v, depth + 1),
            });
        }
        all_decided(decided)
    }

}

fn type_matches(t: &Value, v: &Value) -> Decided {
    let is = |name: &str| match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        // 1.0 is an integer (draft 6 on).
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    };
    match t {
        Value::String(name) => Some(is(name)),
        Value::Array(names) => Some(names.iter().filter_map(Value::as_str).any(is)),
        _ => None,
    }
}

fn all_decided(ds: Vec<Decided>) -> Decided {
    if ds.contains(&Some(false)) {
        Some(false)
    } else if ds.contains(&None) {
        None
    } else {
        Some(true)
    }
}

fn all(list: Option<&Vec<Value>>, sub: impl Fn(&Value) -> Decided) -> Decided {
    all_decided(list?.iter().map(sub).collect())
}

fn any(list: Option<&Vec<Value>>, sub: impl Fn(&Value) -> Decided) -> Decided {
    let ds: Vec<Decided> = list?.iter().map(sub).collect();
    if ds.contains(&Some(true)) {
        Some(true)
    } else if ds.contains(&None) {
        None
    } else {
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(s: Value) -> Option<Vec<Value>> {
        Evaluator::new(&s, &ByteGrammar::default()).fold(&s)
    }

    #[test]
    fn keywords_llguidance_lacks_are_decided_on_each_value() {
        let cases = [
            // not, through an allOf member's enum
            (json!({"allOf": [{"enum": [1, "a", null]}, {"not": {"type": "string"}}]}), json!([1, null])),
            // oneOf: exactly one branch
            (json!({"enum": [1, 5, 12], "oneOf": [{"minimum": 3}, {"maximum": 10}]}), json!([1, 12])),
            // uniqueItems over structured items, numbers by value
            (json!({"enum": [[1, 2], [1, 1.0], [{"a": 1}, {"a": 1}]], "uniqueItems": true}), json!([[1, 2]])),
            // contains with bounds
            (json!({"enum": [[1, "x"], ["x", "y"], [2, 3]], "contains": {"type": "string"}, "maxContains": 1}), json!([[1, "x"]])),
            // propertyNames by pattern, patternProperties and additionalProperties
            (
                json!({"enum": [{"ab": 1}, {"a1": 1}, {"b": "s"}], "propertyNames": {"pattern": "^[a-z]+$"},
                       "patternProperties": {"^a": {"type": "integer"}}, "additionalProperties": {"type": "integer"}}),
                json!([{"ab": 1}]),
            ),
            // if/then/else, $ref into definitions, dependencies
            (
                json!({"definitions": {"pos": {"exclusiveMinimum": 0}}, "enum": [-1, 0, 2, "no"],
                       "if": {"type": "number"}, "then": {"$ref": "#/definitions/pos"}, "else": false}),
                json!([2]),
            ),
            (json!({"enum": [{"a": 1}, {"a": 1, "b": 2}, {}], "dependencies": {"a": ["b"]}}), json!([{"a": 1, "b": 2}, {}])),
            // formats and multipleOf by llguidance's own grammar
            (json!({"enum": ["2024-02-30", "2024-02-03", 7], "not": {"format": "date"}}), json!(["2024-02-30"])),
            (json!({"enum": [0.3, 0.35, 9], "not": {"multipleOf": 0.1}}), json!([0.35])),
            // 1.0 is an integer; draft-04's boolean exclusiveMaximum
            (json!({"enum": [1.0, 1.5, 2], "not": {"type": "integer"}}), json!([1.5])),
            (json!({"enum": [1, 2], "maximum": 2, "exclusiveMaximum": true, "not": {"const": 0}}), json!([1])),
        ];
        for (schema, want) in cases {
            assert_eq!(Value::Array(fold(schema.clone()).unwrap_or_else(|| panic!("{schema}: undecided"))), want, "{schema}");
        }
    }

    #[test]
    fn what_cannot_be_decided_is_left_to_the_rewrites() {
        for schema in [
            json!({"enum": [{"a": 1}], "unevaluatedProperties": false, "not": {"const": 0}}),
            json!({"enum": ["x"], "not": {"$ref": "https://example.org/remote"}}),
            json!({"enum": ["x"], "not": {"format": "regex"}}),
            json!({"$defs": {"loop": {"$ref": "#/$defs/loop"}}, "enum": [1], "not": {"$ref": "#/$defs/loop"}}),
        ] {
            assert_eq!(fold(schema.clone()), None, "{schema}");
        }
    }

    #[test]
    fn only_listed_values_with_a_keyword_llguidance_lacks_are_folded() {
        let plain = json!({"enum": ["a", "b"], "type": "string"});
        assert!(!needs_folding(&plain, &plain));
        let through_ref = json!({"$defs": {"n": {"not": {"const": "a"}}}, "enum": ["a", "b"], "$ref": "#/$defs/n"});
        assert!(needs_folding(&through_ref, &through_ref));
        assert_eq!(listed_values(&json!({"allOf": [{"type": "string"}, {"const": "x"}]})), Some(vec![json!("x")]));
        assert_eq!(listed_values(&json!({"anyOf": [{"const": "x"}]})), None);
    }
}
