//! Signatures stored beside an image in its registry, as cosign (sigstore) writes them:
//! manifests whose layers are simple-signing payloads with the signature in each layer's
//! annotations. They are found two ways, both asked every time:
//!
//! - the OCI referrers API (`/v2/<name>/referrers/<digest>`): manifests naming the image
//!   as their `subject`, filtered to cosign's signature artifact type;
//! - cosign's tag scheme: the manifest tagged `sha256-<hex>.sig`.
//!
//! The handler only finds and stores the payloads (the host verifies their digests as
//! it stores them); the host checks every signature and what the payload says.

use std::collections::BTreeSet;

use berth_guest::Error;
use berth_guest::berth::handler::log::{self, Level};
use berth_guest::berth::handler::store::{self, HttpSource, IngestRequest, Source};
use berth_guest::berth::handler::types::Descriptor as WitDescriptor;
use berth_image_spec::{self as spec, Descriptor};
use serde::Deserialize;

use crate::{Flavor, Reference};

/// cosign's artifact type for signatures stored as referrers (OCI 1.1 mode).
const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of a signed payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// A payload is a few hundred bytes; anything much larger is not one.
const MAX_PAYLOAD: u64 = 64 << 10;
/// Signature manifests read per image, and payloads returned: enough for any real
/// signing setup, few enough that a hostile registry cannot make the host work long.
const MAX_MANIFESTS: usize = 16;
const MAX_PAYLOADS: usize = 64;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Referrer {
    digest: String,
    #[serde(default)]
    artifact_type: Option<String>,
}

/// The payload layers of every signature manifest attached to `digest`, stored.
pub fn attached(flavor: Flavor, point: &str, digest: &str) -> Result<Vec<WitDescriptor>, Error> {
    let data =
        point.splitn(4, ':').nth(3).ok_or_else(|| Error::InvalidInput(format!("{point} is not a cimd point")))?;
    let reference = Reference::parse(data, flavor)?;
    spec::parse_digest(digest).map_err(|e| Error::InvalidInput(format!("{digest:?}: {e}")))?;
    let (algorithm, hex) = digest.split_once(':').expect("a parsed digest has an algorithm");

    // A registry's failure at one place (a malformed answer, a refusal) does not hide what
    // the other holds; it is the answer only when nothing was found.
    let mut first_failure = None;
    let mut failed = |e: Error| {
        log::log(Level::Warn, &format!("looking for signatures of {reference}@{digest}: {e:?}"));
        first_failure.get_or_insert(e);
    };
    // The tag first (cosign's default), then what the referrers API lists.
    let mut manifests = vec![format!("{algorithm}-{hex}.sig")];
    match referrers(&reference, digest) {
        Ok(found) => manifests.extend(found),
        Err(e) => failed(e),
    }
    manifests.truncate(MAX_MANIFESTS);

    let mut seen = BTreeSet::new();
    let mut payloads = Vec::new();
    for what in &manifests {
        let bytes = match get(&reference, &format!("manifests/{what}"), MANIFEST_ACCEPT) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => {
                failed(e);
                continue;
            }
        };
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                failed(Error::InvalidInput(format!("signature manifest {what} of {reference}: {e}")));
                continue;
            }
        };
        for layer in manifest.layers {
            if layer.media_type != SIMPLE_SIGNING || layer.size > MAX_PAYLOAD {
                continue;
            }
            // The same payload and signature reached both ways is one signature.
            let key = (layer.digest.clone(), layer.annotations.clone());
            if seen.insert(key) {
                payloads.push(layer);
            }
        }
    }
    payloads.truncate(MAX_PAYLOADS);

    let requests: Vec<IngestRequest> = payloads
        .iter()
        .map(|l| IngestRequest {
            source: Source::Http(HttpSource {
                urls: vec![reference.api(&format!("blobs/{}", l.digest))],
                headers: Vec::new(),
            }),
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        })
        .collect();
    // A payload that does not arrive whole (wrong bytes, gone) is left out: the others
    // may still verify.
    let mut stored = Vec::new();
    for (layer, result) in payloads.into_iter().zip(store::ingest(&requests)) {
        match result {
            Ok(()) => stored.push(layer),
            Err(e) => failed(e),
        }
    }
    if let (true, Some(e)) = (stored.is_empty(), first_failure) {
        return Err(e);
    }
    Ok(stored
        .into_iter()
        .map(|l| WitDescriptor {
            media_type: l.media_type,
            digest: l.digest,
            size: l.size,
            annotations: l.annotations.into_iter().collect(),
        })
        .collect())
}

/// The signature manifests the referrers API lists for `digest`; none where the
/// registry has no referrers API (distribution 2.8 answers 404).
fn referrers(reference: &Reference, digest: &str) -> Result<Vec<String>, Error> {
    let path = format!("referrers/{digest}?artifactType={}", SIGNATURE_ARTIFACT.replace('+', "%2B"));
    let Some(bytes) = get(reference, &path, OCI_INDEX)? else { return Ok(Vec::new()) };
    let index: ReferrersIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidInput(format!("referrers of {digest} in {reference}: {e}")))?;
    // A registry that ignores the filter lists everything; keep the signatures.
    Ok(index
        .manifests
        .into_iter()
        .filter(|m| m.artifact_type.as_deref().is_none_or(|t| t == SIGNATURE_ARTIFACT))
        .filter(|m| spec::parse_digest(&m.digest).is_ok())
        .map(|m| m.digest)
        .collect())
}

/// GET a small document of the repository; `None` when the registry has none there.
fn get(reference: &Reference, tail: &str, accept: &str) -> Result<Option<Vec<u8>>, Error> {
    let url = reference.api(tail);
    let resp = crate::resolve::get(&url, accept)?;
    match resp.status {
        200 => Ok(Some(resp.body)),
        // Not there, or an API this registry does not have.
        400 | 404 | 405 | 501 => Ok(None),
        401 | 403 => Err(Error::Unauthorized(format!("{url} answered HTTP {}", resp.status))),
        s @ (429 | 500..=599) => Err(Error::Unavailable(format!("{url} answered HTTP {s}"))),
        s => Err(Error::Io(format!("{url} answered HTTP {s}"))),
    }
}
