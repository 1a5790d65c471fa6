//! Pushing blobs: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic upload
//! with `?digest=`, or a cross-repository mount with `?mount=`), `PATCH` chunks, `PUT`
//! to finish, `GET` the progress, `DELETE` to cancel.
//!
//! Every blob enters the store through [`Blobs::ingest`](crate::store::Blobs::ingest),
//! as a fetched blob does: hashed as it is written, refused on a digest or size
//! mismatch, visible only once complete. A monolithic upload streams straight into it;
//! a chunked one is spooled into its session file under `<root>/uploads/` first (its
//! digest is known only at the end). A body that stalls for the idle timeout, ends
//! early or carries more than it announced leaves nothing in the store.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::ServeError;
use super::names::{RepoName, parse_digest};
use super::response::{self, Body, UPLOAD_UUID_HEADER};
use super::state::Registry;
use crate::store::{Digest, Expected};

/// A session untouched this long is dropped, with its spooled bytes.
const SESSION_EXPIRY: Duration = Duration::from_secs(3600);

/// An upload in progress.
struct Session {
    name: RepoName,
    path: PathBuf,
    /// Bytes received so far.
    offset: u64,
    touched: Instant,
}

/// The sessions of this server, and where they spool.
pub struct Uploads {
    dir: PathBuf,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

impl Uploads {
    /// Use `dir` for session files, removing those an earlier server left over an hour ago.
    pub fn open(dir: &Path) -> Result<Uploads, ServeError> {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::File {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > SESSION_EXPIRY);
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Uploads { dir: dir.to_path_buf(), sessions: Mutex::default() })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Session>>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, name: &RepoName, id: &str) -> Result<Arc<tokio::sync::Mutex<Session>>, ServeError> {
        let found = self.sessions().get(id).cloned();
        let unknown = || ServeError::UploadUnknown { id: id.to_string() };
        let session = found.ok_or_else(unknown)?;
        let same_name = session.try_lock().map_or(true, |s| s.name == *name);
        if !same_name {
            return Err(unknown());
        }
        Ok(session)
    }

    fn remove(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.sessions().remove(id)
    }
}

/// Remove sessions nobody touched for [`SESSION_EXPIRY`], every minute.
pub async fn janitor(registry: Arc<Registry>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let expired: Vec<String> = registry
            .uploads
            .sessions()
            .iter()
            .filter(|(_, s)| s.try_lock().is_ok_and(|s| s.touched.elapsed() > SESSION_EXPIRY))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(s) = registry.uploads.remove(&id) {
                let _ = tokio::fs::remove_file(&s.lock().await.path).await;
            }
        }
    }
}

/// 128 random bits, hex: a session id is what lets a client continue its upload.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("the kernel's random source failed: {e}"),
        }
    }
    hex::encode(bytes)
}

