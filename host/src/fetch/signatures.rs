//! The signatures of a registry image, checked by the host before the after-resolve
//! policy decision, so that a `signed-by` rule sees who verifiably signed the manifest.
//!
//! Two kinds, each looked for only when a key of its kind is trusted for the image's
//! name (`berth trust --prefix host/repo KEY`), so an image nobody could verify costs no
//! request:
//!
//! - **simple signing** (containers', `skopeo copy --sign-by`): OpenPGP signed messages
//!   in the registry's *lookaside* (`lookaside` in registries.toml), read by the host
//!   from `<lookaside>/<repo>@sha256=<hex>/signature-<n>`;
//! - **cosign** (sigstore, key-based): payload layers of signature manifests that the
//!   registry handler finds in its sandbox (referrers API, `sha256-<hex>.sig` tag) and
//!   stores; the host reads them from the store and checks each signature annotation.
//!
//! Either way the host checks the signature against the trusted keys and the signed
//! payload against the image ([`claim`]: manifest digest, repository, tag). What does not
//! verify is not an error here: it is left out of the facts, and said in the policy's
//! denial if the policy needed it.

use std::io::Read as _;
use std::sync::Arc;

use super::FetchOptions;
use super::appc::{SignatureSourceError, fetch_signature};
use crate::cimd::DistributionPoint;
use crate::sandbox::{Grant, LoadedHandler, RunContext, Sandbox};
use crate::store::{Digest, ImageRecord, IngestObserver, Store};
use crate::transport::TransportError;
use crate::trust::claim::{self, Identity};
use crate::trust::{ImageSigner, Keyring, NameKeys};

/// The annotation of a cosign payload layer that holds its signature.
const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Lookaside signatures read per image, at most.
const MAX_LOOKASIDE: usize = 16;
/// A payload is a few hundred bytes.
const MAX_PAYLOAD: u64 = 64 << 10;
/// An index is a document: capped as handlers cap documents.
const MAX_INDEX: u64 = 4 << 20;
/// The record annotation the registry handlers set when the reference named an index
/// (handlers/registry: `INDEX_ANNOTATION`).
const INDEX_ANNOTATION: &str = "dev.berth.index-digest";

/// What checking an image's signatures found.
#[derive(Debug, Default)]
pub struct Checked {
    /// The trusted keys whose signatures verified, each once.
    pub signers: Vec<ImageSigner>,
    /// Why signatures were not looked for or did not verify, for the user.
    pub notes: Vec<String>,
}

impl Checked {
    fn verified(&mut self, signer: ImageSigner) {
        if !self.signers.iter().any(|s| s.fingerprint == signer.fingerprint) {
            tracing::info!(key = %signer.fingerprint, "image signature verified");
            self.signers.push(signer);
        }
    }

    /// Signatures not looked for, or none found: said only if the policy denies.
    fn note(&mut self, note: String) {
        tracing::debug!("{note}");
        self.notes.push(note);
    }

    /// A signature that was there and did not count: worth a warning either way.
    fn failed(&mut self, note: String) {
        tracing::warn!("{note}");
        self.notes.push(note);
    }

    /// The fingerprints of the signers: the policy's `signed-by` facts.
    pub fn fingerprints(&self) -> Vec<String> {
        self.signers.iter().map(|s| s.fingerprint.clone()).collect()
    }
}

/// Check the signatures of `record`, resolved from `point` by `handler` under `grant`.
pub(super) fn check(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    handler: &LoadedHandler,
    grant: &Grant,
    point: &DistributionPoint,
    record: &ImageRecord,
    options: &FetchOptions,
) -> Checked {
    let mut checked = Checked::default();
    let data = point.data();
    let Some((repository, tag)) = claim::split_reference(data) else {
        checked.note(format!("{data:?} is not a registry reference; signatures not looked for"));
        return checked;
    };
    // Asked for by digest, any tag of the repository names the image.
    let tag = if data.contains('@') { None } else { tag };
    let name = repository.clone();
    // Read once: every signature below is checked against these.
    let keys = match Keyring::new(store.root()).keys_for(&name) {
        Ok(keys) => keys,
        Err(e) => {
            checked.failed(format!("reading the keys trusted for {name}: {}", crate::error_chain(&e)));
            return checked;
        }
    };
    if !keys.has_openpgp() && !keys.has_sigstore() {
        checked.note(format!("no key is trusted for {name} (berth trust --prefix {name} KEY)"));
        return checked;
    }
    for manifest_digest in signed_digests(store, record) {
        let identity = Identity { repository: repository.clone(), tag: tag.clone(), manifest_digest };
        if keys.has_openpgp() {
            lookaside(&keys, &identity, options, &mut checked);
        }
        if keys.has_sigstore() {
            cosign(store, sandbox, handler, grant, point, &keys, &identity, options, &mut checked);
        }
    }
    checked
}

/// The digests a signature of the image may sign: the index the reference named (when
/// the handler says the manifest was chosen from one, and the stored index does list it),
/// then the manifest itself.
fn signed_digests(store: &Store, record: &ImageRecord) -> Vec<String> {
    let manifest = record.manifest.digest.to_string();
    let index = record.annotations.get(INDEX_ANNOTATION).filter(|index| {
        let listed = index_lists(store, index, &manifest);
        if !listed {
            tracing::warn!(
                "{}: index {index} does not list manifest {manifest}; not checking its signatures",
                record.canonical
            );
        }
        listed
    });
    index.cloned().into_iter().chain([manifest]).collect()
}

