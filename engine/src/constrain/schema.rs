//! JSON Schema as users write it, made into a schema the constraint engine enforces exactly.
//!
//! The policy, keyword by keyword (docs/schemas.md has the table):
//! - annotations, vendor extensions and keywords no draft defines are ignored, as the
//!   specification says a validator ignores them (`x-kubernetes-*`, `javaType`, `example`…);
//! - a name within a small edit distance of a validation keyword, with a value of that
//!   keyword's shape (`"maximun": 3`, `"requried": ["a"]`), is an error with a "did you mean":
//!   ignoring it would silently drop the constraint its writer meant;
//! - validation keywords llguidance does not implement are rewritten into ones it does where
//!   the rewrite is exact (`dependentRequired`, `dependentSchemas`, draft-07 `dependencies`,
//!   `not` of the common forms, `if`/`then`/`else`, `uniqueItems` over a few scalar values…);
//!   what cannot be rewritten exactly is an `unsupported-schema` error naming the keyword and
//!   where it is, never a looser grammar;
//! - a `format` the engine has no grammar for is an annotation (draft 2019-09 and later say so
//!   by default) and is ignored.

use serde_json::{json, Map, Value};

use super::bytes::ByteGrammar;
use super::listed::{self, Evaluator};
use crate::error::{Error, Result};

/// What preparing a schema did besides passing it through: the rewrites applied and the
/// keywords ignored, for the caller to report.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Keywords rewritten into enforceable ones, with where (JSON pointer).
    pub rewritten: Vec<String>,
    /// Formats ignored as annotations (no grammar for them), with where.
    pub ignored_formats: Vec<String>,
}

/// The formats llguidance 1.9 has a grammar for.
pub(super) const FORMATS: &[&str] = &["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"];

/// RFC 3986's generic syntax, as regular-expression pieces (IP literals left out: a
/// `[...]` host is refused rather than checked loosely).
const URI_SCHEME: &str = "[A-Za-z][A-Za-z0-9+.-]*";
const URI_AUTHORITY: &str = "(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*(?::[0-9]*)?";
const URI_PCHAR: &str = "(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})";
const URI_PCHAR_NC: &str = "(?:[A-Za-z0-9._~!$&'()*+,;=@-]|%[0-9A-Fa-f]{2})";

/// Standard formats the engine has no grammar for but which are regular: enforced through
/// an anchored `pattern`. The `iri` forms accept their ASCII part (URIs), stricter than the
/// format, never looser.
pub(super) fn format_pattern(format: &str) -> Option<String> {
    let p = URI_PCHAR;
    let tail = format!("(?:\\?(?:{p}|[/?])*)?(?:#(?:{p}|[/?])*)?");
    let uri = format!("{URI_SCHEME}:(?://{URI_AUTHORITY}(?:/{p}*)*|/(?:{p}+(?:/{p}*)*)?|{p}+(?:/{p}*)*)?{tail}");
    let relative = format!("(?://{URI_AUTHORITY}(?:/{p}*)*|/(?:{p}+(?:/{p}*)*)?|{URI_PCHAR_NC}+(?:/{p}*)*)?{tail}");
    let pointer = "(?:/(?:[^~/]|~[01])*)*";
    let var = "(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*(?::[1-9][0-9]{0,3}|\\*)?";
    Some(match format {
        "uri-reference" | "iri-reference" => format!("^(?:{uri}|{relative})$"),
        "iri" => format!("^{uri}$"),
        "json-pointer" => format!("^{pointer}$"),
        "relative-json-pointer" => format!("^(?:0|[1-9][0-9]*)(?:#|{pointer})$"),
        "uri-template" => format!("^(?:[!#$&()*+,./0-9:;=?@A-Z\\[\\]_a-z~-]|%[0-9A-Fa-f]{{2}}|\\{{[+#./;?&=,!@|]?{var}(?:,{var})*\\}})*$"),
        _ => return None,
    })
}

/// Standard formats that constrain and have no exact grammar here: refused.
pub(super) const UNENFORCEABLE_FORMATS: &[&str] = &["regex", "idn-hostname", "idn-email"];

/// Keywords that constrain instances (the near-miss check compares unknown names with these).
const VALIDATION: &[&str] = &[
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired", "dependentSchemas", "dependencies",
    "properties", "patternProperties", "additionalProperties", "propertyNames", "items", "prefixItems",
    "additionalItems", "contains", "unevaluatedItems", "unevaluatedProperties", "allOf", "anyOf", "oneOf", "not",
    "if", "then", "else", "format", "$ref",
];

/// Every other name some draft defines (identifiers, annotations, meta-data).
const OTHER_KEYWORDS: &[&str] = &[
    "$schema", "$id", "id", "$anchor", "$defs", "definitions", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
    "$recursiveAnchor", "$vocabulary", "$comment", "title", "description", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
];

/// Keywords whose value is one schema; a map of name → schema; a list of schemas.
const SCHEMA_VALUED: &[&str] = &[
    "additionalProperties", "propertyNames", "additionalItems", "contains", "not", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties",
];
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// The meta-schema URIs of the drafts llguidance knows, whatever their spelling
/// (`http`/`https`, a trailing `#`).
fn canonical_meta_schema(uri: &str) -> Option<&'static str> {
    let u = uri.trim().trim_end_matches('#');
    [
        ("draft-04", "http://json-schema.org/draft-04/schema#"),
        ("draft-06", "http://json-schema.org/draft-06/schema#"),
        ("draft-07", "http://json-schema.org/draft-07/schema#"),
        ("2019-09", "https://json-schema.org/draft/2019-09/schema"),
        ("2020-12", "https://json-schema.org/draft/2020-12/schema"),
    ]
    .into_iter()
    .find(|(draft, _)| u.contains("json-schema.org") && u.contains(draft))
    .map(|(_, c)| c)
}

/// Make `schema` enforceable as written, or say precisely why it cannot be.
pub fn prepare(schema: &mut Value) -> Result<Report> {
    let mut report = Report::default();
    if let Some(obj) = schema.as_object_mut() {
        if let Some(uri) = obj.get("$schema").and_then(Value::as_str) {
            match canonical_meta_schema(uri) {
                Some(c) => {
                    obj.insert("$schema".into(), Value::from(c));
                }
                // The "latest" meta-schema (`http://json-schema.org/schema#`), or one of a
                // vendor's: read as 2020-12, the draft llguidance defaults to.
                None => {
                    obj.remove("$schema");
                }
            }
        }
    }
    if let Some(cycle) = ref_cycle(schema) {
        return Err(Error::InvalidSchema(format!("$ref cycle {}: the schema demands itself with no output in between", cycle.join(" -> "))));
    }
    spelling(schema, &mut String::new())?;
    let original = schema.clone();
    let bytes = ByteGrammar::default();
    let eval = Evaluator::new(&original, &bytes);
    let mut at = String::new();
    walk(schema, &mut at, &mut report, &eval)?;
    let root = schema.clone();
    one_of_to_any_of(schema, &root, &bytes, &mut String::new(), &mut report)?;
    number_ranges(schema, schema, &mut String::new())?;
    Ok(report)
}

