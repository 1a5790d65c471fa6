//! Faults a real registry does not produce, from a small fake one on 127.0.0.1: wrong
//! blob bytes, a body cut off mid-layer, transient server errors; and a hostile handler
//! reaching outside its network grant.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth::cimd::{DistributionPoint, PointKind};
use berth::fetch::{self, FetchError, FetchOptions};
use berth::sandbox::{HandlerError, Sandbox};
use berth::store::{LockMode, NoProgress, Store};

use crate::support::{Root, fixtures, manifest_of, read_blob, ref_digest, sha256_hex};

pub const HOSTILE: &[u8] = include_bytes!(env!("BERTH_HOSTILE_HANDLER"));

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// The authority of an absolute-URI request, as an HTTP proxy receives it.
    pub proxied_for: Option<String>,
}

/// What the server does with a request.
pub enum Action {
    /// Answer from its content, honouring `Range`.
    Serve,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Send the full headers, then only this many body bytes, then close.
    Truncate(usize),
    /// Serve these bytes instead of the real content (same headers otherwise).
    Replace(Vec<u8>),
    /// Send the headers and this many body bytes, then the rest once `resume` is set: a
    /// download caught in the middle.
    Pause { after: usize, resume: Arc<AtomicBool> },
    /// Answer 200 with the whole content, ignoring `Range` (as some servers do).
    IgnoreRange,
}

/// What the fake serves: path (with any query) → (content type, bytes).
pub type Content = HashMap<String, (String, Vec<u8>)>;

/// Chooses the action for a request, given how many times its path was asked before.
type Faults = dyn Fn(&Seen, usize) -> Action + Send + Sync;

/// A fake registry serving one repository `app` with the fixture image `single` as `v1`.
pub struct FaultRegistry {
    pub addr: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FaultRegistry {
    pub fn start(faults: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static) -> FaultRegistry {
        let (content, manifest_digest, layer_digest) = FaultRegistry::image_content();
        FaultRegistry::serving(content, manifest_digest, layer_digest, faults)
    }

    /// What [`FaultRegistry::start`] serves: (path → (content type, bytes), manifest
    /// digest, layer digest), for a caller that serves more beside it.
    pub fn image_content() -> (Content, String, String) {
        let layout = &fixtures().layout;
        let manifest_digest = ref_digest(layout, "single");
        let manifest = manifest_of(layout, "single");
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
        let mut content: Content = HashMap::new();
        let manifest_bytes = read_blob(layout, &manifest_digest);
        let manifest_type = "application/vnd.oci.image.manifest.v1+json".to_string();
        content.insert("/v2/app/manifests/v1".into(), (manifest_type.clone(), manifest_bytes.clone()));
        content.insert(format!("/v2/app/manifests/{manifest_digest}"), (manifest_type, manifest_bytes));
        for d in [manifest["config"]["digest"].as_str().unwrap(), &layer_digest] {
            content.insert(format!("/v2/app/blobs/{d}"), ("application/octet-stream".into(), read_blob(layout, d)));
        }
        (content, manifest_digest, layer_digest)
    }

    /// Serve `content` (path → (content type, bytes)) and `/v2/`, with `faults`;
    /// `manifest_digest` and `layer_digest` are only kept for the caller.
    pub fn serving(
        content: Content,
        manifest_digest: String,
        layer_digest: String,
        faults: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static,
    ) -> FaultRegistry {
        FaultRegistry::serving_for(move |_| content, manifest_digest, layer_digest, faults)
    }

    /// [`FaultRegistry::serving`] the content `make(addr)` returns once the server's
    /// address is known (for documents that name it).
    pub fn serving_for(
        make: impl FnOnce(&str) -> Content,
        manifest_digest: String,
        layer_digest: String,
        faults: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static,
    ) -> FaultRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut content = make(&addr);
        content.insert("/v2/".into(), ("application/json".into(), b"{}".to_vec()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Server { content, faults: Box::new(faults), seen: seen.clone() });
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let server = shared.clone();
                std::thread::spawn(move || server.handle(conn));
            }
        });
        FaultRegistry { addr, manifest_digest, layer_digest, seen, stop }
    }

    /// Requests seen so far for paths ending in `suffix`.
    pub fn seen(&self, suffix: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path.ends_with(suffix)).cloned().collect()
    }
}

impl Drop for FaultRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

