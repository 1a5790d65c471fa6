//! Checking a detached OpenPGP signature over an image against the keys the keyring
//! trusts for the image's name.

use std::io::{Read, Seek};
use std::time::SystemTime;

use pgp::composed::{Deserializable as _, DetachedSignature};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use serde::Serialize;

use super::error::io;
use super::key::{self, Cert, Which};
use super::keyring::Keyring;
use super::scope::{Scope, prefixes_of};
use super::{TrustError, time};

/// How far in the future a signature may be dated (clocks differ).
pub const CLOCK_SKEW: i64 = 5 * 60;

/// The largest signature block read (an `.aci.asc` is a few hundred bytes).
const MAX_SIGNATURES: usize = 16;

/// Who signed: a trusted key and the scope it was trusted under for the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSigner {
    /// The primary key's fingerprint (what `berth trust list` shows).
    pub fingerprint: String,
    /// The key that made the signature: the primary's fingerprint, or a subkey's.
    pub signing_key: String,
    pub user_ids: Vec<String>,
    pub scope: Scope,
}

impl Keyring {
    /// Check `armored_signature` (a detached OpenPGP signature block, armored or binary)
    /// over the bytes of `signed` against the keys trusted for `name`, now.
    ///
    /// `signed` is streamed once through the hash when one trusted key is a candidate for
    /// the signature (the usual case); with several candidates (several signatures in the
    /// block by different trusted keys, or a signature naming no issuer) it is first
    /// copied to an unnamed temporary file and read once per candidate.
    pub fn verify(
        &self,
        name: &str,
        signed: &mut dyn Read,
        armored_signature: &[u8],
    ) -> Result<ImageSigner, TrustError> {
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
    ) -> Result<ImageSigner, TrustError> {
        let sigs = parse_signatures(armored_signature)?;
        verify_signatures(name, &self.applicable::<Cert>(name)?, signed, &sigs, now)
    }
}

/// Check parsed signatures over the bytes of `signed` against `keys` (those trusted for
/// `name`), as if the time were `now`: the first that verifies names the signer.
pub(super) fn verify_signatures(
    name: &str,
    keys: &[(Scope, Cert)],
    signed: &mut dyn Read,
    sigs: &[Signature],
    now: SystemTime,
) -> Result<ImageSigner, TrustError> {
    let now = time::unix(now);
    if keys.is_empty() {
        return Err(TrustError::NoTrustedKey { name: name.to_string(), prefixes: prefixes_of(name) });
    }

    // Pairs (signature, trusted key) the signature names as its issuer; the same
    // key trusted in several scopes is tried once, under its most specific scope.
    let mut candidates: Vec<(&Signature, &Scope, &Cert, Which)> = Vec::new();
    for sig in sigs {
        for (scope, cert) in keys {
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
        return Err(untrusted_signer(name, sigs, keys));
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

    let signer = |(_, scope, cert, which): (&Signature, &Scope, &Cert, Which)| ImageSigner {
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
