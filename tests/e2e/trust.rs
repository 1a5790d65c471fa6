//! `berth trust`: appc signing keys added with review, listed, removed; exit codes.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::support::Root;

/// A GnuPG home with one ed25519 signing key; `None` (reason printed) without gpg.
fn gpg_key(dir: &std::path::Path) -> Option<(String, std::path::PathBuf)> {
    if Command::new("gpg").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!("skipping: gpg is not installed (`just setup` installs gnupg)");
        return None;
    }
    let home = dir.join("gnupg");
    std::fs::create_dir(&home).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    gpg(&["--quick-gen-key", "Release <release@example.com>", "ed25519", "sign", "never"]);
    let colons = String::from_utf8(gpg(&["--with-colons", "--fingerprint"])).unwrap();
    let fpr = colons.lines().find_map(|l| l.strip_prefix("fpr:")).unwrap().trim_matches(':').to_string();
    let file = dir.join("release.gpg");
    std::fs::write(&file, gpg(&["--armor", "--export", &fpr])).unwrap();
    let _ = Command::new("gpgconf").arg("--homedir").arg(&home).args(["--kill", "gpg-agent"]).status();
    Some((fpr, file))
}

/// Run berth with `input` on stdin; (exit code, stdout, stderr).
fn run_with_stdin(root: &Root, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = root.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn trust_reviews_lists_and_removes_appc_keys() {
    let root = Root::new();
    let Some((fpr, key)) = gpg_key(root.path()) else { return };
    let key = key.to_str().unwrap();

    // Declined at review: nothing is trusted, exit 4 (denied).
    let (code, _, err) = run_with_stdin(&root, &["trust", "--prefix", "example.com/app", key], "n\n");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("Trust this key for \"example.com/app\"? [y/N]"), "{err}");
    assert!(err.contains("Release <release@example.com>"), "{err}");
    assert_eq!(root.json(&["trust", "list"]), serde_json::json!([]));

    // Accepted from a pipe.
    let (code, out, err) = run_with_stdin(&root, &["--json", "trust", "--prefix", "example.com/app", key], "y\n");
    assert_eq!(code, 0, "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added[0]["fingerprint"], fpr.as_str());
    assert_eq!(added[0]["scope"], serde_json::json!({"kind": "prefix", "prefix": "example.com/app"}));
    assert!(root.path().join("trust/prefix.d/example.com%2Fapp").join(&fpr).is_file());

    root.ok(&["trust", "--root-key", "--skip-fingerprint-review", key]);
    let listed = root.json(&["trust", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["scope"]["kind"], "root");
    assert!(root.ok(&["trust", "list"]).contains(&fpr));

    let removed = root.json(&["trust", "rm", &fpr[24..], "--root-key"]);
    assert_eq!(removed[0]["scope"]["kind"], "root");
    let (code, _, err) = root.run(&["trust", "rm", &fpr, "--root-key"]);
    assert_eq!(code, 3, "{err}");
    root.ok(&["trust", "rm", &fpr]);
    assert_eq!(root.json(&["trust", "list"]), serde_json::json!([]));
}

#[test]
fn trust_refuses_what_it_cannot_do_with_the_documented_codes() {
    let root = Root::new();
    // Usage: a scope is required; --root-key needs a KEY; prefixes are appc names.
    assert_eq!(root.run(&["trust", "some.gpg"]).0, 2);
    assert_eq!(root.run(&["trust", "--root-key"]).0, 2);
    let (code, _, err) = root.run(&["trust", "--prefix", "Example.com/App", "--skip-fingerprint-review", "k.gpg"]);
    assert_eq!(code, 2, "{err}");
    // Plain HTTP needs --insecure-allow-http (refused before any connection).
    let (code, _, err) = root.run(&["trust", "--prefix", "example.com", "http://127.0.0.1:9/k.gpg"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("--insecure-allow-http"), "{err}");
    // A key file that is not a key.
    std::fs::write(root.path().join("junk.gpg"), "junk").unwrap();
    let junk = root.path().join("junk.gpg");
    let (code, _, err) = root.run(&["trust", "--root-key", "--skip-fingerprint-review", junk.to_str().unwrap()]);
    assert_eq!(code, 5, "{err}");
}