struct Server {
    content: HashMap<String, (String, Vec<u8>)>,
    faults: Box<Faults>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// One request per connection (`Connection: close`); anything that is not plain
    /// HTTP (a TLS hello, say) just closes it, as a plain-HTTP registry does.
    fn handle(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return };
        // A proxied request names the whole URL: keep its path, and remember it was proxied.
        let (path, proxied_for) = match target.strip_prefix("http://").and_then(|rest| rest.split_once('/')) {
            Some((authority, path)) => (format!("/{path}"), Some(authority.to_string())),
            None => (target.to_string(), None),
        };
        if !line.ends_with("HTTP/1.1\r\n") {
            return;
        }
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = Some(v.trim().to_string());
            }
        }
        let seen = Seen { method: method.to_string(), path, range, proxied_for };
        let before = {
            let mut all = self.seen.lock().unwrap();
            let n = all.iter().filter(|s| s.path == seen.path && s.method == seen.method).count();
            all.push(seen.clone());
            n
        };
        let mut conn = conn;
        let _ = self.respond(&mut conn, &seen, before);
    }

    fn respond(&self, conn: &mut TcpStream, seen: &Seen, before: usize) -> std::io::Result<()> {
        let Some((media_type, real)) = self.content.get(&seen.path) else {
            return write_head(conn, 404, "text/plain", 0, &[]);
        };
        let mut pause = None;
        let mut ranges = true;
        let (body, cut) = match (self.faults)(seen, before) {
            Action::Status(code) => return write_head(conn, code, "text/plain", 0, &[]),
            Action::Serve => (real.clone(), None),
            Action::Replace(bytes) => (bytes, None),
            Action::Truncate(n) => (real.clone(), Some(n)),
            Action::Pause { after, resume } => {
                pause = Some((after, resume));
                (real.clone(), None)
            }
            Action::IgnoreRange => {
                ranges = false;
                (real.clone(), None)
            }
        };
        let digest = format!("sha256:{}", sha256_hex(real));
        let mut extra = vec![("Docker-Content-Digest".to_string(), digest)];
        let (status, slice) = match seen.range.as_deref().and_then(|r| r.strip_prefix("bytes=")).filter(|_| ranges) {
            Some(r) => {
                let start: usize = r.trim_end_matches('-').split('-').next().unwrap().parse().unwrap();
                extra.push(("Content-Range".into(), format!("bytes {start}-{}/{}", body.len() - 1, body.len())));
                (206, &body[start..])
            }
            None => (200, &body[..]),
        };
        write_head(conn, status, media_type, slice.len(), &extra)?;
        if seen.method == "HEAD" {
            return Ok(());
        }
        let sent = cut.map_or(slice.len(), |n| n.min(slice.len()));
        if let Some((after, resume)) = pause {
            let first = after.min(sent);
            conn.write_all(&slice[..first])?;
            conn.flush()?;
            while !resume.load(Ordering::SeqCst) {
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
            conn.write_all(&slice[first..sent])?;
            return conn.flush();
        }
        conn.write_all(&slice[..sent])?;
        conn.flush()
    }
}

fn write_head(
    conn: &mut TcpStream,
    status: u16,
    media_type: &str,
    len: usize,
    extra: &[(String, String)],
) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status} X\r\nContent-Type: {media_type}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
}

fn point(reg: &FaultRegistry) -> String {
    format!("oci://{}/app:v1", reg.addr)
}

#[test]
fn a_blob_with_the_wrong_bytes_is_rejected_and_nothing_stays() {
    let reg = FaultRegistry::start(|seen, _| {
        if seen.path.contains("/blobs/") && seen.method == "GET" {
            // Same length, one byte different: only the hash can tell.
            let mut bytes = read_blob(&fixtures().layout, seen.path.rsplit('/').next().unwrap());
            bytes[100] ^= 1;
            Action::Replace(bytes)
        } else {
            Action::Serve
        }
    });
    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", &point(&reg)]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("digest") && err.contains("sha256:"), "{err}");
    assert!(root.blob_names().is_empty(), "{:?}", root.blob_names());
    assert_eq!(root.image_count(), 0);
    assert!(std::fs::read_dir(root.path().join("tmp")).map_or(0, |d| d.count()) == 0);
    root.assert_fsck_clean();
}

#[test]
fn a_layer_cut_off_midway_resumes_with_range() {
    let reg = FaultRegistry::start(|seen, before| {
        if seen.path.ends_with(&ref_layer()) && seen.method == "GET" && before == 0 {
            Action::Truncate(200_000)
        } else {
            Action::Serve
        }
    });
    let root = Root::new();
    let fetched = root.json(&["fetch", &point(&reg)]);
    assert_eq!(fetched["manifest"], reg.manifest_digest.as_str());
    let gets: Vec<Seen> = reg.seen(&reg.layer_digest).into_iter().filter(|s| s.method == "GET").collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=200000-"), "{gets:?}");
    let hex = reg.layer_digest.strip_prefix("sha256:").unwrap();
    assert_eq!(sha256_hex(&std::fs::read(root.path().join("blobs/sha256").join(hex)).unwrap()), hex);
    root.assert_fsck_clean();
}

