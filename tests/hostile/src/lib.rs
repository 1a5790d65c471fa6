//! A hostile handler: the `ref` of the point it is asked for selects a misbehaviour.
//! Each one must end in a clean error for that fetch, never in harm to the host.

wit_bindgen::generate!({
    world: "cimd-handler",
    path: "../../wit",
});

use berth::handler::transport;
use berth::handler::types::{Descriptor, Error};
use exports::berth::handler::resolver::{Guest, ImageFormat, ImageRecord, ResolveOptions, RuntimeConfig};

struct Hostile;

/// A grant declaration, so the tests can also load it as a signed drop-in handler for the
/// `hostile` scheme (asking for nothing: no network, no local path).
#[used]
#[unsafe(link_section = "berth:grants")]
static BERTH_GRANTS: [u8; 20] = *br#"{"scheme":"hostile"}"#;

/// The `ref` of an `oci-layout` point, or the tag of a registry point.
fn behaviour(point: &str) -> &str {
    if let Some((_, r)) = point.rsplit_once("?ref=") {
        return r;
    }
    let last = point.rsplit('/').next().unwrap_or("");
    last.rsplit_once(':').map_or("", |(_, tag)| tag)
}

/// The registry host of a `cimd:oci:v=0:host/repo:tag` point.
fn registry(point: &str) -> &str {
    let data = point.strip_prefix("cimd:oci:v=0:").unwrap_or(point);
    data.split('/').next().unwrap_or("")
}

fn get(url: &str, headers: Vec<(String, String)>) -> Result<transport::HttpResponse, Error> {
    transport::request(&transport::HttpRequest { method: "GET".into(), url: url.into(), headers, body: None })
}

/// Whether `needle ^ 0xff` occurs anywhere in this instance's linear memory. The
/// needle is passed inverted so that the plain bytes are never in memory because of it.
fn memory_contains_inverted(needle: &[u8]) -> bool {
    let size = memory_bytes();
    let first = needle[0] ^ 0xff;
    // Address 0 is valid linear memory but a null pointer to Rust: start at 1.
    (1..size.saturating_sub(needle.len())).any(|at| {
        // SAFETY: every address below memory_size is readable linear memory.
        let byte = |i: usize| unsafe { core::ptr::read_volatile((at + i) as *const u8) };
        byte(0) == first && needle.iter().enumerate().all(|(i, b)| byte(i) == b ^ 0xff)
    })
}

#[cfg(target_arch = "wasm32")]
fn memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

/// The crate is also type-checked for the host by workspace-wide lints; it only runs as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn memory_bytes() -> usize {
    unreachable!("the hostile handler runs only as a wasm component")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

fn record(canonical: &str, manifest_digest: &str) -> ImageRecord {
    ImageRecord {
        canonical: canonical.to_string(),
        format: ImageFormat::Oci,
        manifest: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: manifest_digest.to_string(),
            size: 2,
            annotations: vec![],
        },
        config: None,
        layers: vec![],
        dependencies: vec![],
        platform: None,
        runtime: RuntimeConfig {
            entrypoint: vec![],
            cmd: vec![],
            env: vec![],
            working_dir: None,
            user: None,
            group: None,
            exposed_ports: vec![],
            stop_signal: None,
            labels: vec![],
        },
        annotations: vec![],
    }
}

