//! Drop-in handlers: signed components for schemes berth does not build in.
//!
//! A drop-in is a `.wasm` component in a handlers directory (`$BERTH_ROOT/handlers`, then
//! `/etc/berth/handlers`), signed in the WebAssembly signature format of `wasmsign2`
//! (ed25519; the signature embedded as a custom section, or detached in `NAME.wasm.sig`).
//! It declares what it needs in a `berth:grants` custom section (JSON, see
//! [`Declaration`]); the signature covers that section too. It is loaded only when a key
//! trusted *for the scheme it declares* signed it. A trusted drop-in may replace a
//! built-in handler; an untrusted one never shadows anything.
//!
//! Handler keys live in `$BERTH_ROOT/trust/handlers/<scheme>/<key-id>.pub` (any format
//! wasmsign2 reads: raw, PEM, DER); the key id is the first 16 hex digits of the sha256
//! of the raw public key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use thiserror::Error;

use crate::ErrorKind;
use crate::store::{Algorithm, Digest};

/// The custom section a handler's grant declaration lives in.
pub const GRANTS_SECTION: &str = "berth:grants";

/// The component-model preamble. wasmsign2 does not hash the 8-byte header, so it is
/// checked here: a signature must not vouch for other bytes than a component's.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

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
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path} is not a WebAssembly component")]
    NotAComponent { path: String },
    #[error("{path} declares no grants (a `{GRANTS_SECTION}` custom section; see docs/sdk.md)")]
    NoDeclaration { path: String },
    #[error("{path}: its `{GRANTS_SECTION}` declaration is invalid: {reason}")]
    BadDeclaration { path: String, reason: String },
    #[error("{path} is not signed (sign it with wasmsign2, embedded or as {path}.sig)")]
    Unsigned { path: String },
    #[error(
        "{path}: no trusted handler key's signature verifies: it was signed by a key berth does not \
         trust, or modified after signing (trust a key with `berth handler trust --scheme {scheme} KEY`)"
    )]
    NotTrusted { path: String, scheme: String },
    #[error(
        "{path} declares scheme {scheme:?} but its signer {key} is trusted only for {}",
        trusted_for.join(", ")
    )]
    WrongScheme { path: String, scheme: String, key: String, trusted_for: Vec<String> },
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
}

impl DropInError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DropInError::Unreadable { .. } | DropInError::Key { .. } => ErrorKind::Io,
            DropInError::NotAComponent { .. }
            | DropInError::NoDeclaration { .. }
            | DropInError::BadDeclaration { .. } => ErrorKind::Invalid,
            DropInError::Unsigned { .. } | DropInError::NotTrusted { .. } | DropInError::WrongScheme { .. } => {
                ErrorKind::Denied
            }
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
        let payload = payload.map_err(|e| DropInError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == GRANTS_SECTION
        {
            return serde_json::from_slice(section.data())
                .map_err(|e| DropInError::BadDeclaration { path: shown.clone(), reason: e.to_string() });
        }
    }
    Err(DropInError::NoDeclaration { path: shown })
}

/// Keys trusted to sign handlers, per scheme.
pub struct HandlerTrust {
    dir: PathBuf,
}

/// A trusted key: its id, the scheme it is trusted for, the key.
pub struct TrustedKey {
    pub id: String,
    pub scheme: String,
    pub path: PathBuf,
    key: wasmsign2::PublicKey,
}

impl HandlerTrust {
    /// Keys under `<store root>/trust/handlers`.
    pub fn new(store_root: &Path) -> HandlerTrust {
        HandlerTrust { dir: store_root.join("trust").join("handlers") }
    }

