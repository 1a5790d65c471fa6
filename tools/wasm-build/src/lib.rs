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

/// Build `packages` (cdylib crates of this workspace) in release mode for wasm32-wasip2
/// and return the path of each component, in order.
pub fn build_components(packages: &[&str]) -> Vec<PathBuf> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let workspace = find_workspace_root(&manifest_dir);
    for dir in ["wit", "handlers", "tests/hostile", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let target_dir = workspace.join("target").join("wasm-components");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args(["build", "--release", "--target", TARGET, "--target-dir"]).arg(&target_dir);
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
             run `rustup target add {TARGET}` (or `just setup`)"
        );
    }
    packages
        .iter()
        .map(|p| {
            let file = target_dir.join(TARGET).join("release").join(format!("{}.wasm", p.replace('-', "_")));
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
