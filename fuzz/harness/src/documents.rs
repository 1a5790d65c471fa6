//! Targets of text and JSON parsers: distribution points, OCI/Docker and appc documents,
//! discovery HTML, and the configuration files berth reads.

use std::collections::BTreeMap;
use std::path::Path;

use berth::cimd::{DistributionPoint, parse_friendly, unescape};
use berth::transport::auth::{Credentials, normalize_registry, parse_challenge};
use berth::transport::registries::RegistriesConfig;
use berth_appc_spec::discovery::{self, App};
use berth_appc_spec::{point, record};
use berth_image_spec::{DocumentKind, Platform};
use berth_policy_default::berth::policy::facts::{PointFacts, ResolvedFacts, RunFacts, VolumeFacts};
use berth_policy_default::{DecisionPoint, PolicyFile};

/// A canonical point must print as a string that parses back to the same point.
fn assert_canonical(p: &DistributionPoint) {
    let printed = p.to_string();
    match printed.parse::<DistributionPoint>() {
        Ok(again) => assert_eq!(&again, p, "{printed:?} parses to another point"),
        Err(e) => panic!("the canonical point {printed:?} does not parse: {e}"),
    }
    let _ = (p.local_path(), p.reference(), p.refines(p));
}

/// `cimd:` points and the friendly forms (host, `host/src/cimd`), and the appc points as
/// the appc handlers read them (`handlers/appc-spec`).
pub fn cimd_point(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = text.parse::<DistributionPoint>() {
        assert_canonical(&p);
    }
    // A directory that does not exist: friendly forms that look for local files find none.
    if let Ok(p) = parse_friendly(text, Path::new("/nonexistent/berth-fuzz")) {
        assert_canonical(&p);
    }
    let _ = unescape(text);
    if let Ok(p) = point::parse_appc_point(text) {
        let wanted = point::wanted(&p, "linux", "amd64");
        let _ = discovery::prefixes(&wanted.app.name);
    }
    if let Ok(url) = point::parse_aci_archive_point(text) {
        let _ = point::signature_url(&url);
    }
}

/// OCI and Docker indexes, manifests and configs (`handlers/image-spec`), as the
/// oci-layout and registry handlers read them: every parser on every input.
pub fn image_spec(data: &[u8]) {
    let wanted = Platform { os: "linux".into(), architecture: "arm64".into(), variant: Some("v8".into()) };
    for kind in [None, Some(DocumentKind::OciIndex), Some(DocumentKind::DockerList)] {
        let Ok(index) = berth_image_spec::parse_index(data, kind) else { continue };
        let _ = berth_image_spec::select_platform(&index.manifests, &wanted);
        for d in &index.manifests {
            let _ = berth_image_spec::classify(&d.media_type);
            let _ = berth_image_spec::parse_digest(&d.digest).map(|p| p.layout_path());
        }
    }
    for kind in [DocumentKind::OciManifest, DocumentKind::DockerManifest] {
        if let Ok(m) = berth_image_spec::parse_manifest(data, kind) {
            let _ = berth_image_spec::parse_config(data, m.layers.len());
        }
    }
    // A config is checked against its manifest's layer count; take the count it claims,
    // so that the diff IDs themselves are reached.
    let claimed = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.pointer("/rootfs/diff_ids").and_then(|d| d.as_array()).map(Vec::len));
    if let Ok(config) = berth_image_spec::parse_config(data, claimed.unwrap_or(0)) {
        let _ = config.config.map(|c| (c.env, c.entrypoint, c.cmd));
    }
}

/// An ACI's image manifest (`handlers/appc-spec`) and what the handlers and the host make
/// of it: the record's runtime, platform and annotations, the identity check, and the
/// host's distribution points of its dependencies.
pub fn appc_manifest(data: &[u8]) {
    let Ok(m) = berth_appc_spec::parse_manifest(data) else { return };
    let _ = record::runtime(&m);
    let _ = record::platform(&m);
    let _ = record::annotations(&m, &record::Provenance::default());
    for dep in &m.dependencies {
        let _ = dep.image_digest();
        let labels: BTreeMap<String, String> = dep.labels.iter().cloned().collect();
        if let Ok(p) = DistributionPoint::appc(&dep.image_name, &labels) {
            assert_canonical(&p);
        }
    }
    let asked = point::AppcPoint { name: m.name.clone(), labels: m.labels.iter().cloned().collect() };
    let _ = point::check_identity(&point::wanted(&asked, "linux", "amd64"), &m);
}

