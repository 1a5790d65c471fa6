//! Manifests by tag and digest (`GET`, `HEAD`, `PUT`), tag lists, the catalog and the
//! referrers API, all answered from the store's refs.
//!
//! A tag resolves through the refs its target's points name (`docker`, then `oci`): to
//! the document a digest-pinned ref of that image names (`…:tag@sha256:…`: an index
//! pushed or fetched by digest), else to the image's manifest. A digest is served
//! from the CAS under any repository name: content is named by its digest alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, IF_NONE_MATCH, LOCATION};
use hyper::{HeaderMap, Response, StatusCode};
use serde_json::json;

use super::documents::{self, Document, MAX_DOCUMENT, OCI_INDEX};
use super::names::{RefParts, Reference, RepoName, Target};
use super::response::{self, Body};
use super::state::Registry;
use super::uploads::read_capped;
use super::{Event, ServeError};
use crate::ops::{self, PushedManifest};
use crate::store::{Algorithm, Attachment, Digest, Expected, Store};

/// Answer `GET`/`HEAD /v2/<name>/manifests/<reference>`; a miss on a `--pull-through`
/// upstream is fetched first.
pub async fn get(
    registry: &Arc<Registry>,
    name: &RepoName,
    reference: &str,
    ns: Option<&str>,
    head: bool,
    headers: &HeaderMap,
) -> Result<Response<Body>, ServeError> {
    let reference = Reference::parse(reference)?;
    let targets = name.lookup_targets(ns, &registry.config.pull_through);
    let mut doc = find(registry, &targets, &reference).await?;
    // A cosign tag names a signature, never an image: an image pull for it cannot succeed,
    // so a miss is a plain 404 (the client asks the upstream itself).
    let cosign_tag = matches!(&reference, Reference::Tag(t) if cosign_subject(t).is_some());
    if doc.is_none()
        && !cosign_tag
        && let Some(target) = targets.iter().find(|t| registry.config.pull_through.contains(&t.registry))
    {
        let point = match &reference {
            Reference::Tag(t) => target.point(Some(t), None),
            Reference::Digest(d) => target.point(None, Some(d)),
        };
        if let Some(point) = point {
            registry.pulls.pull(registry, point).await?;
            doc = find(registry, &targets, &reference).await?;
        }
    }
    let doc =
        doc.ok_or_else(|| ServeError::ManifestUnknown { name: name.to_string(), reference: reference.to_string() })?;
    let etag = format!("\"{}\"", doc.digest);
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = response::with_digest(Response::builder(), &doc.digest)
        .header(CONTENT_TYPE, response::value(&doc.media_type))
        .header(CONTENT_LENGTH, doc.bytes.len());
    let response = if not_modified {
        builder.status(StatusCode::NOT_MODIFIED).body(response::empty())
    } else if head {
        builder.body(response::empty())
    } else {
        builder.body(response::full(doc.bytes))
    };
    Ok(response.expect("a valid response"))
}

async fn find(
    registry: &Arc<Registry>,
    targets: &[Target],
    reference: &Reference,
) -> Result<Option<Document>, ServeError> {
    let targets = targets.to_vec();
    let reference = reference.clone();
    registry
        .blocking(move |reg, store| match &reference {
            Reference::Digest(d) => documents::read(reg, store, d),
            Reference::Tag(tag) => {
                for target in &targets {
                    for digest in tag_documents(store, target, tag)? {
                        if let Some(doc) = documents::read(reg, store, &digest)? {
                            return Ok(Some(doc));
                        }
                    }
                }
                Ok(None)
            }
        })
        .await
}

/// What `tag` of `target` may be served as, best first: the documents the image's
/// pinned refs for that tag name, then the image's manifest.
fn tag_documents(store: &Store, target: &Target, tag: &str) -> Result<Vec<Digest>, ServeError> {
    for point in target.tag_points(tag) {
        if let Some(a) = store.attachment(&point.to_string())? {
            return Ok(vec![a.digest]);
        }
    }
    for point in target.tag_points(tag) {
        let point = point.to_string();
        if let Some(image) = store.resolve_ref(&point)? {
            let pinned = format!("{point}@");
            let mut out: Vec<Digest> =
                image.refs.iter().filter_map(|r| r.strip_prefix(&pinned)).filter_map(|d| d.parse().ok()).collect();
            out.push(image.record.manifest.digest);
            return Ok(out);
        }
    }
    Ok(Vec::new())
}

