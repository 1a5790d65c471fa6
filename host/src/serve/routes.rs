//! Requests: the path parsed into a route (names checked against the spec's grammar,
//! nothing percent-decoded), authentication, dispatch to the endpoint, and the answer
//! wrapped for the access log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode, Version};

use super::access_log::{AccessEntry, Logged};
use super::listener::Activity;
use super::names::{RepoName, valid_registry};
use super::response;
use super::sendfile::Slot;
use super::state::Registry;
use super::{ServeError, blobs, manifests, uploads};

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, String),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, String),
}

impl Route {
    /// Parse a request path as sent (still percent-encoded: a name never needs an
    /// escape, so any `%` is refused rather than decoded into a `/` or `..`).
    pub fn parse(path: &str) -> Result<Route, ServeError> {
        let no_route = || ServeError::NoRoute { path: path.to_string() };
        if path == "/v2" || path == "/v2/" {
            return Ok(Route::Base);
        }
        let rest = path.strip_prefix("/v2/").ok_or_else(no_route)?;
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        if rest.contains('%') {
            return Err(ServeError::NameInvalid {
                name: rest.to_string(),
                reason: "percent-encoded bytes are not allowed in repository names",
            });
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name = |end: usize| RepoName::parse(&segments[..end].join("/"));
        if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
            return Ok(Route::Tags(name(n - 2)?));
        }
        if n >= 4 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let id = segments[n - 1];
            return Ok(if id.is_empty() {
                Route::Uploads(name(n - 3)?)
            } else {
                Route::Upload(name(n - 3)?, id.to_string())
            });
        }
        if n >= 3 && segments[n - 2] == "blobs" && segments[n - 1] == "uploads" {
            return Ok(Route::Uploads(name(n - 2)?));
        }
        if n >= 3 {
            let last = segments[n - 1].to_string();
            match segments[n - 2] {
                "manifests" => return Ok(Route::Manifest(name(n - 2)?, last)),
                "blobs" => return Ok(Route::Blob(name(n - 2)?, last)),
                "referrers" => return Ok(Route::Referrers(name(n - 2)?, last)),
                _ => {}
            }
        }
        Err(no_route())
    }
}

