//! The access log: one entry per request, written when its response body is done (or
//! dropped), so the byte count and duration are those of the whole transfer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde::Serialize;

use super::response::Body;
use super::state::Registry;

/// One request, as the access log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEntry {
    /// Unix time the request arrived, in seconds.
    pub time: f64,
    pub remote: String,
    /// The authenticated user (`--htpasswd`), if any.
    pub user: Option<String>,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Until the last byte was handed to the connection.
    pub duration_ms: f64,
    /// False when the response was cut off: the client went away, or a blob turned out
    /// corrupt as it was served.
    pub complete: bool,
    pub user_agent: Option<String>,
}

impl AccessEntry {
    pub fn start(remote: String, method: String, path: String, user_agent: Option<String>) -> AccessEntry {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        AccessEntry {
            time,
            remote,
            user: None,
            method,
            path,
            status: 0,
            bytes: 0,
            duration_ms: 0.0,
            complete: false,
            user_agent,
        }
    }
}

/// A response body that counts what it yields and logs the request when it ends.
pub struct Logged {
    inner: Body,
    entry: Option<AccessEntry>,
    started: Instant,
    registry: Arc<Registry>,
}

impl Logged {
    pub fn new(inner: Body, entry: AccessEntry, started: Instant, registry: Arc<Registry>) -> Logged {
        Logged { inner, entry: Some(entry), started, registry }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut entry) = self.entry.take() {
            entry.complete = complete;
            entry.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            self.registry.count_sent(entry.bytes);
            self.registry.events.request(&entry);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(entry)) = (frame.data_ref(), this.entry.as_mut()) {
                    entry.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body hyper never polled (HEAD, 204) is complete; anything else
        // dropped early was cut off.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
