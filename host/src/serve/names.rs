//! Repository names and references as clients send them, and how they map onto the
//! distribution points the store holds (README, "Sharing images: berth serve").
//!
//! A stored ref `cimd:docker:v=0:<registry>/<repository>:<tag>` (or `cimd:oci:…`) is
//! served as repository `<registry>/<repository>`, tag `<tag>`, with two spellings the
//! spec's name grammar forces: a port is written `_PORT` (names have no `:`), and Docker
//! Hub's `registry-1.docker.io` is `docker.io`. So `127.0.0.1:5000/app:v1` is served as
//! `127.0.0.1_5000/app:v1`, and Docker Hub's busybox as `docker.io/library/busybox`.
//!
//! A name whose first component is no registry host (it has no dot and is not
//! `localhost`) is *relative*, as a mirror receives it: `library/busybox` from a client
//! using this server as Docker Hub's mirror. With an `ns` parameter (containerd and berth
//! send it to mirrors) it names that registry's repository. Without one it is looked up
//! under `localhost/` (where names pushed without a host are stored, podman's convention
//! for local images), then in the first `--pull-through` upstream, else Docker Hub.

use crate::cimd::{DistributionPoint, PointKind};
use crate::store::Digest;

use super::ServeError;

/// Docker Hub's API host: what berth's canonical points name.
pub const DOCKER_HUB: &str = "registry-1.docker.io";
/// Where pushed names without a registry host live.
pub const LOCAL: &str = "localhost";
/// Longest repository name accepted (Docker's limit; the spec suggests 255 with the host).
const MAX_NAME: usize = 255;

/// A repository name as the distribution spec's grammar allows it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(name: &str) -> Result<RepoName, ServeError> {
        let invalid = |reason| ServeError::NameInvalid { name: name.to_string(), reason };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_NAME {
            return Err(invalid("it is longer than 255 bytes"));
        }
        for component in name.split('/') {
            if !valid_component(component) {
                return Err(invalid(
                    "each /-separated component must be lowercase letters and digits, joined by '.', '_', '__' or dashes",
                ));
            }
        }
        Ok(RepoName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry host its first component names, if it names one.
    fn host(&self) -> Option<(&str, &str)> {
        let (first, rest) = self.0.split_once('/')?;
        let is_host = first.contains('.') || first == LOCAL || first.starts_with("localhost_");
        is_host.then_some((first, rest))
    }

    /// Where a read of this name looks, in order (see the module documentation).
    pub fn lookup_targets(&self, ns: Option<&str>, pull_through: &[String]) -> Vec<Target> {
        if let Some((host, rest)) = self.host() {
            return vec![Target::new(&decode_host(host), rest)];
        }
        if let Some(ns) = ns {
            return vec![Target::new(ns, &self.0)];
        }
        let upstream = pull_through.first().map_or(DOCKER_HUB, String::as_str);
        vec![Target::new(LOCAL, &self.0), Target::new(upstream, &self.0)]
    }

    /// Where a push of this name is stored: its host's repository, or `localhost/<name>`.
    pub fn push_target(&self) -> Target {
        match self.host() {
            Some((host, rest)) => Target::new(&decode_host(host), rest),
            None => Target::new(LOCAL, &self.0),
        }
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `127.0.0.1_5000` → `127.0.0.1:5000`; `docker.io` → Docker Hub's API host.
fn decode_host(first: &str) -> String {
    let host = match first.rsplit_once('_') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => format!("{h}:{port}"),
        _ => first.to_string(),
    };
    normalize_registry(&host)
}

/// A registry as berth's canonical points spell it: lowercase, Docker Hub's aliases
/// folded into its API host.
pub fn normalize_registry(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

/// Whether `s` is a plausible `host[:port]` (a `ns` parameter, a `--pull-through`).
pub fn valid_registry(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['.', '-', ':'])
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// A reference in `/manifests/<reference>`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ServeError> {
        if s.contains(':') {
            return parse_digest(s).map(Reference::Digest);
        }
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x));
        if !ok {
            return Err(ServeError::TagInvalid { tag: s.to_string() });
        }
        Ok(Reference::Tag(s.to_string()))
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A digest from a URL or a query; berth stores sha256 and sha512 content.
pub fn parse_digest(s: &str) -> Result<Digest, ServeError> {
    s.parse().map_err(|e: crate::store::StoreError| ServeError::DigestInvalid {
        digest: s.to_string(),
        reason: match e {
            crate::store::StoreError::InvalidDigest { reason, .. } => reason.to_string(),
            other => other.to_string(),
        },
    })
}

/// A repository of a registry, as berth's points name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// `host[:port]`, lowercase; Docker Hub as `registry-1.docker.io`.
    pub registry: String,
    pub repository: String,
}

impl Target {
    pub fn new(registry: &str, repository: &str) -> Target {
        let registry = normalize_registry(registry);
        // Docker's rule: a one-component Hub repository is an official image.
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        Target { registry, repository }
    }

