//! `GET`/`HEAD /v2/<name>/blobs/<digest>`: bytes straight from the CAS, with `Range`.
//!
//! A blob is read with large positional reads on a blocking thread (readahead advised)
//! and handed to the connection in 1 MiB chunks: one copy from the page cache into a
//! buffer that hyper writes to the socket without copying again (`sendfile` is not
//! possible under hyper, which owns the socket and writes bodies from user-space
//! buffers; with TLS the bytes must pass through user space to be encrypted anyway).
//!
//! Content is served only verified. A blob this process has not hashed yet is hashed as
//! it streams, and the last chunk is held back until the hash is known: a mismatch
//! cuts the response off (the client sees a truncated body, never all the bytes) and
//! quarantines the blob. Blobs up to [`SMALL_BLOB`] are read whole and checked before
//! their first byte; a `Range` of an unverified blob hashes the whole blob first.

use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::ServeError;
use super::response::{self, Body};
use super::sendfile::Slot;
use super::state::Registry;
use crate::store::{Digest, Hasher, StoreError};

/// Bytes per read and per body frame.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the connection.
const AHEAD: usize = 4;
/// Blobs up to this size are read and verified whole before their first byte.
pub const SMALL_BLOB: u64 = 4 << 20;

/// A requested byte range, inclusive, within the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

/// `Range: bytes=a-b | a- | -n`. One range only: several (or a malformed header) are
/// ignored and the whole blob is sent, as RFC 9110 allows. `Err` when unsatisfiable.
fn parse_range(header: &str, size: u64) -> Result<Option<Span>, ServeError> {
    let unsatisfiable = || ServeError::RangeNotSatisfiable { range: header.to_string(), size };
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    let span = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let Some(n) = number(b) else { return Ok(None) };
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            Span { start: size.saturating_sub(n), end: size - 1 }
        }
        (false, _) => {
            let Some(start) = number(a) else { return Ok(None) };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match number(b) {
                    Some(e) if e >= start => e,
                    _ => return Ok(None),
                }
            };
            if start >= size {
                return Err(unsatisfiable());
            }
            Span { start, end: end.min(size - 1) }
        }
        (true, true) => return Ok(None),
    };
    Ok(Some(span))
}

pub async fn get(
    registry: &Arc<Registry>,
    digest: &str,
    head: bool,
    range: Option<String>,
    sendfile: Option<Arc<Slot>>,
) -> Result<Response<Body>, ServeError> {
    let digest = super::names::parse_digest(digest)?;
    let d = digest.clone();
    let opened = registry
        .blocking(move |_, store| {
            let file = match store.blobs().open_blob(&d) {
                Ok(f) => f,
                Err(StoreError::BlobNotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let size = file
                .metadata()
                .map_err(|source| ServeError::File { action: "inspecting", path: store.blobs().path(&d), source })?
                .len();
            Ok(Some((file, size)))
        })
        .await?;
    let Some((file, size)) = opened else { return Err(ServeError::BlobUnknown { digest }) };
    let span = match &range {
        Some(h) => parse_range(h, size)?,
        None => None,
    };
    let mut builder = response::with_digest(Response::builder(), &digest)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(ACCEPT_RANGES, "bytes")
        // Content named by its digest never changes.
        .header(CACHE_CONTROL, "max-age=31536000, immutable");
    if head {
        let response = builder.header(CONTENT_LENGTH, size).body(response::empty());
        return Ok(response.expect("a valid response"));
    }
    let verified = registry.is_verified(&digest);
    let body = match span {
        Some(span) => {
            if !verified {
                verify_whole(registry, file.try_clone().map_err(io_error(registry, &digest))?, &digest).await?;
            }
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(CONTENT_RANGE, format!("bytes {}-{}/{size}", span.start, span.end));
            builder = builder.header(CONTENT_LENGTH, span.end - span.start + 1);
            send(registry, sendfile, file, span.start, span.end + 1)
        }
        None if !verified && size <= SMALL_BLOB => {
            builder = builder.header(CONTENT_LENGTH, size);
            response::full(read_verified(registry, file, &digest).await?)
        }
        None if !verified => {
            builder = builder.header(CONTENT_LENGTH, size);
            stream(registry.clone(), file, 0, size, Some(digest.clone()))
        }
        None => {
            builder = builder.header(CONTENT_LENGTH, size);
            send(registry, sendfile, file, 0, size)
        }
    };
    Ok(builder.body(body).expect("a valid response"))
}

fn io_error(registry: &Registry, digest: &Digest) -> impl FnOnce(std::io::Error) -> ServeError {
    let path = registry.ctx.root().join("blobs").join(digest.algorithm().name()).join(digest.hex());
    move |source| ServeError::File { action: "reading", path, source }
}

/// Read a small blob whole and check it before anything is sent.
async fn read_verified(registry: &Arc<Registry>, file: File, digest: &Digest) -> Result<Bytes, ServeError> {
    let d = digest.clone();
    registry
        .blocking(move |reg, store| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io_error(reg, &d))?;
            let actual = Digest::of_bytes(d.algorithm(), &bytes);
            if actual != d {
                reg.corrupt(store, &d, &actual);
                return Err(ServeError::BlobUnknown { digest: d });
            }
            reg.mark_verified(&d);
            Ok(Bytes::from(bytes))
        })
        .await
}