/// llguidance 1.9's grammar for a number range with an exclusive integer end and the other
/// end within one of it, such as (0, 0.5) or (-1.5, -1), also admits that end ("0", "-1"):
/// such a range is refused rather than enforced loosely. Bounds meet where llguidance
/// intersects schemas (a schema, its `allOf`/`anyOf`/`oneOf` members, what `$ref` names), so
/// every bound in that reach is paired with every other.
fn number_ranges(v: &Value, root: &Value, at: &mut String) -> Result<()> {
    let Some(obj) = v.as_object() else { return Ok(()) };
    let (mut lower, mut upper) = (Vec::new(), Vec::new());
    bounds_in_place(v, root, &mut lower, &mut upper, 0);
    for &(l, l_excl) in &lower {
        for &(u, u_excl) in &upper {
            let loose = (l_excl && l >= 0.0 && l.fract() == 0.0 && l < u && u < l + 1.0)
                || (u_excl && u <= 0.0 && u.fract() == 0.0 && u - 1.0 < l && l < u);
            if loose {
                let end = if l_excl && l >= 0.0 && l.fract() == 0.0 && u < l + 1.0 { l } else { u };
                return Err(unsupported(at, format!("the number range from {l} to {u} (llguidance's grammar for it admits the excluded {end})")));
            }
        }
    }
    let len = at.len();
    for (k, sub) in obj {
        let key = k.as_str();
        at.push('/');
        at.push_str(&escape(key));
        for (suffix, s) in subschemas(key, sub) {
            let l = at.len();
            at.push_str(&suffix);
            number_ranges(s, root, at)?;
            at.truncate(l);
        }
        at.truncate(len);
    }
    Ok(())
}

/// The numeric bounds of `v` and of the schemas it applies in place: (value, exclusive).
fn bounds_in_place(v: &Value, root: &Value, lower: &mut Vec<(f64, bool)>, upper: &mut Vec<(f64, bool)>, depth: usize) {
    let Some(obj) = v.as_object() else { return };
    if depth > 16 {
        return;
    }
    // Draft 4: a boolean `exclusiveMinimum` makes `minimum` strict.
    let strict = |k: &str| obj.get(k) == Some(&Value::Bool(true));
    if let Some(m) = obj.get("minimum").and_then(Value::as_f64) {
        lower.push((m, strict("exclusiveMinimum")));
    }
    if let Some(m) = obj.get("exclusiveMinimum").and_then(Value::as_f64) {
        lower.push((m, true));
    }
    if let Some(m) = obj.get("maximum").and_then(Value::as_f64) {
        upper.push((m, strict("exclusiveMaximum")));
    }
    if let Some(m) = obj.get("exclusiveMaximum").and_then(Value::as_f64) {
        upper.push((m, true));
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for s in obj.get(k).and_then(Value::as_array).into_iter().flatten() {
            bounds_in_place(s, root, lower, upper, depth + 1);
        }
    }
    if let Some(t) = obj.get("$ref").and_then(Value::as_str).and_then(|r| resolve(root, r)) {
        bounds_in_place(t, root, lower, upper, depth + 1);
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn here(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

fn unsupported(at: &str, what: impl std::fmt::Display) -> Error {
    Error::UnsupportedSchema(format!("{what} at {} cannot be enforced exactly", here(at)))
}

/// Children first, then this schema's own rewrites (so a rewrite sees rewritten children);
/// a schema of listed values with a keyword llguidance lacks is folded into the values
/// that match it instead ([`listed`]).
fn walk(v: &mut Value, at: &mut String, report: &mut Report, eval: &Evaluator) -> Result<()> {
    if fold(v, eval) {
        report.rewritten.push(format!("listed values checked at {}", here(at)));
        return Ok(());
    }
    let Some(obj) = v.as_object_mut() else { return Ok(()) };
    let len = at.len();
    for (k, sub) in obj.iter_mut() {
        let key = k.as_str();
        // Unknown names constrain nothing (misspelt keywords were refused before the walk).
        if !VALIDATION.contains(&key) && !OTHER_KEYWORDS.contains(&key) {
            continue;
        }
        at.push('/');
        at.push_str(&escape(key));
        if SCHEMA_VALUED.contains(&key) {
            walk(sub, at, report, eval)?;
        } else if key == "items" || SCHEMA_LISTS.contains(&key) {
            if let Some(list) = sub.as_array_mut() {
                for (i, s) in list.iter_mut().enumerate() {
                    let l = at.len();
                    at.push_str(&format!("/{i}"));
                    walk(s, at, report, eval)?;
                    at.truncate(l);
                }
            } else if key == "items" {
                walk(sub, at, report, eval)?;
            }
        } else if SCHEMA_MAPS.contains(&key) || key == "dependencies" {
            for (name, s) in sub.as_object_mut().into_iter().flatten() {
                let l = at.len();
                at.push('/');
                at.push_str(&escape(name));
                walk(s, at, report, eval)?;
                at.truncate(l);
            }
        }
        at.truncate(len);
    }
    rewrite(obj, at, report, eval)
}

/// Replace a listed-values schema that needs it by the values that match it (keeping the
/// definitions other schemas may refer to); whether it was.
fn fold(v: &mut Value, eval: &Evaluator) -> bool {
    if listed::listed_values(v).is_none() || !listed::needs_folding(v, eval.root()) {
        return false;
    }
    let Some(kept) = eval.fold(v) else { return false };
    let obj = v.as_object_mut().expect("listed values are in an object");
    let mut folded = Map::new();
    for k in ["$schema", "$id", "id", "$defs", "definitions"] {
        if let Some(x) = obj.remove(k) {
            folded.insert(k.into(), x);
        }
    }
    if kept.is_empty() {
        folded.insert("allOf".into(), json!([false]));
    } else {
        folded.insert("enum".into(), Value::Array(kept));
    }
    *v = Value::Object(folded);
    true
}

/// The schemas a keyword's value holds, each with its pointer below the keyword (`""`,
/// `/0`, `/name`); none for keywords whose value is not schemas.
fn subschemas<'a>(key: &str, sub: &'a Value) -> Vec<(String, &'a Value)> {
    if SCHEMA_VALUED.contains(&key) || key == "items" && sub.is_object() {
        vec![(String::new(), sub)]
    } else if key == "items" || SCHEMA_LISTS.contains(&key) {
        sub.as_array().into_iter().flatten().enumerate().map(|(i, s)| (format!("/{i}"), s)).collect()
    } else if SCHEMA_MAPS.contains(&key) || key == "dependencies" {
        sub.as_object().into_iter().flatten().map(|(n, s)| (format!("/{}", escape(n)), s)).collect()
    } else {
        Vec::new()
    }
}

/// Misspelt validation keywords anywhere in `v` (`maximun`, `requried`…): refused, since
/// ignoring them would drop the constraint their writer meant.
fn spelling(v: &Value, at: &mut String) -> Result<()> {
    let Some(obj) = v.as_object() else { return Ok(()) };
    let len = at.len();
    for (k, sub) in obj {
        let key = k.as_str();
        if !VALIDATION.contains(&key) && !OTHER_KEYWORDS.contains(&key) {
            near_miss(key, sub, at)?;
            continue;
        }
        at.push('/');
        at.push_str(&escape(key));
        for (suffix, s) in subschemas(key, sub) {
            let l = at.len();
            at.push_str(&suffix);
            spelling(s, at)?;
            at.truncate(l);
        }
        at.truncate(len);
    }
    Ok(())
}

/// Levenshtein distance over chars, a case difference counting as an edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Whether `v` has the shape `keyword`'s value has, so that a misspelt name with that value
/// was most likely meant as the keyword (a `"note": "…"` is not a misspelt `not`).
fn has_shape_of(keyword: &str, v: &Value) -> bool {
    let schema = |v: &Value| v.is_object() || v.is_boolean();
    match keyword {
        "minimum" | "maximum" | "multipleOf" => v.is_number(),
        "exclusiveMinimum" | "exclusiveMaximum" => v.is_number() || v.is_boolean(),
        "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties" | "minContains"
        | "maxContains" => v.is_u64(),
        "required" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "pattern" | "format" | "$ref" => v.is_string(),
        "type" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "enum" => v.is_array(),
        "const" => false, // any value fits: a near-miss cannot be told from a field of that name
        "uniqueItems" => v.is_boolean(),
        "items" => schema(v) || v.is_array(),
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => v.as_array().is_some_and(|a| a.iter().all(schema)),
        "properties" | "patternProperties" | "dependentSchemas" | "dependentRequired" | "dependencies" => {
            v.as_object().is_some_and(|m| m.values().all(|s| schema(s) || s.is_array()))
        }
        _ => schema(v),
    }
}

/// How far a name may be from a keyword to count as its misspelling: short keywords
/// (`not`, `type`, `enum`) are one edit from many ordinary words, so they get less room.
fn max_edits(keyword: &str) -> usize {
    match keyword.len() {
        0..=3 => 0,
        4..=5 => 1,
        _ => 2,
    }
}

fn near_miss(name: &str, value: &Value, at: &str) -> Result<()> {
    if name.starts_with("x-") || name.starts_with('_') {
        return Ok(());
    }
    let best = VALIDATION
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|&(d, k)| d <= max_edits(k) && has_shape_of(k, value))
        .min();
    match best {
        Some((_, k)) => Err(Error::UnsupportedSchema(format!(
            "unknown keyword \"{name}\" at {} (did you mean \"{k}\"?)",
            here(at)
        ))),
        None => Ok(()),
    }
}

/// Add `s` to this schema's `allOf` (an intersection with its other keywords).
fn push_all_of(obj: &mut Map<String, Value>, s: Value) {
    match obj.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(list) => list.push(s),
        None => {
            obj.insert("allOf".into(), Value::Array(vec![s]));
        }
    }
}

