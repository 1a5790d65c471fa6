//! Which component serves which distribution-point type. Built-in handlers are
//! compiled from `handlers/` and embedded by the build script.

use crate::cimd::PointKind;

include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));

/// The built-in component for `kind`, if there is one.
pub fn builtin(kind: &PointKind) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(name, _)| *name == kind.name()).map(|(_, bytes)| *bytes)
}

/// The built-in component for the type named `name`, if there is one.
pub fn builtin_named(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// Names of the types with a built-in handler.
pub fn builtin_types() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

use std::borrow::Cow;
use std::path::PathBuf;

use super::dropin::{self, Declaration, DropInError};
use crate::trust::{HandlerKeyring, HandlerSigner};

/// Where drop-in handlers are looked for, and who may sign them.
pub struct DropIns {
    pub dirs: Vec<PathBuf>,
    pub keys: HandlerKeyring,
}

/// Where the handler of a fetch comes from.
#[derive(Debug, Clone)]
pub enum HandlerSource {
    Builtin,
    DropIn { path: PathBuf, signer: HandlerSigner, declaration: Declaration },
}

impl HandlerSource {
    /// `builtin`, or the drop-in's path: what decisions and records name.
    pub fn describe(&self) -> String {
        match self {
            HandlerSource::Builtin => "builtin".into(),
            HandlerSource::DropIn { path, .. } => path.display().to_string(),
        }
    }
}

/// The component chosen to serve a point type.
pub struct Chosen {
    pub scheme: String,
    pub bytes: Cow<'static, [u8]>,
    pub source: HandlerSource,
}

/// Choose the handler for `kind`: a verified drop-in declaring it (first in directory
/// order), else the built-in. A drop-in that fails verification is skipped with a
/// warning when a built-in exists, and is the error otherwise.
pub fn choose(kind: &PointKind, dropins: Option<&DropIns>) -> Result<Chosen, super::FetchError> {
    let scheme = kind.name().to_string();
    let mut refused: Option<DropInError> = None;
    if let Some(d) = dropins {
        for candidate in dropin::discover(&d.dirs) {
            let candidate = match candidate {
                Ok(c) if c.declaration.scheme == scheme => c,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!("skipping a drop-in handler: {e}");
                    continue;
                }
            };
            match candidate.verify(&d.keys) {
                Ok(signer) => {
                    tracing::info!(path = %candidate.path.display(), key = %signer.key_id, "using drop-in handler for {scheme}");
                    return Ok(Chosen {
                        scheme,
                        bytes: Cow::Owned(candidate.bytes),
                        source: HandlerSource::DropIn {
                            path: candidate.path,
                            signer,
                            declaration: candidate.declaration,
                        },
                    });
                }
                Err(e) => {
                    if builtin(kind).is_some() {
                        tracing::warn!("ignoring drop-in handler: {e}; using the built-in {scheme} handler");
                    }
                    refused.get_or_insert(DropInError::from(e));
                }
            }
        }
    }
    if let Some(bytes) = builtin(kind) {
        return Ok(Chosen { scheme, bytes: Cow::Borrowed(bytes), source: HandlerSource::Builtin });
    }
    match refused {
        Some(e) => Err(super::FetchError::DropIn(e)),
        None => Err(super::FetchError::NoHandler { kind: scheme, available: builtin_types().join(", ") }),
    }
}