/// Hash a whole blob before a range of it is served.
async fn verify_whole(registry: &Arc<Registry>, file: File, digest: &Digest) -> Result<(), ServeError> {
    let d = digest.clone();
    registry
        .blocking(move |reg, store| {
            let mut hasher = Hasher::new(d.algorithm());
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = std::io::Read::read(&mut &file, &mut buf).map_err(io_error(reg, &d))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            let actual = hasher.finish();
            if actual != d {
                reg.corrupt(store, &d, &actual);
                return Err(ServeError::BlobUnknown { digest: d });
            }
            reg.mark_verified(&d);
            Ok(())
        })
        .await
}

/// Bytes `start..end` of a verified blob: with `sendfile` where the connection allows it.
fn send(registry: &Arc<Registry>, sendfile: Option<Arc<Slot>>, file: File, start: u64, end: u64) -> Body {
    if let Some(slot) = sendfile
        && let Ok(copy) = file.try_clone()
        && let Some(body) = super::sendfile::body(slot, copy, start, end)
    {
        return body;
    }
    stream(registry.clone(), file, start, end, None)
}

/// Stream bytes `start..end` of `file`; with `verify`, hash them and hold the last
/// chunk back until the hash matches.
fn stream(registry: Arc<Registry>, file: File, start: u64, end: u64, verify: Option<Digest>) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || read_chunks(&registry, &file, start, end, verify, &tx));
    BlobBody { rx, remaining: end - start }.boxed_unsync()
}

fn read_chunks(
    registry: &Registry,
    file: &File,
    start: u64,
    end: u64,
    verify: Option<Digest>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) {
    let _ = rustix::fs::fadvise(file, start, std::num::NonZeroU64::new(end - start), rustix::fs::Advice::Sequential);
    let mut hasher = verify.as_ref().map(|d| Hasher::new(d.algorithm()));
    let mut held: Option<Bytes> = None;
    let mut pos = start;
    while pos < end {
        let want = CHUNK.min((end - pos) as usize);
        let mut buf = Vec::with_capacity(want);
        let n = match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), pos) {
            Ok(0) => {
                let _ = tx.blocking_send(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the blob is shorter than when it was opened",
                )));
                return;
            }
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        pos += n as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf);
        }
        let chunk = Bytes::from(buf);
        let send = if hasher.is_some() { held.replace(chunk) } else { Some(chunk) };
        // A closed channel: the client went away.
        if let Some(c) = send
            && tx.blocking_send(Ok(c)).is_err()
        {
            return;
        }
    }
    let (Some(hasher), Some(digest)) = (hasher, verify) else { return };
    let actual = hasher.finish();
    if actual == digest {
        registry.mark_verified(&digest);
        if let Some(last) = held {
            let _ = tx.blocking_send(Ok(last));
        }
        return;
    }
    if let Ok(store) = registry.store() {
        registry.corrupt(&store, &digest, &actual);
    }
    let _ = tx.blocking_send(Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("blob {digest} does not match its digest (it hashes to {actual}); it was quarantined"),
    )));
}

/// Chunks from the reading thread, as an HTTP body of a known length.
struct BlobBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl HttpBody for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob reader stopped early",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Done once every byte was yielded: the last chunk comes only after the hash
    /// checked out, so a corrupt blob never reaches this.
    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let s = |a, b| Some(Span { start: a, end: b });
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), s(0, 9));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), s(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100).unwrap(), s(90, 99));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), s(90, 99));
        assert_eq!(parse_range("bytes=-500", 100).unwrap(), s(0, 99));
        assert!(matches!(parse_range("bytes=0-1,5-6", 100), Ok(None)));
        assert!(matches!(parse_range("items=0-1", 100), Ok(None)));
        assert!(matches!(parse_range("bytes=5-1", 100), Ok(None)));
        assert!(matches!(parse_range("bytes=100-", 100), Err(ServeError::RangeNotSatisfiable { size: 100, .. })));
        assert!(matches!(parse_range("bytes=-0", 100), Err(ServeError::RangeNotSatisfiable { .. })));
    }
}
