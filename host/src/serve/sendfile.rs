//! Zero-copy blob bodies on plain HTTP/1.1 connections: `sendfile(2)` from the CAS file
//! to the socket, while hyper still writes every byte of HTTP around it.
//!
//! hyper writes a response body from the buffers the body yields, with vectored writes
//! and without copying them (its "queue" write strategy, which the listener selects:
//! `writev(true)`). A zero-copy body yields one frame whose bytes lie in [`marker`], a
//! read-only mapping of untouched zero pages that no real buffer can overlap, and first
//! records in the connection's [`Slot`] which file range that frame stands for. The
//! connection's I/O ([`SendfileIo`]) sends any slice of a marker frame with `sendfile`
//! from the matching file offset instead of writing the zeros; everything else (status
//! line, headers, other bodies) is written as given. A marker slice without a matching
//! region is an error that closes the connection: zeros are never sent as content.
//!
//! Only verified blobs take this path (bytes sent this way are not hashed), and only on
//! plain TCP with HTTP/1.x: TLS encrypts in user space, and HTTP/2 frames bodies itself.

use std::fs::File;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::response::Body;

/// The longest body sent this way (the marker's size; larger blobs are streamed).
const MARKER_LEN: usize = 64 << 30;
/// Bytes per `sendfile` call.
const SENDFILE_MAX: usize = 1 << 30;

/// The marker: `MARKER_LEN` bytes of address space no allocation can overlap, whose
/// address identifies a zero-copy frame. `None` where it cannot be mapped.
fn marker() -> Option<&'static [u8]> {
    static MARKER: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *MARKER.get_or_init(|| {
        use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
        // SAFETY: a fresh private anonymous mapping, read-only and never unmapped, so it
        // does not alias any Rust object and stays valid for 'static; reading it yields
        // zeros (the shared zero page), and NORESERVE keeps it from costing memory.
        let ptr = unsafe {
            mmap_anonymous(std::ptr::null_mut(), MARKER_LEN, ProtFlags::READ, MapFlags::PRIVATE | MapFlags::NORESERVE)
        }
        .ok()?;
        // SAFETY: the mapping above is MARKER_LEN readable bytes, valid forever.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), MARKER_LEN) })
    })
}

/// Where `slice` lies in the marker, if it does.
fn marker_offset(slice: &[u8]) -> Option<usize> {
    let m = marker()?;
    let (base, p) = (m.as_ptr() as usize, slice.as_ptr() as usize);
    (p >= base && p < base + MARKER_LEN).then(|| p - base)
}

/// A file range a marker frame stands for.
struct Region {
    file: Arc<File>,
    start: u64,
    len: u64,
}

/// The region of the marker frame a connection is sending (one at a time: HTTP/1.x).
#[derive(Default)]
pub struct Slot(Mutex<Option<Region>>);

impl Slot {
    fn set(&self, region: Region) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(region);
    }

    /// The file and offset for `len` bytes at `offset` into the marker frame.
    fn lookup(&self, offset: usize, len: usize) -> Option<(Arc<File>, u64)> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = guard.as_ref()?;
        (offset as u64 + len as u64 <= r.len).then(|| (r.file.clone(), r.start + offset as u64))
    }
}

/// A body of bytes `start..end` of `file`, sent with `sendfile` by [`SendfileIo`].
/// `None` when the span is too long for the marker (or there is no marker).
pub fn body(slot: Arc<Slot>, file: File, start: u64, end: u64) -> Option<Body> {
    let len = end - start;
    if len == 0 || len > MARKER_LEN as u64 {
        return None;
    }
    marker()?;
    let region = Region { file: Arc::new(file), start, len };
    Some(MarkerBody { slot, region: Some(region), len }.boxed_unsync())
}

struct MarkerBody {
    slot: Arc<Slot>,
    region: Option<Region>,
    len: u64,
}

impl HttpBody for MarkerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let Some(region) = self.region.take() else { return Poll::Ready(None) };
        let len = region.len as usize;
        self.slot.set(region);
        let marker = marker().expect("checked when the body was made");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&marker[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.region.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.region.is_some() { self.len } else { 0 })
    }
}

/// A plain TCP connection that sends marker slices with `sendfile`.
pub struct SendfileIo {
    tcp: TcpStream,
    slot: Arc<Slot>,
}

impl SendfileIo {
    pub fn new(tcp: TcpStream, slot: Arc<Slot>) -> SendfileIo {
        SendfileIo { tcp, slot }
    }

    fn poll_sendfile(&self, cx: &mut Context<'_>, offset: usize, len: usize) -> Poll<std::io::Result<usize>> {
        let Some((file, mut at)) = self.slot.lookup(offset, len) else {
            return Poll::Ready(Err(std::io::Error::other("a zero-copy frame without its file range")));
        };
        let count = len.min(SENDFILE_MAX);
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.tcp, &*file, Some(&mut at), count).map_err(std::io::Error::from)
            });
            match sent {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => return Poll::Ready(Ok(n)),
                // Not writable after all: poll readiness again (try_io cleared it).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match marker_offset(buf) {
            Some(offset) => self.poll_sendfile(cx, offset, buf.len()),
            None => Pin::new(&mut self.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // Ordinary bytes up to the first marker slice go out as they are; a marker slice
        // at the front goes with sendfile.
        match bufs.iter().position(|b| marker_offset(b).is_some()) {
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
            Some(i) if bufs[..i].iter().all(|b| b.is_empty()) => {
                let offset = marker_offset(&bufs[i]).expect("found above");
                self.poll_sendfile(cx, offset, bufs[i].len())
            }
            Some(i) => Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..i]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