/// "if `name` is present, so is each of `also`": present with all of them, or absent.
fn dependent_required(name: &str, also: &[Value]) -> Value {
    let mut required = vec![Value::from(name)];
    required.extend(also.iter().cloned());
    json!({ "anyOf": [{ "required": required }, { "properties": { name: false } }] })
}

/// "if `name` is present, the object also matches `s`".
fn dependent_schema(name: &str, s: Value) -> Value {
    json!({ "anyOf": [{ "allOf": [{ "required": [name] }, s] }, { "properties": { name: false } }] })
}

fn rewrite(obj: &mut Map<String, Value>, at: &str, report: &mut Report, eval: &Evaluator) -> Result<()> {
    let mut note = |what: &str| report.rewritten.push(format!("{what} at {}", here(at)));
    // unevaluatedProperties/unevaluatedItems where nothing in place (a `$ref`, an `allOf`…)
    // can evaluate a property or item: additionalProperties/items by another name, or
    // nothing when those are already there.
    const IN_PLACE: &[&str] = &[
        "allOf", "anyOf", "oneOf", "$ref", "not", "if", "then", "else", "dependentSchemas", "dependencies", "$dynamicRef",
        "$recursiveRef",
    ];
    if !IN_PLACE.iter().any(|k| obj.contains_key(*k)) {
        if let Some(u) = obj.remove("unevaluatedProperties") {
            obj.entry("additionalProperties").or_insert(u);
            note("unevaluatedProperties");
        }
        if !obj.contains_key("contains") {
            if let Some(u) = obj.remove("unevaluatedItems") {
                match obj.get("items") {
                    None => {
                        obj.insert("items".into(), u);
                    }
                    // Draft 2019-09's tuple form: the items after it.
                    Some(Value::Array(_)) => {
                        obj.entry("additionalItems").or_insert(u);
                    }
                    Some(_) => {}
                }
                note("unevaluatedItems");
            }
        }
    }
    if let Some(f) = obj.get("format").and_then(Value::as_str).map(str::to_string) {
        if UNENFORCEABLE_FORMATS.contains(&f.as_str()) {
            return Err(unsupported(at, format!("\"format\": \"{f}\"")));
        }
        if let Some(pattern) = format_pattern(&f) {
            obj.remove("format");
            push_all_of(obj, json!({ "pattern": pattern }));
            note("format");
        } else if !FORMATS.contains(&f.as_str()) {
            // Not a standard format (`int32`, `url`, `topic`…): an annotation.
            report.ignored_formats.push(format!("{f} at {}", here(at)));
            obj.remove("format");
        }
    }
    // Draft-07's `dependencies` is 2019-09's dependentRequired (a list) or dependentSchemas.
    if let Some(deps) = obj.remove("dependencies") {
        let Value::Object(deps) = deps else { return Err(Error::InvalidSchema(format!("\"dependencies\" at {} must be an object", here(at)))) };
        for (name, d) in deps {
            let target = if d.is_array() { "dependentRequired" } else { "dependentSchemas" };
            match obj.entry(target).or_insert_with(|| json!({})) {
                Value::Object(m) => {
                    m.insert(name, d);
                }
                _ => return Err(Error::InvalidSchema(format!("\"{target}\" at {} must be an object", here(at)))),
            }
        }
    }
    if let Some(deps) = obj.remove("dependentRequired") {
        let Value::Object(deps) = deps else { return Err(Error::InvalidSchema(format!("\"dependentRequired\" at {} must be an object", here(at)))) };
        for (name, also) in deps {
            let Some(also) = also.as_array().filter(|a| a.iter().all(Value::is_string)) else {
                return Err(Error::InvalidSchema(format!("\"dependentRequired/{name}\" at {} must be a list of names", here(at))));
            };
            if !also.is_empty() {
                push_all_of(obj, dependent_required(&name, also));
            }
        }
        note("dependentRequired");
    }
    if let Some(deps) = obj.remove("dependentSchemas") {
        let Value::Object(deps) = deps else { return Err(Error::InvalidSchema(format!("\"dependentSchemas\" at {} must be an object", here(at)))) };
        for (name, s) in deps {
            if s != Value::Bool(true) {
                push_all_of(obj, dependent_schema(&name, s));
            }
        }
        note("dependentSchemas");
    }
    if let Some(s) = obj.remove("not") {
        let negated = negate(&s, eval.root()).map_err(|what| unsupported(at, format!("\"not\" of {what}")))?;
        push_all_of(obj, negated);
        note("not");
    }
    if let Some(cond) = obj.remove("if") {
        let then = obj.remove("then").unwrap_or(Value::Bool(true));
        let otherwise = obj.remove("else").unwrap_or(Value::Bool(true));
        if then != Value::Bool(true) || otherwise != Value::Bool(true) {
            let not_cond = negate(&cond, eval.root()).map_err(|what| unsupported(at, format!("\"if\" of {what} (its negation)")))?;
            push_all_of(obj, json!({ "anyOf": [{ "allOf": [cond, then] }, { "allOf": [not_cond, otherwise] }] }));
        }
        note("if/then/else");
    } else {
        // Without `if`, `then` and `else` do nothing.
        obj.remove("then");
        obj.remove("else");
    }
    if let Some(u) = obj.remove("uniqueItems") {
        if u == Value::Bool(true) {
            unique_items(obj).map_err(|what| unsupported(at, format!("\"uniqueItems\" {what}")))?;
            note("uniqueItems");
        }
    }
    if let Some(names) = obj.remove("propertyNames") {
        property_names(obj, names, eval).map_err(|what| unsupported(at, format!("\"propertyNames\" {what}")))?;
        note("propertyNames");
    }
    if let Some(c) = obj.remove("contains") {
        let min = obj.remove("minContains").and_then(|v| v.as_u64()).unwrap_or(1);
        let max = obj.remove("maxContains");
        if min > 0 || max.is_some() {
            return Err(unsupported(at, "\"contains\""));
        }
        let _ = c; // minContains 0 and no maximum: every array matches
        note("contains");
    }
    Ok(())
}

