//! The host's HTTP client for handlers: small requests and blob streams, with the grant
//! checked by the caller and everything else done here: TLS (rustls, system roots plus
//! per-registry CA directories), plain HTTP only where allowed, proxies from the
//! environment, the Bearer/Basic challenge flow with the user's credentials, mirrors,
//! retries with backoff, and resumption of interrupted blob transfers with `Range`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use reqwest::Url;
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::TransportError;
use super::auth::{Credentials, parse_challenge};
use super::registries::RegistriesConfig;

/// How the host's HTTP client behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Directories holding `<host[:port]>/*.crt` CA certificates per registry.
    pub certs_dirs: Vec<PathBuf>,
    /// Registries that may use plain HTTP and unverified TLS (`--insecure-registry`).
    pub insecure_hosts: Vec<String>,
    /// Plain HTTP may be used with any host, when HTTPS fails (`--insecure-options=http`).
    /// TLS is still verified wherever HTTPS answers.
    pub plain_http: bool,
    pub credentials: Credentials,
    pub registries: RegistriesConfig,
    pub connect_timeout: Duration,
    /// Attempts after the first for transient failures (connection errors, 429, 5xx).
    pub retries: u32,
    /// First backoff delay; doubles with each retry.
    pub backoff: Duration,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            certs_dirs: vec![
                PathBuf::from("/etc/berth/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            insecure_hosts: Vec::new(),
            plain_http: false,
            credentials: Credentials::default(),
            registries: RegistriesConfig::default(),
            connect_timeout: Duration::from_secs(30),
            retries: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `host[:port]` of a URL, lowercase.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { authority });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A request is addressed by digest when the registry cannot answer it with anything
/// but those exact bytes: blobs, and manifests by digest. Only these may come from
/// `mirror-by-digest-only` mirrors.
fn by_digest(url: &Url) -> bool {
    let path = url.path();
    path.contains("/blobs/sha256:")
        || path.contains("/blobs/sha512:")
        || path.contains("/manifests/sha256:")
        || path.contains("/manifests/sha512:")
}

fn transient(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status) && status != 501
}

pub struct HttpClient {
    options: HttpOptions,
    clients: Mutex<HashMap<String, Client>>,
    /// `Authorization` values earned by a challenge, by registry authority.
    authorizations: Mutex<HashMap<String, String>>,
    /// Authorities that answered only on plain HTTP.
    plain: Mutex<HashSet<String>>,
}

