//! `cimd:appc` — an appc image by name and labels (`cimd:appc:v=0:<name>?version=…`),
//! found by appc discovery, stored as the `aci-archive` handler stores an ACI, and
//! checked to be what was asked for. The component is the `appc-handler` world: it also
//! exports `discovery`, which finds the keys that sign a name's images.
//!
//! The resolver export and the imports are `berth-guest`'s bindings (so the ACI code in
//! `berth-aci` serves both handlers); this crate's own bindings add only the
//! `discovery` export. The two worlds merge into `appc-handler` when the component is
//! made.

mod discover;

use berth_appc_spec::point::{check_identity, parse_appc_point, wanted};
use berth_appc_spec::{discovery, platform};
use berth_guest::Error;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package berth:appc-guest;

            world discovery-export {
                export berth:handler/discovery@0.1.0;
            }
        "#,
        path: "../../wit",
        with: {
            "berth:handler/types@0.1.0": berth_guest::berth::handler::types,
        },
        runtime_path: "berth_guest::wit_bindgen::rt",
    });
}

struct Appc;

impl Guest for Appc {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        let asked = parse_appc_point(&point).map_err(berth_aci::appc_error)?;
        let p = &options.platform;
        let (os, arch) = platform::to_appc(&p.os, &p.architecture, p.variant.as_deref());
        let wanted = wanted(&asked, &os, &arch);
        let (endpoint, found, aci) = discover::fetch_image(&wanted.app)?;
        check_identity(&wanted, &aci.manifest).map_err(|e| Error::InvalidInput(format!("{}: {e}", endpoint.aci)))?;
        let provenance = berth_appc_spec::record::Provenance {
            aci: Some(endpoint.aci),
            signature: endpoint.asc,
            public_keys: found.public_keys,
        };
        Ok(berth_aci::build_record(point, aci, &provenance))
    }
}

impl bindings::exports::berth::handler::discovery::Guest for Appc {
    fn discover_pubkeys(prefix: String) -> Result<Vec<String>, Error> {
        if !berth_appc_spec::identifier::is_ac_identifier(&prefix) {
            return Err(Error::InvalidInput(format!("{prefix:?} is not an appc name (an AC Identifier)")));
        }
        let app = discovery::App { name: prefix, labels: Default::default() };
        discover::public_keys(&app)
    }
}

berth_guest::export_handler!(Appc);
bindings::export!(Appc with_types_in bindings);