    /// The point naming this repository at `tag` and/or `digest`: `docker` type, the
    /// form `berth fetch NAME` and `berth run NAME` look up.
    pub fn point(&self, tag: Option<&str>, digest: Option<&Digest>) -> Option<DistributionPoint> {
        self.point_of(PointKind::Docker, tag, digest)
    }

    fn point_of(&self, kind: PointKind, tag: Option<&str>, digest: Option<&Digest>) -> Option<DistributionPoint> {
        let mut data = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = tag {
            data.push(':');
            data.push_str(t);
        }
        if let Some(d) = digest {
            data.push('@');
            data.push_str(&d.to_string());
        }
        DistributionPoint::new(kind, &data).ok()
    }

    /// The points naming `tag` of this repository, in lookup order: `docker`, then `oci`.
    pub fn tag_points(&self, tag: &str) -> Vec<DistributionPoint> {
        [PointKind::Docker, PointKind::Oci].into_iter().filter_map(|k| self.point_of(k, Some(tag), None)).collect()
    }

    /// The name clients use for it (`127.0.0.1_5000/app`, `docker.io/library/busybox`).
    pub fn served_name(&self) -> String {
        let host = if self.registry == DOCKER_HUB { "docker.io".to_string() } else { self.registry.replace(':', "_") };
        format!("{host}/{}", self.repository)
    }
}

/// What a stored ref says, when it is a registry point: the repository, its tag and
/// the digest it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefParts {
    pub target: Target,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RefParts {
    pub fn parse(point: &str) -> Option<RefParts> {
        let data = point.strip_prefix("cimd:docker:v=0:").or_else(|| point.strip_prefix("cimd:oci:v=0:"))?;
        let (name, digest) = match data.split_once('@') {
            Some((n, d)) => (n, Some(d.parse().ok()?)),
            None => (data, None),
        };
        let (registry, path) = name.split_once('/')?;
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) => (r, Some(t.to_string())),
            None => (path, None),
        };
        Some(RefParts { target: Target::new(registry, repository), tag, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_grammar_decides_valid_names() {
        for ok in ["a", "library/busybox", "127.0.0.1_5000/app", "a__b/c-d/e---f", "x.y/z"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a//b", "/a", "a/", "..", "a/../b", "a/./b", "a%2Fb", "a_-b", "-a", "a.", "a:5000/b"] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn hosts_ports_and_docker_hub_map_both_ways() {
        let n = RepoName::parse("127.0.0.1_5000/team/app").unwrap();
        let t = n.lookup_targets(None, &[]);
        assert_eq!(t, [Target { registry: "127.0.0.1:5000".into(), repository: "team/app".into() }]);
        assert_eq!(t[0].served_name(), "127.0.0.1_5000/team/app");
        assert_eq!(t[0].point(Some("v1"), None).unwrap().to_string(), "cimd:docker:v=0:127.0.0.1:5000/team/app:v1");
        let hub = RepoName::parse("docker.io/busybox").unwrap().lookup_targets(None, &[]);
        assert_eq!(hub[0].repository, "library/busybox");
        assert_eq!(hub[0].served_name(), "docker.io/library/busybox");
        let parts = RefParts::parse("cimd:docker:v=0:registry-1.docker.io/library/busybox:1.36").unwrap();
        assert_eq!((parts.target, parts.tag.as_deref()), (hub[0].clone(), Some("1.36")));
    }

    #[test]
    fn relative_names_try_local_then_ns_then_upstream() {
        let n = RepoName::parse("app").unwrap();
        let local = Target::new(LOCAL, "app");
        assert_eq!(n.lookup_targets(None, &[]), [local.clone(), Target::new(DOCKER_HUB, "library/app")]);
        assert_eq!(n.lookup_targets(Some("10.0.0.1:5000"), &[]), [Target::new("10.0.0.1:5000", "app")]);
        assert_eq!(n.lookup_targets(None, &["up.lan:5000".into()]), [local.clone(), Target::new("up.lan:5000", "app")]);
        assert_eq!(n.push_target(), local);
        assert_eq!(RepoName::parse("localhost_5000/x").unwrap().push_target(), Target::new("localhost:5000", "x"));
    }

    #[test]
    fn references_are_tags_or_sha_digests() {
        assert_eq!(Reference::parse("v1.0_rc-2").unwrap(), Reference::Tag("v1.0_rc-2".into()));
        assert!(matches!(Reference::parse(&format!("sha256:{}", "a".repeat(64))), Ok(Reference::Digest(_))));
        assert!(matches!(Reference::parse("md5:abc"), Err(ServeError::DigestInvalid { .. })));
        assert!(matches!(Reference::parse(".hidden"), Err(ServeError::TagInvalid { .. })));
        assert!(Reference::parse(&"t".repeat(129)).is_err());
    }
}
