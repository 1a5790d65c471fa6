//! `cimd:docker` — a registry reference with Docker's naming defaults (`docker.io` is
//! `registry-1.docker.io`, one-part names live under `library/`, no tag means `latest`).

use berth_guest::Error;
use berth_guest::berth::handler::types::Descriptor;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};
use berth_registry::Flavor;

struct Docker;

impl Guest for Docker {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        berth_registry::resolve(Flavor::Docker, &point, &options)
    }
}

impl berth_registry::bindings::exports::berth::handler::signatures::Guest for Docker {
    fn attached(point: String, digest: String) -> Result<Vec<Descriptor>, Error> {
        berth_registry::attached(Flavor::Docker, &point, &digest)
    }
}

berth_guest::export_handler!(Docker);
berth_registry::bindings::export_signatures!(Docker);
