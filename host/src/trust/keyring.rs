//! The image keyring: public keys trusted to sign images, per name scope (root, or a
//! name prefix), as rkt kept them (`trust/root.d`, `trust/prefix.d/<prefix>`): OpenPGP
//! keys (appc signatures, containers' simple signing) and, beside them, sigstore keys
//! (cosign signatures, [`super::sigstore`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pgp::composed::ArmorOptions;
use serde::Serialize;

use super::error::io;
use super::key::Cert;
use super::scope::{Scope, prefixes_of};
use super::sigstore::{self, SigstoreKey, is_sigstore_key};
use super::{TrustError, time};

/// Which kind of signature a key checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// An OpenPGP key: appc signatures, containers' simple signing.
    Openpgp,
    /// An ECDSA P-256 key in PEM: cosign signatures.
    Sigstore,
}

/// A key, as shown for review before it is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kind: KeyKind,
    /// Upper-case hex.
    pub fingerprint: String,
    /// The last 16 hex digits of a v4 fingerprint (the first 16 of a v6 one).
    pub key_id: String,
    pub user_ids: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; `None` when it does not expire.
    pub expires: Option<i64>,
    /// Fingerprints of the subkeys that may sign (bound for signing, valid, unexpired).
    pub signing_subkeys: Vec<String>,
}

/// A key in the keyring, with the scope it is trusted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageKey {
    pub kind: KeyKind,
    pub scope: Scope,
    pub fingerprint: String,
    pub key_id: String,
    pub user_ids: Vec<String>,
    pub created: i64,
    pub expires: Option<i64>,
    /// The armored key file.
    pub path: PathBuf,
}

/// The appc keyring under a store root.
pub struct Keyring {
    pub(super) dir: PathBuf,
}

/// Describe a public key (OpenPGP, armored or binary; or a sigstore PEM key) for
/// review, refusing what [`Keyring::add`] would refuse: secret keys, several keys, keys
/// without a valid self-signature, and revoked or expired keys.
pub fn inspect(key: &[u8]) -> Result<KeyInfo, TrustError> {
    if is_sigstore_key(key) {
        return Ok(sigstore_info(&SigstoreKey::parse(key, "the key")?));
    }
    let cert = Cert::parse(key, "the key")?;
    let now = time::unix(SystemTime::now());
    cert.check_usable(now)?;
    Ok(info(&cert, now))
}

fn sigstore_info(key: &SigstoreKey) -> KeyInfo {
    KeyInfo {
        kind: KeyKind::Sigstore,
        fingerprint: key.fingerprint.clone(),
        key_id: key.fingerprint[..16].to_string(),
        user_ids: Vec::new(),
        created: 0,
        expires: None,
        signing_subkeys: Vec::new(),
    }
}

fn info(cert: &Cert, now: i64) -> KeyInfo {
    KeyInfo {
        kind: KeyKind::Openpgp,
        fingerprint: cert.fingerprint.clone(),
        key_id: cert.key_id.clone(),
        user_ids: cert.user_ids.clone(),
        created: cert.primary.created,
        expires: cert.primary.expires,
        signing_subkeys: cert
            .subkeys
            .iter()
            .filter(|s| s.may_sign && s.check_usable(&s.shown, now).is_ok())
            .map(|s| s.shown.clone())
            .collect(),
    }
}

fn trusted_sigstore(scope: &Scope, key: &SigstoreKey, path: PathBuf) -> ImageKey {
    ImageKey {
        kind: KeyKind::Sigstore,
        scope: scope.clone(),
        fingerprint: key.fingerprint.clone(),
        key_id: key.fingerprint[..16].to_string(),
        user_ids: Vec::new(),
        created: 0,
        expires: None,
        path,
    }
}

fn trusted(scope: &Scope, cert: &Cert, path: PathBuf) -> ImageKey {
    ImageKey {
        kind: KeyKind::Openpgp,
        scope: scope.clone(),
        fingerprint: cert.fingerprint.clone(),
        key_id: cert.key_id.clone(),
        user_ids: cert.user_ids.clone(),
        created: cert.primary.created,
        expires: cert.primary.expires,
        path,
    }
}

/// The keys trusted for one name, of both kinds, read once to check several signatures.
pub struct NameKeys {
    pub(super) name: String,
    pub(super) openpgp: Vec<(Scope, Cert)>,
    pub(super) sigstore: Vec<(Scope, SigstoreKey)>,
}