/// `PUT /v2/<name>/manifests/<reference>`: verify the document and what it references,
/// store its exact bytes, and record the image through the handler path.
pub async fn put(
    registry: &Arc<Registry>,
    name: &RepoName,
    reference: &str,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Response<Body>, ServeError> {
    if registry.config.read_only {
        return Err(ServeError::ReadOnly);
    }
    let reference = Reference::parse(reference)?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or(ServeError::MissingHeader { header: "Content-Type", why: "it must be the manifest's media type" })?;
    let bytes =
        read_capped(request.into_body(), MAX_DOCUMENT, "the manifest", registry.config.limits.idle_timeout).await?;
    let algorithm = match &reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = Digest::of_bytes(algorithm, &bytes);
    if let Reference::Digest(expected) = &reference
        && *expected != digest
    {
        return Err(ServeError::DigestMismatch { expected: expected.clone(), actual: digest });
    }
    let doc = Document::parse(digest.clone(), bytes).ok_or_else(|| ServeError::ManifestInvalid {
        reason: format!("not a JSON document of a type berth stores ({})", documents::DOCUMENT_TYPES.join(", ")),
    })?;
    if content_type != doc.media_type {
        return Err(ServeError::ManifestInvalid {
            reason: format!("Content-Type {content_type} does not match the manifest's media type {}", doc.media_type),
        });
    }
    if !doc.is_image() {
        return put_attachment(registry, name, &reference, doc).await;
    }
    let target = name.push_target();
    let tag = match &reference {
        Reference::Tag(t) => Some(t.clone()),
        Reference::Digest(_) => None,
    };
    let pinned = target
        .point(tag.as_deref(), Some(&digest))
        .ok_or_else(|| ServeError::NameInvalid { name: name.to_string(), reason: "it maps to no valid point" })?;
    let tag_point = tag.as_deref().and_then(|t| target.point(Some(t), None));
    // An index must be recorded for a platform it lists: this machine's when it can.
    let platforms: Vec<_> = doc.peek.manifests.iter().flatten().filter_map(|m| m.platform.clone()).collect();
    let host = crate::fetch::host_platform();
    let platform = if doc.is_index() && !platforms.contains(&host) { platforms.into_iter().next() } else { None };
    let subject = doc.peek.subject.as_ref().map(|s| s.digest.clone());
    let pushed = PushedManifest { pinned: pinned.clone(), tag: tag_point, platform };
    let d = digest.clone();
    registry
        .blocking(move |reg, store| {
            documents::check_references(store, &doc)?;
            let size = doc.bytes.len() as u64;
            store.blobs().ingest(
                &mut &doc.bytes[..],
                &Expected { digest: d.clone(), size },
                "the pushed manifest",
                &mut |_| {},
            )?;
            reg.mark_verified(&d);
            ops::record_push(&reg.ctx, &pushed).map_err(|e| ServeError::ManifestRejected { source: Box::new(e) })
        })
        .await?;
    registry.events.notice(&Event::Pushed { point: pinned.to_string(), manifest: digest.to_string() });
    Ok(created(name, &digest, subject))
}

/// `201 Created` for a manifest pushed as `digest`, naming its `subject` if it has one.
fn created(name: &RepoName, digest: &Digest, subject: Option<String>) -> Response<Body> {
    let mut builder = response::with_digest(Response::builder().status(StatusCode::CREATED), digest)
        .header(LOCATION, response::value(&format!("/v2/{name}/manifests/{digest}")))
        .header(CONTENT_LENGTH, 0);
    if let Some(s) = subject {
        builder = builder.header("oci-subject", response::value(&s));
    }
    builder.body(response::empty()).expect("a valid response")
}

/// A pushed document that is no image (a cosign signature, an SBOM): kept as an
/// attachment of the document its `subject` names or, without one, of the manifest a
/// cosign tag names (`sha256-<hex>.sig`, `.att`, `.sbom`), for as long as that is kept.
async fn put_attachment(
    registry: &Arc<Registry>,
    name: &RepoName,
    reference: &Reference,
    doc: Document,
) -> Result<Response<Body>, ServeError> {
    let declared = doc.peek.subject.as_ref().map(|s| s.digest.clone());
    let subject = match (&declared, reference) {
        (Some(s), _) => s
            .parse::<Digest>()
            .map_err(|_| ServeError::ManifestInvalid { reason: format!("its subject {s:?} is not a digest") })?,
        (None, Reference::Tag(t)) => cosign_subject(t).ok_or_else(|| ServeError::ManifestInvalid {
            reason: format!(
                "it is not an image (artifact type {}), and names nothing it belongs to: berth serve keeps \
                 artifacts attached to an image, by their subject or cosign's sha256-<hex>.sig tag",
                doc.artifact_type().unwrap_or("none")
            ),
        })?,
        (None, Reference::Digest(_)) => {
            return Err(ServeError::ManifestInvalid {
                reason:
                    "it is not an image and has no subject: push it with one, or under cosign's sha256-<hex>.sig tag"
                        .into(),
            });
        }
    };
    let target = name.push_target();
    let point = match reference {
        Reference::Tag(t) => target.point(Some(t), None),
        Reference::Digest(d) => target.point(None, Some(d)),
    }
    .ok_or_else(|| ServeError::NameInvalid { name: name.to_string(), reason: "it maps to no valid point" })?;
    let digest = doc.digest.clone();
    let mut blobs = vec![digest.clone()];
    blobs.extend(doc.references().filter_map(|d| d.digest.parse::<Digest>().ok()));
    let attachment = Attachment { point: point.to_string(), digest: digest.clone(), subject, blobs };
    registry
        .blocking(move |reg, store| {
            documents::check_references(store, &doc)?;
            let size = doc.bytes.len() as u64;
            let expected = Expected { digest: doc.digest.clone(), size };
            store.blobs().ingest(&mut &doc.bytes[..], &expected, "the pushed manifest", &mut |_| {})?;
            reg.mark_verified(&doc.digest);
            store.attach(&attachment)?;
            Ok(())
        })
        .await?;
    registry.events.notice(&Event::Pushed { point: point.to_string(), manifest: digest.to_string() });
    Ok(created(name, &digest, declared))
}

/// The manifest a cosign tag is about: `sha256-<hex>.sig` (or `.att`, `.sbom`) names
/// `sha256:<hex>`.
fn cosign_subject(tag: &str) -> Option<Digest> {
    let stem = [".sig", ".att", ".sbom"].iter().find_map(|s| tag.strip_suffix(s))?;
    let (algorithm, hex) = stem.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// The attachments pushed under a point of `targets`.
fn stored_attachments(store: &Store, targets: &[Target]) -> Result<Vec<(RefParts, Attachment)>, ServeError> {
    let mut out = Vec::new();
    for a in store.attachments()? {
        if let Some(parts) = RefParts::parse(&a.point).filter(|p| targets.contains(&p.target)) {
            out.push((parts, a));
        }
    }
    Ok(out)
}

/// Every (target, tag, pinned digest) the store's registry refs name.
fn stored_refs(store: &Store) -> Result<Vec<(RefParts, crate::store::StoredImage)>, ServeError> {
    let mut out = Vec::new();
    for image in store.images()? {
        for r in &image.refs {
            if let Some(parts) = RefParts::parse(r) {
                out.push((parts, image.clone()));
            }
        }
    }
    Ok(out)
}

/// `?n=` and `?last=`: the entries after `last`, at most `n`, and whether more follow.
fn paginate(all: BTreeSet<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, Option<String>) {
    let mut page: Vec<String> = all.into_iter().filter(|e| last.is_none_or(|l| e.as_str() > l)).collect();
    match n {
        Some(n) if page.len() > n => {
            page.truncate(n);
            let next = page.last().cloned();
            (page, next)
        }
        _ => (page, None),
    }
}

fn link(path: &str, next: Option<String>, n: Option<usize>) -> Option<String> {
    let (next, n) = (next?, n?);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("last", &next)
        .append_pair("n", &n.to_string())
        .finish();
    Some(format!("<{path}?{query}>; rel=\"next\""))
}

fn with_link(mut response: Response<Body>, link: Option<String>) -> Response<Body> {
    if let Some(l) = link {
        response.headers_mut().insert(hyper::header::LINK, response::value(&l));
    }
    response
}

/// `GET /v2/_catalog`: every repository name the store's refs map to.
pub async fn catalog(
    registry: &Arc<Registry>,
    n: Option<usize>,
    last: Option<String>,
) -> Result<Response<Body>, ServeError> {
    let names = registry
        .blocking(|_, store| Ok(stored_refs(store)?.into_iter().map(|(p, _)| p.target.served_name()).collect()))
        .await?;
    let (page, next) = paginate(names, n, last.as_deref());
    let response = response::json(StatusCode::OK, &json!({ "repositories": page }));
    Ok(with_link(response, link("/v2/_catalog", next, n)))
}

/// `GET /v2/<name>/tags/list`.
pub async fn tags(
    registry: &Arc<Registry>,
    name: &RepoName,
    ns: Option<&str>,
    n: Option<usize>,
    last: Option<String>,
) -> Result<Response<Body>, ServeError> {
    let targets = name.lookup_targets(ns, &registry.config.pull_through);
    let (known, tags) = registry
        .blocking(move |_, store| {
            let mut known = false;
            let mut tags = BTreeSet::new();
            for (parts, _) in stored_refs(store)? {
                if targets.contains(&parts.target) {
                    known = true;
                    tags.extend(parts.tag);
                }
            }
            for (parts, _) in stored_attachments(store, &targets)? {
                known = true;
                tags.extend(parts.tag.filter(|_| parts.digest.is_none()));
            }
            Ok((known, tags))
        })
        .await?;
    if !known {
        return Err(ServeError::NameUnknown {
            name: name.to_string(),
            hint: "`berth fetch` or push an image under it first (GET /v2/_catalog lists the names)",
        });
    }
    let (page, next) = paginate(tags, n, last.as_deref());
    let response = response::json(StatusCode::OK, &json!({ "name": name.as_str(), "tags": page }));
    Ok(with_link(response, link(&format!("/v2/{name}/tags/list"), next, n)))
}

/// `GET /v2/<name>/referrers/<digest>`: the manifests of the repository whose `subject`
/// is `digest`, as an image index (empty when there are none, as the spec asks).
pub async fn referrers(
    registry: &Arc<Registry>,
    name: &RepoName,
    digest: &str,
    ns: Option<&str>,
    artifact_type: Option<String>,
) -> Result<Response<Body>, ServeError> {
    let subject_digest = super::names::parse_digest(digest)?;
    let subject = subject_digest.to_string();
    let targets = name.lookup_targets(ns, &registry.config.pull_through);
    let filter = artifact_type.clone();
    let manifests = registry
        .blocking(move |reg, store| {
            let mut candidates = BTreeSet::new();
            for (parts, image) in stored_refs(store)? {
                if targets.contains(&parts.target) {
                    candidates.insert(image.record.manifest.digest.clone());
                    candidates.extend(parts.digest);
                }
            }
            for a in store.attachments_of(&subject_digest)? {
                if RefParts::parse(&a.point).is_some_and(|p| targets.contains(&p.target)) {
                    candidates.insert(a.digest);
                }
            }
            let mut out = Vec::new();
            for digest in candidates {
                let Some(doc) = documents::read(reg, store, &digest)? else { continue };
                if doc.peek.subject.as_ref().is_none_or(|s| s.digest != subject) {
                    continue;
                }
                if filter.as_deref().is_some_and(|f| doc.artifact_type() != Some(f)) {
                    continue;
                }
                let mut entry = json!({
                    "mediaType": doc.media_type,
                    "digest": doc.digest.to_string(),
                    "size": doc.bytes.len(),
                });
                if let Some(t) = doc.artifact_type() {
                    entry["artifactType"] = json!(t);
                }
                if !doc.peek.annotations.is_empty() {
                    entry["annotations"] = json!(doc.peek.annotations);
                }
                out.push(entry);
            }
            Ok(out)
        })
        .await?;
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response = response::json(StatusCode::OK, &index);
    response.headers_mut().insert(CONTENT_TYPE, response::value(OCI_INDEX));
    if artifact_type.is_some() {
        response.headers_mut().insert("oci-filters-applied", response::value("artifactType"));
    }
    Ok(response)
}
