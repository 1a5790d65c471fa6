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
    let commands =
        ["fetch", "image", "run", "bundle", "gc", "fsck", "login", "logout", "policy", "handler", "info", "system"];
    for command in commands.into_iter().chain(["completion"]) {
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

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = berth(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("berth") && script.contains("fetch") && script.contains("pull-policy"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = berth(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["berth.1", "berth-fetch.1", "berth-image-list.1", "berth-system-reset.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is a man page");
    }
}

#[test]
fn policy_help_documents_the_policy_file() {
    let out = berth(&["policy", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for key in ["[[rule]]", "scope", "signed-by", "allowed-registries", "max-image-size", "forbid-root"] {
        assert!(help.contains(key), "`{key}` missing from:\n{help}");
    }
}

#[test]
fn info_and_df_describe_a_store_that_does_not_exist_yet() {
    let out = berth(&["--json", "info"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["store_exists"], false, "{info}");
    let schemes: Vec<&str> = info["handlers"].as_array().unwrap().iter().filter_map(|h| h["scheme"].as_str()).collect();
    assert!(schemes.contains(&"docker") && schemes.contains(&"oci-layout"), "{info}");
    let out = berth(&["--json", "system", "df"]);
    assert!(out.status.success());
    let df: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(df["total"], 0, "{df}");
}
