//! Project tasks. `cargo xtask build`: the component (wasm32-wasip2 + simd128) and the CLI.
//! `cargo xtask bench`: the side-by-side benchmark (bench/run.mjs) with everything it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("demo-build") => build_demo(),
        Some("component") | Some("component-relaxed") => build_component().map(|_| ()),
        Some("bench") => bench(&args[1..]),
        Some("schema-bench") => schema_bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask build      # component + target/release/edgeslm");
            eprintln!("       cargo xtask demo-build # what scripts/demo runs: target/demo/edgeslm (no HTTP service) + the wasi-nn component");
            eprintln!("       cargo xtask component  # the components only (portable, wasi-nn, relaxed-simd; the service)");
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

/// Where cargo builds: $CARGO_TARGET_DIR or the workspace's target/.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).map_or_else(|| root().join("target"), |d| root().join(d))
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(args).current_dir(root()).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Build the components and place them beside the CLI: target/release/edgeslm-component.wasm
/// (portable, world `runtime`), edgeslm-component-nn.wasm (world `runtime-nn`, the forward
/// pass through the host's wasi:nn) and edgeslm-component-relaxed.wasm (portable, with the
/// relaxed-simd kernels). One cargo run each: one build would unify features.
fn build_component() -> Result<PathBuf> {
    let out_dir = target_dir().join("release");
    std::fs::create_dir_all(&out_dir)?;
    let built = target_dir().join("wasm32-wasip2/component/edgeslm_component.wasm");
    let mut portable = None;
    // The relaxed-simd build: the same results (its kernels are exact), faster 8-bit
    // products; hosts prefer it where their engine has relaxed-simd.
    let builds = [
        (None, "edgeslm-component.wasm"),
        (Some("wasi-nn"), "edgeslm-component-nn.wasm"),
        (Some("relaxed-simd"), "edgeslm-component-relaxed.wasm"),
    ];
    for (features, name) in builds {
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
    std::fs::copy(target_dir().join("wasm32-wasip2/component/edgeslm_service.wasm"), &out)?;
    let size = std::fs::metadata(&out)?.len();
    println!("component: {} ({} bytes, {:.2} MiB)", out.display(), size, size as f64 / (1024.0 * 1024.0));
    // The Spin composition example: a user's HTTP component importing edgeslm:runtime, which
    // `wac plug` joins to the portable component (examples/http-service/compose/).
    cargo(&["build", "-p", "edgeslm-compose-example", "--target", "wasm32-wasip2", "--profile", "component"])?;
    std::fs::copy(
        target_dir().join("wasm32-wasip2/component/edgeslm_compose_example.wasm"),
        out_dir.join("edgeslm-compose-example.wasm"),
    )?;
    Ok(portable.unwrap())
}

/// What `scripts/demo` needs and no more, for a first answer in minutes on a fresh machine:
/// the wasi-nn component and a CLI without the HTTP service (profile `demo`: no debug info),
/// both in target/demo/. `cargo xtask build` builds everything else.
fn build_demo() -> Result<()> {
    let out_dir = target_dir().join("demo");
    std::fs::create_dir_all(&out_dir)?;
    eprintln!("xtask: building edgeslm-component-nn.wasm (wasm32-wasip2, simd128, wasi-nn)");
    cargo(&["build", "-p", "edgeslm-component", "--target", "wasm32-wasip2", "--profile", "component", "--features", "wasi-nn"])?;
    std::fs::copy(
        target_dir().join("wasm32-wasip2/component/edgeslm_component.wasm"),
        out_dir.join("edgeslm-component-nn.wasm"),
    )?;
    eprintln!("xtask: building the CLI (profile demo, without the HTTP service)");
    cargo(&["build", "--profile", "demo", "-p", "edgeslm-host", "--no-default-features", "--bin", "edgeslm"])?;
    println!("cli: {}", out_dir.join("edgeslm").display());
    Ok(())
}

fn build() -> Result<()> {
    build_component()?;
    eprintln!("xtask: building the CLI");
    cargo(&["build", "--release", "-p", "edgeslm-host", "--bin", "edgeslm"])?;
    println!("cli: {}", target_dir().join("release/edgeslm").display());
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
