//! `cimd:oci` — a registry reference as the OCI distribution spec has it: the registry
//! host is explicit and a tag or digest is required.

use berth_guest::Error;
use berth_guest::berth::handler::types::Descriptor;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};
use berth_registry::Flavor;

struct Oci;

impl Guest for Oci {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        berth_registry::resolve(Flavor::Oci, &point, &options)
    }
}

impl berth_registry::bindings::exports::berth::handler::signatures::Guest for Oci {
    fn attached(point: String, digest: String) -> Result<Vec<Descriptor>, Error> {
        berth_registry::attached(Flavor::Oci, &point, &digest)
    }
}

berth_guest::export_handler!(Oci);
berth_registry::bindings::export_signatures!(Oci);