/// `uniqueItems` over items drawn from a few scalar values: every array of distinct values
/// within the length bounds, listed (5 values give 326 arrays). Other item schemas: refused.
fn unique_items(obj: &mut Map<String, Value>) -> std::result::Result<(), String> {
    let max_items = obj.get("maxItems").and_then(Value::as_u64);
    if max_items.is_some_and(|m| m <= 1) {
        return Ok(()); // zero or one item is always unique
    }
    // The candidate values; the listed arrays are intersected with `items` as it stands, so
    // a `type` beside the `enum` still applies.
    let open = || "over items that are not a few listed values".to_string();
    let items = obj.get("items").and_then(Value::as_object).ok_or_else(open)?;
    if items.keys().any(|k| VALIDATION.contains(&k.as_str()) && !matches!(k.as_str(), "enum" | "const" | "type")) {
        return Err(open());
    }
    let values: Vec<Value> = match (items.get("enum"), items.get("const"), items.get("type").and_then(Value::as_str)) {
        (Some(Value::Array(e)), _, _) => e.clone(),
        (_, Some(c), _) => vec![c.clone()],
        (_, _, Some("boolean")) => vec![Value::Bool(false), Value::Bool(true)],
        (_, _, Some("null")) => vec![Value::Null],
        _ => return Err(open()),
    };
    let mut distinct: Vec<Value> = Vec::new();
    for v in values {
        if v.is_array() || v.is_object() {
            return Err("over structured values".into());
        }
        if !distinct.iter().any(|d| json_equal(d, &v)) {
            distinct.push(v);
        }
    }
    if distinct.len() > 5 {
        return Err(format!("over {} values (at most 5 are listed out)", distinct.len()));
    }
    let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = max_items.map_or(distinct.len(), |m| (m as usize).min(distinct.len()));
    let mut arrays = Vec::new();
    fn extend(prefix: &mut Vec<Value>, pool: &[Value], used: &mut Vec<bool>, min: usize, max: usize, out: &mut Vec<Value>) {
        if prefix.len() >= min {
            out.push(Value::Array(prefix.clone()));
        }
        if prefix.len() == max {
            return;
        }
        for i in 0..pool.len() {
            if !used[i] {
                used[i] = true;
                prefix.push(pool[i].clone());
                extend(prefix, pool, used, min, max, out);
                prefix.pop();
                used[i] = false;
            }
        }
    }
    extend(&mut Vec::new(), &distinct, &mut vec![false; distinct.len()], min, max, &mut arrays);
    // Only arrays: other instance types stay as the rest of the schema allows them.
    push_all_of(obj, json!({ "anyOf": [{ "type": ["null", "boolean", "number", "string", "object"] }, { "enum": arrays }] }));
    Ok(())
}

/// `propertyNames`: names are strings, so `{}`/`true`/`{"type": "string"}` say nothing; a
/// list of names (`enum`/`const`) becomes the object's only allowed properties; a `pattern`
/// (or length bounds) becomes the only `patternProperties` with the additional properties'
/// schema, listed properties whose names do not match it becoming absent. Others: refused.
fn property_names(obj: &mut Map<String, Value>, names: Value, eval: &Evaluator) -> std::result::Result<(), String> {
    let trivial = |m: &Map<String, Value>| m.iter().all(|(k, v)| (k == "type" && v == "string") || !VALIDATION.contains(&k.as_str()));
    // A `$ref` alone: what it names.
    let mut names = names;
    for _ in 0..8 {
        let Some(target) = names.get("$ref").and_then(Value::as_str).and_then(|r| resolve(eval.root(), r)) else { break };
        if names.as_object().is_some_and(|m| m.keys().filter(|k| VALIDATION.contains(&k.as_str())).count() == 1) {
            names = target.clone();
        } else {
            break;
        }
    }
    match &names {
        Value::Bool(true) => return Ok(()),
        Value::Object(m) if trivial(m) => return Ok(()),
        _ => {}
    }
    if let Some(pattern) = names_pattern(&names) {
        return names_matching(obj, &pattern, eval);
    }
    let listed: Vec<String> = match &names {
        Value::Object(m) => match (m.get("enum"), m.get("const")) {
            (Some(Value::Array(e)), None) if m.len() <= 2 && m.keys().all(|k| k == "enum" || k == "type") => {
                e.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
            }
            (None, Some(Value::String(c))) if m.len() <= 2 && m.keys().all(|k| k == "const" || k == "type") => vec![c.clone()],
            _ => return Err("other than a list of names, a pattern or length bounds".into()),
        },
        Value::Bool(false) => Vec::new(), // no property at all
        _ => return Err("other than a list of names, a pattern or length bounds".into()),
    };
    if obj.contains_key("patternProperties") {
        return Err("with patternProperties".into());
    }
    let additional = obj.remove("additionalProperties").unwrap_or(Value::Bool(true));
    let props = obj.entry("properties").or_insert_with(|| json!({})).as_object_mut().ok_or("with properties that are not an object")?;
    for (name, s) in props.iter_mut() {
        if !listed.contains(name) {
            *s = Value::Bool(false);
        }
    }
    for name in &listed {
        props.entry(name.clone()).or_insert_with(|| additional.clone());
    }
    obj.insert("additionalProperties".into(), Value::Bool(false));
    Ok(())
}

/// The one regular expression a `propertyNames` schema of `pattern` or of `minLength` /
/// `maxLength` (not both kinds) amounts to, with an optional `"type": "string"`.
fn names_pattern(names: &Value) -> Option<String> {
    let m = names.as_object()?;
    let mut pattern = None;
    let (mut min, mut max) = (None, None);
    for (k, v) in m {
        match k.as_str() {
            "type" if v == "string" => {}
            "pattern" => pattern = Some(v.as_str()?.to_string()),
            "minLength" => min = Some(v.as_u64()?),
            "maxLength" => max = Some(v.as_u64()?),
            k if !VALIDATION.contains(&k) => {}
            _ => return None,
        }
    }
    match (pattern, min, max) {
        (Some(p), None, None) => Some(p),
        (None, None, None) => None,
        (None, min, max) => Some(format!("^[\\s\\S]{{{},{}}}$", min.unwrap_or(0), max.map(|m| m.to_string()).unwrap_or_default())),
        _ => None,
    }
}

/// Property names restricted to those `pattern` matches: as the only `patternProperties`
/// (carrying what `additionalProperties` said), with `additionalProperties: false`. Exact
/// when no listed property that matches would then also take the additional schema.
fn names_matching(obj: &mut Map<String, Value>, pattern: &str, eval: &Evaluator) -> std::result::Result<(), String> {
    if obj.contains_key("patternProperties") {
        return Err("with a pattern beside patternProperties".into());
    }
    let additional = obj.remove("additionalProperties").unwrap_or(Value::Bool(true));
    let matches = |name: &str| eval.bytes().accepts(json!({ "type": "string", "pattern": pattern }), &Value::from(name));
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, s) in props.iter_mut() {
            match matches(name) {
                Some(true) if additional != Value::Bool(true) && additional != json!({}) => {
                    return Err("with a pattern, additionalProperties and a listed property the pattern matches".into())
                }
                Some(true) => {}
                Some(false) => *s = Value::Bool(false),
                None => return Err("with a pattern the engine cannot compile".into()),
            }
        }
    }
    obj.insert("patternProperties".into(), json!({ pattern: additional }));
    obj.insert("additionalProperties".into(), Value::Bool(false));
    Ok(())
}

/// JSON Schema equality: numbers by value (1 == 1.0), everything else structurally.
pub(super) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w))),
        _ => a == b,
    }
}

/// A schema matching exactly the instances `s` does not match, built from keywords the
/// engine enforces; or the keyword that makes that impossible.
pub(crate) fn negate(s: &Value, root: &Value) -> std::result::Result<Value, String> {
    negate_at(s, root, 0)
}

