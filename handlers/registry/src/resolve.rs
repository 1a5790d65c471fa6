//! From a reference to an image record over the distribution API.

use berth_guest::berth::handler::log::{self, Level};
use berth_guest::berth::handler::store::{self, HttpSource, Source};
use berth_guest::berth::handler::transport::{self, HttpRequest};
use berth_guest::exports::berth::handler::resolver::{ImageRecord, ResolveOptions};
use berth_guest::image::{build_record, spec_error, wanted_platform};
use berth_guest::{Error, blob};
use berth_image_spec::{self as spec, Descriptor, DocumentKind, Platform};

use crate::{Flavor, Reference};

/// Every manifest type berth reads, so the registry can answer in its best one.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

const MAX_INDEX_DEPTH: usize = 4;

pub fn resolve(flavor: Flavor, point: &str, options: &ResolveOptions) -> Result<ImageRecord, Error> {
    let data =
        point.splitn(4, ':').nth(3).ok_or_else(|| Error::InvalidInput(format!("{point} is not a cimd point")))?;
    let reference = Reference::parse(data, flavor)?;
    let wanted = wanted_platform(options);

    let (mut desc, mut kind) = get_document(&reference, reference.manifest_reference(), reference.digest.as_deref())?;
    // What the reference names, which is what a signature signs: an index, when it is one.
    let named = kind.is_index().then(|| desc.digest.clone());
    for _ in 0..MAX_INDEX_DEPTH {
        if !kind.is_index() {
            break;
        }
        let index = spec::parse_index(&blob::read_document(&desc)?, Some(kind)).map_err(spec_error)?;
        let chosen = select(&index.manifests, &wanted)?;
        log::log(Level::Debug, &format!("{reference}: {wanted} -> {}", chosen.digest));
        (desc, kind) = get_document(&reference, &chosen.digest, Some(&chosen.digest))?;
    }
    if kind.is_index() {
        return Err(Error::InvalidInput(format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels")));
    }
    let manifest = spec::parse_manifest(&blob::read_document(&desc)?, kind).map_err(spec_error)?;

    blob::ingest_all(vec![(&manifest.config, blob_source(&reference, &manifest.config.digest))])?;
    let config =
        spec::parse_config(&blob::read_document(&manifest.config)?, manifest.layers.len()).map_err(spec_error)?;
    let layers: Vec<(&Descriptor, Source)> =
        manifest.layers.iter().map(|l| (l, blob_source(&reference, &l.digest))).collect();
    blob::ingest_layers(layers)?;

    let mut record = build_record(point.to_string(), kind, &desc, manifest, config);
    if let Some(index) = named {
        record.annotations.push((INDEX_ANNOTATION.to_string(), index));
    }
    Ok(record)
}

/// The record annotation naming the index the reference resolved to, when the manifest
/// was chosen from one: signatures are over that digest (the host checks the stored
/// index lists the manifest before it counts one).
pub const INDEX_ANNOTATION: &str = "dev.berth.index-digest";

fn select<'a>(manifests: &'a [Descriptor], wanted: &Platform) -> Result<&'a Descriptor, Error> {
    spec::select_platform(manifests, wanted).map_err(spec_error)
}

fn blob_source(r: &Reference, digest: &str) -> Source {
    Source::Http(HttpSource { urls: vec![r.api(&format!("blobs/{digest}"))], headers: Vec::new() })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The media type a stored or fetched document declares, when its transport did not.
fn declared_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return Some(t.to_string());
    }
    // OCI documents may omit mediaType; their shape tells them apart.
    if v.get("manifests").is_some() {
        Some(spec::DocumentKind::OciIndex.media_type().to_string())
    } else if v.get("layers").is_some() {
        Some(spec::DocumentKind::OciManifest.media_type().to_string())
    } else {
        None
    }
}

/// Get a manifest or index by tag or digest and store it (verified against `expected`
/// or the registry's `Docker-Content-Digest`). A digest already stored is read from the
/// store without touching the network.
fn get_document(r: &Reference, what: &str, expected: Option<&str>) -> Result<(Descriptor, DocumentKind), Error> {
    if let Some(digest) = expected
        && store::has(digest)
    {
        let size = stored_size(digest)?;
        let desc = descriptor(String::new(), digest.to_string(), size);
        let bytes = blob::read_document(&desc)?;
        let media_type = declared_media_type(&bytes)
            .ok_or_else(|| Error::InvalidInput(format!("stored document {digest} declares no media type")))?;
        let kind = spec::classify(&media_type).map_err(spec_error)?;
        return Ok((descriptor(media_type, digest.to_string(), size), kind));
    }
    let url = r.api(&format!("manifests/{what}"));
    let resp = get(&url, ACCEPT)?;
    match resp.status {
        200 => {}
        401 | 403 => {
            return Err(Error::Unauthorized(format!(
                "{} refused {}:{what} (HTTP {})",
                r.registry, r.name, resp.status
            )));
        }
        404 => return Err(Error::NotFound(format!("manifest {what} of {}/{} not found", r.registry, r.name))),
        s @ (429 | 500..=599) => return Err(Error::Unavailable(format!("{url} answered HTTP {s}"))),
        s => return Err(Error::Io(format!("{url} answered HTTP {s}"))),
    }
    let from_header =
        header(&resp.headers, "content-type").map(|t| t.split(';').next().unwrap_or("").trim().to_string());
    let media_type = match from_header {
        Some(t) if spec::classify(&t).is_ok() => t,
        Some(t) if t != "application/json" && !t.is_empty() && declared_media_type(&resp.body).is_none() => t,
        _ => declared_media_type(&resp.body).unwrap_or_default(),
    };
    let kind = spec::classify(&media_type).map_err(spec_error)?;
    let expected =
        expected.map(str::to_string).or_else(|| header(&resp.headers, "docker-content-digest").map(str::to_string));
    let digest = store::put(&resp.body, expected.as_deref(), &media_type)?;
    Ok((descriptor(media_type, digest, resp.body.len() as u64), kind))
}

fn stored_size(digest: &str) -> Result<u64, Error> {
    // The store has no stat call; find the size by reading past the end in steps.
    let mut size = 0u64;
    loop {
        let chunk = store::read(digest, size, 1 << 20)?;
        if chunk.is_empty() {
            return Ok(size);
        }
        size += chunk.len() as u64;
        if size > spec::MAX_DOCUMENT_SIZE {
            return Err(Error::InvalidInput(format!("stored document {digest} is over the document limit")));
        }
    }
}

fn descriptor(media_type: String, digest: String, size: u64) -> Descriptor {
    Descriptor { media_type, digest, size, annotations: Default::default(), platform: None }
}

/// GET `url` with `Accept: accept`, through the host (which adds credentials).
pub(crate) fn get(url: &str, accept: &str) -> Result<transport::HttpResponse, Error> {
    transport::request(&HttpRequest {
        method: "GET".into(),
        url: url.to_string(),
        headers: vec![("Accept".into(), accept.into())],
        body: None,
    })
}