impl Guest for Hostile {
    fn resolve(point: String, _options: ResolveOptions) -> Result<ImageRecord, Error> {
        match behaviour(&point) {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile handler panicked on purpose"),
            "snoop" => {
                // Everything ambient must be absent: files, environment, arguments.
                let file = std::fs::read("/etc/passwd").map(|b| b.len());
                let cwd = std::fs::read_dir(".").map(|d| d.count());
                let env = std::env::vars().count();
                let args = std::env::args().count();
                Err(Error::Io(format!("file={file:?} cwd={cwd:?} env={env} args={args}")))
            }
            "escape" => {
                let up = transport::local_read("../../../../../etc/passwd", 0, 64);
                let abs = transport::local_read("/etc/passwd", 0, 64);
                Err(Error::Io(format!("up={up:?} abs={abs:?}")))
            }
            "network" => {
                let r = transport::request(&transport::HttpRequest {
                    method: "GET".into(),
                    url: "http://127.0.0.1:9/".into(),
                    headers: vec![],
                    body: None,
                });
                Err(Error::Io(format!("request={:?}", r.map(|resp| resp.status))))
            }
            "other-point" => Ok(record(
                "cimd:oci-layout:v=0:file%3A%2F%2F%2Fetc?ref=other-point",
                "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            )),
            "missing-blob" => {
                Ok(record(&point, "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"))
            }
            "bad-digest" => Ok(record(&point, "sha256:../../etc/passwd")),
            "forged-ingest" => {
                // Ask the host to store index.json's bytes under a digest they do not have.
                use berth::handler::store::{IngestRequest, LocalRange, Source, ingest};
                let size = transport::local_size("index.json")?;
                let forged = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
                let results = ingest(&[IngestRequest {
                    source: Source::Local(LocalRange { path: "index.json".into(), offset: 0, length: size }),
                    digest: forged.into(),
                    size,
                    media_type: "application/json".into(),
                }]);
                Err(Error::Io(format!("ingest={results:?}")))
            }
            "traversal-layer" => {
                // A record whose layer "digest" is a path out of the store.
                let mut r = record(&point, "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
                r.layers.push(exports::berth::handler::resolver::Layer {
                    blob: Descriptor {
                        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                        digest: "sha256:../../../../etc/passwd".into(),
                        size: 1,
                        annotations: vec![],
                    },
                    diff_id: Some("sha256:../../../../etc/shadow".into()),
                });
                Ok(r)
            }
            "outside-grant" => {
                // Its own registry is granted; any other host, for requests or ingests, is not.
                let own = get(&format!("http://{}/v2/", registry(&point)), vec![]).map(|r| r.status);
                let other = get("http://127.0.0.2:1/v2/", vec![]).map(|r| r.status);
                let far = get("https://example.com/", vec![]).map(|r| r.status);
                let ingest = berth::handler::store::ingest(&[berth::handler::store::IngestRequest {
                    source: berth::handler::store::Source::Http(berth::handler::store::HttpSource {
                        urls: vec!["http://127.0.0.2:1/v2/x/blobs/sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into()],
                        headers: vec![],
                    }),
                    digest: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
                    size: 3,
                    media_type: "application/octet-stream".into(),
                }]);
                Err(Error::Io(format!("own={own:?}\nother={other:?}\nfar={far:?}\ningest={ingest:?}")))
            }
            b if b.starts_with("sniff.") => {
                // Talk to a registry that needs credentials, then look for the password
                // (passed inverted in the tag) anywhere in this instance's memory.
                let inverted_password = unhex(&b["sniff.".len()..]);
                let v2 = get(&format!("https://{}/v2/", registry(&point)), vec![]);
                let seen_headers = v2.as_ref().map(|r| r.headers.clone()).unwrap_or_default();
                let own_auth = get(
                    &format!("https://{}/v2/", registry(&point)),
                    vec![("Authorization".into(), "Basic Zm9vOmJhcg==".into())],
                )
                .map(|r| r.status);
                let control: Vec<u8> = b"sniff.".iter().map(|b| b ^ 0xff).collect();
                Err(Error::Io(format!(
                    "status={:?}\nheaders={seen_headers:?}\nown-auth={own_auth:?}\nleaked={}\ncontrol={}",
                    v2.map(|r| r.status),
                    memory_contains_inverted(&inverted_password),
                    memory_contains_inverted(&control)
                )))
            }
            other => Err(Error::Unsupported(format!("no behaviour {other:?}"))),
        }
    }
}

export!(Hostile);
