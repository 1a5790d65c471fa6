//! One OpenPGP certificate (a transferable public key) as trust sees it: what its own
//! self-signatures say about it (user ids, expiry, revocation, which subkeys may sign),
//! each counted only when it verifies against the primary key.
//!
//! rPGP parses and verifies signatures but judges neither expiry nor revocation; that is
//! done here. Revocations by designated revokers are not looked at (only the key's own).

use pgp::composed::{PublicOrSecret, SignedPublicKey};
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{Fingerprint, KeyDetails, KeyId, Tag, VerifyingKey};

use super::TrustError;

/// A parsed certificate and what its self-signatures establish.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub key: SignedPublicKey,
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The primary key's (legacy) key id, upper-case hex.
    pub key_id: String,
    /// User ids with a valid, unrevoked self-certification.
    pub user_ids: Vec<String>,
    pub primary: Component,
    pub subkeys: Vec<Component>,
}

/// The primary key or a subkey.
#[derive(Debug, Clone)]
pub(crate) struct Component {
    pub fingerprint: Fingerprint,
    pub key_id: KeyId,
    /// Upper-case hex of the fingerprint.
    pub shown: String,
    pub created: i64,
    /// Creation plus the key expiration time of its newest valid self-signature (the
    /// subkey's newest binding); `None` when it does not expire.
    pub expires: Option<i64>,
    /// Why it is revoked (possibly empty), when a valid revocation signature exists.
    pub revoked: Option<String>,
    /// Whether it may make data signatures: a primary key unless its key flags say
    /// otherwise; a subkey only when bound with the signing flag and a valid back
    /// signature (RFC 9580 §5.2.3.29 "embedded signature").
    pub may_sign: bool,
}

/// Which key of a certificate: the primary, or subkey `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Primary,
    Subkey(usize),
}

impl Cert {
    /// Parse exactly one public key, armored or binary. `subject` names the input in errors.
    pub fn parse(bytes: &[u8], subject: &str) -> Result<Cert, TrustError> {
        let unreadable = |source| TrustError::KeyUnreadable { subject: subject.to_string(), source };
        let (found, _headers) = PublicOrSecret::from_reader_many(bytes).map_err(unreadable)?;
        let mut keys = Vec::new();
        for k in found {
            match k.map_err(unreadable)? {
                PublicOrSecret::Public(k) => keys.push(k),
                PublicOrSecret::Secret(_) => return Err(TrustError::SecretKey { subject: subject.to_string() }),
            }
        }
        match keys.len() {
            0 => Err(TrustError::NoKey { subject: subject.to_string() }),
            1 => Cert::analyse(keys.remove(0)),
            count => Err(TrustError::SeveralKeys { subject: subject.to_string(), count }),
        }
    }

    fn analyse(key: SignedPublicKey) -> Result<Cert, TrustError> {
        let primary_key = &key.primary_key;
        let shown = format!("{:X}", primary_key.fingerprint());
        let mut self_sigs: Vec<&Signature> = key
            .details
            .direct_signatures
            .iter()
            .filter(|s| {
                s.typ() == Some(SignatureType::Key) && self_issued(s, primary_key) && s.verify_key(primary_key).is_ok()
            })
            .collect();
        let mut user_ids = Vec::new();
        for user in &key.details.users {
            let newest = newest(user.signatures.iter().filter(|s| {
                (s.is_certification() || s.typ() == Some(SignatureType::CertRevocation))
                    && self_issued(s, primary_key)
                    && s.verify_certification(primary_key, Tag::UserId, &user.id).is_ok()
            }));
            if let Some(sig) = newest.filter(|s| s.typ() != Some(SignatureType::CertRevocation)) {
                self_sigs.push(sig);
                user_ids.push(String::from_utf8_lossy(user.id.id()).into_owned());
            }
        }
        let Some(self_sig) = newest(self_sigs.into_iter()) else {
            return Err(TrustError::Unbound { fingerprint: shown });
        };
        let revoked = key
            .details
            .revocation_signatures
            .iter()
            .find(|s| {
                s.typ() == Some(SignatureType::KeyRevocation)
                    && self_issued(s, primary_key)
                    && s.verify_key(primary_key).is_ok()
            })
            .map(revocation_reason);
        let created = i64::from(primary_key.created_at().as_secs());
        let primary = Component {
            fingerprint: primary_key.fingerprint(),
            key_id: primary_key.legacy_key_id(),
            shown: shown.clone(),
            created,
            expires: expiry(created, self_sig),
            revoked,
            may_sign: !has_key_flags(self_sig) || self_sig.key_flags().sign(),
        };
        let subkeys =
            key.public_subkeys.iter().map(|sub| analyse_subkey(primary_key, &sub.key, &sub.signatures)).collect();
        let key_id = hex::encode_upper(primary_key.legacy_key_id().as_ref());
        Ok(Cert { fingerprint: shown, key_id, user_ids, primary, subkeys, key })
    }