impl HttpClient {
    pub fn new(options: HttpOptions) -> HttpClient {
        static PROVIDER: Once = Once::new();
        PROVIDER.call_once(|| {
            // Another part of the process may have installed one already; either is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        HttpClient { options, clients: Mutex::default(), authorizations: Mutex::default(), plain: Mutex::default() }
    }

    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// Whether plain HTTP may be used for `authority`.
    fn insecure(&self, authority: &str) -> bool {
        self.options.plain_http || self.configured_insecure(authority)
    }

    /// Whether plain HTTP (and unverified TLS, unless loopback) is configured for `authority`.
    fn configured_insecure(&self, authority: &str) -> bool {
        let configured = self.options.insecure_hosts.iter().any(|h| h.eq_ignore_ascii_case(authority))
            || self.options.registries.registry(authority).is_some_and(|r| r.insecure)
            || self
                .options
                .registries
                .registries
                .iter()
                .flat_map(|r| &r.mirrors)
                .any(|m| m.insecure && m.location.eq_ignore_ascii_case(authority));
        configured || is_loopback(authority)
    }

    fn skip_verify(&self, authority: &str) -> bool {
        self.configured_insecure(authority) && !is_loopback(authority)
    }

    fn client(&self, authority: &str) -> Result<Client, TransportError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(authority) {
            return Ok(c.clone());
        }
        let mut certs = Vec::new();
        for dir in &self.options.certs_dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(authority)) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "crt") {
                    let pem = std::fs::read(&path).map_err(|source| TransportError::File {
                        action: "reading",
                        path: path.clone(),
                        source,
                    })?;
                    let found = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|source| TransportError::Certificate { path: path.clone(), source })?;
                    certs.extend(found);
                }
            }
        }
        let client = Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .timeout(None)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .tls_certs_merge(certs)
            .tls_danger_accept_invalid_certs(self.skip_verify(authority))
            .build()
            .map_err(|source| TransportError::Http { url: authority.to_string(), source })?;
        clients.insert(authority.to_string(), client.clone());
        Ok(client)
    }

    /// The URLs to try for `url`: its registry's mirrors first (for digest-addressed
    /// requests, or all requests unless `mirror-by-digest-only`), then the URL itself.
    /// A mirror's URL carries `ns=<registry>`, as containerd sends it: a mirror serving
    /// several registries (`berth serve`) learns which one the path is relative to.
    pub fn endpoints(&self, url: &str) -> Result<Vec<Url>, TransportError> {
        let parsed = Url::parse(url).map_err(|source| TransportError::UrlSyntax { url: url.to_string(), source })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(TransportError::BadUrl {
                url: url.to_string(),
                reason: "only http and https are supported".into(),
            });
        }
        let authority = authority(&parsed);
        let mut out = Vec::new();
        if let Some(reg) = self.options.registries.registry(&authority) {
            if reg.blocked {
                return Err(TransportError::Blocked { host: authority });
            }
            if by_digest(&parsed) || !reg.mirror_by_digest_only {
                for m in &reg.mirrors {
                    let mut mirrored = parsed.clone();
                    let (host, port) = match m.location.rsplit_once(':') {
                        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse().ok()),
                        _ => (m.location.as_str(), None),
                    };
                    if mirrored.set_host(Some(host)).is_ok() && mirrored.set_port(port).is_ok() {
                        mirrored.query_pairs_mut().append_pair("ns", &authority);
                        out.push(mirrored);
                    }
                }
            }
        }
        out.push(parsed);
        Ok(out)
    }

    /// Every authority a request for `url` may reach: mirrors and the registry.
    pub fn authorities(&self, url: &str) -> Vec<String> {
        self.endpoints(url).map(|e| e.iter().map(authority).collect()).unwrap_or_default()
    }

    /// Send once, with the plain-HTTP fallback and the challenge flow.
    fn send(
        &self,
        method: &reqwest::Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, TransportError> {
        let authority = authority(url);
        let mut url = url.clone();
        if url.scheme() == "https" && self.plain.lock().unwrap_or_else(|p| p.into_inner()).contains(&authority) {
            let _ = url.set_scheme("http");
        }
        if url.scheme() == "http" && !self.insecure(&authority) {
            return Err(TransportError::PlainHttp { host: authority });
        }
        let resp = match self.send_authorized(method, &url, headers, body) {
            Err(TransportError::Http { source, .. })
                if url.scheme() == "https"
                    && self.insecure(&authority)
                    && (source.is_connect() || source.is_request()) =>
            {
                // An insecure registry may speak only plain HTTP: try that, and remember.
                // A TLS server answers plain HTTP with 400 (or not at all): then the TLS
                // failure (an unknown CA, say) is the error worth reporting.
                let https_error = TransportError::Http { url: url.to_string(), source };
                let _ = url.set_scheme("http");
                match self.send_authorized(method, &url, headers, body) {
                    Ok(r) if r.status().as_u16() != 400 => {
                        self.plain.lock().unwrap_or_else(|p| p.into_inner()).insert(authority.clone());
                        r
                    }
                    _ => return Err(https_error),
                }
            }
            other => other?,
        };
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let Some(challenge) =
            resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).and_then(parse_challenge)
        else {
            return Ok(resp);
        };
        let earned = match challenge.scheme.as_str() {
            "bearer" => self.token(&authority, &challenge.params)?,
            "basic" => match self.options.credentials.get(&authority) {
                Some(c) => c.basic_header(),
                None => return Ok(resp),
            },
            _ => return Ok(resp),
        };
        self.authorizations.lock().unwrap_or_else(|p| p.into_inner()).insert(authority, earned);
        self.send_authorized(method, &url, headers, body)
    }

    fn send_authorized(
        &self,
        method: &reqwest::Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, TransportError> {
        let authority = authority(url);
        let client = self.client(&authority)?;
        let mut req = client.request(method.clone(), url.clone()).headers(headers.clone());
        if let Some(auth) = self.authorizations.lock().unwrap_or_else(|p| p.into_inner()).get(&authority) {
            req = req.header("authorization", auth);
        }
        if let Some(b) = body {
            req = req.body(b.to_vec());
        }
        req.send().map_err(|source| TransportError::Http { url: url.to_string(), source })
    }

    /// The Bearer token flow: ask the realm for a token for the challenge's scope, with
    /// the registry's credentials when there are some.
    fn token(&self, registry: &str, params: &HashMap<String, String>) -> Result<String, TransportError> {
        let realm = params.get("realm").ok_or_else(|| TransportError::Token {
            realm: String::new(),
            reason: "the challenge names no realm".into(),
        })?;
        let mut url = Url::parse(realm).map_err(|source| TransportError::UrlSyntax { url: realm.clone(), source })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = params.get("service") {
                q.append_pair("service", s);
            }
            if let Some(s) = params.get("scope") {
                q.append_pair("scope", s);
            }
        }
        let realm_authority = authority(&url);
        if !super::registries::realm_allowed(&self.options.registries, registry, &realm_authority) {
            return Err(TransportError::RealmNotAllowed { registry: registry.to_string(), realm: realm_authority });
        }
        if url.scheme() == "http" && !self.insecure(&realm_authority) {
            return Err(TransportError::PlainHttp { host: realm_authority });
        }
        let client = self.client(&realm_authority)?;
        let mut req = client.get(url.clone());
        if let Some(c) = self.options.credentials.get(registry) {
            req = req.header("authorization", c.basic_header());
        }
        let resp = req.send().map_err(|source| TransportError::Http { url: realm.clone(), source })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(TransportError::Status { url: realm.clone(), status });
        }
        if !resp.status().is_success() {
            return Err(TransportError::Token { realm: realm.clone(), reason: format!("status {status}") });
        }
        // Capped: a token answer is a few kilobytes; a hostile realm must not fill memory.
        let mut text = Vec::new();
        resp.take(1 << 20)
            .read_to_end(&mut text)
            .map_err(|source| TransportError::Body { url: realm.clone(), source })?;
        let body: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|source| TransportError::TokenAnswer { realm: realm.clone(), source })?;
        let token =
            body.get("token").or_else(|| body.get("access_token")).and_then(|t| t.as_str()).ok_or_else(|| {
                TransportError::Token { realm: realm.clone(), reason: "the answer holds no token".into() }
            })?;
        Ok(format!("Bearer {token}"))
    }

    /// Send with retries of transient failures, trying each endpoint (mirrors first).
    fn send_each(
        &self,
        method: &reqwest::Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        ok: impl Fn(u16) -> bool,
    ) -> Result<Response, TransportError> {
        let endpoints = self.endpoints(url)?;
        let last = endpoints.len() - 1;
        let mut failure = None;
        for (i, endpoint) in endpoints.iter().enumerate() {
            match self.send_retrying(method, endpoint, headers, body) {
                Ok(resp) if ok(resp.status().as_u16()) || i == last => return Ok(resp),
                Ok(resp) => {
                    tracing::info!(url = %endpoint, status = resp.status().as_u16(), "mirror did not serve; trying the next endpoint");
                    failure =
                        Some(TransportError::Status { url: endpoint.to_string(), status: resp.status().as_u16() });
                }
                Err(e) if i == last => return Err(e),
                Err(e) => {
                    tracing::info!(url = %endpoint, "mirror failed ({e}); trying the next endpoint");
                    failure = Some(e);
                }
            }
        }
        Err(failure.expect("at least one endpoint"))
    }

    fn send_retrying(
        &self,
        method: &reqwest::Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, TransportError> {
        let mut attempt = 0;
        loop {
            let result = self.send(method, url, headers, body);
            let retry = match &result {
                Ok(r) => transient(r.status().as_u16()),
                Err(TransportError::Http { source, .. }) => {
                    source.is_connect() || source.is_timeout() || source.is_request()
                }
                Err(_) => false,
            };
            if !retry || attempt >= self.options.retries {
                return result;
            }
            let delay = match &result {
                Ok(r) => r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(10))),
                Err(_) => None,
            }
            .unwrap_or(self.options.backoff * 2u32.pow(attempt));
            tracing::info!(url = %url, attempt, "transient failure; retrying in {delay:?}");
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// A small request; the body is read up to `cap` bytes (more is an error). Any HTTP
    /// status is returned as a response, for the handler to interpret.
    pub fn request(&self, req: &Request, cap: usize) -> Result<HttpResponse, TransportError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| TransportError::BadUrl {
            url: req.url.clone(),
            reason: format!("bad method {:?}", req.method),
        })?;
        let headers = header_map(&req.headers, &req.url)?;
        let resp = self.send_each(&method, &req.url, &headers, req.body.as_deref(), |s| (200..300).contains(&s))?;
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let headers = resp
            .headers()
            .iter()
            .filter(|(k, _)| *k != "www-authenticate" && *k != "set-cookie")
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        resp.take(cap as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|source| TransportError::Body { url: url.clone(), source })?;
        if body.len() > cap {
            return Err(TransportError::TooLarge { url, cap });
        }
        Ok(HttpResponse { status, url, headers, body })
    }

    /// Open a blob for streaming: the first of `urls` (each with its mirrors) that
    /// answers 200, read from byte `offset`. Reads resume with `Range` where cut off.
    pub fn open_blob(
        self: &Arc<Self>,
        urls: &[String],
        headers: &[(String, String)],
        expected_size: u64,
    ) -> Result<BlobReader, TransportError> {
        let mut last = None;
        for url in urls {
            let headers = header_map(headers, url)?;
            match self.get_range(url, &headers, 0) {
                Ok(resp) => {
                    return Ok(BlobReader {
                        client: self.clone(),
                        url: url.clone(),
                        headers,
                        pos: 0,
                        size: expected_size,
                        resp: Some(resp),
                        resumes: 0,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TransportError::BadUrl { url: String::new(), reason: "no URL to fetch from".into() }))
    }

    fn get_range(&self, url: &str, headers: &HeaderMap, offset: u64) -> Result<Response, TransportError> {
        let mut headers = headers.clone();
        if offset > 0 {
            headers.insert("range", HeaderValue::from_str(&format!("bytes={offset}-")).expect("a valid header"));
        }
        let resp = self.send_each(&reqwest::Method::GET, url, &headers, None, |s| s == 200 || s == 206)?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => Ok(resp),
            _ => Err(TransportError::Status { url: resp.url().to_string(), status }),
        }
    }
}

/// What a server answered to a request for a byte range.
pub enum RangeAnswer {
    /// `206 Partial Content` for exactly the range asked: the body is those bytes.
    Partial(Response),
    /// Any other success: the server does not serve ranges of this blob (its status).
    Ignored(u16),
}

impl HttpClient {
    /// GET bytes `start..end` (end exclusive) of the blob at `url` (each of its mirrors
    /// first), with the same retries and credentials as [`HttpClient::open_blob`]. A
    /// `206` whose `Content-Range` starts elsewhere counts as ignored: the bytes would be
    /// misplaced.
    pub fn get_byte_range(
        &self,
        url: &str,
        headers: &[(String, String)],
        start: u64,
        end: u64,
    ) -> Result<RangeAnswer, TransportError> {
        let mut headers = header_map(headers, url)?;
        let range = format!("bytes={start}-{}", end.saturating_sub(1));
        headers.insert("range", HeaderValue::from_str(&range).expect("a valid header"));
        let resp = self.send_each(&reqwest::Method::GET, url, &headers, None, |s| s == 206)?;
        let status = resp.status().as_u16();
        match status {
            206 => {
                let starts_right = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .is_some_and(|s| s.trim().parse::<u64>().ok() == Some(start));
                Ok(if starts_right { RangeAnswer::Partial(resp) } else { RangeAnswer::Ignored(status) })
            }
            200..=299 => Ok(RangeAnswer::Ignored(status)),
            _ => Err(TransportError::Status { url: resp.url().to_string(), status }),
        }
    }
}

fn header_map(pairs: &[(String, String)], url: &str) -> Result<HeaderMap, TransportError> {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| TransportError::BadUrl { url: url.to_string(), reason: format!("bad header name {k:?}") })?;
        // Credentials are the host's business; a handler cannot set or see them.
        if name == "authorization" || name == "proxy-authorization" || name == "cookie" {
            return Err(TransportError::ForbiddenHeader { header: k.clone() });
        }
        let value = HeaderValue::from_str(v).map_err(|_| TransportError::BadUrl {
            url: url.to_string(),
            reason: format!("bad value for header {k}"),
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// Most resumptions of one blob before giving up.
const MAX_RESUMES: u32 = 8;

/// A blob body that resumes with `Range` when the connection breaks or ends early.
pub struct BlobReader {
    client: Arc<HttpClient>,
    url: String,
    headers: HeaderMap,
    pos: u64,
    size: u64,
    resp: Option<Response>,
    resumes: u32,
}

impl BlobReader {
    fn reopen(&mut self, why: &str) -> std::io::Result<()> {
        if self.resumes >= MAX_RESUMES {
            return Err(std::io::Error::other(format!(
                "{}: gave up after {} resumptions ({why})",
                self.url, self.resumes
            )));
        }
        self.resumes += 1;
        tracing::info!(url = %self.url, offset = self.pos, "transfer interrupted ({why}); resuming with Range");
        std::thread::sleep(self.client.options.backoff * self.resumes);
        let resp = self.client.get_range(&self.url, &self.headers, self.pos).map_err(std::io::Error::other)?;
        let mut resp = resp;
        if resp.status().as_u16() == 200 {
            // The server ignored Range: skip what we already have.
            std::io::copy(&mut (&mut resp).take(self.pos), &mut std::io::sink())?;
        }
        self.resp = Some(resp);
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.resp.is_none() {
                self.reopen("connection lost")?;
            }
            let resp = self.resp.as_mut().expect("opened above");
            match resp.read(buf) {
                Ok(0) if self.pos < self.size => {
                    self.resp = None;
                    self.reopen("body ended early")?;
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.resp = None;
                    self.reopen(&e.to_string())?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_digest_detection() {
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost") && is_loopback("[::1]:80"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(by_digest(&Url::parse("https://r/v2/a/blobs/sha256:ab").unwrap()));
        assert!(by_digest(&Url::parse("https://r/v2/a/manifests/sha256:ab").unwrap()));
        assert!(!by_digest(&Url::parse("https://r/v2/a/manifests/latest").unwrap()));
    }

    #[test]
    fn handlers_cannot_send_credentials() {
        let err = header_map(&[("Authorization".into(), "Basic x".into())], "https://r/").unwrap_err();
        assert!(matches!(err, TransportError::ForbiddenHeader { .. }));
    }

    #[test]
    fn mirrors_come_first_and_digest_only_mirrors_skip_tags() {
        let cfg: RegistriesConfig = toml::from_str(
            "[[registry]]\nprefix = \"r.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m:5000\"\n[[registry]]\nprefix = \"bad.io\"\nblocked = true\n",
        )
        .unwrap();
        let client = HttpClient::new(HttpOptions { registries: cfg, ..HttpOptions::default() });
        let e = client.endpoints("https://r.io/v2/a/blobs/sha256:ab").unwrap();
        assert_eq!(
            e.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            ["https://m:5000/v2/a/blobs/sha256:ab?ns=r.io", "https://r.io/v2/a/blobs/sha256:ab"]
        );
        assert_eq!(client.endpoints("https://r.io/v2/a/manifests/v1").unwrap().len(), 1);
        assert!(matches!(client.endpoints("https://bad.io/v2/").unwrap_err(), TransportError::Blocked { .. }));
    }
}