impl NameKeys {
    /// Whether an OpenPGP key (simple signing) is trusted for the name.
    pub fn has_openpgp(&self) -> bool {
        !self.openpgp.is_empty()
    }

    /// Whether a sigstore key (cosign) is trusted for the name.
    pub fn has_sigstore(&self) -> bool {
        !self.sigstore.is_empty()
    }
}

/// A kind of key kept in the scope directories, one per file named by its fingerprint.
pub(super) trait StoredKey: Sized {
    /// The fingerprint a file of this kind is named after; `None`: not such a file.
    fn fingerprint_of_file(name: &str) -> Option<&str>;
    fn parse_stored(bytes: &[u8], subject: &str) -> Result<Self, TrustError>;
    fn fingerprint(&self) -> &str;
}

/// Upper-case hex of `lens` digits.
pub(super) fn is_hex_fingerprint(name: &str, lens: &[usize]) -> bool {
    lens.contains(&name.len()) && name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl StoredKey for Cert {
    /// A v4 (40) or v6 (64) fingerprint, nothing more.
    fn fingerprint_of_file(name: &str) -> Option<&str> {
        is_hex_fingerprint(name, &[40, 64]).then_some(name)
    }
    fn parse_stored(bytes: &[u8], subject: &str) -> Result<Cert, TrustError> {
        Cert::parse(bytes, subject)
    }
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Keyring {
    /// The keyring under `<store_root>/trust`.
    pub fn new(store_root: &Path) -> Keyring {
        Keyring { dir: store_root.join("trust") }
    }

    /// Trust `key` (one OpenPGP public key, armored or binary; or one sigstore PEM key)
    /// for `scope`; an OpenPGP key is stored armored as `<scope dir>/<FINGERPRINT>`,
    /// replacing an earlier copy (so a re-add picks up new self-signatures), a sigstore
    /// key as `<FINGERPRINT>.pub`. Secret keys, keys without a valid self-signature, and
    /// revoked or expired keys are refused.
    pub fn add(&self, scope: &Scope, key: &[u8]) -> Result<ImageKey, TrustError> {
        if is_sigstore_key(key) {
            let key = SigstoreKey::parse(key, "the key")?;
            let path =
                self.write_key(scope, &format!("{}{}", key.fingerprint, sigstore::SUFFIX), key.pem.as_bytes())?;
            tracing::info!(fingerprint = %key.fingerprint, %scope, "trusted sigstore signing key");
            return Ok(trusted_sigstore(scope, &key, path));
        }
        let cert = Cert::parse(key, "the key")?;
        cert.check_usable(time::unix(SystemTime::now()))?;
        let armored = cert
            .key
            .to_armored_bytes(ArmorOptions::default())
            .map_err(|source| TrustError::KeyUnreadable { subject: cert.fingerprint.clone(), source })?;
        let path = self.write_key(scope, &cert.fingerprint, &armored)?;
        tracing::info!(fingerprint = %cert.fingerprint, %scope, "trusted OpenPGP signing key");
        Ok(trusted(scope, &cert, path))
    }

    /// Every trusted key, root keys first, then by prefix and fingerprint.
    pub fn list(&self) -> Result<Vec<ImageKey>, TrustError> {
        let mut out = Vec::new();
        for scope in self.scopes()? {
            for (path, cert) in self.load::<Cert>(&scope)? {
                out.push(trusted(&scope, &cert, path));
            }
            for (path, key) in self.load::<SigstoreKey>(&scope)? {
                out.push(trusted_sigstore(&scope, &key, path));
            }
        }
        Ok(out)
    }

    /// Stop trusting the key `fingerprint` (its full fingerprint or its 16-digit key
    /// id; case and spaces ignored, `0x` allowed) in `scope`, or in every scope when
    /// `None`. Returns what was removed; [`TrustError::NotTrusted`] when nothing matched.
    pub fn remove(&self, fingerprint: &str, scope: Option<&Scope>) -> Result<Vec<ImageKey>, TrustError> {
        let wanted: String =
            fingerprint.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let wanted = wanted.strip_prefix("0X").unwrap_or(&wanted).to_string();
        if !matches!(wanted.len(), 16 | 40 | 64) || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TrustError::BadFingerprint { fingerprint: fingerprint.to_string() });
        }
        let mut removed = Vec::new();
        for k in self.list()? {
            let matches = k.fingerprint == wanted || k.key_id == wanted;
            if matches && scope.is_none_or(|s| *s == k.scope) {
                std::fs::remove_file(&k.path).map_err(io("removing", &k.path))?;
                removed.push(k);
            }
        }
        for k in removed.iter().filter(|k| matches!(k.scope, Scope::Prefix(_))) {
            // An emptied prefix directory goes too; one still holding keys stays.
            let _ = std::fs::remove_dir(k.scope.dir(&self.dir));
        }
        if removed.is_empty() {
            return Err(TrustError::NotTrusted { fingerprint: wanted, scope: scope.map(Scope::to_string) });
        }
        Ok(removed)
    }

    /// Root, then every prefix directory that holds a valid escaped prefix.
    fn scopes(&self) -> Result<Vec<Scope>, TrustError> {
        let mut scopes = vec![Scope::Root];
        let dir = self.dir.join("prefix.d");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scopes),
            Err(e) => return Err(io("reading", &dir)(e)),
        };
        let mut prefixes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading", &dir))?;
            let name = entry.file_name();
            match name.to_str().and_then(Scope::from_dir_name) {
                Some(scope) => prefixes.push(scope),
                None => {
                    tracing::warn!(path = %entry.path().display(), "ignoring a directory that is not an escaped prefix")
                }
            }
        }
        prefixes.sort();
        scopes.extend(prefixes);
        Ok(scopes)
    }

    /// Every key trusted for `name`, both kinds.
    pub fn keys_for(&self, name: &str) -> Result<NameKeys, TrustError> {
        Ok(NameKeys {
            name: name.to_string(),
            openpgp: self.applicable::<Cert>(name)?,
            sigstore: self.applicable::<SigstoreKey>(name)?,
        })
    }

    /// The keys of kind `K` trusted for `name`: its prefixes' keys, most specific first,
    /// then root keys.
    pub(super) fn applicable<K: StoredKey>(&self, name: &str) -> Result<Vec<(Scope, K)>, TrustError> {
        let mut out = Vec::new();
        let scopes = prefixes_of(name).into_iter().filter_map(|p| Scope::prefix(&p).ok()).chain([Scope::Root]);
        for scope in scopes {
            debug_assert!(scope.applies_to(name));
            out.extend(self.load::<K>(&scope)?.into_iter().map(|(_, key)| (scope.clone(), key)));
        }
        Ok(out)
    }

    /// The key files of kind `K` in one scope, parsed; a missing directory is an empty
    /// scope. A file named as a fingerprint must hold that key.
    fn load<K: StoredKey>(&self, scope: &Scope) -> Result<Vec<(PathBuf, K)>, TrustError> {
        let dir = scope.dir(&self.dir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &dir)(e)),
        };
        let mut out: Vec<(PathBuf, K)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading", &dir))?;
            let path = entry.path();
            let file_name = entry.file_name();
            // Temp files of an add in progress, editor leftovers, keys of the other kind.
            let Some(name) = file_name.to_str().and_then(K::fingerprint_of_file) else { continue };
            let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
            let key = K::parse_stored(&bytes, &path.display().to_string())
                .map_err(|e| TrustError::StoredKey { path: path.clone(), source: Box::new(e) })?;
            if key.fingerprint() != name {
                return Err(TrustError::StoredKeyMismatch { path, holds: key.fingerprint().to_string() });
            }
            out.push((path, key));
        }
        out.sort_by(|a, b| a.1.fingerprint().cmp(b.1.fingerprint()));
        Ok(out)
    }

    /// Write a key file into `scope` by temp file, sync and rename.
    fn write_key(&self, scope: &Scope, file_name: &str, bytes: &[u8]) -> Result<PathBuf, TrustError> {
        let dir = scope.dir(&self.dir);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = dir.join(file_name);
        let mut tmp =
            tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir).map_err(io("creating a file in", &dir))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(io("writing", tmp.path().to_path_buf()))?;
        tmp.as_file().sync_all().map_err(io("syncing", tmp.path().to_path_buf()))?;
        tmp.persist(&path).map_err(|e| TrustError::Io { action: "writing", path: path.clone(), source: e.error })?;
        Ok(path)
    }
}
