//! Trust for appc images: which OpenPGP keys may sign which image names, and the check
//! of an image's detached signature (`.aci.asc`, armored, over the ACI's bytes as served)
//! against them, as rkt did.
//!
//! The keyring lives under the store root, one armored public key per file, named by its
//! fingerprint and written by temp file + rename:
//!
//! ```text
//! <root>/trust/root.d/<FINGERPRINT>                     trusted for every name
//! <root>/trust/prefix.d/<escaped prefix>/<FINGERPRINT>  trusted for the prefix and below
//! ```
//!
//! Glossary:
//! - **name**: an appc image name, `example.com/app/sub`.
//! - **prefix**: a name or its leading path segments; it applies to names equal to it or
//!   below it on a `/` boundary (`example.com` covers `example.com/app`; `example.com/ap`
//!   does not). Escaped into one directory name (`/` → `%2F`).
//! - **scope**: root (every name) or one prefix; the same key may be trusted in several.
//! - **applicable keys**: for a name, the root keys and the keys of each of its prefixes.
//! - **signer**: the trusted key (primary, or a signing subkey of it) whose signature
//!   verified, with the scope that made it applicable.
//!
//! rPGP checks the cryptography; this module adds what it leaves out: a key or subkey
//! is refused when revoked or expired (by its own newest valid self-signature), a
//! subkey must be bound for signing with a valid back signature, and a signature must be
//! over data (binary or text), not expired, not dated in the future (beyond
//! [`CLOCK_SKEW`]) nor before its key, and not use MD5, SHA-1 or RIPEMD-160.

mod error;
mod key;
mod scope;
mod time;

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pgp::composed::{ArmorOptions, Deserializable as _, DetachedSignature};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use serde::Serialize;

pub use error::TrustError;
pub use scope::{Scope, prefixes_of};
pub use time::utc;

use error::io;
use key::{Cert, Which};

/// How far in the future a signature may be dated (clocks differ).
pub const CLOCK_SKEW: i64 = 5 * 60;

/// The largest signature block read (an `.aci.asc` is a few hundred bytes).
const MAX_SIGNATURES: usize = 16;

/// A key, as shown for review before it is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
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
pub struct TrustedKey {
    pub scope: Scope,
    pub fingerprint: String,
    pub key_id: String,
    pub user_ids: Vec<String>,
    pub created: i64,
    pub expires: Option<i64>,
    /// The armored key file.
    pub path: PathBuf,
}

/// Who signed: a trusted key and the scope it was trusted under for the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The primary key's fingerprint (what `berth trust list` shows).
    pub fingerprint: String,
    /// The key that made the signature: the primary's fingerprint, or a subkey's.
    pub signing_key: String,
    pub user_ids: Vec<String>,
    pub scope: Scope,
}

/// The appc keyring under a store root.
pub struct Keyring {
    dir: PathBuf,
}

/// Describe an OpenPGP public key (armored or binary) for review, refusing what
/// [`Keyring::add`] would refuse: secret keys, several keys, keys without a valid
/// self-signature, and revoked or expired keys.
pub fn inspect(key: &[u8]) -> Result<KeyInfo, TrustError> {
    let cert = Cert::parse(key, "the key")?;
    let now = time::unix(SystemTime::now());
    cert.check_usable(now)?;
    Ok(info(&cert, now))
}

