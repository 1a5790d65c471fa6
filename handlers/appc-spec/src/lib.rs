//! appc (App Container, `github.com/appc/spec`) as berth's handlers read it.
//!
//! Plain Rust with no WIT types, so that the `aci-archive` and `appc` handlers share it
//! and it is unit-tested natively.
//!
//! Glossary:
//! - *ACI*: an App Container Image, a tar (possibly gzip/bzip2/xz-compressed) holding
//!   `manifest` and `rootfs/`.
//! - *image manifest*: the ACI's JSON `manifest`: name, labels, app, dependencies.
//! - *AC Identifier*: the name grammar of images, labels and annotations.
//! - *image ID*: `sha512-<hex>` of the uncompressed tar.
//! - *discovery*: from a name and labels to the URLs of an ACI, its signature and the
//!   keys that sign it, through HTML `meta` tags (see [`discovery`]).

pub mod discovery;
mod error;
pub mod identifier;
pub mod manifest;
pub mod platform;
pub mod point;
pub mod record;

pub use error::AppcError;
pub use manifest::{ImageManifest, parse_manifest};
