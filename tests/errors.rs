//! The one error table: the engine's `ErrorCode` list is the WIT enum, docs/errors.md and
//! host-js's code map; and an error reaches the host through the component with the same
//! code and the same message the native engine gives for the same input.

use edgeslm_engine::{error::table_markdown, ClassifyOptions, Constraint, ErrorCode, GenerateOptions, Instance, Model};
use edgeslm_host::{ClassifyOptions as WitClassifyOptions, Constraint as WitConstraint, GenerateOptions as WitGenerateOptions, Host};
use edgeslm_tests::{bad_model_files, model_path, root, SMOLLM2};

/// The cases of `enum error-code` in wit/runtime.wit, in order.
fn wit_codes() -> Vec<String> {
    let wit = std::fs::read_to_string(root().join("wit/runtime.wit")).unwrap();
    let body = wit.split("enum error-code {").nth(1).expect("wit/runtime.wit has no enum error-code").split('}').next().unwrap();
    body.lines().map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty() && !l.starts_with("//")).map(str::to_string).collect()
}

#[test]
fn the_wit_enum_is_the_engine_table() {
    let engine: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    // Same names, same order: hosts map a WIT code to the engine's by its position.
    assert_eq!(wit_codes(), engine);
}

#[test]
fn docs_list_every_code() {
    let docs = std::fs::read_to_string(root().join("docs/errors.md")).unwrap();
    assert!(docs.contains(&table_markdown()), "docs/errors.md is out of date; its table must be:\n{}", table_markdown());
}

#[test]
fn host_js_maps_every_code() {
    let js = std::fs::read_to_string(root().join("host-js/src/errors.js")).unwrap();
    for c in ErrorCode::ALL {
        let key = c.as_str();
        assert!(js.contains(&format!("\"{key}\":")) || js.contains(&format!("\n  {key}:")), "host-js/src/errors.js has no class for {key}");
    }
}

/// The same bad inputs natively (engine `Instance`) and through the component: same code, same line.
#[test]
fn component_errors_are_the_engines() {
    let host = Host::new(&root().join("target/release/edgeslm-component.wasm")).unwrap();
    let path = model_path(SMOLLM2);
    let mut s = host.instantiate(Some(path.parent().unwrap())).unwrap();
    let m = s.load(&path).unwrap().unwrap();
    let mut native = Instance::new(Model::open(path.to_str().unwrap()).unwrap());

    let mut seen = Vec::new();
    let mut check = |what: &str, native: edgeslm_engine::Error, wit: edgeslm_host::WitError| {
        assert_eq!(wit.code(), native.code().as_str(), "{what}");
        assert_eq!(wit.message(), native.to_string(), "{what}");
        assert!(!wit.message().contains('\n'), "{what}: multi-line message");
        seen.push(native.code());
    };

    let n = |o: GenerateOptions| o;
    let bad_temp = n(GenerateOptions { sampler: edgeslm_engine::SamplerConfig::with(Some(-1.0), None, None, None), ..Default::default() });
    let wit_bad_temp = WitGenerateOptions { temperature: Some(-1.0), ..Default::default() };
    check("negative temperature", native.generate("hi", &bad_temp).unwrap_err(), s.generate(m, "hi", &wit_bad_temp).unwrap().unwrap_err());

    let long = "word ".repeat(9000);
    check("context overflow", native.generate(&long, &GenerateOptions::default()).unwrap_err(), s.generate(m, &long, &WitGenerateOptions::default()).unwrap().unwrap_err());

    check("detokenize", native.detokenize(&[u32::MAX]).unwrap_err(), s.detokenize(m, &[u32::MAX]).unwrap().unwrap_err());

    let one: Vec<String> = vec!["only".into()];
    check(
        "one label",
        native.classify("x", &one, &ClassifyOptions::default()).unwrap_err(),
        s.classify(m, "x", &one, &WitClassifyOptions { instruction: None, examples: vec![], calibrate: None }).unwrap().unwrap_err(),
    );

    let constraints = [
        ("invalid schema", Constraint::JsonSchema("{".into()), WitConstraint::JsonSchema("{".into())),
        ("invalid regex", Constraint::Regex("(".into()), WitConstraint::Regex("(".into())),
        ("invalid grammar", Constraint::Grammar("start: (".into()), WitConstraint::Grammar("start: (".into())),
    ];
    for (what, c, w) in constraints {
        let o = GenerateOptions { max_tokens: 8, ..Default::default() };
        let wo = WitGenerateOptions { max_tokens: Some(8), ..Default::default() };
        check(what, native.generate_constrained("x", &c, &o).unwrap_err(), s.generate_constrained(m, "x", &w, &wo).unwrap().unwrap_err());
    }
    // Forty digits cannot come out of two tokens.
    let (c, w) = (Constraint::Regex("[0-9]{40}".into()), WitConstraint::Regex("[0-9]{40}".into()));
    let o = GenerateOptions { max_tokens: 2, ..Default::default() };
    let wo = WitGenerateOptions { max_tokens: Some(2), ..Default::default() };
    check("truncated", native.generate_constrained("x", &c, &o).unwrap_err(), s.generate_constrained(m, "x", &w, &wo).unwrap().unwrap_err());

    for want in [
        ErrorCode::InvalidOption,
        ErrorCode::ContextOverflow,
        ErrorCode::InvalidLabels,
        ErrorCode::InvalidSchema,
        ErrorCode::InvalidRegex,
        ErrorCode::InvalidGrammar,
        ErrorCode::OutputTruncated,
    ] {
        assert!(seen.contains(&want), "no case gave {want}: {seen:?}");
    }
    // And the instance still answers.
    let g = s.generate(m, "The capital of France is", &WitGenerateOptions { max_tokens: Some(4), ..Default::default() }).unwrap();
    assert!(g.is_ok());
}

