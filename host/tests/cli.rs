//! The command line's contract, checked on the built binary: help that lists every
//! command, and exit codes that tell usage errors (2) from a missing image (3).
//!
//! Being an integration test of the `berth` package, this also makes `cargo test
//! --workspace` build `target/debug/berth` itself, with the same feature set as the
//! rest of the test build, so the end-to-end tests need no separate `cargo build`.

use std::process::Command;

fn berth(args: &[&str]) -> std::process::Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_berth")).env("BERTH_ROOT", root.path()).args(args).output().unwrap()
}

#[test]
fn help_lists_every_command() {
    let out = berth(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["fetch", "image", "run", "bundle", "gc", "fsck", "login", "logout", "policy", "handler"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(command)), "`{command}` missing from:\n{help}");
    }
}

#[test]
fn a_usage_error_exits_2_and_says_what_is_wrong() {
    let out = berth(&["fetch", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn a_missing_image_exits_3_with_an_error_line() {
    let out = berth(&["image", "inspect", "sha256:0000"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("berth: "), "{}", String::from_utf8_lossy(&out.stderr));
}
