//! Keys and signatures made by real GnuPG (`just setup` installs it), each test in its
//! own `GNUPGHOME`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::HasKind;

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
    let two =
        [gpg.export(&fpr, false), gpg.export(&gpg.generate("T <t@e.com>", "ed25519", "sign", "never", None), false)]
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
    assert!(matches!(keyring.verify("example.com/x", &mut &tampered[..], &sig), Err(TrustError::BadSignature { .. })));
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
    let spaced: String =
        fpr.chars().collect::<Vec<_>>().chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ");
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
    assert!(matches!(err, TrustError::StoredKeyMismatch { .. }), "{err}");
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

/// A signed message (`gpg --sign`, compressed, binary) as containers' simple signing
/// writes one: the payload inside, the signature after it.
fn signed_message(gpg: &Gpg, fpr: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["--local-user", fpr];
    args.extend(extra);
    args.push("--sign");
    gpg.run(&args, payload)
}

#[test]
fn a_signed_message_yields_its_signer_and_payload() {
    let Some(gpg) = gpg() else { return };
    let fpr = gpg.generate("Signer <s@example.com>", "ed25519", "sign", "never", None);
    let other = gpg.generate("Other <o@example.com>", "ed25519", "sign", "never", None);
    let (_root, keyring) = keyring();
    keyring.add(&prefix("registry.lan/team"), &gpg.export(&fpr, true)).unwrap();
    let payload = br#"{"critical":{"type":"atomic container signature"}}"#;

    for extra in [&[][..], &["--armor"][..], &["--compress-algo", "none"][..]] {
        let message = signed_message(&gpg, &fpr, payload, extra);
        let (signer, read) = keyring.verify_signed_message("registry.lan/team/app", &message).unwrap();
        assert_eq!((signer.fingerprint.as_str(), read.as_slice()), (fpr.as_str(), &payload[..]), "{extra:?}");
    }
    // Not trusted for another name, nor by another key.
    let message = signed_message(&gpg, &fpr, payload, &[]);
    assert!(matches!(
        keyring.verify_signed_message("registry.lan/other", &message),
        Err(TrustError::NoTrustedKey { .. })
    ));
    let by_other = signed_message(&gpg, &other, payload, &[]);
    assert!(matches!(
        keyring.verify_signed_message("registry.lan/team/app", &by_other),
        Err(TrustError::UntrustedSigner { .. })
    ));
    // A detached signature, garbage, or a message with a byte changed is refused.
    let detached = gpg.sign(&fpr, payload, &[]);
    assert!(keyring.verify_signed_message("registry.lan/team/app", &detached).is_err());
    assert!(keyring.verify_signed_message("registry.lan/team/app", b"not a message").is_err());
    let mut flipped = signed_message(&gpg, &fpr, payload, &["--compress-algo", "none"]);
    let at = flipped.windows(8).position(|w| w == b"critical").unwrap();
    flipped[at] ^= 0x20;
    assert!(matches!(
        keyring.verify_signed_message("registry.lan/team/app", &flipped),
        Err(TrustError::BadSignature { .. })
    ));
}

mod sigstore_keys {
    use base64::Engine as _;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    use super::*;

    fn key(seed: u8) -> (SigningKey, Vec<u8>) {
        let signing = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let der = signing.verifying_key().to_public_key_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        (signing, pem.into_bytes())
    }

    fn sign(key: &SigningKey, payload: &[u8]) -> String {
        let sig: p256::ecdsa::Signature = key.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    #[test]
    fn a_cosign_signature_verifies_by_a_trusted_pem_key() {
        let (signing, pem) = key(7);
        let (other, other_pem) = key(9);
        let (_root, keyring) = keyring();
        let added = keyring.add(&prefix("registry.lan/team"), &pem).unwrap();
        assert_eq!((added.kind, added.fingerprint.len()), (KeyKind::Sigstore, 64));
        assert!(added.path.ends_with(format!("trust/prefix.d/registry.lan%2Fteam/{}.pub", added.fingerprint)));
        assert_eq!(inspect(&pem).unwrap().fingerprint, added.fingerprint);
        // Listed beside OpenPGP keys, and removed by fingerprint like them.
        assert_eq!(keyring.list().unwrap(), std::slice::from_ref(&added));

        let payload = b"{\"critical\":{}}";
        let signer = keyring.verify_sigstore("registry.lan/team/app", payload, &sign(&signing, payload)).unwrap();
        assert_eq!(signer.fingerprint, added.fingerprint);
        let err = keyring.verify_sigstore("registry.lan/team/app", b"{}", &sign(&signing, payload)).unwrap_err();
        assert!(matches!(err, TrustError::SigstoreBadSignature { .. }), "{err}");
        let err = keyring.verify_sigstore("registry.lan/team/app", payload, &sign(&other, payload)).unwrap_err();
        assert!(matches!(err, TrustError::SigstoreBadSignature { .. }), "{err}");
        assert!(keyring.verify_sigstore("registry.lan/team/app", payload, "%%%").is_err());
        let err = keyring.verify_sigstore("registry.lan/elsewhere", payload, &sign(&signing, payload)).unwrap_err();
        assert!(matches!(err, TrustError::NoTrustedSigstoreKey { .. }), "{err}");

        // A key file that does not hold the key it is named after is an error.
        std::fs::write(&added.path, &other_pem).unwrap();
        assert!(matches!(keyring.list(), Err(TrustError::StoredKeyMismatch { .. })));
        keyring.remove(&added.fingerprint, None).unwrap_err();
        std::fs::write(&added.path, &pem).unwrap();
        assert_eq!(keyring.remove(&added.fingerprint, None).unwrap().len(), 1);
        assert!(keyring.list().unwrap().is_empty());
    }

    #[test]
    fn private_and_foreign_pem_keys_are_refused() {
        let (_root, keyring) = keyring();
        let private = b"-----BEGIN PUBLIC KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PUBLIC KEY-----\n-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        assert!(matches!(keyring.add(&Scope::Root, private), Err(TrustError::SigstoreKeyUnreadable { .. })));
        // An ed25519 SubjectPublicKeyInfo is a PEM public key, but not one berth checks.
        let ed25519 = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let err = keyring.add(&Scope::Root, ed25519).unwrap_err();
        assert!(err.to_string().contains("not a sigstore public key"), "{err}");
        // A PEM private key given by mistake says so, instead of failing as OpenPGP.
        let ec_private = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let err = keyring.add(&Scope::Root, ec_private).unwrap_err();
        assert!(err.to_string().contains("it is a private key"), "{err}");
    }
}