/// The CLI's schema errors are one line: a file that is not UTF-8 (no usage text after it),
/// a `$ref` cycle (no parser state), a misspelt keyword (with its hint).
#[test]
fn cli_schema_errors_are_one_line() {
    let dir = std::env::temp_dir().join(format!("edgeslm-schema-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("not-utf8.json", b"{\"type\": \"\xff\"}", "is not UTF-8 text (invalid byte at offset 10)"),
        ("cycle.json", br##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##, "$ref cycle"),
        ("typo.json", br#"{"type": "integer", "maximun": 3}"#, "did you mean \"maximum\""),
    ];
    for (name, bytes, expect) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new(root().join("target/release/edgeslm"))
            .args(["generate", "--quiet", "--model", model_path(SMOLLM2).to_str().unwrap(), "--schema", path.to_str().unwrap(), "x"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(expect), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every code of the table through the CLI, on both backends: one bad input each, one line
/// on stderr (the engine's message, whose start names the code), exit status 1, no usage
/// text.
#[test]
fn every_code_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("edgeslm-every-code-{}", std::process::id()));
    let mut cases: Vec<(ErrorCode, Vec<String>, &str)> = bad_model_files(&dir)
        .into_iter()
        .map(|(code, file, says)| (code, vec!["tokenize".into(), "--model".into(), file.display().to_string(), "hi".into()], says))
        .collect();
    let file = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name).display().to_string()
    };
    let smol = model_path(SMOLLM2).display().to_string();
    let gen = |extra: &[&str]| {
        let mut a: Vec<String> = ["generate", "--model", &smol].iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let long = "word ".repeat(9000);
    cases.extend([
        (ErrorCode::ContextOverflow, gen(&[&long]), "context overflow: "),
        (ErrorCode::InvalidOption, gen(&["--temperature", "-1", "hi"]), "invalid option: "),
        (ErrorCode::InvalidLabels, vec!["classify".into(), "--model".into(), smol.clone(), "--labels".into(), "only".into(), "x".into()], "invalid labels: "),
        (ErrorCode::InvalidSchema, gen(&["--schema", &file("bad.json", "{\"type\": "), "x"]), "invalid JSON schema: "),
        (ErrorCode::UnsupportedSchema, gen(&["--schema", &file("typo.json", r#"{"type": "integer", "maximun": 3}"#), "x"]), "unsupported JSON schema: "),
        (ErrorCode::InvalidRegex, gen(&["--regex", "(", "x"]), "invalid regex: "),
        (ErrorCode::InvalidGrammar, gen(&["--grammar", &file("bad.lark", "start: ("), "x"]), "invalid grammar: "),
        (
            ErrorCode::ConstraintUnsatisfiable,
            gen(&["--schema", &file("impossible.json", r#"{"type": "string", "minLength": 5, "maxLength": 2}"#), "x"]),
            "constraint cannot be satisfied: ",
        ),
        (ErrorCode::OutputTruncated, gen(&["--regex", "[0-9]{40}", "--max-tokens", "2", "x"]), "output truncated: "),
    ]);
    let covered: Vec<ErrorCode> = cases.iter().map(|c| c.0).collect();
    for code in ErrorCode::ALL {
        assert!(covered.contains(code), "no CLI case for {code}");
    }
    for backend in ["portable", "wasi-nn"] {
        for (code, args, says) in &cases {
            let out = std::process::Command::new(root().join("target/release/edgeslm"))
                .args(args)
                .args(["--quiet", "--backend", backend])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("{code} ({backend})");
            assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
            assert!(stderr.starts_with(&format!("edgeslm: error: {says}")), "{what}: {stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
