//! What stops `berth serve` from starting, and what a request is answered with: each
//! request failure knows its HTTP status and its distribution-spec error code.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper::StatusCode;
use thiserror::Error;

use crate::ops;
use crate::store::{Digest, StoreError};
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum ServeError {
    // Starting.
    #[error("cannot listen on {addr} (is another server using the port? choose one with --listen)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {path}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS {what} {path}: {reason}")]
    Tls { what: &'static str, path: PathBuf, reason: String },
    #[error("htpasswd file {path}, line {line}: {reason}")]
    Htpasswd { path: PathBuf, line: usize, reason: String },
    #[error("--pull-through {upstream:?} is not a registry host[:port] (e.g. docker.io or registry.lan:5000)")]
    Upstream { upstream: String },
    #[error("starting the server's async runtime")]
    Runtime(#[source] std::io::Error),

    // Answers to requests, with the distribution spec's error codes.
    #[error("repository name {name:?} is invalid: {reason}")]
    NameInvalid { name: String, reason: &'static str },
    #[error("repository {name} holds no such image; {hint}")]
    NameUnknown { name: String, hint: &'static str },
    #[error("manifest {reference} of {name} is not in this store")]
    ManifestUnknown { name: String, reference: String },
    #[error("blob {digest} is not in this store")]
    BlobUnknown { digest: Digest },
    #[error("the manifest references {digest}, which is not in this store: push it first")]
    ManifestBlobUnknown { digest: String },
    #[error("the manifest references {digest} as {expected} bytes, but the stored blob has {actual}")]
    ManifestBlobSize { digest: Digest, expected: u64, actual: u64 },
    #[error("invalid manifest: {reason}")]
    ManifestInvalid { reason: String },
    #[error("the image could not be recorded; nothing was tagged")]
    ManifestRejected {
        #[source]
        source: Box<ops::Error>,
    },
    #[error("digest {digest:?} is invalid: {reason}")]
    DigestInvalid { digest: String, reason: String },
    #[error("the uploaded bytes are {actual}, not {expected}; nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("tag {tag:?} is invalid: up to 128 of [A-Za-z0-9_.-], not starting with . or -")]
    TagInvalid { tag: String },
    #[error("upload {id:?} is not known (finished, cancelled or expired): start a new one")]
    UploadUnknown { id: String },
    #[error("upload {id}: {reason}")]
    UploadInvalid { id: String, reason: String },
    #[error("upload {id}: the chunk starts at byte {got}, but {expected} bytes were received so far")]
    UploadOutOfOrder { id: String, expected: u64, got: u64 },
    #[error("range {range:?} does not fit the blob's {size} bytes")]
    RangeNotSatisfiable { range: String, size: u64 },
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("{what}: the request says {declared} bytes but carried {actual}; nothing was stored")]
    LengthMismatch { what: &'static str, declared: u64, actual: u64 },
    #[error("{header} header is required: {why}")]
    MissingHeader { header: &'static str, why: &'static str },
    #[error("authentication required (this server has --htpasswd; log in with the user's password)")]
    Unauthorized,
    #[error("this server is read-only (berth serve --read-only): nothing can be pushed")]
    ReadOnly,
    #[error("{what} is not supported by berth serve: {why}")]
    Unsupported { what: String, why: &'static str },
    #[error("no such endpoint: {path} (the API is under /v2/)")]
    NoRoute { path: String },
    #[error("the client sent nothing for {secs} s; the request was dropped")]
    Timeout { secs: u64 },
    #[error("reading the request body")]
    Body(#[source] hyper::Error),
    #[error("fetching {point} from the upstream: {message}")]
    Pull { point: String, message: String, kind: ErrorKind },
    #[error("a blocking task of the server failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the pull of {point} ended without an outcome")]
    PullLost { point: String },
    #[error(transparent)]
    Ops(Box<ops::Error>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ops::Error> for ServeError {
    fn from(e: ops::Error) -> ServeError {
        ServeError::Ops(Box::new(e))
    }
}

/// How a request failure is answered: status and spec code.
fn by_kind(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "DENIED"),
        ErrorKind::Invalid | ErrorKind::Usage => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        ErrorKind::Corrupt => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ErrorKind::Unavailable => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
        ErrorKind::Sandbox | ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

impl ServeError {
    /// The HTTP status and the distribution spec's error code for this failure.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ServeError::*;
        match self {
            NameInvalid { .. } => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            NameUnknown { .. } => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            ManifestUnknown { .. } => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            BlobUnknown { .. } => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            ManifestBlobUnknown { .. } | ManifestBlobSize { .. } => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            ManifestInvalid { .. } => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            ManifestRejected { source } => match source.kind() {
                ErrorKind::Denied => (StatusCode::FORBIDDEN, "DENIED"),
                ErrorKind::Unavailable | ErrorKind::Io | ErrorKind::Sandbox => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN")
                }
                _ => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            },
            DigestInvalid { .. } | DigestMismatch { .. } => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            TagInvalid { .. } => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            UploadUnknown { .. } => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            UploadInvalid { .. } | Body(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            UploadOutOfOrder { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN"),
            TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            LengthMismatch { .. } => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            MissingHeader { header, .. } if *header == "Content-Length" => {
                (StatusCode::LENGTH_REQUIRED, "SIZE_INVALID")
            }
            MissingHeader { .. } => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ReadOnly | Unsupported { .. } => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            NoRoute { .. } => (StatusCode::NOT_FOUND, "UNSUPPORTED"),
            Timeout { .. } => (StatusCode::REQUEST_TIMEOUT, "BLOB_UPLOAD_INVALID"),
            Pull { kind, .. } => by_kind(*kind),
            Ops(e) => by_kind(e.kind()),
            Store(e) => match e {
                StoreError::BlobNotFound(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                StoreError::DigestMismatch { .. } => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
                StoreError::SizeMismatch { .. } | StoreError::TooLarge { .. } => {
                    (StatusCode::BAD_REQUEST, "SIZE_INVALID")
                }
                StoreError::Source { .. } => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
            },
            Listen { .. }
            | File { .. }
            | Tls { .. }
            | Htpasswd { .. }
            | Upstream { .. }
            | Runtime(_)
            | Task(_)
            | PullLost { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

impl HasKind for ServeError {
    fn kind(&self) -> ErrorKind {
        use ServeError::*;
        match self {
            Listen { .. } => ErrorKind::Unavailable,
            File { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            File { .. } | Runtime(_) | Task(_) | PullLost { .. } => ErrorKind::Io,
            Tls { .. } | Htpasswd { .. } | Upstream { .. } => ErrorKind::Usage,
            Unauthorized | ReadOnly => ErrorKind::Denied,
            Pull { kind, .. } => *kind,
            Ops(e) => e.kind(),
            ManifestRejected { source } => source.kind(),
            Store(e) => e.kind(),
            other => match other.status_and_code().0 {
                StatusCode::NOT_FOUND => ErrorKind::NotFound,
                StatusCode::INTERNAL_SERVER_ERROR => ErrorKind::Io,
                _ => ErrorKind::Invalid,
            },
        }
    }
}
