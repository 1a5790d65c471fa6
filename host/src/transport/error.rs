use std::path::PathBuf;

use thiserror::Error;

use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("{path:?} is not under the granted path {root}")]
    Escapes { path: String, root: PathBuf },
    #[error("{path:?} not found under {root}")]
    NotFound { path: String, root: PathBuf },
    #[error("{path:?} under {root} is not a regular file")]
    NotAFile { path: String, root: PathBuf },
    #[error("no local path was granted to this handler")]
    NoLocalGrant,
    #[error("{url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}{}", status_hint(*.status))]
    Status { url: String, status: u16 },
    #[error("reading the answer of {url}")]
    Body {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid request {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url:?} is not a URL")]
    UrlSyntax {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the answer of {url} is larger than the {cap}-byte cap")]
    TooLarge { url: String, cap: usize },
    #[error("registry {host} is blocked by registries.toml")]
    Blocked { host: String },
    #[error(
        "{host} would be reached over plain HTTP; only loopback and registries marked insecure (--insecure-registry, registries.toml) may be"
    )]
    PlainHttp { host: String },
    #[error("getting a token from {realm:?}: {reason}")]
    Token { realm: String, reason: String },
    #[error("getting a token from {realm:?}: the answer is not a JSON token")]
    TokenAnswer {
        realm: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{registry} names the token realm {realm}, outside its own site: berth sends neither requests nor \
         credentials there; if it is the registry's own auth service, list it in registries.toml \
         ([[registry]] prefix = \"{registry}\", token-realms = [\"{realm}\"])"
    )]
    RealmNotAllowed { registry: String, realm: String },
    #[error("handlers may not set the {header:?} header: the host adds credentials itself")]
    ForbiddenHeader { header: String },
    #[error("{host} is outside this handler's network grant (allowed: {allowed})")]
    NotGranted { host: String, allowed: String },
    #[error("{action} {path}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("auth file {path} is not valid JSON")]
    AuthFileSyntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("auth file {path}: the entry for {key} is not base64 of user:password")]
    AuthEntry { path: PathBuf, key: String },
    #[error("configuration {path} is not valid TOML")]
    ConfigSyntax {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("certificate file {path} holds no usable PEM certificate")]
    Certificate {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action} {path:?} under {root}")]
    Io {
        action: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (unauthorized: log in with `berth login`, or check the credentials in auth.json)",
        403 => " (forbidden)",
        404 => " (not found)",
        429 => " (too many requests)",
        _ => "",
    }
}

impl HasKind for TransportError {
    fn kind(&self) -> ErrorKind {
        match self {
            TransportError::Escapes { .. } | TransportError::NoLocalGrant => ErrorKind::Denied,
            TransportError::NotFound { .. } => ErrorKind::NotFound,
            TransportError::NotAFile { .. } => ErrorKind::Invalid,
            TransportError::Io { .. } | TransportError::Body { .. } | TransportError::File { .. } => ErrorKind::Io,
            TransportError::Http { .. } => ErrorKind::Unavailable,
            TransportError::Status { status, .. } => match status {
                401 | 403 => ErrorKind::Denied,
                404 => ErrorKind::NotFound,
                _ => ErrorKind::Unavailable,
            },
            TransportError::Token { .. } | TransportError::TokenAnswer { .. } => ErrorKind::Denied,
            TransportError::BadUrl { .. } | TransportError::UrlSyntax { .. } | TransportError::TooLarge { .. } => {
                ErrorKind::Invalid
            }
            TransportError::Blocked { .. }
            | TransportError::PlainHttp { .. }
            | TransportError::ForbiddenHeader { .. }
            | TransportError::RealmNotAllowed { .. }
            | TransportError::NotGranted { .. } => ErrorKind::Denied,
            TransportError::AuthFileSyntax { .. }
            | TransportError::AuthEntry { .. }
            | TransportError::ConfigSyntax { .. }
            | TransportError::Config { .. }
            | TransportError::Certificate { .. } => ErrorKind::Usage,
        }
    }
}