/// `negate` `depth` schemas down (through `allOf`/`anyOf`/`properties`/`$ref`): a recursive
/// schema has no finite negation.
fn negate_at(s: &Value, root: &Value, depth: usize) -> std::result::Result<Value, String> {
    if depth > 16 {
        return Err("schemas nested too deep (a recursive \"$ref\")".into());
    }
    let obj = match s {
        Value::Bool(b) => return Ok(Value::Bool(!b)),
        Value::Object(o) => o,
        _ => return Err("a value that is not a schema".into()),
    };
    // Keywords validate independently except within these groups.
    let mut groups: Vec<Map<String, Value>> = Vec::new();
    let mut object_group = Map::new();
    let mut array_group = Map::new();
    for (k, v) in obj {
        let key = k.as_str();
        // Annotations, identifiers and unknown names constrain nothing.
        if !VALIDATION.contains(&key) && !matches!(key, "$dynamicRef" | "$recursiveRef") {
            continue;
        }
        match key {
            "properties" | "patternProperties" | "additionalProperties" => {
                object_group.insert(k.clone(), v.clone());
            }
            "items" | "prefixItems" | "additionalItems" => {
                array_group.insert(k.clone(), v.clone());
            }
            _ => {
                let mut g = Map::new();
                g.insert(k.clone(), v.clone());
                groups.push(g);
            }
        }
    }
    if !object_group.is_empty() {
        groups.push(object_group);
    }
    if !array_group.is_empty() {
        groups.push(array_group);
    }
    // not (A and B and …) = (not A) or (not B) or …
    let mut branches = groups.iter().map(|g| negate_group(g, root, depth)).collect::<std::result::Result<Vec<_>, _>>()?;
    branches.retain(|b| *b != Value::Bool(false));
    Ok(match branches.len() {
        0 => Value::Bool(false),
        1 => branches.pop().expect("one"),
        _ => json!({ "anyOf": branches }),
    })
}

const TYPES: [&str; 6] = ["null", "boolean", "string", "number", "array", "object"];

