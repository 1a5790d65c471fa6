//! berth's fuzz targets: one function per parser that sees untrusted bytes.
//!
//! Each function takes the fuzzer's input, feeds it to berth's own code and panics only
//! when berth misbehaves: a panic inside berth (untrusted input must give an error, never
//! a crash), or a broken invariant checked here (a canonical distribution point that does
//! not parse back to itself, a layer that writes beside its root, an EROFS image from
//! berth's writer that berth's checker refuses). The cargo-fuzz binaries in
//! `../fuzz_targets` are one line each around these functions; `tests/replay.rs` runs the
//! committed seeds and crash regressions through them on stable, in `cargo test`.
//!
//! Glossary:
//! - *seed*: a real input (made by umoci, skopeo, GNU tar, actool, or copied from the
//!   specs' examples) under `../seeds/<target>/`; `../make-seeds.sh` rebuilds them.
//! - *regression*: an input that once crashed a target, under `../regressions/<target>/`,
//!   kept after the fix (the fix also has a unit test named after what broke).
//! - *flags byte*: the first byte of a tar target's input chooses how the rest is applied
//!   (whiteout form, tar dialect, applied once or twice); see [`layers`].

mod chunked;
mod documents;
mod layers;
mod scratch;
mod tar_input;

pub use chunked::estargz_toc;
pub use documents::{appc_discovery, appc_manifest, auth_json, cimd_point, image_spec, policy_toml, registries_toml};
pub use layers::{erofs_check, erofs_write, tar_apply};
pub use tar_input::fix_checksums;

/// A fuzz target: its name (the cargo-fuzz binary, the seed directory) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `just fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "cimd_point", run: cimd_point },
    Target { name: "image_spec", run: image_spec },
    Target { name: "appc_manifest", run: appc_manifest },
    Target { name: "appc_discovery", run: appc_discovery },
    Target { name: "registries_toml", run: registries_toml },
    Target { name: "auth_json", run: auth_json },
    Target { name: "policy_toml", run: policy_toml },
    Target { name: "erofs_check", run: erofs_check },
    Target { name: "erofs_write", run: erofs_write },
    Target { name: "tar_apply", run: tar_apply },
    Target { name: "estargz_toc", run: estargz_toc },
];