    /// Trust `key` (raw, PEM or DER ed25519) for `scheme`; returns its id.
    pub fn add(&self, scheme: &str, key: &[u8]) -> Result<String, DropInError> {
        let valid = scheme.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && scheme.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(DropInError::Key {
                path: scheme.into(),
                reason: "a scheme is lowercase letters, digits and '-', as a cimd type".into(),
            });
        }
        let pk = wasmsign2::PublicKey::from_any(key)
            .map_err(|e| DropInError::Key { path: "key".into(), reason: e.to_string() })?;
        let id = key_id(&pk);
        let dir = self.dir.join(scheme);
        let io = |e: std::io::Error| DropInError::Unreadable { path: dir.display().to_string(), reason: e.to_string() };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, pk.to_pem().as_bytes()).map_err(io)?;
        tmp.persist(dir.join(format!("{id}.pub"))).map_err(|e| io(e.error))?;
        Ok(id)
    }

    /// Remove key `id` (for one scheme, or all); returns how many entries went.
    pub fn remove(&self, id: &str, scheme: Option<&str>) -> Result<usize, DropInError> {
        let mut n = 0;
        for k in self.keys()? {
            if k.id.starts_with(id) && id.len() >= 4 && scheme.is_none_or(|s| s == k.scheme) {
                std::fs::remove_file(&k.path).map_err(|e| DropInError::Unreadable {
                    path: k.path.display().to_string(),
                    reason: e.to_string(),
                })?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every trusted key, with its scheme.
    pub fn keys(&self) -> Result<Vec<TrustedKey>, DropInError> {
        let mut out = Vec::new();
        let Ok(schemes) = std::fs::read_dir(&self.dir) else { return Ok(out) };
        for scheme in schemes.flatten() {
            let Ok(files) = std::fs::read_dir(scheme.path()) else { continue };
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_none_or(|e| e != "pub") {
                    continue;
                }
                let data = std::fs::read(&path)
                    .map_err(|e| DropInError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
                let key = wasmsign2::PublicKey::from_any(&data)
                    .map_err(|e| DropInError::Key { path: path.display().to_string(), reason: e.to_string() })?;
                out.push(TrustedKey {
                    id: key_id(&key),
                    scheme: scheme.file_name().to_string_lossy().into_owned(),
                    path,
                    key,
                });
            }
        }
        out.sort_by(|a, b| (&a.scheme, &a.id).cmp(&(&b.scheme, &b.id)));
        Ok(out)
    }
}

fn key_id(pk: &wasmsign2::PublicKey) -> String {
    hex::encode(&sha2::Sha256::digest(pk.to_bytes())[..8])
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
            .map_err(|e| DropInError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        let declaration = read_declaration(path, &bytes)?;
        let sig_path = PathBuf::from(format!("{}.sig", path.display()));
        let detached_signature = std::fs::read(&sig_path).ok();
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        Ok(DropIn { path: path.to_path_buf(), bytes, digest, declaration, detached_signature })
    }

    /// Which trusted key signed it, for the scheme it declares.
    pub fn verify(&self, trust: &HandlerTrust) -> Result<Signer, DropInError> {
        let path = self.path.display().to_string();
        let scheme = self.declaration.scheme.clone();
        let signed = self.detached_signature.is_some()
            || wasmsign2::signature_info_from_reader(&mut &self.bytes[..], None).is_ok_and(|i| i.is_signed());
        if !signed {
            return Err(DropInError::Unsigned { path });
        }
        let keys = trust.keys()?;
        // One pass over the component hashes it once, then checks every key.
        let set = wasmsign2::PublicKeySet::new(keys.iter().map(|k| k.key.clone()).collect());
        let matched: Vec<Vec<u8>> = set
            .verify(&mut &self.bytes[..], self.detached_signature.as_deref())
            .map(|found| found.into_iter().map(|pk| pk.to_bytes()).collect())
            .unwrap_or_default();
        let verified: Vec<&TrustedKey> = keys.iter().filter(|k| matched.contains(&k.key.to_bytes())).collect();
        if let Some(k) = verified.iter().find(|k| k.scheme == scheme) {
            return Ok(Signer { key_id: k.id.clone(), scheme });
        }
        match verified.first() {
            Some(k) => Err(DropInError::WrongScheme {
                path,
                scheme,
                key: k.id.clone(),
                trusted_for: verified.iter().filter(|v| v.id == k.id).map(|v| v.scheme.clone()).collect(),
            }),
            None => Err(DropInError::NotTrusted { path, scheme }),
        }
    }
}

/// The key that vouched for a drop-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    pub key_id: String,
    pub scheme: String,
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
