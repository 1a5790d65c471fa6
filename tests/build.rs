//! Build the hostile handler component the sandbox tests load.

fn main() {
    let files = berth_wasm_build::build_components(&["berth-hostile-handler", "berth-example-http-tar"]);
    println!("cargo:rustc-env=BERTH_HOSTILE_HANDLER={}", files[0].display());
    println!("cargo:rustc-env=BERTH_EXAMPLE_HTTP_TAR={}", files[1].display());
    let policies = berth_wasm_build::build_pure_components(&["berth-hostile-policy"]);
    println!("cargo:rustc-env=BERTH_HOSTILE_POLICY={}", policies[0].display());
}
