use std::path::PathBuf;

use thiserror::Error;

use super::time::utc;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum TrustError {
    #[error(
        "invalid prefix {prefix:?}: {reason} (a prefix is an image name or its leading path segments, e.g. example.com/app)"
    )]
    InvalidPrefix { prefix: String, reason: &'static str },
    #[error("{subject} is not an OpenPGP public key")]
    KeyUnreadable {
        subject: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("{subject} holds no OpenPGP public key")]
    NoKey { subject: String },
    #[error("{subject} holds {count} public keys; give one key per file")]
    SeveralKeys { subject: String, count: usize },
    #[error("{subject} is a secret key; give the public key (gpg --armor --export FINGERPRINT)")]
    SecretKey { subject: String },
    #[error("key {fingerprint} has no valid self-signature binding a user id (or a direct-key signature)")]
    Unbound { fingerprint: String },
    #[error("key {fingerprint} expired on {} (export a copy with a later expiry: gpg --quick-set-expire)", utc(*expired))]
    KeyExpired { fingerprint: String, expired: i64 },
    #[error("key {fingerprint} is revoked{}", reason_suffix(reason))]
    KeyRevoked { fingerprint: String, reason: String },
    #[error("{what} key {fingerprint} may not make signatures (no signing flag on its binding)")]
    NotSigningKey { what: &'static str, fingerprint: String },
    #[error(
        "no key is trusted for {name:?} (looked for root keys and keys for the prefixes {}); add one with `berth trust --prefix {} KEY.gpg`",
        prefixes.join(", "), prefixes.last().map_or(name.as_str(), String::as_str)
    )]
    NoTrustedKey { name: String, prefixes: Vec<String> },
    #[error("the signature is by {issuers}, which is not trusted for {name:?} (trusted for it: {trusted})")]
    UntrustedSigner { name: String, issuers: String, trusted: String },
    #[error(
        "the signature by key {fingerprint} does not verify: the data was altered, or another key made the signature"
    )]
    BadSignature {
        fingerprint: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("the signature by key {fingerprint} expired on {}", utc(*expired))]
    SignatureExpired { fingerprint: String, expired: i64 },
    #[error("the signature by key {fingerprint} is dated {}, in the future (check the clock)", utc(*created))]
    SignatureFromFuture { fingerprint: String, created: i64 },
    #[error("the signature by key {fingerprint} is dated {}, before the key was made", utc(*created))]
    SignatureBeforeKey { fingerprint: String, created: i64 },
    #[error("the signature by key {fingerprint} uses the weak hash {algorithm}; sign with SHA-256 or better")]
    WeakHash { fingerprint: String, algorithm: String },
    #[error("malformed signature: {reason}")]
    MalformedSignature { reason: String },
    #[error("malformed signature")]
    SignatureUnreadable {
        #[source]
        source: pgp::errors::Error,
    },
    #[error("reading the signed data")]
    ReadSigned {
        #[source]
        source: std::io::Error,
    },
    #[error("trusted key file {path} is unusable")]
    StoredKey {
        path: PathBuf,
        #[source]
        source: Box<TrustError>,
    },
    #[error("trusted key file {path} holds key {holds}, not the key it is named after")]
    StoredKeyMismatch { path: PathBuf, holds: String },
    #[error("{scheme:?} is not a scheme: a scheme is lowercase letters, digits and '-', as a cimd type")]
    BadScheme { scheme: String },
    #[error("{subject} is not an ed25519 public key (raw, PEM or DER, as wasmsign2 writes)")]
    HandlerKeyUnreadable {
        subject: String,
        #[source]
        source: wasmsign2::WSError,
    },
    #[error("{path} is not a WebAssembly component")]
    NotAComponent { path: String },
    #[error("{path} is not signed (sign it with wasmsign2, embedded or as {path}.sig)")]
    HandlerUnsigned { path: String },
    #[error(
        "{path}: no trusted handler key's signature verifies: it was signed by a key berth does not \
         trust, or modified after signing (trust a key with `berth handler trust --scheme {scheme} KEY`)"
    )]
    HandlerNotTrusted { path: String, scheme: String },
    #[error(
        "{path} declares scheme {scheme:?} but its signer {key} is trusted only for {}",
        trusted_for.join(", ")
    )]
    HandlerWrongScheme { path: String, scheme: String, key: String, trusted_for: Vec<String> },
    #[error("no trusted key {fingerprint}{}", scope.as_ref().map_or(String::new(), |s| format!(" for {s}")))]
    NotTrusted { fingerprint: String, scope: Option<String> },
    #[error(
        "{fingerprint:?} is not a key fingerprint or key id (40 or 64 hex digits, or the last 16 of a v4 fingerprint)"
    )]
    BadFingerprint { fingerprint: String },
    #[error("{subject} is not a sigstore public key: {reason}")]
    SigstoreKeyUnreadable { subject: String, reason: String },
    #[error("no sigstore key is trusted for {name:?} (trust one with: berth trust --prefix {name} cosign.pub)")]
    NoTrustedSigstoreKey { name: String },
    #[error("the signature verifies with none of the sigstore keys trusted for {name:?} ({trusted})")]
    SigstoreBadSignature { name: String, trusted: String },
    #[error("the signed payload does not describe this image: {reason}")]
    ClaimMismatch { reason: String },
    #[error("refusing to fetch the key {url} over plain HTTP; pass --insecure-allow-http to allow it")]
    PlainHttpKey { url: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
}

impl HasKind for TrustError {
    fn kind(&self) -> ErrorKind {
        match self {
            TrustError::InvalidPrefix { .. } | TrustError::BadFingerprint { .. } | TrustError::BadScheme { .. } => {
                ErrorKind::Usage
            }
            TrustError::HandlerKeyUnreadable { .. } | TrustError::NotAComponent { .. } => ErrorKind::Invalid,
            TrustError::HandlerUnsigned { .. }
            | TrustError::HandlerNotTrusted { .. }
            | TrustError::HandlerWrongScheme { .. } => ErrorKind::Denied,
            TrustError::KeyUnreadable { .. }
            | TrustError::SigstoreKeyUnreadable { .. }
            | TrustError::NoKey { .. }
            | TrustError::SeveralKeys { .. }
            | TrustError::SecretKey { .. }
            | TrustError::Unbound { .. }
            | TrustError::MalformedSignature { .. }
            | TrustError::SignatureUnreadable { .. } => ErrorKind::Invalid,
            TrustError::KeyExpired { .. }
            | TrustError::KeyRevoked { .. }
            | TrustError::NotSigningKey { .. }
            | TrustError::NoTrustedKey { .. }
            | TrustError::UntrustedSigner { .. }
            | TrustError::BadSignature { .. }
            | TrustError::SignatureExpired { .. }
            | TrustError::SignatureFromFuture { .. }
            | TrustError::SignatureBeforeKey { .. }
            | TrustError::WeakHash { .. }
            | TrustError::NoTrustedSigstoreKey { .. }
            | TrustError::SigstoreBadSignature { .. }
            | TrustError::ClaimMismatch { .. }
            | TrustError::PlainHttpKey { .. } => ErrorKind::Denied,
            TrustError::NotTrusted { .. } => ErrorKind::NotFound,
            TrustError::StoredKey { .. }
            | TrustError::StoredKeyMismatch { .. }
            | TrustError::ReadSigned { .. }
            | TrustError::Io { .. } => ErrorKind::Io,
        }
    }
}

/// Attach the action and path to an io::Error.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrustError {
    let path = path.into();
    move |source| TrustError::Io { action, path, source }
}
