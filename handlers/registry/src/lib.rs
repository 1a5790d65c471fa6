//! The OCI distribution protocol for the `docker` and `oci` handlers.
//!
//! The handler asks for manifests with `transport.request` (the host adds credentials,
//! follows the token flow, tries mirrors), stores each with `store.put` (the host hashes
//! and verifies it), chooses a platform from an index, and has the host stream config
//! and layers from `/v2/<name>/blobs/<digest>` into the store.
//!
//! It also finds the signatures a registry keeps beside an image (`signatures`).
//!
//! Glossary:
//! - *flavor*: `docker` applies Docker's naming defaults; `oci` is the plain spec.
//! - *reference*: `host[:port]/name[:tag][@digest]`.

mod reference;
mod resolve;
mod signatures;

pub use reference::{Flavor, Reference};
pub use resolve::resolve;
pub use signatures::attached;

/// The `signatures` export beside `berth-guest`'s resolver: the two worlds merge into
/// `registry-handler` when the component is made. A handler crate implements
/// [`bindings::exports::berth::handler::signatures::Guest`] and calls
/// `berth_registry::bindings::export_signatures!(MyHandler);`.
pub mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package berth:registry-guest;

            world signatures-export {
                export berth:handler/signatures@0.1.0;
            }
        "#,
        path: "../../wit",
        with: {
            "berth:handler/types@0.1.0": berth_guest::berth::handler::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_signatures",
        default_bindings_module: "berth_registry::bindings",
        runtime_path: "berth_guest::wit_bindgen::rt",
    });
}
