//! Distribution points: where an image comes from, as one canonical URI.
//!
//! Follows rkt's distribution-point design: `cimd:<type>:v=<version>:<data>`, where the
//! type selects a handler and the data is that type's own, escaped so the whole point
//! is one opaque string. The canonical form is the primary key of a ref in the store.
//!
//! Glossary:
//! - *type*: `docker`, `oci`, `oci-layout`, `appc`, `aci-archive`, or a drop-in's scheme.
//! - *data*: the type-specific part; URLs in it are query-escaped (`file%3A%2F%2F%2F…`).
//! - *friendly form*: what people type (`docker://busybox`, `oci-layout:./dir:tag`,
//!   `./app.aci`); [`parse_friendly`] maps it onto a canonical point.

mod error;
mod friendly;
mod point;

pub use error::CimdError;
pub use friendly::parse_friendly;
pub(crate) use point::docker_host_and_path;
pub use point::{DistributionPoint, PointKind, unescape};
