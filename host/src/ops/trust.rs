//! `trust`: the OpenPGP keys trusted to sign appc images, per name scope: add (from
//! files, URLs, or what appc discovery announces, each reviewed), list, remove.

use std::path::Path;
use std::sync::Arc;

use super::{Context, Doing, Error};
use crate::fetch::{self, FetchOptions};
use crate::store::LockMode;
use crate::transport::{HttpClient, HttpOptions, Request, TransportError};
use crate::trust::{self, ImageKey, KeyInfo, Keyring, Scope, TrustError};

/// The largest key file fetched over HTTP(S).
const MAX_KEY_BYTES: usize = 1 << 20;

/// Who decides whether a key is trusted, before it is: a person at a prompt, usually.
pub trait KeyReview {
    /// Discovery announced these key URLs for `prefix`.
    fn announced(&mut self, prefix: &str, urls: &[String]);
    /// Whether to trust `key` (read from `source`, the `n`th of `of`) for `scope`.
    fn confirm(&mut self, key: &KeyInfo, source: &str, n: usize, of: usize, scope: &Scope) -> Result<bool, Error>;
}

#[derive(Debug, Clone)]
pub struct TrustAdd {
    pub scope: Scope,
    /// Key files or https:// URLs; empty with a prefix scope: ask discovery.
    pub keys: Vec<String>,
    /// Fetch keys (and discover) over plain http:// too.
    pub allow_http: bool,
}

/// What [`trust_keys`] did.
#[derive(Debug)]
pub struct Trusted {
    pub added: Vec<ImageKey>,
    /// Fingerprints the review declined.
    pub declined: Vec<String>,
}

/// Trust keys for a scope. Each is shown to `review` first, unless it is `None` (the
/// caller checked the keys another way). Secret, revoked and expired keys are refused.
pub fn trust_keys(ctx: &Context, request: &TrustAdd, mut review: Option<&mut dyn KeyReview>) -> Result<Trusted, Error> {
    let keyring = Keyring::new(ctx.root());
    let sources = if request.keys.is_empty() {
        let Scope::Prefix(prefix) = &request.scope else {
            return Err(super::UsageError::new("give a KEY to trust for every name (--root-key)").into());
        };
        let urls = discover_keys(ctx, prefix, request.allow_http)?;
        if urls.is_empty() {
            return Err(super::UsageError::new(format!(
                "discovery announced no keys for {prefix:?}; give a KEY file or URL"
            ))
            .into());
        }
        if let Some(r) = review.as_deref_mut() {
            r.announced(prefix, &urls);
        }
        urls
    } else {
        request.keys.clone()
    };
    let mut trusted = Trusted { added: Vec::new(), declined: Vec::new() };
    for (i, source) in sources.iter().enumerate() {
        let bytes = read_key(source, request.allow_http)?;
        let info = trust::inspect(&bytes).doing(|| format!("key {source}"))?;
        if let Some(r) = review.as_deref_mut()
            && !r.confirm(&info, source, i + 1, sources.len(), &request.scope)?
        {
            trusted.declined.push(info.fingerprint);
            continue;
        }
        trusted.added.push(keyring.add(&request.scope, &bytes).doing(|| format!("key {source}"))?);
    }
    Ok(trusted)
}

/// Every trusted image key.
pub fn list_trusted_keys(ctx: &Context) -> Result<Vec<ImageKey>, Error> {
    Ok(Keyring::new(ctx.root()).list()?)
}

/// Stop trusting a key (its fingerprint or key id) in `scope`, or in every scope.
pub fn remove_trusted_key(ctx: &Context, fingerprint: &str, scope: Option<&Scope>) -> Result<Vec<ImageKey>, Error> {
    Ok(Keyring::new(ctx.root()).remove(fingerprint, scope)?)
}

/// The key URLs appc discovery announces for `prefix`, found by the appc handler.
pub fn discover_keys(ctx: &Context, prefix: &str, allow_http: bool) -> Result<Vec<String>, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    let sandbox = ctx.sandbox()?;
    let options = FetchOptions {
        http: Some(Arc::new(HttpClient::new(http_options(allow_http)))),
        dropins: Some(ctx.dropins()),
        ..FetchOptions::default()
    };
    fetch::discover_pubkeys(&store, &sandbox, prefix, &options)
        .doing(|| format!("discovering the signing keys of {prefix:?}"))
}

/// Plain HTTP where HTTPS fails, when allowed (TLS still verified where it answers).
fn http_options(allow_http: bool) -> HttpOptions {
    HttpOptions { plain_http: allow_http, ..HttpOptions::default() }
}

/// A key's bytes: a local file, or an https:// (or, when allowed, http://) URL.
fn read_key(source: &str, allow_http: bool) -> Result<Vec<u8>, Error> {
    let is_http = source.starts_with("http://");
    if !is_http && !source.starts_with("https://") {
        let path = Path::new(source);
        return std::fs::read(path).map_err(super::error::io("reading the key file", path));
    }
    if is_http && !allow_http {
        return Err(TrustError::PlainHttpKey { url: source.to_string() }.into());
    }
    let client = HttpClient::new(http_options(allow_http));
    let request = Request { method: "GET".into(), url: source.to_string(), headers: Vec::new(), body: None };
    let response = client.request(&request, MAX_KEY_BYTES).doing(|| format!("fetching the key {source}"))?;
    if response.status != 200 {
        return Err(TransportError::Status { url: response.url, status: response.status })
            .doing(|| format!("fetching the key {source}"));
    }
    Ok(response.body)
}
