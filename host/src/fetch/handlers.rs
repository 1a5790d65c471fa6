//! Which component serves which distribution-point type. Built-in handlers are
//! compiled from `handlers/` and embedded by the build script.

use crate::cimd::PointKind;

include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));

/// The built-in component for `kind`, if there is one.
pub fn builtin(kind: &PointKind) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(name, _)| *name == kind.name()).map(|(_, bytes)| *bytes)
}

/// Names of the types with a built-in handler.
pub fn builtin_types() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}
