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
