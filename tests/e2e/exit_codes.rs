//! Every exit code `berth --help` documents, reached through the binary the way a user
//! reaches it. Scripts branch on these codes; a change to one is a breaking change.

use wasmsign2::{KeyPair, Module};

use crate::support::{Root, fixtures, layout_arg, sha256_hex};

const HOSTILE_HANDLER: &str = env!("BERTH_HOSTILE_HANDLER");

/// The table in `berth --help`, as (code, first words of its line).
fn documented_codes() -> Vec<(i32, String)> {
    let root = Root::new();
    let help = root.ok(&["--help"]);
    let table = help.split("Exit codes:").nth(1).expect("--help lists the exit codes");
    table
        .lines()
        .skip(1) // the rest of the "Exit codes:" line
        .map_while(|l| {
            let l = l.trim();
            let (code, what) = l.split_once("  ")?;
            Some((code.parse().ok()?, what.trim().to_string()))
        })
        .collect()
}

fn assert_code(root: &Root, args: &[&str], expected: i32, why: &str) -> String {
    let (code, _, err) = root.run(args);
    assert_eq!(code, expected, "berth {args:?} ({why}) exited {code}: {err}");
    assert!(expected == 0 || err.starts_with("berth: ") || err.starts_with("error:"), "berth {args:?}: {err}");
    err
}

#[test]
fn every_documented_exit_code_is_reachable_and_means_what_help_says() {
    let f = fixtures();
    let root = Root::new();
    let work = tempfile::tempdir().unwrap();
    let mut reached = Vec::new();

    // 0: success.
    assert_code(&root, &["image", "list"], 0, "an empty store lists nothing");
    reached.push(0);

    // 1: an I/O error: the store root is a regular file.
    let file = work.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let err = assert_code(&root, &["--root", &file.display().to_string(), "image", "list"], 1, "store root is a file");
    assert!(err.contains("opening the store at"), "{err}");
    reached.push(1);

    // 2: usage: no image to run (the library's own check), and a flag clap refuses.
    let err = assert_code(&root, &["run"], 2, "run without an image");
    assert!(err.contains("give an image to run"), "{err}");
    assert_code(&root, &["--no-such-flag"], 2, "an unknown flag");
    reached.push(2);

    // 3: not found.
    let err = assert_code(&root, &["image", "inspect", "no-such-image"], 3, "an image never fetched");
    assert!(err.contains("no image matches"), "{err}");
    reached.push(3);

    // 4: denied by a policy, before anything is fetched.
    let policy = work.path().join("policy.toml");
    let scope = f.layout.display().to_string();
    std::fs::write(&policy, format!("[[rule]]\nkind = \"oci-layout\"\nscope = \"{scope}\"\naction = \"reject\"\n"))
        .unwrap();
    let single = layout_arg(&f.layout, "single");
    assert_code(&root, &["--policy", &policy.display().to_string(), "fetch", &single], 4, "a reject rule");
    assert!(root.blob_names().is_empty(), "a denied fetch stores nothing");
    reached.push(4);

    // 5: invalid image content: a layout whose index.json is not JSON.
    let broken = work.path().join("broken");
    crate::support::copy_layout(&f.layout, &broken);
    std::fs::write(broken.join("index.json"), b"{ not json").unwrap();
    assert_code(&root, &["fetch", &layout_arg(&broken, "single")], 5, "index.json is not JSON");
    reached.push(5);

    // 6: corrupt content: fsck finds a stored blob whose bytes changed.
    root.ok(&["fetch", &single]);
    let (alg, hex) = root.blob_names().into_iter().next().unwrap();
    let blob = root.path().join("blobs").join(&alg).join(&hex);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    // fsck reports on stdout: a finding is its result, not an error of the command.
    let (code, out, err) = root.run(&["fsck"]);
    assert_eq!(code, 6, "a flipped byte in a blob: {out}{err}");
    assert!(out.contains("corrupt blob"), "{out}");
    reached.push(6);

    // 7: a handler fault: a trusted drop-in that panics.
    let kp = KeyPair::generate();
    let module = Module::deserialize(&mut &std::fs::read(HOSTILE_HANDLER).unwrap()[..]).unwrap();
    let mut signed = Vec::new();
    kp.sk.sign(module, None).unwrap().serialize(&mut signed).unwrap();
    let component = work.path().join("hostile.wasm");
    std::fs::write(&component, &signed).unwrap();
    let key = work.path().join(format!("{}.pub", sha256_hex(&kp.pk.to_bytes())));
    std::fs::write(&key, kp.pk.to_pem()).unwrap();
    root.ok(&["handler", "trust", "--scheme", "hostile", &key.display().to_string()]);
    root.ok(&["handler", "add", &component.display().to_string()]);
    let err = assert_code(&root, &["fetch", "cimd:hostile:v=0:anything?ref=panic"], 7, "the handler panics");
    assert!(err.contains("crashed"), "{err}");
    reached.push(7);

    // 8: unavailable: nothing listens on the registry's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    assert_code(&root, &["fetch", &format!("docker://{addr}/app:v1")], 8, "no registry answers");
    reached.push(8);

    let documented: Vec<i32> = documented_codes().into_iter().map(|(c, _)| c).collect();
    assert_eq!(reached, documented, "every code `berth --help` documents is reached, and no other");
}