fn ref_layer() -> String {
    manifest_of(&fixtures().layout, "single")["layers"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn server_errors_are_retried_until_the_server_recovers() {
    let reg = FaultRegistry::start(|seen, before| {
        if seen.path.ends_with("/manifests/v1") && before < 2 { Action::Status(500) } else { Action::Serve }
    });
    let root = Root::new();
    let fetched = root.json(&["fetch", &point(&reg)]);
    assert_eq!(fetched["manifest"], reg.manifest_digest.as_str());
    assert_eq!(reg.seen("/manifests/v1").iter().filter(|s| s.method == "GET").count(), 3);
    root.assert_fsck_clean();
}

#[test]
fn a_server_that_keeps_failing_is_reported_as_unavailable() {
    let reg =
        FaultRegistry::start(
            |seen, _| {
                if seen.path.ends_with("/manifests/v1") { Action::Status(503) } else { Action::Serve }
            },
        );
    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", &point(&reg)]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(root.blob_names().is_empty());
}

#[test]
fn a_handler_reaching_outside_its_grant_is_refused() {
    let reg = FaultRegistry::start(|_, _| Action::Serve);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("store"), LockMode::Shared, &mut || {}).unwrap());
    let sandbox = Sandbox::new(None).unwrap();
    let hostile = sandbox.load("hostile", HOSTILE).unwrap();
    let point = DistributionPoint::new(PointKind::Oci, &format!("{}/app:outside-grant", reg.addr)).unwrap();
    let result = fetch::fetch_with_handler(&store, &sandbox, &hostile, &point, &FetchOptions::default(), {
        Arc::new(NoProgress)
    });
    let message = match result {
        Err(FetchError::Handler { error: HandlerError::Io(m), .. }) => m,
        other => panic!("unexpected outcome: {other:?}"),
    };
    let line = |key: &str| message.lines().find(|l| l.starts_with(key)).unwrap_or_default().to_string();
    // The granted registry answers; nothing else is reached.
    assert_eq!(line("own="), "own=Ok(200)", "{message}");
    for key in ["other=", "far=", "ingest="] {
        let l = line(key);
        assert!(l.contains("Denied") && !l.contains("Ok(2"), "{key}: {message}");
    }
    assert!(reg.seen("/v2/").len() == 1 && reg.seen("blobs").is_empty(), "{:?}", reg.seen(""));
    assert!(store.fsck().unwrap().is_clean());
    assert!(Path::new(&dir.path().join("store/blobs/sha256")).read_dir().map_or(0, |d| d.count()) == 0);
}

#[test]
fn stored_layers_are_not_downloaded_again_and_progress_is_reported_as_json() {
    let reg = FaultRegistry::start(|_, _| Action::Serve);
    let root = Root::new();
    let events = |stderr: &str| -> Vec<serde_json::Value> {
        stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    let (code, _, err) = root.run(&["--json", "fetch", &point(&reg)]);
    assert_eq!(code, 0, "{err}");
    let first = events(&err);
    let started: Vec<&str> =
        first.iter().filter(|e| e["event"] == "blob-started").map(|e| e["digest"].as_str().unwrap()).collect();
    assert!(started.contains(&reg.layer_digest.as_str()), "{err}");
    assert!(first.iter().any(|e| e["event"] == "blob-done" && e["digest"] == reg.layer_digest.as_str()));
    let blob_gets = || reg.seen("").iter().filter(|s| s.path.contains("/blobs/") && s.method == "GET").count();
    let after_first = blob_gets();

    // Resolved again at the source: the manifest is asked for, no blob is transferred.
    let (code, _, err) = root.run(&["--json", "fetch", "--pull-policy", "update", &point(&reg)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(blob_gets(), after_first, "{:?}", reg.seen(""));
    assert_eq!(reg.seen("/manifests/v1").iter().filter(|s| s.method == "GET").count(), 2);
    let second = events(&err);
    let done: Vec<&serde_json::Value> = second.iter().filter(|e| e["event"] == "blob-done").collect();
    assert!(!done.is_empty() && done.iter().all(|e| e["reused"] == true), "{err}");
}

/// `HTTP_PROXY` is honoured: a registry reachable only through the proxy (here the fake
/// registry acting as one) is fetched through it.
#[test]
fn requests_go_through_the_proxy_from_the_environment() {
    let proxy = FaultRegistry::start(|_, _| Action::Serve);
    // Nothing listens on this address: only the proxy can answer for it.
    let unreachable = "127.0.0.2:9";
    let root = Root::new();
    let mut cmd = root.cmd(&["--json", "fetch", &format!("oci://{unreachable}/app:v1")]);
    cmd.env("HTTP_PROXY", format!("http://{}", proxy.addr)).env_remove("NO_PROXY").env_remove("no_proxy");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fetched: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fetched["manifest"], proxy.manifest_digest.as_str());
    let seen = proxy.seen("");
    assert!(!seen.is_empty() && seen.iter().all(|s| s.proxied_for.as_deref() == Some(unreachable)), "{seen:?}");

    // NO_PROXY exempts it: then nothing answers.
    let mut cmd = root.cmd(&["fetch", "--pull-policy", "update", &format!("oci://{unreachable}/app:v1")]);
    cmd.env("HTTP_PROXY", format!("http://{}", proxy.addr)).env("NO_PROXY", "127.0.0.2");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
}
