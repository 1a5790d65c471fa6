//! The on-disk compile cache: a component is compiled by Cranelift once, and later
//! runs deserialize the native code in well under a millisecond.
//!
//! An entry is named by the component's sha256 and a fingerprint of this engine's
//! configuration and wasmtime version, so a changed berth never loads stale code.

use std::fs;
use std::hash::Hasher as _;
use std::path::PathBuf;

use sha2::Digest as _;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::SandboxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Compiled now (and written to the cache when there is one).
    Compiled,
    /// Deserialized from the cache.
    Loaded,
}

/// Feeds `Hash` output into sha256, to fingerprint the engine stably.
struct Sha256Hasher(sha2::Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> ComponentCache {
        let mut h = Sha256Hasher(sha2::Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        h.write(env!("CARGO_PKG_VERSION").as_bytes());
        let fingerprint = hex::encode(&h.0.finalize()[..8]);
        ComponentCache { dir, fingerprint }
    }

    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest_hex: &str,
    ) -> Result<(Component, CacheOutcome), SandboxError> {
        let compile = || {
            Component::new(engine, bytes)
                .map_err(|source| SandboxError::Compile { digest: format!("sha256:{digest_hex}"), source })
        };
        let Some(dir) = &self.dir else {
            return Ok((compile()?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{digest_hex}-{}.cwasm", self.fingerprint));
        // Read into memory rather than mmap the file: a cache entry truncated under a
        // running berth must not turn into SIGBUS.
        if let Ok(bytes) = fs::read(&path) {
            // SAFETY: the bytes were written by `Component::serialize` of this same engine
            // configuration (the name carries its fingerprint) into the store root, which
            // only the store's owner can write; whoever can write there can already
            // replace berth's inputs. wasmtime checks the header, version and layout.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(c) => return Ok((c, CacheOutcome::Loaded)),
                Err(e) => tracing::warn!("ignoring unusable compile cache entry {}: {e}", path.display()),
            }
        }
        let component = compile()?;
        let cache_err = |source| SandboxError::Cache { path: path.clone(), source };
        let serialized = component
            .serialize()
            .map_err(|source| SandboxError::Compile { digest: format!("sha256:{digest_hex}"), source })?;
        fs::create_dir_all(dir).map_err(cache_err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(cache_err)?;
        std::io::Write::write_all(&mut tmp, &serialized).map_err(cache_err)?;
        tmp.persist(&path).map_err(|e| cache_err(e.error))?;
        Ok((component, CacheOutcome::Compiled))
    }
}
