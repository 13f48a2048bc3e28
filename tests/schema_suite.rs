//! JSON Schema test collections through the constraint engine: each case is a schema and
//! instances marked valid or invalid; an instance is accepted when the engine's grammar for
//! the schema accepts its compact serialisation (our grammar is compact JSON). Shared by the
//! `schema-bench` example (MaskBench and the full JSON-Schema-Test-Suite, outside CI) and
//! tests/schemas.rs (the committed sample, in CI).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use edgeslm_engine::{Constraint, Instance};
use serde_json::Value;

pub struct Case {
    /// Where it comes from: the file (and group), for the report.
    pub name: String,
    /// The collection's subset (MaskBench's source, the test suite's file).
    pub subset: String,
    pub schema: Value,
    /// (instance, whether it is valid).
    pub tests: Vec<(Value, bool)>,
    /// Our own cases: the error code the schema must be refused with.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Compiled; every valid instance accepted, every invalid one rejected.
    Passed,
    /// Not compiled: the error's code and a reason with the specifics taken out.
    Refused { code: String, reason: String, message: String },
    /// Compiled, invalid instances all rejected, some valid one rejected (too strict).
    ValidRejected { test: usize },
    /// Compiled and an invalid instance accepted: the guarantee broken.
    InvalidAccepted { test: usize },
}

pub struct Run {
    pub outcome: Outcome,
    /// Compile and check, ms.
    pub ms: f64,
    /// Mask computation times along the first valid instance, ms (when asked for).
    pub mask_ms: Vec<f64>,
}

pub fn run(inst: &mut Instance, case: &Case, time_masks: bool) -> Run {
    let t = Instant::now();
    let constraint = Constraint::JsonSchema(case.schema.to_string());
    let texts: Vec<String> = case.tests.iter().map(|(v, _)| serde_json::to_string(v).expect("JSON")).collect();
    let timed = if time_masks { case.tests.iter().position(|(_, valid)| *valid) } else { None };
    let checked = inst.check_instances(&constraint, &texts, timed);
    let (outcome, mask_ms) = match checked {
        Err(e) => {
            let message = e.to_string();
            (Outcome::Refused { code: e.code().as_str().to_string(), reason: reason(&message), message }, vec![])
        }
        Ok(checks) => {
            let bad = |want: bool| case.tests.iter().zip(&checks.accepted).position(|((_, valid), &acc)| *valid == want && acc != want);
            let outcome = match (bad(false), bad(true)) {
                (Some(test), _) => Outcome::InvalidAccepted { test },
                (None, Some(test)) => Outcome::ValidRejected { test },
                (None, None) => Outcome::Passed,
            };
            (outcome, checks.mask_ms)
        }
    };
    Run { outcome, ms: t.elapsed().as_secs_f64() * 1e3, mask_ms }
}

/// A refusal's message with what is particular to the schema taken out (where, names,
/// numbers), so that refusals group by cause.
pub fn reason(message: &str) -> String {
    let mut r = message.split(" at /").next().unwrap_or(message).to_string();
    if let Some(i) = r.find("(did you mean") {
        r.truncate(i);
    }
    if r.starts_with("unknown keyword") {
        return "unknown keyword (near miss of a validation keyword)".into();
    }
    let mut out = String::new();
    let mut in_digits = false;
    for c in r.chars().take(90) {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// MaskBench's `maskbench/data/*.json`: `{schema, tests: [{data, valid}]}`, the subset in
/// the file name (`Github_easy---o1001.json`, `Kubernetes---….json`, `BFCL_simple_3.json`).
pub fn maskbench_cases(dir: &Path) -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).collect();
    files.sort();
    let mut cases = Vec::new();
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let subset = match name.split_once("---") {
            Some((s, _)) => s.to_string(),
            None => name.trim_end_matches(".json").trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('_').split('_').next().unwrap_or("").to_string(),
        };
        let tests = v["tests"].as_array().map(|t| t.iter().map(|t| (t["data"].clone(), t["valid"].as_bool() == Some(true))).collect()).unwrap_or_default();
        cases.push(Case { name, subset, schema: v["schema"].clone(), tests, refused: None });
    }
    cases
}