/// A request's query, decoded.
fn query(request: &Request<Incoming>) -> Vec<(String, String)> {
    request.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `?ns=<registry>`, which containerd and berth send to mirrors.
fn ns(query: &[(String, String)]) -> Result<Option<&str>, ServeError> {
    match value(query, "ns") {
        Some(ns) if !valid_registry(ns) => Err(ServeError::NameInvalid {
            name: ns.to_string(),
            reason: "the ns parameter is not a registry host[:port]",
        }),
        other => Ok(other),
    }
}

fn page_size(query: &[(String, String)]) -> Option<usize> {
    value(query, "n").and_then(|n| n.parse().ok())
}

/// Serve one request. Never fails: errors are answered in the spec's JSON form.
pub async fn handle(
    registry: Arc<Registry>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    sendfile: Option<Arc<Slot>>,
    request: Request<Incoming>,
) -> Result<Response<Logged>, Infallible> {
    let started = Instant::now();
    let busy = activity.busy();
    registry.requests.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let user_agent = request.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let head = request.method() == Method::HEAD;
    // Zero-copy bodies only where hyper writes the body bytes as they are: HTTP/1.x.
    let sendfile = sendfile.filter(|_| request.version() <= Version::HTTP_11);
    let mut entry = AccessEntry::start(peer.to_string(), request.method().to_string(), path, user_agent);
    let result = match &registry.auth {
        Some(auth) => match auth.authenticate(request.headers().get(hyper::header::AUTHORIZATION)).await {
            Some(user) => {
                entry.user = Some(user);
                dispatch(&registry, request, sendfile).await
            }
            None => Err(ServeError::Unauthorized),
        },
        None => dispatch(&registry, request, sendfile).await,
    };
    let mut response = result.unwrap_or_else(|e| {
        if e.status_and_code().0.is_server_error() {
            tracing::warn!("{} {}: {}", entry.method, entry.path, response::chain(&e));
        }
        response::error(&e)
    });
    response.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    if head {
        // Headers only (an error's Content-Length stays, as for GET).
        *response.body_mut() = response::empty();
    }
    entry.status = response.status().as_u16();
    drop(busy);
    Ok(response.map(|body| Logged::new(body, entry, started, registry)))
}

async fn dispatch(
    registry: &Arc<Registry>,
    request: Request<Incoming>,
    sendfile: Option<Arc<Slot>>,
) -> Result<Response<response::Body>, ServeError> {
    let route = Route::parse(request.uri().path())?;
    let query = query(&request);
    let method = request.method().clone();
    let head = method == Method::HEAD;
    let unsupported = |what: &str, why| Err(ServeError::Unsupported { what: format!("{method} {what}"), why });
    match route {
        Route::Base if head || method == Method::GET => Ok(response::json(StatusCode::OK, &serde_json::json!({}))),
        Route::Catalog if method == Method::GET => {
            manifests::catalog(registry, page_size(&query), value(&query, "last").map(str::to_string)).await
        }
        Route::Tags(name) if method == Method::GET => {
            let last = value(&query, "last").map(str::to_string);
            manifests::tags(registry, &name, ns(&query)?, page_size(&query), last).await
        }
        Route::Manifest(name, reference) if head || method == Method::GET => {
            manifests::get(registry, &name, &reference, ns(&query)?, head, request.headers()).await
        }
        Route::Manifest(name, reference) if method == Method::PUT => {
            manifests::put(registry, &name, &reference, request).await
        }
        Route::Blob(_, digest) if head || method == Method::GET => {
            let range = request.headers().get(hyper::header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
            blobs::get(registry, &digest, head, range, sendfile).await
        }
        Route::Uploads(name) if method == Method::POST => uploads::start(registry, &name, &query, request).await,
        Route::Upload(name, id) => match method {
            Method::PATCH => uploads::patch(registry, &name, &id, request).await,
            Method::PUT => uploads::finish(registry, &name, &id, &query, request).await,
            Method::GET => uploads::status(registry, &name, &id).await,
            Method::DELETE => uploads::cancel(registry, &name, &id).await,
            _ => unsupported("on an upload", "uploads take PATCH, PUT, GET and DELETE"),
        },
        Route::Referrers(name, digest) if method == Method::GET => {
            let artifact_type = value(&query, "artifactType").map(str::to_string);
            manifests::referrers(registry, &name, &digest, ns(&query)?, artifact_type).await
        }
        Route::Manifest(..) | Route::Blob(..) if method == Method::DELETE => {
            unsupported("of content", "remove images with `berth image rm` and blobs with `berth gc`")
        }
        _ => unsupported("here", "see the distribution spec's pull and push endpoints"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn paths_map_to_routes_with_names_of_any_depth() {
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(Route::parse("/v2/a/b/tags/list").unwrap(), Route::Tags(name("a/b")));
        assert_eq!(
            Route::parse("/v2/x/manifests/y/manifests/v1").unwrap(),
            Route::Manifest(name("x/manifests/y"), "v1".into())
        );
        assert_eq!(Route::parse("/v2/a/blobs/sha256:ab").unwrap(), Route::Blob(name("a"), "sha256:ab".into()));
        assert_eq!(Route::parse("/v2/a/blobs/uploads/").unwrap(), Route::Uploads(name("a")));
        assert_eq!(Route::parse("/v2/a/blobs/uploads").unwrap(), Route::Uploads(name("a")));
        assert_eq!(Route::parse("/v2/a/blobs/uploads/abc").unwrap(), Route::Upload(name("a"), "abc".into()));
        assert_eq!(Route::parse("/v2/a/referrers/sha256:ab").unwrap(), Route::Referrers(name("a"), "sha256:ab".into()));
    }

    #[test]
    fn path_tricks_are_invalid_names() {
        for path in [
            "/v2/../etc/manifests/latest",
            "/v2/a/../../b/manifests/latest",
            "/v2/a%2F..%2Fb/manifests/latest",
            "/v2/a%2fb/blobs/sha256:ab",
            "/v2//a/manifests/latest",
            "/v2/A/manifests/latest",
        ] {
            assert!(matches!(Route::parse(path), Err(ServeError::NameInvalid { .. })), "{path}");
        }
        assert!(matches!(Route::parse("/v1/x"), Err(ServeError::NoRoute { .. })));
        assert!(matches!(Route::parse("/v2/a/unknown"), Err(ServeError::NoRoute { .. })));
    }
}
