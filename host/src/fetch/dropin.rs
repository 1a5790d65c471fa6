//! Drop-in handlers: signed components for schemes berth does not build in.
//!
//! A drop-in is a `.wasm` component in a handlers directory (`$BERTH_ROOT/handlers`, then
//! `/etc/berth/handlers`), signed in the WebAssembly signature format of `wasmsign2`
//! (ed25519; the signature embedded as a custom section, or detached in `NAME.wasm.sig`).
//! It declares what it needs in a `berth:grants` custom section (JSON, see
//! [`Declaration`]); the signature covers that section too. It is loaded only when a key
//! trusted *for the scheme it declares* signed it ([`crate::trust::HandlerKeyring`]). A
//! trusted drop-in may replace a built-in handler; an untrusted one never shadows anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::{Algorithm, Digest};
use crate::trust::{HandlerKeyring, HandlerSigner, TrustError};
use crate::{ErrorKind, HasKind};

/// The custom section a handler's grant declaration lives in.
pub const GRANTS_SECTION: &str = "berth:grants";

use crate::trust::COMPONENT_HEADER;

/// What a handler says it needs. The host grants the intersection of this, the
/// distribution point and the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Declaration {
    /// The `cimd` type it serves.
    pub scheme: String,
    /// Host patterns it may reach (`registry.example.com`, `*.example.com`, `*`); the
    /// host of the point must match one, and is then all it gets.
    #[serde(default)]
    pub network: Vec<String>,
    /// Whether it may read the point's local file or directory (read-only).
    #[serde(default)]
    pub local: bool,
    /// Largest response body or read it may ask for, in bytes.
    pub max_response_bytes: Option<u64>,
    /// Guest time per fetch, in milliseconds.
    pub time_budget_ms: Option<u64>,
    /// Linear memory cap, in bytes.
    pub memory_bytes: Option<u64>,
}

impl Declaration {
    /// Whether `host` (`name[:port]`) matches one of the declared patterns.
    pub fn allows_host(&self, host: &str) -> bool {
        let name =
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        self.network.iter().any(|pattern| {
            pattern == "*"
                || pattern.eq_ignore_ascii_case(host)
                || pattern.eq_ignore_ascii_case(name)
                || pattern.strip_prefix("*.").is_some_and(|suffix| {
                    name.len() > suffix.len() + 1
                        && name.to_ascii_lowercase().ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
                })
        })
    }
}

#[derive(Debug, Error)]
pub enum DropInError {
    #[error("reading {path}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid WebAssembly component")]
    Malformed {
        path: String,
        #[source]
        source: wasmparser::BinaryReaderError,
    },
    #[error("{path} is not a WebAssembly component")]
    NotAComponent { path: String },
    #[error("{path} declares no grants (a `{GRANTS_SECTION}` custom section; see docs/sdk.md)")]
    NoDeclaration { path: String },
    #[error("{path}: its `{GRANTS_SECTION}` declaration is invalid")]
    BadDeclaration {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// It is a well-formed drop-in, but no trusted key signed it for its scheme.
    #[error(transparent)]
    Refused(Box<TrustError>),
}

impl From<TrustError> for DropInError {
    fn from(e: TrustError) -> DropInError {
        DropInError::Refused(Box::new(e))
    }
}

impl HasKind for DropInError {
    fn kind(&self) -> ErrorKind {
        match self {
            DropInError::Unreadable { .. } => ErrorKind::Io,
            DropInError::Malformed { .. }
            | DropInError::NotAComponent { .. }
            | DropInError::NoDeclaration { .. }
            | DropInError::BadDeclaration { .. } => ErrorKind::Invalid,
            DropInError::Refused(e) => e.kind(),
        }
    }
}

/// Read the `berth:grants` section of a component (it may sit in a nested core module).
pub fn read_declaration(path: &Path, bytes: &[u8]) -> Result<Declaration, DropInError> {
    let shown = path.display().to_string();
    if !bytes.starts_with(&COMPONENT_HEADER) {
        return Err(DropInError::NotAComponent { path: shown });
    }
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|source| DropInError::Malformed { path: shown.clone(), source })?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == GRANTS_SECTION
        {
            return serde_json::from_slice(section.data())
                .map_err(|source| DropInError::BadDeclaration { path: shown.clone(), source });
        }
    }
    Err(DropInError::NoDeclaration { path: shown })
}

/// A drop-in handler file, read and parsed, not yet verified.
#[derive(Debug, Clone)]
pub struct DropIn {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub declaration: Declaration,
    /// A detached signature (`NAME.wasm.sig`), if there is one.
    pub detached_signature: Option<Vec<u8>>,
}

impl DropIn {
    pub fn read(path: &Path) -> Result<DropIn, DropInError> {
        let bytes = std::fs::read(path)
            .map_err(|source| DropInError::Unreadable { path: path.display().to_string(), source })?;
        let declaration = read_declaration(path, &bytes)?;
        let sig_path = PathBuf::from(format!("{}.sig", path.display()));
        let detached_signature = std::fs::read(&sig_path).ok();
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        Ok(DropIn { path: path.to_path_buf(), bytes, digest, declaration, detached_signature })
    }

    /// Which trusted key signed it, for the scheme it declares.
    pub fn verify(&self, keys: &HandlerKeyring) -> Result<HandlerSigner, TrustError> {
        keys.verify(&self.path, &self.bytes, self.detached_signature.as_deref(), &self.declaration.scheme)
    }
}

/// The default handler directories, in order of precedence.
pub fn default_dirs(store_root: &Path) -> Vec<PathBuf> {
    vec![store_root.join("handlers"), PathBuf::from("/etc/berth/handlers")]
}

/// Every `.wasm` file in `dirs`, read; files that cannot be parsed come back as errors
/// so `berth handler list` can show them.
pub fn discover(dirs: &[PathBuf]) -> Vec<Result<DropIn, DropInError>> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
        paths.sort();
        out.extend(paths.iter().map(|p| DropIn::read(p)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let d = Declaration {
            scheme: "s".into(),
            network: vec!["*.example.com".into(), "127.0.0.1".into()],
            local: false,
            max_response_bytes: None,
            time_budget_ms: None,
            memory_bytes: None,
        };
        assert!(d.allows_host("a.example.com") && d.allows_host("a.b.example.com:8443"));
        assert!(!d.allows_host("example.com") && !d.allows_host("evilexample.com"));
        assert!(d.allows_host("127.0.0.1:8000") && !d.allows_host("127.0.0.2"));
    }
}
