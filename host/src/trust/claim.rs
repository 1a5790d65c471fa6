//! The payload a container image signature signs (containers' "simple signing" format,
//! which cosign uses too):
//!
//! ```json
//! {"critical": {"identity": {"docker-reference": "registry.lan/app:v1"},
//!               "image": {"docker-manifest-digest": "sha256:…"},
//!               "type": "atomic container signature"},
//!  "optional": {…}}
//! ```
//!
//! A signature is about one manifest under one name: the digest must be the image's
//! manifest digest, and the reference must name the image as containers' default
//! `matchRepoDigestOrExact` does: the same repository, and, when the image was asked for
//! by tag, the same tag.

use serde::Deserialize;

use super::TrustError;

/// The `type` containers' simple signing writes.
pub const SIMPLE_SIGNING_TYPE: &str = "atomic container signature";
/// The `type` cosign writes.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// What an image is, for comparing with a signature's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `host[:port]/path`, normalized ([`normalize`]).
    pub repository: String,
    /// The tag the image was asked for; `None` when asked for by digest.
    pub tag: Option<String>,
    /// The manifest digest, `sha256:<hex>`.
    pub manifest_digest: String,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    identity: ClaimedIdentity,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    manifest_digest: String,
}

#[derive(Deserialize)]
struct ClaimedIdentity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// Check that `payload` (of one of `types`) claims exactly `identity`.
pub fn check(payload: &[u8], types: &[&str], identity: &Identity) -> Result<(), TrustError> {
    let bad = |reason: String| TrustError::ClaimMismatch { reason };
    let p: Payload = serde_json::from_slice(payload).map_err(|e| bad(format!("the signed payload is not one: {e}")))?;
    let c = p.critical;
    if !types.contains(&c.kind.as_str()) {
        return Err(bad(format!("the payload's type is {:?}, not {}", c.kind, types.join(" or "))));
    }
    if !c.image.manifest_digest.eq_ignore_ascii_case(&identity.manifest_digest) {
        return Err(bad(format!("it signs manifest {}, not {}", c.image.manifest_digest, identity.manifest_digest)));
    }
    let (repository, tag) = split_reference(&c.identity.reference)
        .ok_or_else(|| bad(format!("its reference {:?} is not a docker reference", c.identity.reference)))?;
    if repository != identity.repository {
        return Err(bad(format!("it names {repository}, not {}", identity.repository)));
    }
    if let Some(wanted) = &identity.tag
        && tag.as_deref() != Some(wanted.as_str())
    {
        let shown = tag.map_or_else(|| "no tag".to_string(), |t| format!("tag {t:?}"));
        return Err(bad(format!("it names {shown}, not tag {wanted:?}")));
    }
    Ok(())
}

/// `host[:port]/path[:tag][@digest]` → (normalized repository, tag).
pub fn split_reference(reference: &str) -> Option<(String, Option<String>)> {
    let without_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    let (repository, tag) = match without_digest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (without_digest, None),
    };
    if repository.is_empty() || repository.contains(char::is_whitespace) {
        return None;
    }
    Some((normalize(repository), tag))
}

/// Docker Hub's names in one form: `docker.io/library/x` for `x`, `index.docker.io/x`,
/// `registry-1.docker.io/library/x`; the host in lower case. Docker's rule is the
/// distribution points' (`cimd`); only Hub's spelling differs, as containers writes it.
pub fn normalize(repository: &str) -> String {
    // Repository paths are lower case by the spec's grammar; hosts are case-insensitive.
    let (first, rest) = repository.split_once('/').map_or((repository, None), |(f, r)| (f, Some(r)));
    let lowered = match rest {
        Some(rest) => format!("{}/{rest}", first.to_ascii_lowercase()),
        None => repository.to_string(),
    };
    let (host, path) = crate::cimd::docker_host_and_path(&lowered);
    let host = if host == "registry-1.docker.io" { "docker.io".to_string() } else { host };
    format!("{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4bb75d17bd09cf83436ba4e4cce94a34b96ed5d8fa66e61b8692e234e57beaea";

    fn payload(kind: &str, reference: &str, digest: &str) -> Vec<u8> {
        serde_json::json!({"critical": {"identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest}, "type": kind}, "optional": null})
        .to_string()
        .into_bytes()
    }

    fn identity(repository: &str, tag: Option<&str>) -> Identity {
        Identity { repository: repository.into(), tag: tag.map(String::from), manifest_digest: DIGEST.into() }
    }

    #[test]
    fn a_claim_must_name_the_manifest_the_repository_and_a_tag_asked_for() {
        let types = [SIMPLE_SIGNING_TYPE];
        let by_tag = identity("127.0.0.1:5000/signed/app", Some("v1"));
        let ok = payload(SIMPLE_SIGNING_TYPE, "127.0.0.1:5000/signed/app:v1", DIGEST);
        check(&ok, &types, &by_tag).unwrap();
        // By digest, any tag of the repository (or none) is the image.
        check(&ok, &types, &identity("127.0.0.1:5000/signed/app", None)).unwrap();
        let other_tag = payload(SIMPLE_SIGNING_TYPE, "127.0.0.1:5000/signed/app:v2", DIGEST);
        assert!(check(&other_tag, &types, &by_tag).unwrap_err().to_string().contains("not tag \"v1\""));
        let other_repo = payload(SIMPLE_SIGNING_TYPE, "127.0.0.1:5000/signed/evil:v1", DIGEST);
        assert!(check(&other_repo, &types, &by_tag).is_err());
        let other_digest = payload(SIMPLE_SIGNING_TYPE, "127.0.0.1:5000/signed/app:v1", &DIGEST.replace('4', "5"));
        assert!(check(&other_digest, &types, &by_tag).unwrap_err().to_string().contains("signs manifest"));
        assert!(check(&payload(COSIGN_TYPE, "127.0.0.1:5000/signed/app:v1", DIGEST), &types, &by_tag).is_err());
        assert!(check(b"{\"critical\": 1}", &types, &by_tag).is_err());
    }

    #[test]
    fn docker_hub_names_have_one_form() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox");
        assert_eq!(normalize("registry-1.docker.io/library/busybox"), "docker.io/library/busybox");
        assert_eq!(normalize("index.docker.io/busybox"), "docker.io/library/busybox");
        assert_eq!(normalize("Registry.lan:5000/a/b"), "registry.lan:5000/a/b");
        assert_eq!(
            split_reference("localhost:5000/a:v1@sha256:00"),
            Some(("localhost:5000/a".into(), Some("v1".into())))
        );
        assert_eq!(split_reference("localhost:5000/a"), Some(("localhost:5000/a".into(), None)));
    }
}