/// An appc discovery document (HTML with `ac-discovery` metas), walked for a name with
/// parent paths, then matched against each prefix it announces.
pub fn appc_discovery(data: &[u8]) {
    let html = String::from_utf8_lossy(data);
    let labels: BTreeMap<String, String> =
        [("version", "1.0.0"), ("os", "linux"), ("arch", "amd64")].map(|(k, v)| (k.into(), v.into())).into();
    let app = App { name: "example.com/group/app".into(), labels: labels.clone() };
    let _ = discovery::walk(&app, |_url| Ok::<_, ()>(html.to_string()), |found| !found.endpoints.is_empty());
    let metas = discovery::parse_metas(&html);
    for meta in metas.iter().take(8) {
        let app = App { name: meta.prefix.clone(), labels: labels.clone() };
        let _ = discovery::discover(&metas, &app);
        let _ = discovery::render(&meta.url, &app, "aci");
    }
}

/// `registries.toml` (host, `transport/registries.rs`).
pub fn registries_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = RegistriesConfig::parse(text, Path::new("registries.toml")) else { return };
    for r in &config.registries {
        assert!(config.registry(&r.prefix).is_some(), "prefix {:?} is not found by its own name", r.prefix);
    }
}

/// `auth.json` as podman and skopeo write it, and a registry's `WWW-Authenticate`
/// challenge (host, `transport/auth.rs`).
pub fn auth_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(credentials) = Credentials::parse(text, Path::new("auth.json")) {
        for (host, credential) in credentials {
            let _ = (normalize_registry(&host), credential.basic_header());
        }
    }
    let _ = parse_challenge(text);
}

fn point_facts(kind: &str, host: Option<&str>, name: Option<&str>) -> PointFacts {
    PointFacts {
        canonical: format!("cimd:{kind}:v=0:{}/{}", host.unwrap_or(""), name.unwrap_or("")),
        kind: kind.into(),
        host: host.map(Into::into),
        name: name.map(Into::into),
    }
}

/// The decision points a policy file is evaluated at: a fetch from a registry and from a
/// layout, a resolved image with a signature, a run as root with volumes.
fn decision_points() -> Vec<DecisionPoint> {
    let resolved = ResolvedFacts {
        point: point_facts("docker", Some("registry.lan:5000"), Some("team/app:v1")),
        format: "oci".into(),
        manifest_digest: "sha256:00".into(),
        config_digest: None,
        layers: vec![],
        total_size: 3 << 30,
        signed_by: vec!["0123ABCD".into()],
        handler_scheme: "docker".into(),
        handler_digest: "sha256:11".into(),
        handler_source: "builtin".into(),
    };
    let run = RunFacts {
        image: "app".into(),
        user: "0".into(),
        uid: 0,
        capabilities: vec![],
        volumes: ["/", "/etc/ssl", "", "/srv/data/"]
            .map(|s| VolumeFacts { source: s.into(), target: "/mnt".into(), read_only: false })
            .into(),
        network: "host".into(),
        read_only_rootfs: false,
    };
    vec![
        DecisionPoint::BeforeFetch(point_facts("docker", Some("registry-1.docker.io"), Some("library/busybox"))),
        DecisionPoint::BeforeFetch(point_facts("oci-layout", None, None)),
        DecisionPoint::AfterResolve(resolved),
        DecisionPoint::BeforeRun(run),
    ]
}

/// `policy.toml`, parsed and evaluated by the default policy (`policies/default`),
/// natively: the component runs the same code.
pub fn policy_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = PolicyFile::parse(text) else { return };
    for point in decision_points() {
        let _ = policy.evaluate(&point);
    }
}