/// The JSON-Schema-Test-Suite's `tests/<draft>/*.json` (not `optional/`): each group of a
/// file is a case. Schemas without `$schema` get the draft's, as the suite intends. Groups
/// whose schemas reach `http://localhost:1234` (the suite's remote-reference server) are
/// left out, and counted.
pub fn test_suite_cases(dir: &Path, meta_schema: &str) -> (Vec<Case>, usize) {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).collect();
    files.sort();
    let (mut cases, mut remote) = (Vec::new(), 0);
    for p in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let file = p.file_stem().unwrap().to_string_lossy().to_string();
        let groups: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for (i, g) in groups.into_iter().enumerate() {
            let mut schema = g["schema"].clone();
            if schema.to_string().contains("localhost:1234") {
                remote += 1;
                continue;
            }
            if let Some(o) = schema.as_object_mut() {
                o.entry("$schema").or_insert_with(|| Value::from(meta_schema));
            }
            let tests = g["tests"].as_array().unwrap().iter().map(|t| (t["data"].clone(), t["valid"].as_bool() == Some(true))).collect();
            let refused = g["refused"].as_str().map(str::to_string);
            cases.push(Case { name: format!("{file}#{i} {}", g["description"].as_str().unwrap_or("")), subset: file.clone(), schema, tests, refused });
        }
    }
    (cases, remote)
}

#[derive(Default, Debug, Clone)]
pub struct Counts {
    pub cases: usize,
    pub passed: usize,
    pub refused: usize,
    pub valid_rejected: usize,
    pub invalid_accepted: usize,
}

impl Counts {
    pub fn add(&mut self, o: &Outcome) {
        self.cases += 1;
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Refused { .. } => self.refused += 1,
            Outcome::ValidRejected { .. } => self.valid_rejected += 1,
            Outcome::InvalidAccepted { .. } => self.invalid_accepted += 1,
        }
    }
}

/// Everything a report says about one collection's run.
#[derive(Default)]
pub struct Tally {
    pub total: Counts,
    pub by_subset: BTreeMap<String, Counts>,
    /// "code: reason" → cases.
    pub reasons: BTreeMap<String, usize>,
    pub ms: Vec<f64>,
    pub mask_ms: Vec<f64>,
    /// Cases that accepted an invalid instance, by name (there should be none).
    pub invalid_accepted: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, case: &Case, run: &Run) {
        self.total.add(&run.outcome);
        self.by_subset.entry(case.subset.clone()).or_default().add(&run.outcome);
        match &run.outcome {
            Outcome::Refused { code, reason, .. } => *self.reasons.entry(format!("{code}: {reason}")).or_default() += 1,
            Outcome::InvalidAccepted { test } => self.invalid_accepted.push(format!("{} (test {test})", case.name)),
            _ => {}
        }
        self.ms.push(run.ms);
        self.mask_ms.extend_from_slice(&run.mask_ms);
    }

    /// The report's tables, Markdown.
    pub fn markdown(&self, title: &str) -> String {
        let mut s = format!("### {title}\n\n| subset | cases | passed | refused | valid rejected | invalid accepted |\n|---|---:|---:|---:|---:|---:|\n");
        let row = |name: &str, c: &Counts| format!("| {name} | {} | {} | {} | {} | {} |\n", c.cases, c.passed, c.refused, c.valid_rejected, c.invalid_accepted);
        for (name, c) in &self.by_subset {
            s += &row(name, c);
        }
        s += &row("**all**", &self.total);
        let mut reasons: Vec<_> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        s += "\nRefusals by reason:\n\n| cases | reason |\n|---:|---|\n";
        for (r, n) in reasons {
            s += &format!("| {n} | {} |\n", r.replace('|', "\\|"));
        }
        s += &format!("\nCompile and check per case: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.\n", pct(&self.ms, 50.0), pct(&self.ms, 99.0), pct(&self.ms, 100.0));
        if !self.mask_ms.is_empty() {
            s += &format!("Token masks ({} steps along the first valid instance of each compiled case): p50 {:.3} ms, p99 {:.3} ms.\n", self.mask_ms.len(), pct(&self.mask_ms, 50.0), pct(&self.mask_ms, 99.0));
        }
        s
    }
}

/// The `p`th percentile (nearest rank) of `v`.
pub fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}
