//! JSON Schemas as they come, through the constraint engine natively over Gemma's
//! vocabulary: the committed JSON-Schema-Test-Suite (draft 2020-12 and draft 7; MIT) and our
//! own cases of the keyword policy (tests/fixtures/schemas/edgeslm/policy.json). No invalid
//! instance may be accepted anywhere; our own cases pass or are refused exactly as they
//! say; the test suite's pass count may not fall below what was measured. The full runs
//! (MaskBench too) are `cargo xtask schema-bench`: bench/results/schemas.md.

use edgeslm_engine::{Instance, Model, Storage};
use edgeslm_tests::schema_suite::{self, Outcome, Tally};
use edgeslm_tests::*;

fn instance() -> Instance {
    let p = model_path(GEMMA);
    Instance::new(Model::load(Storage::open(p.to_str().unwrap()).unwrap()).unwrap())
}

fn fixtures() -> std::path::PathBuf {
    root().join("tests/fixtures/schemas")
}

#[test]
fn our_policy_cases_hold() {
    let mut inst = instance();
    let (cases, _) = schema_suite::test_suite_cases(&fixtures().join("edgeslm"), "https://json-schema.org/draft/2020-12/schema");
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let run = schema_suite::run(&mut inst, case, false);
        let ok = match (&case.refused, &run.outcome) {
            (Some(code), Outcome::Refused { code: got, .. }) => code == got,
            (None, Outcome::Passed) => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{}: {:?}", case.name, run.outcome));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// (directory, meta-schema, passing groups at least: measured when committed).
/// Groups passing when this was committed (bench/results/schemas.md).
const PASS_2020_12: usize = 200;
const PASS_7: usize = 174;
const SUITE: [(&str, &str, usize); 2] = [
    ("draft2020-12", "https://json-schema.org/draft/2020-12/schema", PASS_2020_12),
    ("draft7", "http://json-schema.org/draft-07/schema#", PASS_7),
];

#[test]
fn the_json_schema_test_suite_accepts_no_invalid_instance() {
    let mut inst = instance();
    for (draft, meta, floor) in SUITE {
        let (cases, _) = schema_suite::test_suite_cases(&fixtures().join("json-schema-test-suite").join(draft), meta);
        let mut tally = Tally::default();
        for case in &cases {
            let run = schema_suite::run(&mut inst, case, false);
            tally.add(case, &run);
        }
        let t = &tally.total;
        eprintln!("{draft}: {} groups, {} passed, {} refused, {} valid rejected, {} invalid accepted", t.cases, t.passed, t.refused, t.valid_rejected, t.invalid_accepted);
        assert!(tally.invalid_accepted.is_empty(), "{draft}: invalid instances accepted by {:?}", tally.invalid_accepted);
        assert!(t.passed >= floor, "{draft}: {} groups passed, fewer than the {floor} measured", t.passed);
    }
}
