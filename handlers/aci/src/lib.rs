//! An ACI through the host: store the archive (the host hashes it, sha256 as stored and
//! sha512 uncompressed, and hands back its `manifest`), check the manifest, and build
//! the image record. Shared by the `aci-archive` handler (an ACI at a URL) and the
//! `appc` handler (an ACI found by discovery).

use berth_appc_spec::record::{self, ACI_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MAX_ACI_SIZE, Provenance};
use berth_appc_spec::{AppcError, ImageManifest, parse_manifest};
use berth_guest::Error;
use berth_guest::berth::handler::store::{self, Archive, ArchiveRequest, HttpSource, LocalRange, Source};
use berth_guest::berth::handler::transport::{self, LocalKind};
use berth_guest::berth::handler::types::{Descriptor, Platform};
use berth_guest::exports::berth::handler::resolver::{Dependency, ImageFormat, ImageRecord, Layer, RuntimeConfig};

/// The ACI member that holds the image manifest.
const MANIFEST_MEMBER: &str = "manifest";

/// Every appc input problem is malformed input; the message names the field.
pub fn appc_error(e: AppcError) -> Error {
    Error::InvalidInput(e.to_string())
}

/// A stored ACI and its checked manifest.
pub struct Aci {
    pub manifest: ImageManifest,
    /// The manifest's bytes, stored on their own.
    pub manifest_blob: Descriptor,
    pub archive: Archive,
}

/// Where the host reads the ACI at `url` from: the granted file for `file:` (the host
/// grants the point's file itself, so its path is the empty one), or the URL.
pub fn source(url: &str) -> Result<Source, Error> {
    if url.starts_with("file:") {
        if transport::local_grant() != LocalKind::File {
            return Err(Error::Denied(format!("{url} is not granted to this handler as a file")));
        }
        let length = transport::local_size("")?;
        Ok(Source::Local(LocalRange { path: String::new(), offset: 0, length }))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(Source::Http(HttpSource { urls: vec![url.to_string()], headers: Vec::new() }))
    } else {
        Err(Error::Unsupported(format!("{url}: berth fetches ACIs over http, https or from a file")))
    }
}

/// Store the ACI at `url`, then parse and store its manifest.
pub fn ingest(url: &str) -> Result<Aci, Error> {
    let archive = store::ingest_archive(&ArchiveRequest {
        source: source(url)?,
        media_type: ACI_MEDIA_TYPE.to_string(),
        max_size: MAX_ACI_SIZE,
        members: vec![MANIFEST_MEMBER.to_string()],
    })?;
    let bytes = archive
        .members
        .iter()
        .find(|(name, _)| name == MANIFEST_MEMBER)
        .map(|(_, bytes)| bytes.as_slice())
        .ok_or_else(|| Error::InvalidInput(format!("the ACI at {url} has no {MANIFEST_MEMBER:?} file")))?;
    let manifest = parse_manifest(bytes).map_err(|e| Error::InvalidInput(format!("{url}: {e}")))?;
    let digest = store::put(bytes, None, MANIFEST_MEDIA_TYPE)?;
    let manifest_blob = Descriptor {
        media_type: MANIFEST_MEDIA_TYPE.to_string(),
        digest,
        size: bytes.len() as u64,
        annotations: Vec::new(),
    };
    Ok(Aci { manifest, manifest_blob, archive })
}

/// The record of an appc image: its manifest, no config, the ACI as its one layer (its
/// diff ID is the image ID), the manifest's dependencies, and its app as the runtime.
pub fn build_record(canonical: String, aci: Aci, provenance: &Provenance) -> ImageRecord {
    let Aci { manifest, manifest_blob, archive } = aci;
    let runtime = record::runtime(&manifest);
    let platform =
        record::platform(&manifest).map(|(os, architecture, variant)| Platform { os, architecture, variant });
    let annotations = record::annotations(&manifest, provenance);
    ImageRecord {
        canonical,
        format: ImageFormat::Appc,
        manifest: manifest_blob,
        config: None,
        layers: vec![Layer {
            blob: Descriptor {
                media_type: ACI_MEDIA_TYPE.to_string(),
                digest: archive.blob,
                size: archive.size,
                annotations: Vec::new(),
            },
            diff_id: Some(archive.uncompressed),
        }],
        dependencies: manifest
            .dependencies
            .iter()
            .map(|d| Dependency {
                name: d.image_name.clone(),
                labels: d.labels.clone(),
                image_id: d.image_digest(),
                size: d.size,
            })
            .collect(),
        platform,
        // The exec is the command, not an entrypoint: `berth run IMAGE -- CMD…` replaces
        // the whole exec, as rkt's `--exec` did.
        runtime: RuntimeConfig {
            entrypoint: Vec::new(),
            cmd: runtime.entrypoint,
            env: runtime.env,
            working_dir: runtime.working_dir,
            user: runtime.user,
            group: runtime.group,
            exposed_ports: runtime.exposed_ports,
            stop_signal: None,
            labels: runtime.labels,
        },
        annotations,
    }
}