fn negate_group(g: &Map<String, Value>, root: &Value, depth: usize) -> std::result::Result<Value, String> {
    if g.len() > 1 {
        // The object or array group: negated only in its simplest form, one `properties`.
        return match (g.get("properties"), g.len()) {
            (Some(p), _) if g.len() == 1 => negate_properties(p, root, depth),
            _ => Err(format!("{:?} together", g.keys().collect::<Vec<_>>())),
        };
    }
    let (k, v) = g.iter().next().expect("one keyword");
    let typed = |t: &str, mut m: Map<String, Value>| {
        m.insert("type".into(), Value::from(t));
        Value::Object(m)
    };
    let one = |k: &str, v: Value| {
        let mut m = Map::new();
        m.insert(k.into(), v);
        m
    };
    let n = || v.as_f64().ok_or_else(|| format!("\"{k}\" that is not a number"));
    let count = || v.as_u64().ok_or_else(|| format!("\"{k}\" that is not a count"));
    Ok(match k.as_str() {
        "type" => {
            let listed: Vec<&str> = match v {
                Value::String(t) => vec![t.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => return Err("\"type\" that is not a name".into()),
            };
            if listed.contains(&"integer") && !listed.contains(&"number") {
                return Err("\"type\": \"integer\" (numbers that are not integers)".into());
            }
            let rest: Vec<&str> = TYPES.iter().copied().filter(|t| !listed.contains(t)).collect();
            if rest.is_empty() {
                Value::Bool(false)
            } else {
                json!({ "type": rest })
            }
        }
        "enum" => not_one_of(v.as_array().ok_or("\"enum\" that is not a list")?)?,
        "const" => not_one_of(std::slice::from_ref(v))?,
        "required" => {
            let names = v.as_array().ok_or("\"required\" that is not a list")?;
            if names.is_empty() {
                Value::Bool(false)
            } else {
                // An object without one of them (non-objects satisfy `required`).
                let absent: Vec<Value> = names.iter().map(|n| json!({ "properties": { n.as_str().unwrap_or(""): false } })).collect();
                json!({ "type": "object", "anyOf": absent })
            }
        }
        "properties" => negate_properties(v, root, depth)?,
        // What it names, negated (local references only).
        "$ref" => {
            let target = v.as_str().and_then(|r| resolve(root, r)).ok_or("a \"$ref\" that is not local")?;
            negate_at(target, root, depth + 1)?
        }
        "minimum" => typed("number", one("exclusiveMaximum", Value::from(n()?))),
        "maximum" => typed("number", one("exclusiveMinimum", Value::from(n()?))),
        "exclusiveMinimum" if v.is_number() => typed("number", one("maximum", Value::from(n()?))),
        "exclusiveMaximum" if v.is_number() => typed("number", one("minimum", Value::from(n()?))),
        "minLength" | "minItems" | "minProperties" => {
            let (t, max) = match k.as_str() {
                "minLength" => ("string", "maxLength"),
                "minItems" => ("array", "maxItems"),
                _ => ("object", "maxProperties"),
            };
            match count()? {
                0 => Value::Bool(false),
                c => typed(t, one(max, Value::from(c - 1))),
            }
        }
        "maxLength" | "maxItems" | "maxProperties" => {
            let (t, min) = match k.as_str() {
                "maxLength" => ("string", "minLength"),
                "maxItems" => ("array", "minItems"),
                _ => ("object", "minProperties"),
            };
            typed(t, one(min, Value::from(count()? + 1)))
        }
        "allOf" => {
            let parts = v.as_array().ok_or("\"allOf\" that is not a list")?;
            json!({ "anyOf": parts.iter().map(|p| negate_at(p, root, depth + 1)).collect::<std::result::Result<Vec<_>, _>>()? })
        }
        "anyOf" => {
            let parts = v.as_array().ok_or("\"anyOf\" that is not a list")?;
            json!({ "allOf": parts.iter().map(|p| negate_at(p, root, depth + 1)).collect::<std::result::Result<Vec<_>, _>>()? })
        }
        "not" => v.clone(),
        "format" if !v.as_str().is_some_and(|f| FORMATS.contains(&f)) => Value::Bool(false), // an annotation
        other => return Err(format!("\"{other}\"")),
    })
}

/// not {properties: {p: S, …}}: an object with some listed property present and not
/// matching its schema.
fn negate_properties(p: &Value, root: &Value, depth: usize) -> std::result::Result<Value, String> {
    let props = p.as_object().ok_or("\"properties\" that is not an object")?;
    let mut branches = Vec::new();
    for (name, s) in props {
        let not_s = negate_at(s, root, depth + 1)?;
        if not_s != Value::Bool(false) {
            branches.push(json!({ "type": "object", "required": [name], "properties": { name: not_s } }));
        }
    }
    Ok(match branches.len() {
        0 => Value::Bool(false),
        1 => branches.pop().expect("one"),
        _ => json!({ "anyOf": branches }),
    })
}

/// Every instance except the listed values, by type: other strings through a pattern that
/// matches every string but these, numbers through the intervals between them.
fn not_one_of(values: &[Value]) -> std::result::Result<Value, String> {
    let mut branches = Vec::new();
    if !values.iter().any(Value::is_null) {
        branches.push(json!({ "type": "null" }));
    }
    let bools: Vec<Value> = [false, true].into_iter().filter(|b| !values.contains(&Value::Bool(*b))).map(Value::Bool).collect();
    if !bools.is_empty() {
        branches.push(json!({ "enum": bools }));
    }
    let strings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    if strings.is_empty() {
        branches.push(json!({ "type": "string" }));
    } else {
        branches.push(json!({ "type": "string", "pattern": complement_pattern(&strings) }));
    }
    let mut numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    numbers.sort_by(f64::total_cmp);
    numbers.dedup();
    if numbers.is_empty() {
        branches.push(json!({ "type": "number" }));
    } else {
        let mut intervals = vec![json!({ "exclusiveMaximum": numbers[0] })];
        for w in numbers.windows(2) {
            intervals.push(json!({ "exclusiveMinimum": w[0], "exclusiveMaximum": w[1] }));
        }
        intervals.push(json!({ "exclusiveMinimum": numbers[numbers.len() - 1] }));
        branches.push(json!({ "type": "number", "anyOf": intervals }));
    }
    if values.iter().any(|v| v.is_array() || v.is_object()) {
        return Err("a list of values with arrays or objects in it".into());
    }
    branches.push(json!({ "type": ["array", "object"] }));
    Ok(json!({ "anyOf": branches }))
}

/// A regular expression matching every string except `words`: a trie of the words, and at
/// each node either the end (when no word ends there), a character no word continues with
/// followed by anything, or a word's next character followed by what follows it.
pub(crate) fn complement_pattern(words: &[&str]) -> String {
    #[derive(Default)]
    struct Node {
        end: bool,
        next: Vec<(char, Node)>,
    }
    let mut root = Node::default();
    for w in words {
        let mut n = &mut root;
        for c in w.chars() {
            let i = match n.next.iter().position(|(d, _)| *d == c) {
                Some(i) => i,
                None => {
                    n.next.push((c, Node::default()));
                    n.next.len() - 1
                }
            };
            n = &mut n.next[i].1;
        }
        n.end = true;
    }
    fn literal(c: char) -> String {
        let mut buf = [0u8; 4];
        regex_escape(c.encode_utf8(&mut buf))
    }
    fn regex(n: &Node) -> String {
        if n.next.is_empty() {
            // A word ends here and none goes on: any longer string differs (no word at all:
            // every string).
            return if n.end { "(?s:.)+" } else { "(?s:.)*" }.into();
        }
        let mut alts = Vec::new();
        let class: String = n.next.iter().map(|(c, _)| literal(*c)).collect();
        alts.push(format!("[^{class}](?s:.)*"));
        for (c, child) in &n.next {
            alts.push(format!("{}{}", literal(*c), regex(child)));
        }
        let body = alts.join("|");
        if n.end {
            format!("(?:{body})")
        } else {
            format!("(?:{body})?")
        }
    }
    format!("^{}$", regex(&root))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `oneOf` (exactly one branch) is `anyOf` (at least one) when no instance can match two
/// branches: renamed where that is shown pairwise ([`disjoint`]), refused otherwise.
fn one_of_to_any_of(v: &mut Value, root: &Value, bytes: &ByteGrammar, at: &mut String, report: &mut Report) -> Result<()> {
    let Some(obj) = v.as_object_mut() else { return Ok(()) };
    if let Some(branches) = obj.get("oneOf").and_then(Value::as_array) {
        let n = branches.len();
        // The branches' siblings hold for every instance (e.g. `"type": "object"`).
        let context = obj.get("type").map(|t| json!({ "type": t })).unwrap_or(Value::Bool(true));
        // Where two branches may overlap, each keeps its instances that the other does not
        // match: oneOf [A, B] = anyOf [A and not B, B and not A] (with `not` as above).
        let mut exclusive: Vec<Value> = branches.clone();
        for i in 0..n {
            for j in 0..n {
                if i != j && !disjoint(&branches[i], &branches[j], &context, root, bytes) {
                    if n > 8 {
                        return Err(unsupported(at, format!("\"oneOf\" with branches {i} and {j} that may both match")));
                    }
                    let not_j = negate(&branches[j], root)
                        .map_err(|what| unsupported(at, format!("\"oneOf\" with branches {i} and {j} that may both match, {j} with {what}")))?;
                    exclusive[i] = json!({ "allOf": [exclusive[i].take(), not_j] });
                }
            }
        }
        obj.remove("oneOf");
        push_any_of(obj, Value::Array(exclusive));
        report.rewritten.push(format!("oneOf at {}", here(at)));
    }
    let len = at.len();
    for (k, sub) in obj.iter_mut() {
        let key = k.as_str();
        if !VALIDATION.contains(&key) && !OTHER_KEYWORDS.contains(&key) {
            continue;
        }
        at.push('/');
        at.push_str(&escape(key));
        if SCHEMA_VALUED.contains(&key) || key == "items" && sub.is_object() {
            one_of_to_any_of(sub, root, bytes, at, report)?;
        } else if SCHEMA_LISTS.contains(&key) || key == "items" {
            for (i, s) in sub.as_array_mut().into_iter().flatten().enumerate() {
                let l = at.len();
                at.push_str(&format!("/{i}"));
                one_of_to_any_of(s, root, bytes, at, report)?;
                at.truncate(l);
            }
        } else if SCHEMA_MAPS.contains(&key) {
            for (name, s) in sub.as_object_mut().into_iter().flatten() {
                let l = at.len();
                at.push('/');
                at.push_str(&escape(name));
                one_of_to_any_of(s, root, bytes, at, report)?;
                at.truncate(l);
            }
        }
        at.truncate(len);
    }
    Ok(())
}

/// Add the branches as an `anyOf`: beside an existing one, both must hold.
fn push_any_of(obj: &mut Map<String, Value>, branches: Value) {
    if obj.contains_key("anyOf") {
        push_all_of(obj, json!({ "anyOf": branches }));
    } else {
        obj.insert("anyOf".into(), branches);
    }
}

/// What a schema says for certain about its instances, from its own keywords, its `allOf`
/// members, single-branch `anyOf`s and local `$ref` targets.
#[derive(Default)]
struct Facts {
    /// The JSON types an instance can have (None: any); "integer" within "number".
    types: Option<Vec<&'static str>>,
    /// The only values an instance can be (`const`/`enum`).
    values: Option<Vec<Value>>,
    required: Vec<String>,
    /// Property name → its schemas.
    properties: Vec<(String, Value)>,
    /// Properties that cannot be present (`false` schemas, or not listed in a closed object).
    forbidden: Vec<String>,
    /// additionalProperties false, no patternProperties: only `properties` may be present.
    closed: bool,
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether an instance of type `t` (a `type` name) can be one of type `u`.
fn types_meet(t: &str, u: &str) -> bool {
    t == u || matches!((t, u), ("integer", "number") | ("number", "integer"))
}

fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    root.pointer(&local_target(r)?)
}

fn facts(s: &Value, root: &Value, depth: usize) -> Facts {
    let mut f = Facts::default();
    if depth > 16 {
        return f;
    }
    let Some(obj) = s.as_object() else {
        if *s == Value::Bool(false) {
            f.types = Some(Vec::new());
        }
        return f;
    };
    let merge = |f: &mut Facts, g: Facts| {
        f.types = match (f.types.take(), g.types) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|t| b.iter().any(|u| types_meet(t, u))).collect()),
            (a, b) => a.or(b),
        };
        if f.values.is_none() {
            f.values = g.values;
        }
        f.required.extend(g.required);
        f.properties.extend(g.properties);
        f.forbidden.extend(g.forbidden);
        f.closed |= g.closed;
    };
    let types: Option<Vec<&'static str>> = match obj.get("type") {
        Some(Value::String(t)) => ["null", "boolean", "integer", "number", "string", "array", "object"].into_iter().find(|n| n == t).map(|n| vec![n]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|t| ["null", "boolean", "integer", "number", "string", "array", "object"].into_iter().find(|n| *n == t))
                .collect(),
        ),
        _ => None,
    };
    f.types = types;
    f.values = match (obj.get("const"), obj.get("enum")) {
        (Some(c), _) => Some(vec![c.clone()]),
        (None, Some(Value::Array(e))) => Some(e.clone()),
        _ => None,
    };
    if let Some(values) = &f.values {
        let value_types: Vec<&'static str> = values.iter().map(type_of).collect();
        let g = Facts { types: Some(value_types), ..Default::default() };
        merge(&mut f, g);
    }
    f.required = obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            if *p == Value::Bool(false) {
                f.forbidden.push(name.clone());
            } else {
                f.properties.push((name.clone(), p.clone()));
            }
        }
    }
    f.closed = obj.get("additionalProperties") == Some(&Value::Bool(false)) && !obj.contains_key("patternProperties");
    if let Some(r) = obj.get("$ref").and_then(Value::as_str).and_then(|r| resolve(root, r)) {
        let g = facts(r, root, depth + 1);
        merge(&mut f, g);
    }
    for member in obj.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        let g = facts(member, root, depth + 1);
        merge(&mut f, g);
    }
    for k in ["anyOf", "oneOf"] {
        match obj.get(k).and_then(Value::as_array).map(Vec::as_slice) {
            Some([only]) => {
                let g = facts(only, root, depth + 1);
                merge(&mut f, g);
            }
            // Several branches: an instance has one of their types.
            Some(branches) if !branches.is_empty() => {
                let mut types: Vec<&'static str> = Vec::new();
                for b in branches {
                    match facts(b, root, depth + 1).types {
                        Some(t) => types.extend(t),
                        None => return f,
                    }
                }
                merge(&mut f, Facts { types: Some(types), ..Default::default() });
            }
            _ => {}
        }
    }
    f
}

