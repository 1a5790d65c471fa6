//! Trust: whose signatures berth accepts, for what. Two kinds of keys, kept side by side
//! under `<root>/trust`, each with its own verification:
//!
//! - **image keys** ([`Keyring`]): OpenPGP public keys trusted to sign appc images (ACIs)
//!   for a name scope, checked against an image's detached signature (`.aci.asc`, over
//!   the ACI's bytes as served), as rkt did. One armored key per file, named by its
//!   fingerprint, written by temp file + rename:
//!
//!   ```text
//!   <root>/trust/root.d/<FINGERPRINT>                     trusted for every name
//!   <root>/trust/prefix.d/<escaped prefix>/<FINGERPRINT>  trusted for the prefix and below
//!   ```
//!
//!   Beside them, **sigstore keys** (ECDSA P-256 PEM, `<FINGERPRINT>.pub` in the same
//!   scope directories) check cosign signatures, and the OpenPGP keys also check
//!   containers' simple signing ([`claim`] is what either kind of image signature signs).
//! - **handler keys** ([`HandlerKeyring`]): ed25519 keys (wasmsign2's format) trusted to
//!   sign drop-in handler components for one scheme, in
//!   `<root>/trust/handlers/<scheme>/<key id>.pub`.
//!
//! Glossary:
//! - **name**: an appc image name, `example.com/app/sub`.
//! - **prefix**: a name or its leading path segments; it applies to names equal to it or
//!   below it on a `/` boundary (`example.com` covers `example.com/app`; `example.com/ap`
//!   does not). Escaped into one directory name (`/` → `%2F`).
//! - **scope**: root (every name) or one prefix; the same key may be trusted in several.
//! - **applicable keys**: for a name, the root keys and the keys of each of its prefixes.
//! - **signer**: the trusted key whose signature verified: for an image, the OpenPGP key
//!   (primary, or a signing subkey of it) with the scope that made it applicable
//!   ([`ImageSigner`]); for a handler, the key id and scheme ([`HandlerSigner`]).
//!
//! rPGP checks the cryptography; [`verify`] adds what it leaves out: a key or subkey
//! is refused when revoked or expired (by its own newest valid self-signature), a
//! subkey must be bound for signing with a valid back signature, and a signature must be
//! over data (binary or text), not expired, not dated in the future (beyond
//! [`CLOCK_SKEW`]) nor before its key, and not use MD5, SHA-1 or RIPEMD-160.

pub mod claim;
mod error;
mod handler_keys;
mod key;
mod keyring;
mod scope;
mod sigstore;
mod simple_signing;
mod time;
pub mod verify;

pub use error::TrustError;
pub use handler_keys::{COMPONENT_HEADER, HandlerKey, HandlerKeyring, HandlerSigner};
pub use keyring::{ImageKey, KeyInfo, KeyKind, Keyring, NameKeys, inspect};
pub use scope::{Scope, prefixes_of};
pub use time::utc;
pub use verify::{CLOCK_SKEW, ImageSigner};

#[cfg(test)]
mod tests;
