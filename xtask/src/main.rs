//! Project tasks. `cargo xtask build`: the component (wasm32-wasip2 + simd128) and the CLI.
//! `cargo xtask bench`: the side-by-side benchmark (bench/run.mjs) with everything it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("component") => build_component().map(|_| ()),
        Some("component-relaxed") => build_relaxed(),
        Some("bench") => bench(&args[1..]),
        Some("schema-bench") => schema_bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask build      # component + target/release/edgeslm");
            eprintln!("       cargo xtask component  # the component only");
            eprintln!("       cargo xtask component-relaxed");
            eprintln!("                              # target/release/edgeslm-component-relaxed.wasm: relaxed-simd kernels");
            eprintln!("       cargo xtask bench [--runs N] [--models gemma,smollm2] [--only a,b]");
            eprintln!("                              # edgeslm vs llama.cpp vs wllama → bench/results/");
            eprintln!("       cargo xtask schema-bench [--maskbench DIR] [--test-suite DIR] [--out F.md] [--time-masks]");
            eprintln!("                              # JSON Schema coverage (MaskBench, JSON-Schema-Test-Suite)");
            std::process::exit(2)
        }
    }
}

/// The schema benchmark (tests/examples/schema_bench.rs), natively in release.
fn schema_bench(args: &[String]) -> Result<()> {
    let mut all = vec!["run", "--release", "-p", "edgeslm-tests", "--example", "schema-bench", "--"];
    all.extend(args.iter().map(String::as_str));
    cargo(&all)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(args).current_dir(root()).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Build both components and place them beside the CLI: target/release/edgeslm-component.wasm
/// (portable, world `runtime`) and edgeslm-component-nn.wasm (world `runtime-nn`, the
/// forward pass through the host's wasi:nn). Two cargo runs: one build would unify features.
fn build_component() -> Result<PathBuf> {
    let out_dir = root().join("target/release");
    std::fs::create_dir_all(&out_dir)?;
    let built = root().join("target/wasm32-wasip2/component/edgeslm_component.wasm");
    let mut portable = None;
    for (features, name) in [(None, "edgeslm-component.wasm"), (Some("wasi-nn"), "edgeslm-component-nn.wasm")] {
        eprintln!("xtask: building {name} (wasm32-wasip2, simd128{})", features.map(|f| format!(", {f}")).unwrap_or_default());
        let mut args = vec!["build", "-p", "edgeslm-component", "--target", "wasm32-wasip2", "--profile", "component"];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        cargo(&args)?;
        let out = out_dir.join(name);
        std::fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
        let size = std::fs::metadata(&out)?.len();
        println!("component: {} ({} bytes, {:.2} MiB)", out.display(), size, size as f64 / (1024.0 * 1024.0));
        portable.get_or_insert(out);
    }
    eprintln!("xtask: building edgeslm-service.wasm (wasm32-wasip2, simd128; world service)");
    cargo(&["build", "-p", "edgeslm-service", "--target", "wasm32-wasip2", "--profile", "component"])?;
    let out = out_dir.join("edgeslm-service.wasm");
    std::fs::copy(root().join("target/wasm32-wasip2/component/edgeslm_service.wasm"), &out)?;
    let size = std::fs::metadata(&out)?.len();
    println!("component: {} ({} bytes, {:.2} MiB)", out.display(), size, size as f64 / (1024.0 * 1024.0));
    // The Spin composition example: a user's HTTP component importing edgeslm:runtime, which
    // `wac plug` joins to the portable component (examples/http-service/compose/).
    cargo(&["build", "-p", "edgeslm-compose-example", "--target", "wasm32-wasip2", "--profile", "component"])?;
    std::fs::copy(
        root().join("target/wasm32-wasip2/component/edgeslm_compose_example.wasm"),
        out_dir.join("edgeslm-compose-example.wasm"),
    )?;
    Ok(portable.unwrap())
}

/// The portable component with the engine's relaxed-simd kernels (same results; validates only
/// on hosts with relaxed-simd): target/release/edgeslm-component-relaxed.wasm, for `--component`.
fn build_relaxed() -> Result<()> {
    eprintln!("xtask: building edgeslm-component-relaxed.wasm (wasm32-wasip2, simd128, relaxed-simd)");
    cargo(&["build", "-p", "edgeslm-component", "--target", "wasm32-wasip2", "--profile", "component", "--features", "relaxed-simd"])?;
    let out = root().join("target/release/edgeslm-component-relaxed.wasm");
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::copy(root().join("target/wasm32-wasip2/component/edgeslm_component.wasm"), &out)?;
    let size = std::fs::metadata(&out)?.len();
    println!("component: {} ({} bytes, {:.2} MiB)", out.display(), size, size as f64 / (1024.0 * 1024.0));
    Ok(())
}

fn build() -> Result<()> {
    build_component()?;
    eprintln!("xtask: building the CLI");
    cargo(&["build", "--release", "-p", "edgeslm-host", "--bin", "edgeslm"])?;
    println!("cli: {}", root().join("target/release/edgeslm").display());
    Ok(())
}

/// Build every runner, install the peers (npm, from bench/package-lock.json), run bench/run.mjs.
fn bench(args: &[String]) -> Result<()> {
    build()?;
    eprintln!("xtask: building the benchmark runners");
    cargo(&["build", "--release", "-p", "edgeslm-host", "--bin", "edgeslm-bench"])?;
    cargo(&["build", "--release", "-p", "edgeslm-engine", "--example", "bench_runner"])?;
    let npm_install = |dir: &str| -> Result<()> {
        if root().join(dir).join("node_modules").exists() {
            return Ok(());
        }
        eprintln!("xtask: npm install in {dir} (from its package-lock.json)");
        run(Command::new("npm").args(["install", "--no-audit", "--no-fund"]).current_dir(root().join(dir)))
    };
    npm_install("host-js")?;
    npm_install("bench")?;
    // The browser rows (wllama, the component in Chromium) use Debian's Chromium.
    if !Path::new("/usr/bin/chromium").exists() && std::env::var_os("CHROMIUM").is_none() {
        eprintln!("xtask: installing Debian's chromium for the browser rows (apt-get)");
        let sudo = if is_root() { vec![] } else { vec!["sudo"] };
        let apt = |args: &[&str]| {
            let mut argv: Vec<&str> = sudo.clone();
            argv.extend_from_slice(args);
            run(Command::new(argv[0]).args(&argv[1..]).env("DEBIAN_FRONTEND", "noninteractive"))
        };
        apt(&["apt-get", "update", "-qq"])?;
        apt(&["apt-get", "install", "-y", "-qq", "chromium"])?;
    }
    run(Command::new("node").arg("build.mjs").current_dir(root().join("host-js")))?;
    run(Command::new("node").arg("bench/run.mjs").args(args).current_dir(root()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

/// Whether this process runs as root (uid 0), read from /proc on Linux.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
