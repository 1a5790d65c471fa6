//! `cimd:aci-archive` — an appc image (ACI) named by a URL: `file:///…` (the host grants
//! that one file) or `http(s)://…`. Nothing is discovered and no name or labels are
//! asked for: the image is whatever the archive holds, checked against the spec. Its
//! detached signature is expected where rkt looks for it, next to the archive.

use berth_appc_spec::point::{parse_aci_archive_point, signature_url};
use berth_appc_spec::record::Provenance;
use berth_guest::Error;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};

struct AciArchive;

impl Guest for AciArchive {
    fn resolve(point: String, _options: ResolveOptions) -> Result<ImageRecord, Error> {
        let url = parse_aci_archive_point(&point).map_err(berth_aci::appc_error)?;
        let aci = berth_aci::ingest(&url)?;
        let provenance = Provenance { aci: None, signature: signature_url(&url), public_keys: Vec::new() };
        Ok(berth_aci::build_record(point, aci, &provenance))
    }
}

berth_guest::export_handler!(AciArchive);
