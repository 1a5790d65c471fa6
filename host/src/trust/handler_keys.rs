//! Handler keys: ed25519 public keys (any form wasmsign2 reads: raw, PEM, DER) trusted
//! to sign drop-in handler components, each for one scheme, in
//! `<root>/trust/handlers/<scheme>/<key id>.pub`. The key id is the first 16 hex digits
//! of the sha256 of the raw public key.
//!
//! A component is signed in the WebAssembly signature format of `wasmsign2` (the
//! signature embedded as a custom section, or detached). wasmsign2 does not hash the
//! 8-byte preamble, so [`HandlerKeyring::verify`] checks it: a signature must not vouch
//! for other bytes than a component's.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::Digest as _;

use super::TrustError;
use super::error::io;

/// The component-model preamble (magic, version, layer).
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// The keys trusted to sign handlers, per scheme.
pub struct HandlerKeyring {
    dir: PathBuf,
}

/// A trusted handler key: its id, the scheme it is trusted for, the key.
pub struct HandlerKey {
    pub id: String,
    pub scheme: String,
    pub path: PathBuf,
    key: wasmsign2::PublicKey,
}

/// The key that vouched for a handler component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerSigner {
    pub key_id: String,
    pub scheme: String,
}

impl HandlerKeyring {
    /// Keys under `<store root>/trust/handlers`.
    pub fn new(store_root: &Path) -> HandlerKeyring {
        HandlerKeyring { dir: store_root.join("trust").join("handlers") }
    }

    /// Trust `key` (raw, PEM or DER ed25519) for `scheme`; returns its id.
    pub fn add(&self, scheme: &str, key: &[u8]) -> Result<String, TrustError> {
        let valid = scheme.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && scheme.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(TrustError::BadScheme { scheme: scheme.to_string() });
        }
        let pk = wasmsign2::PublicKey::from_any(key)
            .map_err(|source| TrustError::HandlerKeyUnreadable { subject: "the key".into(), source })?;
        let id = key_id(&pk);
        let dir = self.dir.join(scheme);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut tmp =
            tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir).map_err(io("creating a file in", &dir))?;
        std::io::Write::write_all(&mut tmp, pk.to_pem().as_bytes()).map_err(io("writing", tmp.path().to_path_buf()))?;
        let path = dir.join(format!("{id}.pub"));
        tmp.persist(&path).map_err(|e| TrustError::Io { action: "writing", path: path.clone(), source: e.error })?;
        Ok(id)
    }

    /// Remove key `id` (a prefix of ≥ 4 digits; for one scheme, or all); returns how
    /// many entries went.
    pub fn remove(&self, id: &str, scheme: Option<&str>) -> Result<usize, TrustError> {
        let mut n = 0;
        for k in self.keys()? {
            if k.id.starts_with(id) && id.len() >= 4 && scheme.is_none_or(|s| s == k.scheme) {
                std::fs::remove_file(&k.path).map_err(io("removing", &k.path))?;
                n += 1;
            }
        }
        if n == 0 {
            return Err(TrustError::NotTrusted {
                fingerprint: id.to_string(),
                scope: scheme.map(|s| format!("handlers of scheme {s}")),
            });
        }
        Ok(n)
    }

    /// Every trusted key, with its scheme.
    pub fn keys(&self) -> Result<Vec<HandlerKey>, TrustError> {
        let mut out = Vec::new();
        let Ok(schemes) = std::fs::read_dir(&self.dir) else { return Ok(out) };
        for scheme in schemes.flatten() {
            let Ok(files) = std::fs::read_dir(scheme.path()) else { continue };
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_none_or(|e| e != "pub") {
                    continue;
                }
                let data = std::fs::read(&path).map_err(io("reading", &path))?;
                let key = wasmsign2::PublicKey::from_any(&data).map_err(|source| TrustError::HandlerKeyUnreadable {
                    subject: path.display().to_string(),
                    source,
                })?;
                out.push(HandlerKey {
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

    /// Which trusted key signed `component` (embedded signature, or `detached`), for
    /// `scheme`. `shown` names the component in errors.
    pub fn verify(
        &self,
        shown: &Path,
        component: &[u8],
        detached: Option<&[u8]>,
        scheme: &str,
    ) -> Result<HandlerSigner, TrustError> {
        let path = shown.display().to_string();
        if !component.starts_with(&COMPONENT_HEADER) {
            return Err(TrustError::NotAComponent { path });
        }
        let signed = detached.is_some()
            || wasmsign2::signature_info_from_reader(&mut &component[..], None).is_ok_and(|i| i.is_signed());
        if !signed {
            return Err(TrustError::HandlerUnsigned { path });
        }
        let keys = self.keys()?;
        // One pass over the component hashes it once, then checks every key.
        let set = wasmsign2::PublicKeySet::new(keys.iter().map(|k| k.key.clone()).collect());
        let matched: Vec<Vec<u8>> = set
            .verify(&mut &component[..], detached)
            .map(|found| found.into_iter().map(|pk| pk.to_bytes()).collect())
            .unwrap_or_default();
        let verified: Vec<&HandlerKey> = keys.iter().filter(|k| matched.contains(&k.key.to_bytes())).collect();
        if let Some(k) = verified.iter().find(|k| k.scheme == scheme) {
            return Ok(HandlerSigner { key_id: k.id.clone(), scheme: scheme.to_string() });
        }
        match verified.first() {
            Some(k) => Err(TrustError::HandlerWrongScheme {
                path,
                scheme: scheme.to_string(),
                key: k.id.clone(),
                trusted_for: verified.iter().filter(|v| v.id == k.id).map(|v| v.scheme.clone()).collect(),
            }),
            None => Err(TrustError::HandlerNotTrusted { path, scheme: scheme.to_string() }),
        }
    }
}

fn key_id(pk: &wasmsign2::PublicKey) -> String {
    hex::encode(&sha2::Sha256::digest(pk.to_bytes())[..8])
}
