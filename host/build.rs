//! Embed the built-in handler components in the host binary.

use std::fmt::Write;

/// (cimd type, crate) of each built-in handler.
const BUILTIN: &[(&str, &str)] =
    &[("oci-layout", "berth-handler-oci-layout"), ("docker", "berth-handler-docker"), ("oci", "berth-handler-oci")];

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
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_handlers.rs");
    std::fs::write(out, code).unwrap();
}
