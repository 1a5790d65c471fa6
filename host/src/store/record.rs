//! The image record: what a handler resolved a distribution point to, as stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Oci,
    Docker,
    Appc,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
            ImageFormat::Appc => "appc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub blob: Descriptor,
    pub diff_id: Option<Digest>,
    /// Set when the layer was pulled partially: `blob` was never stored whole, and the
    /// store holds these instead (see [`Assembled`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assembled: Option<Assembled>,
}

/// A layer stored without its compressed blob: an eStargz layer of which only the table
/// of contents and the files the store lacked were downloaded. Its identity is the TOC
/// (its digest is in the manifest's layer annotations, so the manifest digest covers
/// it); every file in `tar` was checked against the TOC's digests. The blob digest and
/// the config's diff ID cannot be checked: nobody holds those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assembled {
    /// The table of contents, stored as a blob under its digest.
    pub toc: Descriptor,
    /// The uncompressed tar berth assembled from the TOC and the files' contents, stored
    /// as a blob under its own digest; render reads this one.
    pub tar: Descriptor,
}

/// The media type of a stored eStargz table of contents.
pub const TOC_MEDIA_TYPE: &str = "application/vnd.berth.estargz.toc.v1+json";
/// The media type of a tar berth assembled for a partially pulled layer.
pub const ASSEMBLED_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

impl Layer {
    /// The layer as render reads it: the assembled tar (no diff ID to check: it is not
    /// the producer's tar) for a partially pulled layer, else itself.
    pub fn as_rendered(&self) -> Layer {
        match &self.assembled {
            Some(a) => Layer { blob: a.tar.clone(), diff_id: None, assembled: None },
            None => self.clone(),
        }
    }

    /// The blobs the store holds for this layer.
    pub fn stored_blobs(&self) -> Vec<&Descriptor> {
        match &self.assembled {
            Some(a) => vec![&a.toc, &a.tar],
            None => vec![&self.blob],
        }
    }
}

/// How a file's content sits in a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Gzip members start at `offset`; the content is the first `size` bytes they hold.
    Gzip,
    /// The content is the `size` bytes at `offset`.
    Raw,
    /// Zstd frames start at `offset`; the content is the first `size` bytes they hold.
    Zstd,
}

impl ContentEncoding {
    pub fn name(self) -> &'static str {
        match self {
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Raw => "raw",
            ContentEncoding::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<ContentEncoding> {
        match name {
            "gzip" => Some(ContentEncoding::Gzip),
            "raw" => Some(ContentEncoding::Raw),
            "zstd" => Some(ContentEncoding::Zstd),
            _ => None,
        }
    }
}

/// Where a stored blob holds a file's content (an entry of the store's file index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    pub content: Digest,
    pub offset: u64,
    pub size: u64,
    pub encoding: ContentEncoding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub image_id: Option<Digest>,
    pub size: Option<u64>,
}

/// `name,label=value,…`, as appc writes a dependency.
impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (k, v) in &self.labels {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Which component produced a record, so a decision can be traced to code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerIdentity {
    pub scheme: String,
    pub digest: Digest,
}

/// A document attached to an image (a signature, an SBOM) that `berth serve` was given:
/// not an image itself, kept while the document it is attached to is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The registry point it was pushed under: a tag (`…/name:sha256-<hex>.sig`), or the
    /// repository pinned to its digest (`…/name@sha256:…`).
    pub point: String,
    /// The attached document (a manifest).
    pub digest: Digest,
    /// What it is attached to: an image's manifest, or an index.
    pub subject: Digest,
    /// Every blob it needs: itself, its config and layers.
    pub blobs: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    pub canonical: String,
    pub format: ImageFormat,
    pub manifest: Descriptor,
    pub config: Option<Descriptor>,
    pub layers: Vec<Layer>,
    pub dependencies: Vec<Dependency>,
    pub platform: Option<Platform>,
    pub runtime: RuntimeConfig,
    pub annotations: BTreeMap<String, String>,
    pub handler: HandlerIdentity,
}

impl ImageRecord {
    /// Every blob the image needs: manifest, config, layers (for a partially pulled
    /// layer, its TOC and assembled tar instead of the blob).
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.manifest)
            .chain(self.config.iter())
            .chain(self.layers.iter().flat_map(Layer::stored_blobs))
    }

    /// Whether any layer was pulled partially (its compressed blob is not stored).
    pub fn is_partial(&self) -> bool {
        self.layers.iter().any(|l| l.assembled.is_some())
    }

    /// Bytes of all its blobs, as stored.
    pub fn size(&self) -> u64 {
        self.blobs().map(|d| d.size).sum()
    }

    /// appc names an image by the sha512 of its decompressed ACI, as `sha512-<hex>`
    /// (the diff ID of its one layer); `None` for other formats.
    pub fn appc_image_id(&self) -> Option<String> {
        if self.format != ImageFormat::Appc {
            return None;
        }
        let id = self.layers.first()?.diff_id.as_ref()?;
        Some(format!("{}-{}", id.algorithm().name(), id.hex()))
    }
}
