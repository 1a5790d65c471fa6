//! sigstore (cosign) keys: ECDSA P-256 public keys in PEM (a SubjectPublicKeyInfo, as
//! `cosign generate-key-pair` writes `cosign.pub`), trusted per name scope beside the
//! OpenPGP keys, as `<scope dir>/<FINGERPRINT>.pub`. A key's fingerprint is the SHA-256
//! of its DER SubjectPublicKeyInfo, in upper-case hex: what `berth trust list` shows and
//! a policy's `signed-by` rule names.
//!
//! A cosign signature is an ASN.1 DER ECDSA-SHA256 signature over the payload bytes,
//! base64 in the payload layer's `dev.cosignproject.cosign/signature` annotation.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256};

use super::keyring::{Keyring, NameKeys, StoredKey, is_hex_fingerprint};
use super::{ImageSigner, TrustError};

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";
/// The file name suffix of a stored sigstore key.
pub(super) const SUFFIX: &str = ".pub";

/// A parsed sigstore public key.
#[derive(Debug, Clone)]
pub(crate) struct SigstoreKey {
    /// SHA-256 of the DER SubjectPublicKeyInfo, upper-case hex.
    pub fingerprint: String,
    /// The key as PEM, as it is stored.
    pub pem: String,
    key: VerifyingKey,
}

/// Whether `bytes` are PEM (a public key, or a private key or certificate given by
/// mistake, which [`SigstoreKey::parse`] explains), not OpenPGP armor.
pub fn is_sigstore_key(bytes: &[u8]) -> bool {
    let start = bytes.trim_ascii_start();
    start.starts_with(b"-----BEGIN ") && !start.starts_with(b"-----BEGIN PGP")
}

impl SigstoreKey {
    /// Parse one PEM public key; `subject` names the input in errors.
    pub fn parse(bytes: &[u8], subject: &str) -> Result<SigstoreKey, TrustError> {
        let bad = |reason: String| TrustError::SigstoreKeyUnreadable { subject: subject.to_string(), reason };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not text".into()))?;
        if text.contains("PRIVATE KEY") {
            return Err(bad("it is a private key; give the public one (cosign.pub)".into()));
        }
        let body = text
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|t| t.strip_suffix(PEM_END))
            .ok_or_else(|| bad(format!("expected one {PEM_BEGIN} block")))?;
        let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| bad(format!("base64: {e}")))?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| bad(format!("not an ECDSA P-256 key ({e}); berth checks cosign's default key type")))?;
        let fingerprint = hex::encode_upper(Sha256::digest(&der));
        let pem =
            format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", wrap(&base64::engine::general_purpose::STANDARD.encode(&der)));
        Ok(SigstoreKey { fingerprint, pem, key })
    }

    /// Whether `signature` (base64 of a DER or raw 64-byte ECDSA signature) signs `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
        let sig = match Signature::from_der(&raw).or_else(|_| Signature::from_slice(&raw)) {
            Ok(s) => s,
            Err(_) => return false,
        };
        self.key.verify(payload, &sig).is_ok()
    }
}

fn wrap(text: &str) -> String {
    text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect::<Vec<_>>().join("\n")
}

impl StoredKey for SigstoreKey {
    /// Its fingerprint (64 upper-case hex digits) and [`SUFFIX`].
    fn fingerprint_of_file(name: &str) -> Option<&str> {
        name.strip_suffix(SUFFIX).filter(|fp| is_hex_fingerprint(fp, &[64]))
    }
    fn parse_stored(bytes: &[u8], subject: &str) -> Result<SigstoreKey, TrustError> {
        SigstoreKey::parse(bytes, subject)
    }
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Keyring {
    /// Check a cosign signature (base64, over `payload`) against the sigstore keys
    /// trusted for `name`.
    pub fn verify_sigstore(&self, name: &str, payload: &[u8], signature: &str) -> Result<ImageSigner, TrustError> {
        self.keys_for(name)?.verify_sigstore(payload, signature)
    }
}

impl NameKeys {
    /// Check a cosign signature (base64, over `payload`) against the sigstore keys.
    pub fn verify_sigstore(&self, payload: &[u8], signature: &str) -> Result<ImageSigner, TrustError> {
        let (name, keys) = (&self.name, &self.sigstore);
        if keys.is_empty() {
            return Err(TrustError::NoTrustedSigstoreKey { name: name.to_string() });
        }
        match keys.iter().find(|(_, key)| key.verifies(payload, signature)) {
            Some((scope, key)) => Ok(ImageSigner {
                fingerprint: key.fingerprint.clone(),
                signing_key: key.fingerprint.clone(),
                user_ids: Vec::new(),
                scope: scope.clone(),
            }),
            None => {
                let mut trusted: Vec<String> = keys.iter().map(|(s, k)| format!("{} ({s})", k.fingerprint)).collect();
                trusted.dedup();
                Err(TrustError::SigstoreBadSignature { name: name.to_string(), trusted: trusted.join(", ") })
            }
        }
    }
}
