//! OCI and Docker v2.2 image documents, as the handlers read them.
//!
//! This crate is plain Rust with no WIT types so that every handler that speaks OCI
//! (an image layout on disk, the distribution API) links the same parsing and platform
//! selection, and so that it is unit-tested natively.
//!
//! Glossary:
//! - *descriptor*: `{mediaType, digest, size}` pointing at a blob.
//! - *index*: a list of descriptors of manifests (OCI image index, Docker manifest list).
//! - *manifest*: one image for one platform: a config descriptor and ordered layers.
//! - *config*: the image's runtime defaults and its `rootfs.diff_ids`.

mod digest;
mod document;
mod error;
mod media_type;
mod platform;

pub use digest::{Algorithm, ParsedDigest, parse_digest};
pub use document::DescriptorPlatform;
pub use document::{
    Descriptor, ExecConfig, ImageConfig, Index, Manifest, RootFs, parse_config, parse_index, parse_manifest,
};
pub use error::SpecError;
pub use media_type::{DocumentKind, classify, is_config_media_type, is_layer_media_type};
pub use platform::{Platform, select_platform};

/// The annotation naming a manifest inside an image layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Documents (indexes, manifests, configs) larger than this are refused: the spec's
/// registries cap manifests at 4 MiB and nothing legitimate comes close.
pub const MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;