/// The next data of a body, waiting at most `idle` for it.
async fn next_chunk(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, ServeError> {
    loop {
        let frame =
            tokio::time::timeout(idle, body.frame()).await.map_err(|_| ServeError::Timeout { secs: idle.as_secs() })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(ServeError::Body(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// A whole body of at most `limit` bytes.
pub async fn read_capped(
    mut body: Incoming,
    limit: u64,
    what: &'static str,
    idle: Duration,
) -> Result<Bytes, ServeError> {
    use hyper::body::Body as _;
    if body.size_hint().lower() > limit {
        return Err(ServeError::TooLarge { what, limit });
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = next_chunk(&mut body, idle).await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(ServeError::TooLarge { what, limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A blocking reader of what an async task passes it.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Stream `body` into the store as `expected`, checking it against the length it declared.
async fn ingest_body(
    registry: &Arc<Registry>,
    mut body: Incoming,
    expected: Expected,
    declared: u64,
) -> Result<(), ServeError> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let idle = registry.config.limits.idle_timeout;
    let pump = async move {
        let mut received = 0u64;
        let result = loop {
            match next_chunk(&mut body, idle).await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(None) if received != declared => {
                    break Err(ServeError::LengthMismatch { what: "the blob", declared, actual: received });
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            // Make the ingest fail, so nothing is stored.
            let _ = tx.send(Err(std::io::Error::other("the upload was cut off"))).await;
        }
        result
    };
    let d = expected.digest.clone();
    let ingest = registry.blocking(move |reg, store| {
        let mut reader = ChannelReader { rx, current: Bytes::new() };
        store.blobs().ingest(&mut reader, &expected, "the uploaded blob", &mut |_| {})?;
        reg.mark_verified(&d);
        Ok(())
    });
    let (pumped, ingested) = tokio::join!(pump, ingest);
    pumped?;
    ingested
}

fn content_length(request: &Request<Incoming>) -> Option<u64> {
    request.headers().get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response<Body> {
    response::with_digest(Response::builder().status(StatusCode::CREATED), digest)
        .header(LOCATION, response::value(&format!("/v2/{name}/blobs/{digest}")))
        .header(CONTENT_LENGTH, 0)
        .body(response::empty())
        .expect("a valid response")
}

fn session_status(status: StatusCode, name: &RepoName, id: &str, offset: u64) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(LOCATION, response::value(&format!("/v2/{name}/blobs/uploads/{id}")))
        .header(RANGE, response::value(&format!("0-{}", offset.saturating_sub(1))))
        .header(UPLOAD_UUID_HEADER, response::value(id))
        .header(CONTENT_LENGTH, 0)
        .body(response::empty())
        .expect("a valid response")
}

/// `POST /v2/<name>/blobs/uploads/`.
pub async fn start(
    registry: &Arc<Registry>,
    name: &RepoName,
    query: &[(String, String)],
    request: Request<Incoming>,
) -> Result<Response<Body>, ServeError> {
    if registry.config.read_only {
        return Err(ServeError::ReadOnly);
    }
    if let Some(mount) = query_value(query, "mount") {
        // Content is shared by every repository of the store: a blob it holds is mounted.
        let digest = parse_digest(mount)?;
        let d = digest.clone();
        if registry.blocking(move |_, store| Ok(store.blobs().has(&d))).await? {
            return Ok(blob_created(name, &digest));
        }
    } else if let Some(d) = query_value(query, "digest") {
        let digest = parse_digest(d)?;
        let declared = content_length(&request).ok_or(ServeError::MissingHeader {
            header: "Content-Length",
            why: "a monolithic upload declares its size",
        })?;
        ingest_body(registry, request.into_body(), Expected { digest: digest.clone(), size: declared }, declared)
            .await?;
        return Ok(blob_created(name, &digest));
    }
    let id = new_id();
    let path = registry.uploads.dir.join(&id);
    tokio::fs::File::create(&path).await.map_err(|source| ServeError::File {
        action: "creating",
        path: path.clone(),
        source,
    })?;
    let session = Session { name: name.clone(), path, offset: 0, touched: Instant::now() };
    registry.uploads.sessions().insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
    Ok(session_status(StatusCode::ACCEPTED, name, &id, 0))
}

/// Append `body` to the session's file; returns the bytes appended.
async fn append(session: &mut Session, id: &str, mut body: Incoming, idle: Duration) -> Result<u64, ServeError> {
    let path = session.path.clone();
    let io = |source| ServeError::File { action: "writing", path: path.clone(), source };
    let mut file = tokio::fs::OpenOptions::new().append(true).open(&session.path).await.map_err(io)?;
    let mut written = 0u64;
    let result = async {
        while let Some(chunk) = next_chunk(&mut body, idle).await? {
            file.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(io)
    }
    .await;
    if let Err(e) = result {
        // Keep the session consistent: drop what this request appended.
        let f = file.into_std().await;
        let _ = f.set_len(session.offset);
        return Err(match e {
            ServeError::Body(_) | ServeError::Timeout { .. } => e,
            other => ServeError::UploadInvalid { id: id.to_string(), reason: response::chain(&other) },
        });
    }
    session.offset += written;
    session.touched = Instant::now();
    Ok(written)
}

/// `Content-Range: <start>-<end>` of a chunk, checked against the session.
fn check_chunk(request: &Request<Incoming>, id: &str, offset: u64) -> Result<(), ServeError> {
    let Some(range) = request.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let range = range.trim().trim_start_matches("bytes ").trim_start_matches("bytes=");
    let bad = || ServeError::UploadInvalid {
        id: id.to_string(),
        reason: format!("Content-Range {range:?} is not <start>-<end>"),
    };
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.split('/').next().unwrap_or("").trim().parse().map_err(|_| bad())?;
    if start != offset {
        return Err(ServeError::UploadOutOfOrder { id: id.to_string(), expected: offset, got: start });
    }
    if end < start {
        return Err(bad());
    }
    if let Some(len) = content_length(request)
        && len != end - start + 1
    {
        return Err(ServeError::UploadInvalid {
            id: id.to_string(),
            reason: format!("Content-Range {range} covers {} bytes but Content-Length says {len}", end - start + 1),
        });
    }
    Ok(())
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: one more chunk.
pub async fn patch(
    registry: &Arc<Registry>,
    name: &RepoName,
    id: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, ServeError> {
    let session = registry.uploads.get(name, id)?;
    let mut session = session.lock().await;
    check_chunk(&request, id, session.offset)?;
    let declared = content_length(&request);
    let written = append(&mut session, id, request.into_body(), registry.config.limits.idle_timeout).await?;
    if let Some(declared) = declared
        && declared != written
    {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(&session.path)
            .and_then(|f| f.set_len(session.offset - written));
        session.offset -= written;
        return Err(ServeError::LengthMismatch { what: "the chunk", declared, actual: written });
    }
    Ok(session_status(StatusCode::ACCEPTED, name, id, session.offset))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=<digest>`: the last chunk (if any), then
/// the whole upload into the store, verified.
pub async fn finish(
    registry: &Arc<Registry>,
    name: &RepoName,
    id: &str,
    query: &[(String, String)],
    request: Request<Incoming>,
) -> Result<Response<Body>, ServeError> {
    let digest = query_value(query, "digest")
        .ok_or_else(|| ServeError::DigestInvalid {
            digest: String::new(),
            reason: "finishing an upload needs ?digest=<digest>".into(),
        })
        .and_then(parse_digest)?;
    let session = registry.uploads.get(name, id)?;
    let mut session = session.lock().await;
    check_chunk(&request, id, session.offset)?;
    append(&mut session, id, request.into_body(), registry.config.limits.idle_timeout).await?;
    let (path, size) = (session.path.clone(), session.offset);
    let d = digest.clone();
    let result = registry
        .blocking(move |reg, store| {
            let mut file = std::fs::File::open(&path).map_err(|source| ServeError::File {
                action: "opening",
                path: path.clone(),
                source,
            })?;
            store.blobs().ingest(&mut file, &Expected { digest: d.clone(), size }, "the uploaded blob", &mut |_| {})?;
            reg.mark_verified(&d);
            Ok(())
        })
        .await;
    // Finished either way: a failed verification is not retried on the same bytes.
    registry.uploads.remove(id);
    let _ = tokio::fs::remove_file(&session.path).await;
    result?;
    Ok(blob_created(name, &digest))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: how far it got.
pub async fn status(registry: &Arc<Registry>, name: &RepoName, id: &str) -> Result<Response<Body>, ServeError> {
    let session = registry.uploads.get(name, id)?;
    let offset = session.lock().await.offset;
    Ok(session_status(StatusCode::NO_CONTENT, name, id, offset))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`.
pub async fn cancel(registry: &Arc<Registry>, name: &RepoName, id: &str) -> Result<Response<Body>, ServeError> {
    registry.uploads.get(name, id)?;
    if let Some(s) = registry.uploads.remove(id) {
        let _ = tokio::fs::remove_file(&s.lock().await.path).await;
    }
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(response::empty()).expect("a valid response"))
}