    pub fn component(&self, which: Which) -> &Component {
        match which {
            Which::Primary => &self.primary,
            Which::Subkey(i) => &self.subkeys[i],
        }
    }

    /// Every key of the certificate, primary first.
    pub fn components(&self) -> impl Iterator<Item = (Which, &Component)> {
        std::iter::once((Which::Primary, &self.primary))
            .chain(self.subkeys.iter().enumerate().map(|(i, c)| (Which::Subkey(i), c)))
    }

    /// Verify `sig` over `data` with key `which` (cryptography only).
    pub fn verify_data(&self, which: Which, sig: &Signature, data: impl std::io::Read) -> pgp::errors::Result<()> {
        fn verify(key: &impl VerifyingKey, sig: &Signature, data: impl std::io::Read) -> pgp::errors::Result<()> {
            sig.verify(key, data)
        }
        match which {
            Which::Primary => verify(&self.key.primary_key, sig, data),
            Which::Subkey(i) => verify(&self.key.public_subkeys[i].key, sig, data),
        }
    }

    /// The primary key is neither revoked nor expired at `now`.
    pub fn check_usable(&self, now: i64) -> Result<(), TrustError> {
        self.primary.check_usable(&self.fingerprint, now)
    }
}

impl Component {
    /// Neither revoked nor expired at `now`; errors name `shown` (the subkey, or the key).
    pub fn check_usable(&self, shown: &str, now: i64) -> Result<(), TrustError> {
        if let Some(reason) = &self.revoked {
            return Err(TrustError::KeyRevoked { fingerprint: shown.to_string(), reason: reason.clone() });
        }
        match self.expires {
            Some(expired) if expired <= now => Err(TrustError::KeyExpired { fingerprint: shown.to_string(), expired }),
            _ => Ok(()),
        }
    }
}

fn analyse_subkey(primary: &PublicKey, sub: &PublicSubkey, sigs: &[Signature]) -> Component {
    let binding =
        newest(sigs.iter().filter(|s| {
            s.typ() == Some(SignatureType::SubkeyBinding) && s.verify_subkey_binding(primary, sub).is_ok()
        }));
    let revoked = sigs
        .iter()
        .find(|s| s.typ() == Some(SignatureType::SubkeyRevocation) && s.verify_subkey_binding(primary, sub).is_ok())
        .map(revocation_reason);
    let created = i64::from(sub.created_at().as_secs());
    let may_sign = binding.is_some_and(|b| {
        b.key_flags().sign()
            && b.embedded_signature().is_some_and(|back| back.verify_primary_key_binding(sub, primary).is_ok())
    });
    Component {
        fingerprint: sub.fingerprint(),
        key_id: sub.legacy_key_id(),
        shown: format!("{:X}", sub.fingerprint()),
        created,
        expires: binding.and_then(|b| expiry(created, b)),
        // A subkey without any valid binding is not part of this key at all.
        revoked: if binding.is_none() { Some("not bound to the primary key".to_string()) } else { revoked },
        may_sign,
    }
}

/// Whether `sig` names `key` as its issuer, or names no issuer at all (then only the
/// cryptography can tell).
pub(crate) fn issued_by(sig: &Signature, fingerprint: &Fingerprint, key_id: &KeyId) -> bool {
    let fps = sig.issuer_fingerprint();
    let ids = sig.issuer_key_id();
    (fps.is_empty() && ids.is_empty()) || fps.contains(&fingerprint) || ids.contains(&key_id)
}

fn self_issued(sig: &Signature, primary: &PublicKey) -> bool {
    issued_by(sig, &primary.fingerprint(), &primary.legacy_key_id())
}

fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
}

fn expiry(created: i64, sig: &Signature) -> Option<i64> {
    sig.key_expiration_time().map(|d| d.as_secs()).filter(|&s| s > 0).map(|s| created + i64::from(s))
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| c.hashed_subpackets().any(|p| matches!(p.data, SubpacketData::KeyFlags(_))))
}

fn revocation_reason(sig: &Signature) -> String {
    let code = sig.revocation_reason_code().map(|c| format!("{c:?}"));
    let text = sig.revocation_reason_string().map(|t| String::from_utf8_lossy(t).trim().to_string());
    match (code, text) {
        (Some(c), Some(t)) if !t.is_empty() => format!("{c}: {t}"),
        (Some(c), _) => c,
        (None, Some(t)) => t,
        (None, None) => String::new(),
    }
}
