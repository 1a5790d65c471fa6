//! containers' "simple signing" (as `skopeo copy --sign-by` writes): an OpenPGP signed
//! message (one-pass signature, literal data, signature; usually compressed) whose
//! literal data is the payload ([`super::claim`]). The signatures are checked as
//! detached signatures over the literal data, so they get every check [`Keyring::verify`]
//! makes (expiry, revocation, signing subkeys, dates, weak hashes).

use std::io::Read as _;
use std::time::SystemTime;

use pgp::composed::Message;
use pgp::packet::Signature;

use super::keyring::{Keyring, NameKeys};
use super::verify::verify_signatures;
use super::{ImageSigner, TrustError};

/// The largest payload read out of a signed message (a payload is a few hundred bytes;
/// the cap stops a compressed message from expanding without end).
pub const MAX_PAYLOAD: usize = 64 << 10;

impl Keyring {
    /// Check a simple-signing signature (an OpenPGP signed message, binary or armored)
    /// against the keys trusted for `name`: the signer, and the payload it signed.
    pub fn verify_signed_message(&self, name: &str, message: &[u8]) -> Result<(ImageSigner, Vec<u8>), TrustError> {
        self.keys_for(name)?.verify_signed_message(message)
    }
}

impl NameKeys {
    /// Check a simple-signing signature against the OpenPGP keys: the signer, and the
    /// payload it signed.
    pub fn verify_signed_message(&self, message: &[u8]) -> Result<(ImageSigner, Vec<u8>), TrustError> {
        let (payload, sigs) = open(message)?;
        let signer = verify_signatures(&self.name, &self.openpgp, &mut payload.as_slice(), &sigs, SystemTime::now())?;
        Ok((signer, payload))
    }
}

/// The literal data of a signed message and its signatures.
fn open(message: &[u8]) -> Result<(Vec<u8>, Vec<Signature>), TrustError> {
    let malformed = |reason: String| TrustError::MalformedSignature { reason };
    let unreadable = |source| TrustError::SignatureUnreadable { source };
    let armored = message.trim_ascii_start().starts_with(b"-----BEGIN PGP");
    let msg = if armored {
        Message::from_armor(message).map_err(unreadable)?.0
    } else {
        Message::from_bytes(message).map_err(unreadable)?
    };
    let mut msg = msg.decompress().map_err(unreadable)?;
    if !msg.is_signed() {
        return Err(malformed("the message is not signed".to_string()));
    }
    let mut payload = Vec::new();
    (&mut msg)
        .take(MAX_PAYLOAD as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|e| malformed(format!("reading the signed data: {e}")))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(malformed(format!("the signed data is over {MAX_PAYLOAD} bytes")));
    }
    // Reading stopped at the end of the literal data; the trailing signatures are read
    // only once the reader has seen its end.
    let mut rest = [0u8; 1];
    if msg.read(&mut rest).map_err(|e| malformed(format!("reading the signed data: {e}")))? != 0 {
        return Err(malformed("the signed data did not end".to_string()));
    }
    let Message::Signed { reader, .. } = &msg else {
        return Err(malformed("the message is not signed".to_string()));
    };
    let sigs: Vec<Signature> = reader.signatures().unwrap_or_default().iter().map(|s| s.signature().clone()).collect();
    if sigs.is_empty() {
        return Err(malformed("the message holds no signature".to_string()));
    }
    Ok((payload, sigs))
}
