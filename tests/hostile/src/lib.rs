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

fn behaviour(point: &str) -> &str {
    point.rsplit_once("?ref=").map_or("", |(_, r)| r)
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
            other => Err(Error::Unsupported(format!("no behaviour {other:?}"))),
        }
    }
}

export!(Hostile);
