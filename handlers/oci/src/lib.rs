//! `cimd:oci` — a registry reference as the OCI distribution spec has it: the registry
//! host is explicit and a tag or digest is required.

use berth_guest::Error;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};
use berth_registry::Flavor;

struct Oci;

impl Guest for Oci {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        berth_registry::resolve(Flavor::Oci, &point, &options)
    }
}

berth_guest::export_handler!(Oci);
