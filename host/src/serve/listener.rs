//! Connections: accept (at most `max_connections` at once), TLS, HTTP/1.1 and HTTP/2
//! with hyper, an idle watchdog per connection, and graceful shutdown on SIGTERM/SIGINT.
//!
//! The watchdog closes a connection when no request is being handled and no byte has
//! moved either way for the idle timeout: an idle keep-alive connection, or a client
//! that stopped reading a blob (its writes pend; a slow reader that still reads keeps
//! it open). Headers that do not arrive within the timeout close the connection too
//! (hyper's header timeout), and a request body that stalls is refused by the handler.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::sendfile::{SendfileIo, Slot};
use super::state::Registry;
use super::{Event, ServeError, Served, routes};
use crate::ops::FetchRequest;

/// What a connection did last, for the watchdog.
pub struct Activity {
    base: Instant,
    /// Milliseconds after `base` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests being handled (until their response headers are ready).
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { base: Instant::now(), last_io_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        self.last_io_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    /// Marks a request in progress until dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Resolves when `activity` has been idle for `timeout`.
async fn watchdog(activity: Arc<Activity>, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if activity.busy.load(Ordering::Relaxed) == 0 && activity.idle_for() >= timeout {
            return;
        }
    }
}

/// A connection's byte stream, noting each byte that moves.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Accept and serve connections until SIGTERM or SIGINT, then let requests in flight
/// finish for the grace period.
pub async fn serve(registry: Arc<Registry>, listener: TcpListener, tls: Option<TlsAcceptor>) -> Served {
    let limits = registry.config.limits.clone();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout.min(Duration::from_secs(30)))
        .max_buf_size(1 << 20)
        // Bodies are written from their own buffers, never copied: zero-copy blob
        // bodies rely on it (sendfile.rs).
        .writev(true)
        .pipeline_flush(false);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256).adaptive_window(true);
    let builder = Arc::new(builder);
    let mut served = Served::default();
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; serving without graceful shutdown");
        return served;
    };
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        served.connections += 1;
        let _ = tcp.set_nodelay(true);
        let registry = registry.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let activity = Arc::new(Activity::new());
            let (io, slot): (Box<dyn Io>, _) = match tls {
                Some(acceptor) => match tokio::time::timeout(idle, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => (Box::new(stream), None),
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                    Err(_) => return,
                },
                None => {
                    let slot = Arc::new(Slot::default());
                    (Box::new(SendfileIo::new(tcp, slot.clone())), Some(slot))
                }
            };
            let io = TokioIo::new(Watched { inner: io, activity: activity.clone() });
            let act = activity.clone();
            let service =
                service_fn(move |request| routes::handle(registry.clone(), peer, act.clone(), slot.clone(), request));
            let connection = watcher.watch(builder.serve_connection(io, service).into_owned());
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!("connection from {peer}: {e}");
                },
                _ = watchdog(activity, idle) => tracing::debug!("closing idle connection from {peer}"),
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    registry.events.notice(&Event::Stopping { connections: open });
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => served.cut_at_shutdown = permits_in_use(&permits, &limits),
    }
    served.requests = registry.requests.load(Ordering::Relaxed);
    served.bytes_sent = registry.bytes_sent.load(Ordering::Relaxed);
    served
}

fn permits_in_use(permits: &Semaphore, limits: &super::Limits) -> usize {
    limits.max_connections.max(1).saturating_sub(permits.available_permits())
}

/// Whether `ip` is an address of this machine (it can be bound).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::TcpListener::bind((ip, 0)).is_ok()
}

/// The mirrors in the registries configuration that are this server (`port` on an
/// address of this machine): a pull-through fetch must not ask them, it would ask itself.
pub fn own_mirrors(fetch: &FetchRequest, port: u16) -> Result<Vec<String>, ServeError> {
    let config = fetch.registry.registries()?;
    let mut own = Vec::new();
    for mirror in config.registries.iter().flat_map(|r| &r.mirrors) {
        let location = &mirror.location;
        let Some(addrs) = location.to_socket_addrs().ok() else { continue };
        if addrs.into_iter().any(|a: SocketAddr| a.port() == port && is_local(a.ip())) && !own.contains(location) {
            own.push(location.clone());
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_that_are_this_server_are_found_by_port_and_local_address() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.toml");
        std::fs::write(
            &conf,
            "[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5050\"\n\
             [[registry.mirror]]\nlocation = \"localhost:5050\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5051\"\n\
             [[registry.mirror]]\nlocation = \"192.0.2.1:5050\"\n",
        )
        .unwrap();
        let mut fetch = FetchRequest::default();
        fetch.registry.registries_conf = Some(conf);
        assert_eq!(own_mirrors(&fetch, 5050).unwrap(), ["127.0.0.1:5050", "localhost:5050"]);
        fetch.registry.skip_mirrors = vec!["127.0.0.1:5050".into()];
        let left = fetch.registry.registries().unwrap();
        assert_eq!(left.registries[0].mirrors.len(), 3);
    }
}
