//! Documents (manifests and indexes) as the registry sees them: the few fields the
//! distribution spec makes a registry act on, and nothing of the image itself.
//!
//! The server must answer with a manifest's media type, refuse a push that references
//! blobs it does not hold or mislabels itself, and list the manifests whose `subject` is
//! a digest (referrers). That needs `mediaType`, the referenced descriptors (digest and
//! size), `subject`, `artifactType` and annotations, read here into fixed structs from a
//! document of at most 4 MiB that was hashed first. What the image *is* (its config,
//! layers, platform choice, runtime config) is parsed by the handler in the sandbox, as
//! for any fetch (`ops::record_push`).

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use serde::Deserialize;

use super::ServeError;
use super::state::Registry;
use crate::store::{Digest, Platform, Store, StoreError};

/// The largest document served or accepted (the spec: registries SHOULD accept 4 MiB).
pub const MAX_DOCUMENT: u64 = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The configs of images (an artifact's config is anything else).
const IMAGE_CONFIGS: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];
/// The media type prefixes of image layers (tar, compressed or not; foreign layers).
const IMAGE_LAYERS: [&str; 2] = ["application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs."];
/// What berth stores and serves as documents.
pub const DOCUMENT_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peek {
    pub schema_version: Option<i64>,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Option<Vec<Descriptor>>,
    pub manifests: Option<Vec<Descriptor>>,
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
}

/// A stored or pushed document.
#[derive(Debug)]
pub struct Document {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    pub peek: Peek,
}

impl Document {
    /// `bytes` as a document, if they are one of the types berth serves.
    pub fn parse(digest: Digest, bytes: Bytes) -> Option<Document> {
        let peek: Peek = serde_json::from_slice(&bytes).ok()?;
        if peek.schema_version != Some(2) {
            return None;
        }
        let media_type = match &peek.media_type {
            Some(t) => DOCUMENT_TYPES.contains(&t.as_str()).then(|| t.clone())?,
            // OCI documents may leave it out; their shape tells them apart.
            None if peek.manifests.is_some() => OCI_INDEX.to_string(),
            None if peek.config.is_some() => OCI_MANIFEST.to_string(),
            None => return None,
        };
        Some(Document { digest, media_type, bytes, peek })
    }

    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }

    /// What it needs in the store: config and layers, or the manifests it indexes.
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        let p = &self.peek;
        p.config.iter().chain(p.layers.iter().flatten()).chain(p.manifests.iter().flatten())
    }

    /// Whether it is an image berth records as one (an index, or a manifest of an image
    /// config and image layers); anything else (a cosign signature, an SBOM, any
    /// `artifactType`) is an artifact, stored only as attached to what it names.
    pub fn is_image(&self) -> bool {
        if self.is_index() {
            return true;
        }
        let p = &self.peek;
        let image_config = p.config.as_ref().is_some_and(|c| IMAGE_CONFIGS.contains(&c.media_type.as_str()));
        let image_layers = p.layers.iter().flatten().all(|l| IMAGE_LAYERS.iter().any(|t| l.media_type.starts_with(t)));
        p.artifact_type.is_none() && image_config && image_layers
    }

    /// What the referrers API lists for it: its artifact type, or its config's type.
    pub fn artifact_type(&self) -> Option<&str> {
        self.peek.artifact_type.as_deref().or(self.peek.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

/// Check that every blob `doc` references is stored, with the size it says.
pub fn check_references(store: &Store, doc: &Document) -> Result<(), ServeError> {
    for d in doc.references() {
        let digest: Digest =
            d.digest.parse().map_err(|_| ServeError::ManifestBlobUnknown { digest: d.digest.clone() })?;
        match store.blobs().size(&digest) {
            Ok(size) if size == d.size => {}
            Ok(actual) => return Err(ServeError::ManifestBlobSize { digest, expected: d.size, actual }),
            Err(StoreError::BlobNotFound(_)) => {
                return Err(ServeError::ManifestBlobUnknown { digest: d.digest.clone() });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The stored document `digest`, read whole and, unless this process did already,
/// hashed: `None` when the store does not hold it or it is no document. Bytes that do
/// not match their digest are quarantined and count as absent.
pub fn read(registry: &Registry, store: &Store, digest: &Digest) -> Result<Option<Document>, ServeError> {
    let file = match store.blobs().open_blob(digest) {
        Ok(f) => f,
        Err(StoreError::BlobNotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let path = store.blobs().path(digest);
    let io = |source| ServeError::File { action: "reading", path: path.clone(), source };
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_DOCUMENT {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_DOCUMENT).read_to_end(&mut bytes).map_err(io)?;
    if !registry.is_verified(digest) {
        let actual = Digest::of_bytes(digest.algorithm(), &bytes);
        if actual != *digest {
            registry.corrupt(store, digest, &actual);
            return Ok(None);
        }
        registry.mark_verified(digest);
    }
    Ok(Document::parse(digest.clone(), Bytes::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Algorithm;

    fn doc(json: &str) -> Option<Document> {
        Document::parse(Digest::of_bytes(Algorithm::Sha256, json.as_bytes()), Bytes::from(json.to_string()))
    }

    #[test]
    fn media_types_come_from_the_document_or_its_shape() {
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let m =
            doc(&format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{d}","size":2}},"layers":[]}}"#))
                .unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.references().count(), 1);
        let i = doc(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert!(i.is_index());
        let l = doc(&format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#)).unwrap();
        assert_eq!(l.media_type, DOCKER_LIST);
        assert!(doc(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_none());
        assert!(doc(r#"{"architecture":"amd64","rootfs":{}}"#).is_none(), "a config is no document");
        assert!(doc("\u{1f}\u{8b} gzip").is_none());
    }
}