fn info(cert: &Cert, now: i64) -> KeyInfo {
    KeyInfo {
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

fn trusted(scope: &Scope, cert: &Cert, path: PathBuf) -> TrustedKey {
    TrustedKey {
        scope: scope.clone(),
        fingerprint: cert.fingerprint.clone(),
        key_id: cert.key_id.clone(),
        user_ids: cert.user_ids.clone(),
        created: cert.primary.created,
        expires: cert.primary.expires,
        path,
    }
}

/// A key file name: a v4 (40) or v6 (64) fingerprint in upper-case hex.
fn is_fingerprint_name(name: &str) -> bool {
    matches!(name.len(), 40 | 64) && name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl Keyring {
    /// The keyring under `<store_root>/trust`.
    pub fn new(store_root: &Path) -> Keyring {
        Keyring { dir: store_root.join("trust") }
    }

    /// Trust `key` (one OpenPGP public key, armored or binary) for `scope`; stored
    /// armored as `<scope dir>/<FINGERPRINT>`, replacing an earlier copy (so a re-add
    /// picks up new self-signatures). Secret keys, keys without a valid self-signature,
    /// and revoked or expired keys are refused.
    pub fn add(&self, scope: &Scope, key: &[u8]) -> Result<TrustedKey, TrustError> {
        let cert = Cert::parse(key, "the key")?;
        cert.check_usable(time::unix(SystemTime::now()))?;
        let armored = cert
            .key
            .to_armored_bytes(ArmorOptions::default())
            .map_err(|source| TrustError::KeyUnreadable { subject: cert.fingerprint.clone(), source })?;
        let dir = scope.dir(&self.dir);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = dir.join(&cert.fingerprint);
        let mut tmp =
            tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir).map_err(io("creating a file in", &dir))?;
        std::io::Write::write_all(&mut tmp, &armored).map_err(io("writing", tmp.path().to_path_buf()))?;
        tmp.as_file().sync_all().map_err(io("syncing", tmp.path().to_path_buf()))?;
        tmp.persist(&path).map_err(|e| TrustError::Io { action: "writing", path: path.clone(), source: e.error })?;
        tracing::info!(fingerprint = %cert.fingerprint, %scope, "trusted appc signing key");
        Ok(trusted(scope, &cert, path))
    }

    /// Every trusted key, root keys first, then by prefix and fingerprint.
    pub fn list(&self) -> Result<Vec<TrustedKey>, TrustError> {
        let mut out = Vec::new();
        for scope in self.scopes()? {
            for (path, cert) in self.load(&scope)? {
                out.push(trusted(&scope, &cert, path));
            }
        }
        Ok(out)
    }

    /// Stop trusting the key `fingerprint` (its full fingerprint or its 16-digit key
    /// id; case and spaces ignored, `0x` allowed) in `scope`, or in every scope when
    /// `None`. Returns what was removed; [`TrustError::NotTrusted`] when nothing matched.
    pub fn remove(&self, fingerprint: &str, scope: Option<&Scope>) -> Result<Vec<TrustedKey>, TrustError> {
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

    /// Check `armored_signature` (a detached OpenPGP signature block, armored or binary)
    /// over the bytes of `signed` against the keys trusted for `name`, now.
    ///
    /// `signed` is streamed once through the hash when one trusted key is a candidate for
    /// the signature (the usual case); with several candidates (several signatures in the
    /// block by different trusted keys, or a signature naming no issuer) it is first
    /// copied to an unnamed temporary file and read once per candidate.
    pub fn verify(&self, name: &str, signed: &mut dyn Read, armored_signature: &[u8]) -> Result<Signer, TrustError> {
        self.verify_at(name, signed, armored_signature, SystemTime::now())
    }

    /// [`Keyring::verify`] as if the time were `now`: expiry and revocation are judged
    /// at that time.
    pub fn verify_at(
        &self,
        name: &str,
        signed: &mut dyn Read,
        armored_signature: &[u8],
        now: SystemTime,
    ) -> Result<Signer, TrustError> {
        let now = time::unix(now);
        let sigs = parse_signatures(armored_signature)?;
        let keys = self.applicable(name)?;
        if keys.is_empty() {
            return Err(TrustError::NoTrustedKey { name: name.to_string(), prefixes: prefixes_of(name) });
        }

        // Pairs (signature, trusted key) the signature names as its issuer; the same
        // key trusted in several scopes is tried once, under its most specific scope.
        let mut candidates: Vec<(&Signature, &Scope, &Cert, Which)> = Vec::new();
        for sig in &sigs {
            for (scope, cert) in &keys {
                for (which, component) in cert.components() {
                    let named = key::issued_by(sig, &component.fingerprint, &component.key_id);
                    let seen = candidates
                        .iter()
                        .any(|(s, _, c, w)| std::ptr::eq(*s, sig) && c.fingerprint == cert.fingerprint && *w == which);
                    if named && !seen {
                        candidates.push((sig, scope, cert, which));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Err(untrusted_signer(name, &sigs, &keys));
        }

        // Refusals that need no data: revoked or expired keys, bad dates, weak hashes.
        let mut refusal = None;
        let mut usable = Vec::new();
        for candidate @ (sig, _, cert, which) in candidates {
            match check_candidate(sig, cert, which, now) {
                Ok(()) => usable.push(candidate),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        if usable.is_empty() {
            return Err(refusal.expect("every candidate was refused"));
        }

        let signer = |(_, scope, cert, which): (&Signature, &Scope, &Cert, Which)| Signer {
            fingerprint: cert.fingerprint.clone(),
            signing_key: cert.component(which).shown.clone(),
            user_ids: cert.user_ids.clone(),
            scope: scope.clone(),
        };
        if usable.len() == 1 {
            let (sig, _, cert, which) = usable[0];
            let mut watched = Watched { inner: signed, error: None };
            return match cert.verify_data(which, sig, &mut watched) {
                Ok(()) => Ok(signer(usable[0])),
                Err(source) => Err(watched.error.map_or_else(
                    || TrustError::BadSignature { fingerprint: cert.component(which).shown.clone(), source },
                    |source| TrustError::ReadSigned { source },
                )),
            };
        }

        let mut spool = tempfile::tempfile().map_err(io("creating a temporary file in", std::env::temp_dir()))?;
        std::io::copy(signed, &mut spool).map_err(|source| TrustError::ReadSigned { source })?;
        let mut first_failure = None;
        for candidate @ (sig, _, cert, which) in usable {
            spool.rewind().map_err(io("rewinding", std::env::temp_dir()))?;
            let mut watched = Watched { inner: &mut spool, error: None };
            match cert.verify_data(which, sig, &mut watched) {
                Ok(()) => return Ok(signer(candidate)),
                Err(_) if watched.error.is_some() => {
                    return Err(TrustError::ReadSigned { source: watched.error.expect("checked") });
                }
                Err(source) => {
                    first_failure.get_or_insert(TrustError::BadSignature {
                        fingerprint: cert.component(which).shown.clone(),
                        source,
                    });
                }
            }
        }
        Err(first_failure.expect("at least one candidate was tried"))
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

    /// The keys trusted for `name`: its prefixes' keys, most specific first, then root keys.
    fn applicable(&self, name: &str) -> Result<Vec<(Scope, Cert)>, TrustError> {
        let mut out = Vec::new();
        let scopes = prefixes_of(name).into_iter().filter_map(|p| Scope::prefix(&p).ok()).chain([Scope::Root]);
        for scope in scopes {
            debug_assert!(scope.applies_to(name));
            out.extend(self.load(&scope)?.into_iter().map(|(_, cert)| (scope.clone(), cert)));
        }
        Ok(out)
    }

    /// The key files of one scope, parsed; a missing directory is an empty scope. A
    /// file named as a fingerprint must hold that key.
    fn load(&self, scope: &Scope) -> Result<Vec<(PathBuf, Cert)>, TrustError> {
        let dir = scope.dir(&self.dir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading", &dir))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().filter(|n| is_fingerprint_name(n)).map(str::to_string) else {
                continue; // temp files of an add in progress, editor leftovers
            };
            let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
            let cert = Cert::parse(&bytes, &path.display().to_string())
                .map_err(|e| TrustError::StoredKey { path: path.clone(), reason: e.to_string() })?;
            if cert.fingerprint != name {
                return Err(TrustError::StoredKey {
                    path,
                    reason: format!("it holds key {}, not the key it is named after", cert.fingerprint),
                });
            }
            out.push((path, cert));
        }
        out.sort_by(|a, b| a.1.fingerprint.cmp(&b.1.fingerprint));
        Ok(out)
    }
}

/// The signatures of a detached block, armored or binary.
fn parse_signatures(block: &[u8]) -> Result<Vec<Signature>, TrustError> {
    let (found, _headers) =
        DetachedSignature::from_reader_many(block).map_err(|source| TrustError::SignatureUnreadable { source })?;
    let mut sigs = Vec::new();
    for sig in found {
        sigs.push(sig.map_err(|source| TrustError::SignatureUnreadable { source })?.signature);
        if sigs.len() > MAX_SIGNATURES {
            return Err(TrustError::MalformedSignature { reason: format!("more than {MAX_SIGNATURES} signatures") });
        }
    }
    if sigs.is_empty() {
        return Err(TrustError::MalformedSignature { reason: "the block holds no signature".to_string() });
    }
    Ok(sigs)
}

/// Everything about a (signature, key) pair that can be judged before reading the data.
fn check_candidate(sig: &Signature, cert: &Cert, which: Which, now: i64) -> Result<(), TrustError> {
    let component = cert.component(which);
    let shown = component.shown.clone();
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Err(TrustError::MalformedSignature {
            reason: format!("a {:?} signature by key {shown} is not a signature over data", sig.typ()),
        });
    }
    if let Some(alg @ (HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160)) = sig.hash_alg() {
        return Err(TrustError::WeakHash { fingerprint: shown, algorithm: alg.to_string() });
    }
    cert.check_usable(now)?;
    if which != Which::Primary {
        component.check_usable(&shown, now)?;
    }
    if !component.may_sign {
        let what = if which == Which::Primary { "primary" } else { "sub" };
        return Err(TrustError::NotSigningKey { what, fingerprint: shown });
    }
    let Some(created) = sig.created().map(|t| i64::from(t.as_secs())) else {
        return Err(TrustError::MalformedSignature {
            reason: format!("the signature by key {shown} has no creation time"),
        });
    };
    if created > now + CLOCK_SKEW {
        return Err(TrustError::SignatureFromFuture { fingerprint: shown, created });
    }
    if created < component.created {
        return Err(TrustError::SignatureBeforeKey { fingerprint: shown, created });
    }
    if let Some(d) = sig.signature_expiration_time().map(|d| i64::from(d.as_secs())).filter(|&d| d > 0)
        && created + d <= now
    {
        return Err(TrustError::SignatureExpired { fingerprint: shown, expired: created + d });
    }
    Ok(())
}

fn untrusted_signer(name: &str, sigs: &[Signature], keys: &[(Scope, Cert)]) -> TrustError {
    let mut issuers: Vec<String> = Vec::new();
    for sig in sigs {
        let fps = sig.issuer_fingerprint();
        let named: Vec<String> = if fps.is_empty() {
            sig.issuer_key_id().iter().map(|id| format!("key id {}", hex::encode_upper(id.as_ref()))).collect()
        } else {
            fps.iter().map(|fp| format!("key {fp:X}")).collect()
        };
        issuers.extend(named);
    }
    issuers.dedup();
    let mut trusted: Vec<String> = keys.iter().map(|(scope, c)| format!("{} ({scope})", c.fingerprint)).collect();
    trusted.dedup();
    TrustError::UntrustedSigner {
        name: name.to_string(),
        issuers: if issuers.is_empty() { "an unnamed key".to_string() } else { issuers.join(", ") },
        trusted: trusted.join(", "),
    }
}

/// A reader that keeps the I/O error it passed on, so a failure to read the signed data
/// is reported as that, not as a signature that does not verify.
struct Watched<'a, R: Read + ?Sized> {
    inner: &'a mut R,
    error: Option<std::io::Error>,
}

impl<R: Read + ?Sized> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! Keys and signatures made by real GnuPG (`just setup` installs it), each test in its
    //! own `GNUPGHOME`.

    use std::process::{Command, Stdio};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    struct Gpg {
        home: tempfile::TempDir,
    }

    impl Drop for Gpg {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--kill", "gpg-agent"])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// A GnuPG home, or `None` (with the reason printed) when gpg is not installed.
    fn gpg() -> Option<Gpg> {
        if Command::new("gpg").arg("--version").stdout(Stdio::null()).status().is_err() {
            eprintln!("skipping: gpg is not installed (`just setup` installs gnupg)");
            return None;
        }
        let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").unwrap();
        Some(Gpg { home })
    }

    impl Gpg {
        fn run(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
            let mut child = Command::new("gpg")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }

        /// Make a key; returns its fingerprint. `time` fakes gpg's clock (`20200101T000000`).
        fn generate(&self, uid: &str, algo: &str, usage: &str, expire: &str, time: Option<&str>) -> String {
            let mut args = Vec::new();
            let faked;
            if let Some(t) = time {
                faked = format!("{t}!");
                args.extend(["--faked-system-time", faked.as_str()]);
            }
            args.extend(["--quick-gen-key", uid, algo, usage, expire]);
            self.run(&args, b"");
            self.fingerprint(uid)
        }

        fn fingerprint(&self, uid: &str) -> String {
            let out = String::from_utf8(self.run(&["--with-colons", "--fingerprint", uid], b"")).unwrap();
            out.lines().find_map(|l| l.strip_prefix("fpr:")).unwrap().trim_matches(':').to_string()
        }

        fn add_subkey(&self, fpr: &str, algo: &str, usage: &str) {
            self.run(&["--quick-add-key", fpr, algo, usage, "never"], b"");
        }

        fn export(&self, fpr: &str, armor: bool) -> Vec<u8> {
            let mut args = vec!["--export"];
            if armor {
                args.insert(0, "--armor");
            }
            args.push(fpr);
            self.run(&args, b"")
        }

        /// An armored detached signature over `data` by `fpr`, with extra gpg flags.
        fn sign(&self, fpr: &str, data: &[u8], extra: &[&str]) -> Vec<u8> {
            let mut args = vec!["--armor", "--local-user", fpr];
            args.extend(extra);
            args.push("--detach-sign");
            self.run(&args, data)
        }

        /// Import the revocation certificate gpg made with the key.
        fn revoke(&self, fpr: &str) {
            let rev = self.home.path().join("openpgp-revocs.d").join(format!("{fpr}.rev"));
            let text = std::fs::read_to_string(rev).unwrap().replace(":-----BEGIN", "-----BEGIN");
            self.run(&["--import"], text.as_bytes());
        }
    }

    const DATA: &[u8] = b"an ACI's bytes, as served\n";

    fn keyring() -> (tempfile::TempDir, Keyring) {
        let root = tempfile::tempdir().unwrap();
        let keyring = Keyring::new(root.path());
        (root, keyring)
    }

    fn prefix(p: &str) -> Scope {
        Scope::prefix(p).unwrap()
    }

    /// `YYYYMMDD` at noon UTC, for the faked gpg clocks below (Hinnant's `days_from_civil`).
    fn at(date: &str) -> SystemTime {
        let (y, m, d): (i64, i64, i64) =
            (date[..4].parse().unwrap(), date[4..6].parse().unwrap(), date[6..8].parse().unwrap());
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        UNIX_EPOCH + Duration::from_secs((days * 86_400 + 43_200) as u64)
    }

    #[test]
    fn rsa3072_signature_verifies_for_its_prefix() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Release <release@example.com>", "rsa3072", "sign", "never", None);
        let (_root, keyring) = keyring();
        let added = keyring.add(&prefix("example.com/app"), &gpg.export(&fpr, true)).unwrap();
        assert_eq!(added.fingerprint, fpr);
        assert_eq!(added.key_id, fpr[24..]);
        assert_eq!(added.user_ids, ["Release <release@example.com>"]);
        assert_eq!(added.expires, None);
        assert!(added.path.ends_with(format!("trust/prefix.d/example.com%2Fapp/{fpr}")));

        let sig = gpg.sign(&fpr, DATA, &[]);
        let signer = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap();
        assert_eq!(signer.fingerprint, fpr);
        assert_eq!(signer.signing_key, fpr);
        assert_eq!(signer.scope, prefix("example.com/app"));
        let below = keyring.verify("example.com/app/sub", &mut &DATA[..], &sig).unwrap();
        assert_eq!(below.scope, prefix("example.com/app"));
    }

    #[test]
    fn ed25519_signing_subkey_is_matched_by_issuer_fingerprint() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Sub <sub@example.com>", "ed25519", "cert", "never", None);
        gpg.add_subkey(&fpr, "ed25519", "sign");
        let (_root, keyring) = keyring();
        keyring.add(&Scope::Root, &gpg.export(&fpr, true)).unwrap();
        let info = inspect(&gpg.export(&fpr, true)).unwrap();
        assert_eq!(info.signing_subkeys.len(), 1);

        let sig = gpg.sign(&fpr, DATA, &[]);
        let signer = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap();
        assert_eq!(signer.fingerprint, fpr);
        assert_eq!(signer.signing_key, info.signing_subkeys[0]);
        assert_eq!(signer.scope, Scope::Root);
    }

    #[test]
    fn tampered_data_does_not_verify() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("T <t@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        keyring.add(&prefix("example.com"), &gpg.export(&fpr, true)).unwrap();
        let sig = gpg.sign(&fpr, DATA, &[]);
        let mut tampered = DATA.to_vec();
        tampered[3] ^= 1;
        let err = keyring.verify("example.com/app", &mut &tampered[..], &sig).unwrap_err();
        assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");
        assert!(err.to_string().contains("does not verify"), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::Denied);
    }

    #[test]
    fn signature_by_an_untrusted_key_names_both_keys() {
        let Some(gpg) = gpg() else { return };
        let trusted = gpg.generate("Trusted <a@example.com>", "ed25519", "sign", "never", None);
        let other = gpg.generate("Other <b@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        keyring.add(&prefix("example.com/app"), &gpg.export(&trusted, true)).unwrap();
        let sig = gpg.sign(&other, DATA, &[]);
        let err = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap_err();
        let TrustError::UntrustedSigner { issuers, trusted: listed, .. } = &err else { panic!("{err}") };
        assert!(issuers.contains(&other), "{err}");
        assert!(listed.contains(&trusted), "{err}");
    }

    #[test]
    fn prefixes_apply_on_segment_boundaries_only() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("P <p@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        let key = gpg.export(&fpr, true);
        keyring.add(&prefix("example.com/ap"), &key).unwrap();
        let sig = gpg.sign(&fpr, DATA, &[]);

        let err = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap_err();
        let TrustError::NoTrustedKey { prefixes, .. } = &err else { panic!("{err}") };
        assert_eq!(prefixes, &["example.com/app", "example.com"]);
        assert!(err.to_string().contains("berth trust --prefix example.com KEY.gpg"), "{err}");

        keyring.add(&prefix("example.com"), &key).unwrap();
        let signer = keyring.verify("example.com/app/sub", &mut &DATA[..], &sig).unwrap();
        assert_eq!(signer.scope, prefix("example.com"));
        assert!(matches!(
            keyring.verify("example.community/app", &mut &DATA[..], &sig),
            Err(TrustError::NoTrustedKey { .. })
        ));
    }

    #[test]
    fn root_keys_apply_to_every_name_and_prefix_scopes_win() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("R <r@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        let key = gpg.export(&fpr, true);
        keyring.add(&Scope::Root, &key).unwrap();
        let sig = gpg.sign(&fpr, DATA, &[]);
        assert_eq!(keyring.verify("anything.org/x", &mut &DATA[..], &sig).unwrap().scope, Scope::Root);
        keyring.add(&prefix("anything.org"), &key).unwrap();
        assert_eq!(keyring.verify("anything.org/x", &mut &DATA[..], &sig).unwrap().scope, prefix("anything.org"));
        assert_eq!(keyring.list().unwrap().len(), 2);
    }

    #[test]
    fn binary_and_armored_keys_are_stored_armored() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("B <b@example.com>", "rsa3072", "sign", "2y", None);
        let (_root, keyring) = keyring();
        let binary = gpg.export(&fpr, false);
        assert!(!binary.starts_with(b"-----"));
        let added = keyring.add(&Scope::Root, &binary).unwrap();
        assert!(std::fs::read_to_string(&added.path).unwrap().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let expires = added.expires.expect("a 2y expiry");
        assert!(expires > added.created + 700 * 86_400, "{expires}");
        // The same key armored is the same entry.
        let again = keyring.add(&Scope::Root, &gpg.export(&fpr, true)).unwrap();
        assert_eq!(again, added);
        assert_eq!(keyring.list().unwrap(), [added]);
        // Binary signatures verify too.
        let sig = gpg.run(&["--local-user", &fpr, "--detach-sign"], DATA);
        keyring.verify("a/b", &mut &DATA[..], &sig).unwrap();
    }

    #[test]
    fn secret_and_garbage_keys_are_refused() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("S <s@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        let secret = gpg.run(&["--armor", "--export-secret-keys", &fpr], b"");
        let err = keyring.add(&Scope::Root, &secret).unwrap_err();
        assert!(matches!(err, TrustError::SecretKey { .. }), "{err}");
        assert!(keyring.add(&Scope::Root, b"not a key").is_err());
        let two = [
            gpg.export(&fpr, false),
            gpg.export(&gpg.generate("T <t@e.com>", "ed25519", "sign", "never", None), false),
        ]
        .concat();
        assert!(matches!(keyring.add(&Scope::Root, &two), Err(TrustError::SeveralKeys { count: 2, .. })));
        assert!(keyring.list().unwrap().is_empty());
    }

    #[test]
    fn expired_key_is_refused_at_add_and_at_verify() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Old <old@example.com>", "ed25519", "sign", "1d", Some("20200101T000000"));
        let key = gpg.export(&fpr, true);
        let sig = gpg.sign(&fpr, DATA, &["--faked-system-time", "20200101T060000!"]);
        let (_root, keyring) = keyring();
        let err = keyring.add(&prefix("example.com"), &key).unwrap_err();
        let TrustError::KeyExpired { expired, .. } = err else { panic!("{err}") };
        assert_eq!(utc(expired), "2020-01-02 00:00:00 UTC");
        assert!(err_text(&keyring.add(&prefix("example.com"), &key)).contains("expired on 2020-01-02"));

        // A copy trusted while it was valid: good then, refused now.
        place(&keyring, &prefix("example.com"), &fpr, &key);
        keyring.verify_at("example.com/app", &mut &DATA[..], &sig, at("20200101")).unwrap();
        let err = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap_err();
        assert!(matches!(err, TrustError::KeyExpired { .. }), "{err}");
    }

    #[test]
    fn revoked_key_is_refused_at_add_and_at_verify() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Rev <rev@example.com>", "ed25519", "sign", "never", None);
        let sig = gpg.sign(&fpr, DATA, &[]);
        let (_root, keyring) = keyring();
        keyring.add(&prefix("example.com"), &gpg.export(&fpr, true)).unwrap();
        keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap();

        gpg.revoke(&fpr);
        let revoked = gpg.export(&fpr, true);
        let err = keyring.add(&Scope::Root, &revoked).unwrap_err();
        assert!(matches!(err, TrustError::KeyRevoked { .. }), "{err}");
        // The keyring's copy updated with the revocation: the old signature is refused.
        place(&keyring, &prefix("example.com"), &fpr, &revoked);
        let err = keyring.verify("example.com/app", &mut &DATA[..], &sig).unwrap_err();
        assert!(matches!(err, TrustError::KeyRevoked { .. }), "{err}");
        assert!(err.to_string().contains("is revoked"), "{err}");
    }

    #[test]
    fn signatures_from_the_future_or_expired_are_refused() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Clock <c@example.com>", "ed25519", "sign", "never", Some("20200101T000000"));
        let (_root, keyring) = keyring();
        keyring.add(&Scope::Root, &gpg.export(&fpr, true)).unwrap();

        let future = gpg.sign(&fpr, DATA, &["--faked-system-time", "20200301T000000!"]);
        let err = keyring.verify_at("a/b", &mut &DATA[..], &future, at("20200201")).unwrap_err();
        assert!(matches!(err, TrustError::SignatureFromFuture { .. }), "{err}");
        keyring.verify_at("a/b", &mut &DATA[..], &future, at("20200302")).unwrap();

        let short = gpg.sign(&fpr, DATA, &["--faked-system-time", "20200201T000000!", "--default-sig-expire", "1d"]);
        keyring.verify_at("a/b", &mut &DATA[..], &short, at("20200201")).unwrap();
        let err = keyring.verify("a/b", &mut &DATA[..], &short).unwrap_err();
        let TrustError::SignatureExpired { expired, .. } = err else { panic!("{err}") };
        assert_eq!(utc(expired), "2020-02-02 00:00:00 UTC");
    }

    #[test]
    fn two_signatures_in_one_block_find_the_trusted_one() {
        let Some(gpg) = gpg() else { return };
        let a = gpg.generate("A <a@example.com>", "ed25519", "sign", "never", None);
        let b = gpg.generate("B <b@example.com>", "rsa3072", "sign", "never", None);
        let sig = gpg.run(&["--armor", "--local-user", &a, "--local-user", &b, "--detach-sign"], DATA);
        let (_root, keyring) = keyring();
        keyring.add(&prefix("example.com"), &gpg.export(&b, true)).unwrap();
        assert_eq!(keyring.verify("example.com/x", &mut &DATA[..], &sig).unwrap().fingerprint, b);
        // Both trusted: the data is read once into a spool and tried with each.
        keyring.add(&prefix("example.com"), &gpg.export(&a, true)).unwrap();
        keyring.verify("example.com/x", &mut &DATA[..], &sig).unwrap();
        let mut tampered = DATA.to_vec();
        tampered[0] ^= 1;
        assert!(matches!(
            keyring.verify("example.com/x", &mut &tampered[..], &sig),
            Err(TrustError::BadSignature { .. })
        ));
    }

    #[test]
    fn malformed_signatures_and_read_errors_are_their_own_errors() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("M <m@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        keyring.add(&Scope::Root, &gpg.export(&fpr, true)).unwrap();
        for garbage in [&b""[..], b"garbage", b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"] {
            let err = keyring.verify("a/b", &mut &DATA[..], garbage).unwrap_err();
            assert!(
                matches!(err, TrustError::SignatureUnreadable { .. } | TrustError::MalformedSignature { .. }),
                "{garbage:?}: {err}"
            );
            assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        }
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("connection reset"))
            }
        }
        let sig = gpg.sign(&fpr, DATA, &[]);
        let err = keyring.verify("a/b", &mut Broken, &sig).unwrap_err();
        assert!(matches!(err, TrustError::ReadSigned { .. }), "{err}");
    }

    #[test]
    fn remove_by_fingerprint_or_key_id_in_a_scope_or_all() {
        let Some(gpg) = gpg() else { return };
        let fpr = gpg.generate("Rm <rm@example.com>", "ed25519", "sign", "never", None);
        let key = gpg.export(&fpr, true);
        let (_root, keyring) = keyring();
        keyring.add(&Scope::Root, &key).unwrap();
        keyring.add(&prefix("example.com/app"), &key).unwrap();
        keyring.add(&prefix("example.org"), &key).unwrap();

        let err = keyring.remove(&fpr, Some(&prefix("example.net"))).unwrap_err();
        assert!(matches!(err, TrustError::NotTrusted { .. }), "{err}");
        assert!(matches!(keyring.remove("12zz", None), Err(TrustError::BadFingerprint { .. })));

        let gone = keyring.remove(&fpr[24..].to_lowercase(), Some(&prefix("example.com/app"))).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(!gone[0].path.parent().unwrap().exists(), "the emptied prefix directory stays");
        let spaced: String = fpr
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        let gone = keyring.remove(&spaced, None).unwrap();
        assert_eq!(gone.iter().map(|k| k.scope.clone()).collect::<Vec<_>>(), [Scope::Root, prefix("example.org")]);
        assert!(keyring.list().unwrap().is_empty());
    }

    #[test]
    fn a_key_file_must_hold_the_key_it_is_named_after() {
        let Some(gpg) = gpg() else { return };
        let a = gpg.generate("A <a@example.com>", "ed25519", "sign", "never", None);
        let b = gpg.generate("B <b@example.com>", "ed25519", "sign", "never", None);
        let (_root, keyring) = keyring();
        place(&keyring, &Scope::Root, &a, &gpg.export(&b, true));
        let err = keyring.list().unwrap_err();
        assert!(matches!(err, TrustError::StoredKey { .. }), "{err}");
    }

    /// Put a key file straight into the keyring (as a copy trusted earlier, or updated
    /// since).
    fn place(keyring: &Keyring, scope: &Scope, fpr: &str, key: &[u8]) {
        let dir = scope.dir(&keyring.dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(fpr), key).unwrap();
    }

    fn err_text<T: std::fmt::Debug>(r: &Result<T, TrustError>) -> String {
        r.as_ref().unwrap_err().to_string()
    }
}
