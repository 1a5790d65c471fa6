//! `cimd:http-tar` — a plain rootfs tarball at a URL becomes a one-layer OCI image.
//!
//! ```text
//! cimd:http-tar:v=0:<percent-escaped URL of a .tar>?digest=sha256:<hex>
//! ```
//!
//! The digest pins the content: the host downloads the tarball straight into its store,
//! hashing as it writes, and refuses other bytes. This handler only decides *what* to
//! fetch and writes two small documents (config and manifest). See docs/sdk.md.

use berth_guest::berth::handler::store::{self, HttpSource, IngestRequest, Source};
use berth_guest::berth::handler::transport::{self, HttpRequest};
use berth_guest::berth::handler::types::Descriptor;
use berth_guest::exports::berth::handler::resolver::{
    Guest, ImageFormat, ImageRecord, Layer, ResolveOptions, RuntimeConfig,
};
use berth_guest::{Error, declare_grants};

// Any host, but only the one the point names: berth intersects this with the point.
declare_grants!(r#"{"scheme": "http-tar", "network": ["*"], "time-budget-ms": 60000}"#);

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct HttpTar;

impl Guest for HttpTar {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        // 1. Parse the point: the URL and the pinned digest.
        let data = point
            .strip_prefix("cimd:http-tar:v=0:")
            .ok_or_else(|| Error::InvalidInput(format!("{point} is not a cimd:http-tar point")))?;
        let (escaped_url, query) = data.split_once('?').unwrap_or((data, ""));
        let url = percent_encoding::percent_decode_str(escaped_url)
            .decode_utf8()
            .map_err(|e| Error::InvalidInput(format!("the URL is not UTF-8: {e}")))?
            .into_owned();
        let digest = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("digest="))
            .ok_or_else(|| Error::InvalidInput("give the tarball's digest: ?digest=sha256:<hex>".into()))?
            .to_string();
        if !url.ends_with(".tar") {
            return Err(Error::Unsupported(format!("{url}: only uncompressed .tar files are handled")));
        }

        // 2. Ask the server for the size (HEAD); the host enforces the network grant.
        let head =
            transport::request(&HttpRequest { method: "HEAD".into(), url: url.clone(), headers: vec![], body: None })?;
        match head.status {
            200 => {}
            404 => return Err(Error::NotFound(format!("{url} does not exist"))),
            s => return Err(Error::Io(format!("{url} answered HTTP {s}"))),
        }
        let size: u64 = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| Error::InvalidInput(format!("{url} gives no Content-Length")))?;

        // 3. The host streams the bytes into the store and checks the digest.
        let request = IngestRequest {
            source: Source::Http(HttpSource { urls: vec![url.clone()], headers: vec![] }),
            digest: digest.clone(),
            size,
            media_type: LAYER.into(),
        };
        store::ingest(&[request]).into_iter().collect::<Result<Vec<()>, Error>>()?;

        // 4. Describe it as an OCI image: a config and a manifest, hashed by the host.
        let platform = &options.platform;
        let config = serde_json::json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": [digest]},
            "config": {"Cmd": ["/bin/sh"]},
        })
        .to_string();
        let config_desc = put(config.into_bytes(), CONFIG)?;
        let layer_desc = Descriptor { media_type: LAYER.into(), digest: digest.clone(), size, annotations: vec![] };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_desc.digest, "size": config_desc.size},
            "layers": [{"mediaType": LAYER, "digest": digest, "size": size}],
            "annotations": {"org.opencontainers.image.source": url},
        })
        .to_string();
        let manifest_desc = put(manifest.into_bytes(), MANIFEST)?;

        Ok(ImageRecord {
            canonical: point,
            format: ImageFormat::Oci,
            manifest: manifest_desc,
            config: Some(config_desc),
            // An uncompressed layer's diff ID is its digest.
            layers: vec![Layer { blob: layer_desc, diff_id: Some(digest) }],
            dependencies: vec![],
            platform: Some(platform.clone()),
            runtime: RuntimeConfig {
                entrypoint: vec![],
                cmd: vec!["/bin/sh".into()],
                env: vec![],
                working_dir: None,
                user: None,
                group: None,
                exposed_ports: vec![],
                stop_signal: None,
                labels: vec![],
            },
            annotations: vec![],
        })
    }
}

fn put(bytes: Vec<u8>, media_type: &str) -> Result<Descriptor, Error> {
    let size = bytes.len() as u64;
    let digest = store::put(&bytes, None, media_type)?;
    Ok(Descriptor { media_type: media_type.into(), digest, size, annotations: vec![] })
}

berth_guest::export_handler!(HttpTar);
