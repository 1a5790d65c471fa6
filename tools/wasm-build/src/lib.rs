//! Compile workspace crates into wasm32-wasip2 components from a build script.
//!
//! The host embeds its built-in handlers and the tests load hostile ones; both need
//! components built for another target than their own. A nested `cargo build` with its
//! own target directory does it (as wasmtime's test-program artifacts do), so a plain
//! `cargo build`, `cargo test` or `cargo clippy` of the host needs no extra step.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// The target of *pure* components (policies): no WASI, so the component imports only
/// what its world names.
pub const PURE_TARGET: &str = "wasm32-unknown-unknown";

/// Build `packages` (cdylib crates of this workspace) in release mode for wasm32-wasip2
/// and return the path of each component, in order.
pub fn build_components(packages: &[&str]) -> Vec<PathBuf> {
    cargo_build(packages, TARGET)
}

/// Build `packages` for wasm32-unknown-unknown and turn each core module into a
/// component with the world wit-bindgen embedded in it. Such a component has no WASI
/// imports at all (std's OS calls are unsupported stubs there), which is what a policy
/// that must import nothing but `log` needs.
pub fn build_pure_components(packages: &[&str]) -> Vec<PathBuf> {
    cargo_build(packages, PURE_TARGET)
        .into_iter()
        .map(|module| {
            let bytes = std::fs::read(&module).unwrap_or_else(|e| panic!("reading {}: {e}", module.display()));
            let component = wit_component::ComponentEncoder::default()
                .module(&bytes)
                .and_then(|e| e.validate(true).encode())
                .unwrap_or_else(|e| panic!("making a component of {}: {e:?}", module.display()));
            let out = module.with_extension("component.wasm");
            std::fs::write(&out, component).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
            out
        })
        .collect()
}

fn cargo_build(packages: &[&str], target: &str) -> Vec<PathBuf> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let workspace = find_workspace_root(&manifest_dir);
    for dir in
        ["wit", "handlers", "policies", "examples", "tests/hostile", "tests/hostile-policy", "Cargo.lock", "Cargo.toml"]
    {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let target_dir = workspace.join("target").join("wasm-components");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args(["build", "--release", "--target", target, "--target-dir"]).arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer build's flags and wrappers (clippy's, coverage's) are for the host target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("could not start cargo to build wasm components");
    if !status.success() {
        panic!(
            "building the wasm components {packages:?} failed; if the target is missing, \
             run `rustup target add {target}` (or `just setup`)"
        );
    }
    packages
        .iter()
        .map(|p| {
            let file = target_dir.join(target).join("release").join(format!("{}.wasm", p.replace('-', "_")));
            assert!(file.exists(), "cargo did not produce {}", file.display());
            file
        })
        .collect()
}

fn find_workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]")))
        .expect("no workspace Cargo.toml above the crate")
        .to_path_buf()
}
