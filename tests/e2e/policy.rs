//! Policy: the built-in component evaluating policy.toml denies by registry, size, uid 0
//! and volume source; hostile policy components fail closed.

use std::path::Path;

use crate::registry::Registry;
use crate::support::{Root, fixtures, layout_arg};

const HOSTILE_POLICY: &str = env!("BERTH_HOSTILE_POLICY");

/// Write a policy file into the store's parent directory; return its path.
fn policy_file(root: &Root, text: &str) -> String {
    let path = root.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn audit_lines(root: &Root) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.path().join("policy.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_registry_outside_allowed_registries_is_denied_before_fetch() {
    let f = fixtures();
    let reg = Registry::start();
    reg.push(&f.layout, "single", "app:v1", "oci");
    let root = Root::new();
    let denying = policy_file(&root, "[limits]\nallowed-registries = [\"registry.lan:5000\"]\n");
    let point = format!("oci://{}/app:v1", reg.addr);
    let (code, _, err) = root.run(&["--policy", &denying, "fetch", &point]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not in allowed-registries") && err.contains("before-fetch"), "{err}");
    assert!(root.blob_names().is_empty());
    // Every enforced decision is logged with the policy component's digest.
    let audit = audit_lines(&root);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["allow"], false);
    assert!(audit[0]["policy"].as_str().unwrap().starts_with("sha256:"));

    let allowing = policy_file(&root, &format!("[limits]\nallowed-registries = [\"{}\"]\n", reg.addr));
    let fetched = root.json(&["--policy", &allowing, "fetch", &point]);
    assert!(fetched["manifest"].as_str().unwrap().starts_with("sha256:"));
    let stages: Vec<String> = audit_lines(&root)[1..].iter().map(|l| l["stage"].as_str().unwrap().into()).collect();
    assert_eq!(stages, ["before-fetch", "after-resolve"]);
}

#[test]
fn an_image_over_max_image_size_is_denied_after_resolve_and_nothing_stays() {
    let f = fixtures();
    let root = Root::new();
    let policy = policy_file(&root, "[limits]\nmax-image-size = \"100KiB\"\n");
    let (code, _, err) = root.run(&["--policy", &policy, "fetch", &layout_arg(&f.layout, "multi")]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("over max-image-size 102400") && err.contains("after-resolve"), "{err}");
    assert!(root.blob_names().is_empty(), "{:?}", root.blob_names());
    assert_eq!(root.image_count(), 0);
    root.assert_fsck_clean();
    // A reject rule for a layout directory, matched by path scope.
    let scope = f.layout.display().to_string();
    let policy =
        policy_file(&root, &format!("[[rule]]\nkind = \"oci-layout\"\nscope = \"{scope}\"\naction = \"reject\"\n"));
    let (code, _, err) = root.run(&["--policy", &policy, "fetch", &layout_arg(&f.layout, "single")]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("rejects"), "{err}");
}

#[test]
fn running_as_root_and_forbidden_volumes_are_denied_before_run() {
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "single");
    root.ok(&["fetch", &point]);
    let policy =
        policy_file(&root, "[limits]\nforbid-root = true\nforbidden-volume-sources = [\"/etc\", \"/var/run\"]\n");
    let eval = |extra: &[&str]| {
        let mut args = vec!["--json", "--policy", &policy, "policy", "eval", "--run"];
        args.extend_from_slice(extra);
        args.push(&point);
        let (code, out, err) = root.run(&args);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        (code, v)
    };
    // The image has no configured user: it would run as root.
    let (code, v) = eval(&[]);
    assert_eq!(code, 4);
    let run = v["decisions"].as_array().unwrap().iter().find(|d| d["stage"] == "before-run").unwrap();
    assert!(run["reasons"][0].as_str().unwrap().contains("uid 0"), "{v}");
    assert_eq!(v["decisions"].as_array().unwrap().len(), 3, "before-fetch, after-resolve (stored), before-run");

    let (code, v) = eval(&["--user", "1000", "--volume", "/srv/data:/data"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = eval(&["--user", "1000", "--volume", "/var/run/docker.sock:/sock:ro"]);
    assert_eq!(code, 4);
    assert!(v.to_string().contains("volume source /var/run/docker.sock is forbidden"), "{v}");
    // A dry run is not an enforced decision: nothing in the audit log.
    assert!(audit_lines(&root).is_empty());
}

#[test]
fn a_hostile_policy_fails_closed() {
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "single");
    for (behaviour, reason) in [("loop", "ran out of fuel"), ("hog", "memory"), ("panic", "trapped")] {
        let config = policy_file(&root, behaviour);
        let (code, _, err) = root.run(&["--policy", &config, "--policy-component", HOSTILE_POLICY, "fetch", &point]);
        assert_eq!(code, 4, "{behaviour}: {err}");
        assert!(err.contains("the policy failed, so it denies") && err.contains(reason), "{behaviour}: {err}");
        assert!(root.blob_names().is_empty());
    }
    // The same component, behaving, allows; the fetch then works.
    let config = policy_file(&root, "behave");
    root.ok(&["--policy", &config, "--policy-component", HOSTILE_POLICY, "fetch", &point]);
    root.assert_fsck_clean();
}

#[test]
fn a_policy_component_with_more_imports_than_log_is_refused() {
    // A wasip2 component imports WASI (here: the hostile *handler*): not a pure policy.
    let root = Root::new();
    let handler = Path::new(env!("BERTH_HOSTILE_HANDLER")).display().to_string();
    let config = policy_file(&root, "");
    let (code, _, err) = root.run(&[
        "--policy",
        &config,
        "--policy-component",
        &handler,
        "fetch",
        &layout_arg(&fixtures().layout, "single"),
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("may import only berth:policy/log") && err.contains("wasi:"), "{err}");
}

#[test]
fn a_policy_file_that_does_not_parse_denies_everything() {
    let root = Root::new();
    let config = policy_file(&root, "[limits]\nmax-image-size = \"big\"\n");
    let (code, _, err) = root.run(&["--policy", &config, "fetch", &layout_arg(&fixtures().layout, "single")]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("max-image-size \"big\" is not a size"), "{err}");
}