/// Whether the stored index `index` lists `manifest`.
fn index_lists(store: &Store, index: &str, manifest: &str) -> bool {
    let Ok(digest) = index.parse::<Digest>() else { return false };
    let Ok(file) = store.blobs().open_blob(&digest) else { return false };
    let mut bytes = Vec::new();
    if file.take(MAX_INDEX + 1).read_to_end(&mut bytes).is_err() || bytes.len() as u64 > MAX_INDEX {
        return false;
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
    doc["manifests"].as_array().is_some_and(|ms| ms.iter().any(|m| m["digest"].as_str() == Some(manifest)))
}

/// Simple-signing signatures in the registry's lookaside.
fn lookaside(keys: &NameKeys, identity: &Identity, options: &FetchOptions, checked: &mut Checked) {
    let (host, path) = identity.repository.split_once('/').expect("a normalized repository has a host");
    let http = options.http_client();
    let registries = &http.options().registries;
    let configured = registries.registry(host).or_else(|| {
        // Docker Hub's images are configured under any of its names.
        (host == "docker.io").then(|| registries.registry("registry-1.docker.io")).flatten()
    });
    let Some(base) = configured.and_then(|r| r.lookaside.as_deref()) else {
        checked.note(format!(
            "no lookaside is configured for {host} (lookaside in registries.toml): simple-signing signatures not looked for"
        ));
        return;
    };
    let (algorithm, hex) = identity.manifest_digest.split_once(':').unwrap_or(("sha256", &identity.manifest_digest));
    let base = base.trim_end_matches('/');
    for n in 1..=MAX_LOOKASIDE {
        let url = format!("{base}/{path}@{algorithm}={hex}/signature-{n}");
        let message = match fetch_signature(&url, options) {
            Ok(m) => m,
            Err(e) if not_found(&e) => {
                if n == 1 {
                    checked.note(format!("no simple-signing signature at {url}"));
                }
                return;
            }
            Err(e) => {
                checked.failed(format!("reading {url}: {}", crate::error_chain(&e)));
                return;
            }
        };
        let verified = keys.verify_signed_message(&message).and_then(|(signer, payload)| {
            claim::check(&payload, &[claim::SIMPLE_SIGNING_TYPE], identity).map(|()| signer)
        });
        match verified {
            Ok(signer) => checked.verified(signer),
            Err(e) => checked.failed(format!("{url}: {}", crate::error_chain(&e))),
        }
    }
}

fn not_found(e: &SignatureSourceError) -> bool {
    match e {
        SignatureSourceError::Read { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        SignatureSourceError::Transport(TransportError::Status { status, .. }) => *status == 404,
        _ => false,
    }
}

/// cosign signatures the registry keeps beside the image, found by its handler.
#[allow(clippy::too_many_arguments)]
fn cosign(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    handler: &LoadedHandler,
    grant: &Grant,
    point: &DistributionPoint,
    keys: &NameKeys,
    identity: &Identity,
    options: &FetchOptions,
    checked: &mut Checked,
) {
    let observer: Arc<dyn IngestObserver> = Arc::new(crate::store::NoProgress);
    let ctx =
        RunContext { store: store.clone(), observer, http: Some(options.http_client()), partial: false, lazy: false };
    let found = match sandbox.attached_signatures(handler, grant, ctx, &point.to_string(), &identity.manifest_digest) {
        Ok(Some(Ok(found))) => found,
        Ok(None) => {
            checked.note(format!("handler {} does not look for cosign signatures", handler.name));
            return;
        }
        Ok(Some(Err(e))) => {
            checked.failed(format!("looking for cosign signatures: {}", super::error::describe(&e)));
            return;
        }
        Err(e) => {
            checked.failed(format!("looking for cosign signatures: {}", crate::error_chain(&e)));
            return;
        }
    };
    if found.is_empty() {
        checked.note(format!("no cosign signature of {} in {}", identity.manifest_digest, identity.repository));
    }
    let mut stored = Vec::new();
    for layer in found {
        let subject = format!("cosign signature {}", layer.digest);
        let Ok(digest) = layer.digest.parse::<Digest>() else {
            checked.failed(format!("{subject}: not a digest"));
            continue;
        };
        stored.push(digest.clone());
        let Some((_, signature)) = layer.annotations.iter().find(|(k, _)| k == COSIGN_SIGNATURE) else {
            checked.failed(format!("{subject}: no {COSIGN_SIGNATURE} annotation"));
            continue;
        };
        let payload = match read_payload(store, &digest) {
            Ok(p) => p,
            Err(e) => {
                checked.failed(format!("{subject}: {e}"));
                continue;
            }
        };
        let verified = keys
            .verify_sigstore(&payload, signature)
            .and_then(|signer| claim::check(&payload, &[claim::COSIGN_TYPE], identity).map(|()| signer));
        match verified {
            Ok(signer) => checked.verified(signer),
            Err(e) => checked.failed(format!("{subject}: {}", crate::error_chain(&e))),
        }
    }
    // The payloads were only needed for this check.
    if let Err(e) = store.discard_unreferenced(&stored) {
        tracing::debug!("leaving the signature payloads to gc: {e}");
    }
}

fn read_payload(store: &Store, digest: &Digest) -> Result<Vec<u8>, String> {
    let file = store.blobs().open_blob(digest).map_err(|e| crate::error_chain(&e))?;
    let mut payload = Vec::new();
    file.take(MAX_PAYLOAD + 1).read_to_end(&mut payload).map_err(|e| format!("reading the payload: {e}"))?;
    if payload.len() as u64 > MAX_PAYLOAD {
        return Err(format!("the payload is over {MAX_PAYLOAD} bytes"));
    }
    Ok(payload)
}
