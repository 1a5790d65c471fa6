//! The guest side of `berth:handler`, shared by every handler component.
//!
//! The bindings are generated once, here, with a public export macro: a handler crate
//! implements [`exports::berth::handler::resolver::Guest`] and calls
//! `berth_guest::export_handler!(MyHandler);`. Helpers for what all image handlers do
//! (ingest and read blobs, build the image record) live beside them.

// The generated code names its runtime through this crate, for the handler crates.
extern crate self as berth_guest;

wit_bindgen::generate!({
    world: "cimd-handler",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_handler",
    default_bindings_module: "berth_guest",
    runtime_path: "berth_guest::wit_bindgen::rt",
});

pub use wit_bindgen;

pub mod blob;
pub mod image;

pub use berth::handler::types::Error;

/// Declare what a handler needs, as JSON in a `berth:grants` custom section of its
/// component (covered by its signature). berth grants the intersection of this, the
/// distribution point, and the policy. Fields: `scheme` (the `cimd` type served),
/// `network` (host patterns: `host`, `*.domain`, `*`), `local` (read the point's path),
/// `max-response-bytes`, `time-budget-ms`, `memory-bytes`.
///
/// ```ignore
/// berth_guest::declare_grants!(r#"{"scheme": "http-tar", "network": ["*"]}"#);
/// ```
#[macro_export]
macro_rules! declare_grants {
    ($json:literal) => {
        #[used]
        #[unsafe(link_section = "berth:grants")]
        static BERTH_GRANTS: [u8; $json.len()] = {
            let text = $json.as_bytes();
            let mut out = [0u8; $json.len()];
            let mut i = 0;
            while i < text.len() {
                out[i] = text[i];
                i += 1;
            }
            out
        };
    };
}
