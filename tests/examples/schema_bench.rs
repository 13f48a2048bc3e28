//! The schema benchmark: MaskBench's real-world schemas and the official
//! JSON-Schema-Test-Suite through the default mode of the constraint engine, with a report
//! of what passes, what is refused and why, and whether any invalid instance is accepted.
//!
//! `cargo xtask schema-bench [--maskbench DIR] [--test-suite DIR] [--model F] [--out F.md]
//! [--time-masks] [--outcomes F.jsonl]`
//! - `--maskbench`: a checkout's `maskbench/data` (github guidance-ai/jsonschemabench; it
//!   states no license, so none of its data is in this repository: only figures);
//! - `--test-suite`: a checkout of github json-schema-org/JSON-Schema-Test-Suite (its
//!   `tests/draft2020-12` and `tests/draft7`);
//! - `--model`: whose vocabulary the grammar is built over (default: Gemma 3 270M);
//! - `--time-masks`: also time the token mask along each case's first valid instance;
//! - `--outcomes`: one JSON line per case (name, outcome, message) for diagnosis.
use std::io::Write;
use std::path::PathBuf;

use edgeslm_engine::{Instance, Model, Storage};
use edgeslm_tests::schema_suite::{self, Case, Outcome, Tally};
use edgeslm_tests::{model_path, GEMMA};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let model = value("--model").map(PathBuf::from).unwrap_or_else(|| model_path(GEMMA));
    let time_masks = args.iter().any(|a| a == "--time-masks");
    let mut outcomes = value("--outcomes").map(|p| std::io::BufWriter::new(std::fs::File::create(p).expect("--outcomes file")));
    if value("--maskbench").is_none() && value("--test-suite").is_none() {
        eprintln!("usage: schema-bench [--maskbench DIR] [--test-suite DIR] [--model F] [--out F.md] [--time-masks] [--outcomes F.jsonl]");
        std::process::exit(2);
    }
    let storage = Storage::open(model.to_str().expect("a UTF-8 path")).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let mut inst = Instance::new(Model::load(storage).unwrap_or_else(|e| panic!("{}: {e}", model.display())));
    let mut report = format!(
        "Model vocabulary: {} ({} tokens). Instances serialised compactly. edgeslm {}.\n\n",
        model.file_name().unwrap().to_string_lossy(),
        inst.info().vocab_size,
        env!("CARGO_PKG_VERSION")
    );
    let mut collections: Vec<(String, Vec<Case>)> = Vec::new();
    if let Some(dir) = value("--maskbench") {
        collections.push(("MaskBench".into(), schema_suite::maskbench_cases(&PathBuf::from(dir))));
    }
    if let Some(dir) = value("--test-suite") {
        let dir = PathBuf::from(dir);
        for (draft, meta) in [("draft2020-12", "https://json-schema.org/draft/2020-12/schema"), ("draft7", "http://json-schema.org/draft-07/schema#")] {
            let (cases, remote) = schema_suite::test_suite_cases(&dir.join("tests").join(draft), meta);
            report += &format!("JSON-Schema-Test-Suite {draft}: {remote} groups need the suite's remote-reference server and were not run.\n\n");
            collections.push((format!("JSON-Schema-Test-Suite {draft}"), cases));
        }
    }
    for (title, cases) in &collections {
        let mut tally = Tally::default();
        let start = std::time::Instant::now();
        for (i, case) in cases.iter().enumerate() {
            let run = schema_suite::run(&mut inst, case, time_masks);
            if let Some(w) = outcomes.as_mut() {
                let (kind, message) = match &run.outcome {
                    Outcome::Passed => ("passed", String::new()),
                    Outcome::Refused { message, .. } => ("refused", message.clone()),
                    Outcome::ValidRejected { test } => ("valid-rejected", format!("test {test}")),
                    Outcome::InvalidAccepted { test } => ("invalid-accepted", format!("test {test}")),
                };
                let line = serde_json::json!({ "collection": title, "case": case.name, "outcome": kind, "message": message, "ms": run.ms });
                writeln!(w, "{line}").unwrap();
            }
            tally.add(case, &run);
            if (i + 1) % 500 == 0 {
                eprintln!("{title}: {}/{} cases, {} passed, {:.0} s", i + 1, cases.len(), tally.total.passed, start.elapsed().as_secs_f64());
            }
        }
        eprintln!("{title}: {} cases, {} passed, {} refused, {} valid rejected, {} invalid accepted ({:.0} s)", tally.total.cases, tally.total.passed, tally.total.refused, tally.total.valid_rejected, tally.total.invalid_accepted, start.elapsed().as_secs_f64());
        report += &tally.markdown(title);
        if !tally.invalid_accepted.is_empty() {
            report += &format!("\nCases that accepted an invalid instance: {}\n", tally.invalid_accepted.join(", "));
        }
        report += "\n";
    }
    match value("--out") {
        Some(p) => std::fs::write(&p, report).unwrap(),
        None => print!("{report}"),
    }
}