impl Facts {
    fn forbids(&self, name: &str) -> bool {
        self.forbidden.iter().any(|n| n == name) || (self.closed && !self.properties.iter().any(|(n, _)| n == name))
    }
}

/// Whether no instance can match both `a` and `b` (conservative: `false` when unsure).
/// Shown by: no common type; no common listed value; or a property one requires that the
/// other forbids or constrains to values the first excludes (a discriminator); or else by
/// the compiler finding their intersection empty (disjoint patterns, bounds…).
fn disjoint(a: &Value, b: &Value, context: &Value, root: &Value, bytes: &ByteGrammar) -> bool {
    let within = |s: &Value| facts(&json!({ "allOf": [s, context] }), root, 0);
    let (fa, fb) = (within(a), within(b));
    if facts_disjoint(&fa, &fb, root, 0) {
        return true;
    }
    // Asked inside the document (its definitions for `$ref`s), as the document's draft.
    let mut both = Map::new();
    for (k, x) in root.as_object().into_iter().flatten() {
        if !VALIDATION.contains(&k.as_str()) {
            both.insert(k.clone(), x.clone());
        }
    }
    both.insert("allOf".into(), json!([a, b, context]));
    bytes.proves_empty(Value::Object(both))
}

fn facts_disjoint(fa: &Facts, fb: &Facts, root: &Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    if let (Some(ta), Some(tb)) = (&fa.types, &fb.types) {
        if !ta.iter().any(|t| tb.iter().any(|u| types_meet(t, u))) {
            return true;
        }
    }
    if let (Some(va), Some(vb)) = (&fa.values, &fb.values) {
        if !va.iter().any(|x| vb.iter().any(|y| json_equal(x, y))) {
            return true;
        }
    }
    // Only objects have properties: the property rules hold when both are objects, and a
    // non-object instance matches a schema with `required` trivially, so they need `type`.
    let objects_only = |f: &Facts| f.types.as_ref().is_some_and(|t| t.iter().all(|t| *t == "object"));
    for (x, y) in [(fa, fb), (fb, fa)] {
        if !objects_only(x) && !objects_only(y) {
            continue;
        }
        for name in &x.required {
            if y.forbids(name) {
                return true;
            }
            for (_, px) in x.properties.iter().filter(|(n, _)| n == name) {
                for (_, py) in y.properties.iter().filter(|(n, _)| n == name) {
                    if facts_disjoint(&facts(px, root, 0), &facts(py, root, 0), root, depth + 1) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// A `$ref` chain that comes back to where it started without the output growing in between
/// (`{"$ref": "#"}`, or `a` → `b` → `a` through `$ref` and `allOf`): a schema that demands
/// itself, which no value matches. The pointers around the cycle, the first repeated at the
/// end. Local references only.
pub fn ref_cycle(root: &Value) -> Option<Vec<String>> {
    // Every schema in the document, by JSON pointer, with the schemas it applies in place.
    let mut edges: Vec<(String, Vec<String>)> = Vec::new();
    collect_in_place(root, String::new(), &mut edges);
    let index: std::collections::HashMap<&str, usize> = edges.iter().enumerate().map(|(i, (p, _))| (p.as_str(), i)).collect();
    // Depth-first search with colours: 0 unseen, 1 on the path, 2 done.
    let mut colour = vec![0u8; edges.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(i: usize, edges: &[(String, Vec<String>)], index: &std::collections::HashMap<&str, usize>, colour: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<String>> {
        colour[i] = 1;
        path.push(i);
        for next in &edges[i].1 {
            let Some(&j) = index.get(next.as_str()) else { continue };
            if colour[j] == 1 {
                let start = path.iter().position(|&k| k == j).expect("on the path");
                let mut cycle: Vec<String> = path[start..].iter().map(|&k| here(&edges[k].0).to_string()).collect();
                cycle.push(here(&edges[j].0).to_string());
                return Some(cycle);
            }
            if colour[j] == 0 {
                if let Some(c) = visit(j, edges, index, colour, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        colour[i] = 2;
        None
    }
    (0..edges.len()).find_map(|i| if colour[i] == 0 { visit(i, &edges, &index, &mut colour, &mut path) } else { None })
}

/// The pointer a local `$ref` names (`#`, `#/a/b`; percent-escapes decoded).
pub(super) fn local_target(r: &str) -> Option<String> {
    let fragment = r.strip_prefix('#')?.as_bytes();
    let mut out = Vec::with_capacity(fragment.len());
    let mut i = 0;
    while i < fragment.len() {
        let hex = fragment.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (fragment[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    (out.is_empty() || out.starts_with('/')).then_some(out)
}

fn collect_in_place(v: &Value, at: String, edges: &mut Vec<(String, Vec<String>)>) {
    let Some(obj) = v.as_object() else { return };
    let mut next = Vec::new();
    if let Some(t) = obj.get("$ref").and_then(Value::as_str).and_then(local_target) {
        next.push(t);
    }
    // Every member of an allOf applies; an anyOf/oneOf with one member is that member
    // (with more, another member may be a way out).
    for k in ["allOf", "anyOf", "oneOf"] {
        let n = obj.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        if k == "allOf" || n == 1 {
            for i in 0..n {
                next.push(format!("{at}/{k}/{i}"));
            }
        }
    }
    edges.push((at.clone(), next));
    for (k, sub) in obj {
        let key = k.as_str();
        let child = format!("{at}/{}", escape(key));
        if SCHEMA_VALUED.contains(&key) || key == "items" && sub.is_object() {
            collect_in_place(sub, child, edges);
        } else if SCHEMA_LISTS.contains(&key) || key == "items" {
            for (i, s) in sub.as_array().into_iter().flatten().enumerate() {
                collect_in_place(s, format!("{child}/{i}"), edges);
            }
        } else if SCHEMA_MAPS.contains(&key) || key == "dependencies" {
            for (name, s) in sub.as_object().into_iter().flatten() {
                collect_in_place(s, format!("{child}/{}", escape(name)), edges);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_values_are_folded_and_misspellings_inside_still_refused() {
        let mut s = json!({"allOf": [{"enum": [[1, 2], [3]]}, {"not": {"not": {"contains": {"const": 3}}}}], "$defs": {"a": {}}});
        let report = prepare(&mut s).unwrap();
        assert_eq!(s, json!({"enum": [[3]], "$defs": {"a": {}}}));
        assert_eq!(report.rewritten, vec!["listed values checked at /"]);
        // Nothing left: unsatisfiable, as llguidance will say.
        let mut s = json!({"properties": {"p": {"enum": ["a"], "not": {"const": "a"}}}});
        prepare(&mut s).unwrap();
        assert_eq!(s, json!({"properties": {"p": {"allOf": [false]}}}));
        let mut s = json!({"enum": [1], "not": {"maximun": 3}});
        let e = prepare(&mut s).unwrap_err().to_string();
        assert!(e.contains("did you mean \"maximum\"") && e.contains("at /not"), "{e}");
    }

    #[test]
    fn property_names_by_pattern_become_the_only_pattern_property() {
        let mut s = json!({"type": "object", "properties": {"ab": {"type": "integer"}, "A1": {}}, "propertyNames": {"$ref": "#/$defs/name"},
                           "$defs": {"name": {"type": "string", "pattern": "^[a-z]+$"}}});
        prepare(&mut s).unwrap();
        assert_eq!(s["properties"], json!({"ab": {"type": "integer"}, "A1": false}));
        assert_eq!(s["patternProperties"], json!({"^[a-z]+$": true}));
        assert_eq!(s["additionalProperties"], json!(false));
        let mut s = json!({"type": "object", "propertyNames": {"maxLength": 3}, "additionalProperties": {"type": "string"}});
        prepare(&mut s).unwrap();
        assert_eq!(s["patternProperties"], json!({"^[\\s\\S]{0,3}$": {"type": "string"}}));
        // The additional schema would reach a listed property the pattern matches: refused.
        let mut s = json!({"properties": {"ab": {}}, "propertyNames": {"pattern": "^a"}, "additionalProperties": {"type": "string"}});
        assert!(prepare(&mut s).unwrap_err().to_string().contains("propertyNames"));
    }

    #[test]
    fn one_of_branches_the_compiler_shows_disjoint_become_any_of() {
        let mut s = json!({"oneOf": [{"type": "string", "pattern": "^-?[0-9]+/[0-9]+$"}, {"type": "string", "pattern": "^0x[0-9a-f]+$"}]});
        prepare(&mut s).unwrap();
        assert!(s.get("oneOf").is_none() && s["anyOf"].as_array().unwrap().len() == 2, "{s}");
        // Patterns that overlap ("ab" matches both), and a `pattern` has no negation here.
        let mut s = json!({"oneOf": [{"type": "string", "pattern": "a"}, {"type": "string", "pattern": "b"}]});
        assert!(prepare(&mut s).is_err(), "{s}");
    }

    #[test]
    fn not_of_a_ref_negates_what_it_names() {
        let root = json!({"$defs": {"s": {"type": "string"}, "loop": {"anyOf": [{"type": "null"}, {"properties": {"next": {"$ref": "#/$defs/loop"}}}]}}});
        assert_eq!(negate(&json!({"$ref": "#/$defs/s"}), &root).unwrap(), json!({"type": ["null", "boolean", "number", "array", "object"]}));
        assert!(negate(&json!({"$ref": "#/$defs/loop"}), &root).unwrap_err().contains("recursive"));
        assert!(negate(&json!({"$ref": "other.json#/a"}), &root).unwrap_err().contains("not local"));
    }

    #[test]
    fn number_ranges_the_grammar_would_widen_are_refused() {
        // Found by fuzzing: `not` of [0.5, 0] made the interval (0, 0.5), whose grammar admits 0.
        for schema in [
            json!({"not": {"enum": ["ab", 0.5, 0]}}),
            json!({"type": "number", "exclusiveMinimum": 1, "maximum": 1.5}),
            json!({"allOf": [{"exclusiveMinimum": 0}, {"anyOf": [{"maximum": 0.5}, {"type": "string"}]}]}),
            json!({"exclusiveMinimum": -0.5, "exclusiveMaximum": 0}),
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 2, "exclusiveMinimum": true, "maximum": 2.5}),
        ] {
            let mut s = schema.clone();
            let e = prepare(&mut s).unwrap_err().to_string();
            assert!(e.contains("number range"), "{schema}: {e}");
        }
        for schema in [
            json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
            json!({"type": "number", "minimum": 0, "maximum": 0.5}),
            json!({"type": "number", "exclusiveMinimum": 0.2, "exclusiveMaximum": 0.5}),
            json!({"not": {"enum": [0, 2]}}),
        ] {
            let mut s = schema.clone();
            prepare(&mut s).unwrap_or_else(|e| panic!("{schema}: {e}"));
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("maximun", "maximum"), 1);
        assert_eq!(edit_distance("minLenght", "minLength"), 2);
        assert_eq!(edit_distance("requried", "required"), 2);
        assert_eq!(edit_distance("minlength", "minLength"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn near_misses_are_errors_and_other_names_are_ignored() {
        for (schema, hint) in [
            (json!({"type": "integer", "maximun": 3}), "maximum"),
            (json!({"type": "string", "minLenght": 3}), "minLength"),
            (json!({"type": "object", "requried": ["a"]}), "required"),
        ] {
            let mut s = schema;
            let e = prepare(&mut s).unwrap_err().to_string();
            assert!(e.contains(&format!("did you mean \"{hint}\"")), "{e}");
        }
        for schema in [
            json!({"type": "string", "x-kubernetes-int-or-string": true, "javaType": "Foo", "example": "a"}),
            json!({"type": "object", "note": "a comment", "_format": "date", "markdownDescription": "x"}),
            json!({"type": "integer", "maximal": "not a number"}),
        ] {
            let mut s = schema.clone();
            prepare(&mut s).unwrap_or_else(|e| panic!("{schema}: {e}"));
        }
    }

    #[test]
    fn the_complement_pattern_matches_all_but_the_words() {
        let words = ["ab", "a", "b.c", "", "x|y", "日本"];
        let re = regex::Regex::new(&complement_pattern(&words)).unwrap();
        for w in words {
            assert!(!re.is_match(w), "{w:?} matched {re}");
        }
        for other in ["b", "abc", "aa", "b.cd", "bxc", "x", "x|", "y", "日", "日本語", "\n", " a", "A"] {
            assert!(re.is_match(other), "{other:?} did not match {re}");
        }
        let none = regex::Regex::new(&complement_pattern(&[])).unwrap();
        assert!(none.is_match("") && none.is_match("anything"));
    }

    #[test]
    fn dependencies_become_dependent_required_and_schemas() {
        let mut s = json!({"type": "object", "dependencies": {"a": ["b"], "c": {"required": ["d"]}}});
        let r = prepare(&mut s).unwrap();
        assert!(s.get("dependencies").is_none());
        assert_eq!(s["allOf"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(r.rewritten.len(), 2);
    }

    #[test]
    fn ref_cycles_are_found() {
        assert_eq!(ref_cycle(&json!({"$ref": "#"})), Some(vec!["/".to_string(), "/".to_string()]));
        let s = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"});
        assert_eq!(ref_cycle(&s).unwrap(), ["/$defs/a", "/$defs/b", "/$defs/b/allOf/0", "/$defs/a"]);
        // Recursion through a property is a tree, not a cycle.
        assert_eq!(ref_cycle(&json!({"type": "object", "properties": {"child": {"$ref": "#"}}})), None);
    }

    #[test]
    fn negation_of_the_common_forms() {
        assert_eq!(negate(&json!({"type": "string"}), &Value::Null).unwrap(), json!({"type": ["null", "boolean", "number", "array", "object"]}));
        assert_eq!(negate(&json!({}), &Value::Null).unwrap(), json!(false));
        assert!(negate(&json!({"pattern": "a"}), &Value::Null).is_err());
        assert!(negate(&json!({"type": "integer"}), &Value::Null).is_err());
        let r = negate(&json!({"required": ["a", "b"]}), &Value::Null).unwrap();
        assert_eq!(r["anyOf"].as_array().unwrap().len(), 2);
    }
}
