//! Embed the built-in handler components and the default policy in the host binary.

use std::fmt::Write;

/// (cimd type, crate) of each built-in handler.
const BUILTIN: &[(&str, &str)] = &[
    ("oci-layout", "berth-handler-oci-layout"),
    ("docker", "berth-handler-docker"),
    ("oci", "berth-handler-oci"),
    ("aci-archive", "berth-handler-aci-archive"),
    ("appc", "berth-handler-appc"),
];

fn main() {
    let crates: Vec<&str> = BUILTIN.iter().map(|(_, krate)| *krate).collect();
    let files = berth_wasm_build::build_components(&crates);
    let mut code = String::from(
        "/// Built-in handlers: (cimd type, component bytes).\npub const BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for ((kind, _), file) in BUILTIN.iter().zip(files) {
        writeln!(code, "    ({kind:?}, include_bytes!({:?})),", file.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("builtin_handlers.rs"), code).unwrap();

    let policy = &berth_wasm_build::build_pure_components(&["berth-policy-default"])[0];
    let code = format!(
        "/// The default policy component (evaluates policy.toml).\npub const DEFAULT_POLICY: &[u8] = include_bytes!({:?});\n",
        policy.display().to_string()
    );
    std::fs::write(out_dir.join("default_policy.rs"), code).unwrap();
}
