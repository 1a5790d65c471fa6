//! The canonical `cimd:` URI: parse, validate and print.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::CimdError;

/// Go's `url.QueryEscape` keeps these; rkt's points are escaped that way.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn escape(s: &str) -> String {
    utf8_percent_encode(s, QUERY_ESCAPE).to_string()
}

/// Undo the percent-escaping of a `cimd:` URI part.
pub fn unescape(s: &str) -> Result<String, String> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| "escaped bytes are not UTF-8".to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PointKind {
    Docker,
    Oci,
    OciLayout,
    Appc,
    AciArchive,
    /// A scheme served by a drop-in handler.
    Other(String),
}

impl PointKind {
    pub fn name(&self) -> &str {
        match self {
            PointKind::Docker => "docker",
            PointKind::Oci => "oci",
            PointKind::OciLayout => "oci-layout",
            PointKind::Appc => "appc",
            PointKind::AciArchive => "aci-archive",
            PointKind::Other(s) => s,
        }
    }

    fn from_name(name: &str) -> Result<PointKind, String> {
        Ok(match name {
            "docker" => PointKind::Docker,
            "oci" => PointKind::Oci,
            "oci-layout" => PointKind::OciLayout,
            "appc" => PointKind::Appc,
            "aci-archive" => PointKind::AciArchive,
            other => {
                let valid = other.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(format!("type {other:?} must be lowercase letters, digits and '-'"));
                }
                PointKind::Other(other.to_string())
            }
        })
    }
}

impl fmt::Display for PointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated distribution point in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistributionPoint {
    kind: PointKind,
    data: String,
}

impl DistributionPoint {
    /// An image layout (directory or archive) at an absolute `path`, optionally a ref in it.
    pub fn oci_layout(path: &Path, reference: Option<&str>) -> Result<DistributionPoint, CimdError> {
        let url = format!("file://{}", path.display());
        let mut data = escape(&url);
        if let Some(r) = reference {
            data.push_str("?ref=");
            data.push_str(&escape(r));
        }
        Self::new(PointKind::OciLayout, &data)
    }

    /// An appc image by name and labels (a dependency of an ACI), label values escaped.
    pub fn appc<'a>(
        name: &str,
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<DistributionPoint, CimdError> {
        let mut data = name.to_string();
        for (i, (k, v)) in labels.into_iter().enumerate() {
            data.push(if i == 0 { '?' } else { '&' });
            data.push_str(&format!("{}={}", escape(k), escape(v)));
        }
        Self::new(PointKind::Appc, &data)
    }

    /// Validate `data` for `kind` and bring it into canonical form.
    pub fn new(kind: PointKind, data: &str) -> Result<DistributionPoint, CimdError> {
        let invalid =
            |reason: String| CimdError::InvalidData { kind: kind.name().to_string(), data: data.to_string(), reason };
        if data.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if data.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace or control characters".into()));
        }
        let data = match &kind {
            PointKind::OciLayout => canonical_layout(data).map_err(invalid)?,
            PointKind::AciArchive => canonical_archive_url(data).map_err(invalid)?,
            PointKind::Appc => canonical_appc(data).map_err(invalid)?,
            PointKind::Docker => canonical_registry_ref(&docker_reference(data)).map_err(invalid)?,
            PointKind::Oci => canonical_registry_ref(data).map_err(invalid)?,
            PointKind::Other(_) => data.to_string(),
        };
        Ok(DistributionPoint { kind, data })
    }

    pub fn kind(&self) -> &PointKind {
        &self.kind
    }

    pub fn data(&self) -> &str {
        &self.data
    }

    fn split_query(&self) -> (&str, Option<&str>) {
        match self.data.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (&self.data, None),
        }
    }

    /// The local file or directory this point names (`oci-layout`, a `file://` ACI).
    pub fn local_path(&self) -> Option<PathBuf> {
        match self.kind {
            PointKind::OciLayout | PointKind::AciArchive => {
                let url = unescape(self.split_query().0).ok()?;
                url.strip_prefix("file://").map(PathBuf::from)
            }
            _ => None,
        }
    }

    /// The `ref` of an `oci-layout` point.
    pub fn reference(&self) -> Option<String> {
        let query = self.split_query().1?;
        query.split('&').find_map(|kv| kv.strip_prefix("ref=")).and_then(|v| unescape(v).ok())
    }

    /// Whether `other` names the same source as `self` and differs at most by adding
    /// the parts a handler may fill in (an `oci-layout` ref).
    pub fn refines(&self, other: &DistributionPoint) -> bool {
        if self.kind != other.kind {
            return false;
        }
        match self.kind {
            PointKind::OciLayout => {
                self.split_query().0 == other.split_query().0
                    && (self.reference().is_none() || self.reference() == other.reference())
            }
            _ => self == other,
        }
    }
}

impl fmt::Display for DistributionPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cimd:{}:v=0:{}", self.kind, self.data)
    }
}

impl FromStr for DistributionPoint {
    type Err = CimdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = |reason: &str| CimdError::Malformed { input: input.to_string(), reason: reason.to_string() };
        let rest = input.strip_prefix("cimd:").ok_or_else(|| malformed("it does not start with \"cimd:\""))?;
        let (kind, rest) = rest.split_once(':').ok_or_else(|| malformed("expected cimd:<type>:v=0:<data>"))?;
        let (version, data) = rest.split_once(':').ok_or_else(|| malformed("expected v=0 after the type"))?;
        let kind =
            PointKind::from_name(kind).map_err(|reason| CimdError::Malformed { input: input.to_string(), reason })?;
        match version.strip_prefix("v=") {
            Some("0") => {}
            Some(_) => {
                return Err(CimdError::UnsupportedVersion { kind: kind.name().into(), version: version.into() });
            }
            None => return Err(malformed("the part after the type must be a version, v=0")),
        }
        DistributionPoint::new(kind, data)
    }
}

/// Lexically clean an absolute path: no `.`, `..` or doubled slashes.
pub(crate) fn clean_absolute(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("path {path:?} is not absolute"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

fn canonical_layout(data: &str) -> Result<String, String> {
    let (base, query) = data.split_once('?').map_or((data, None), |(b, q)| (b, Some(q)));
    let url = unescape(base)?;
    let path = url
        .strip_prefix("file://")
        .ok_or_else(|| format!("the location must be an escaped file:// URL, not {url:?}"))?;
    let path = clean_absolute(path)?;
    let mut out = escape(&format!("file://{}", path.display()));
    if let Some(query) = query {
        let mut reference = None;
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("ref", v)) if reference.is_none() => reference = Some(unescape(v)?),
                Some(("ref", _)) => return Err("ref is given twice".into()),
                _ => {
                    return Err(format!("unknown query parameter {kv:?} (only ref=<name> is known)"));
                }
            }
        }
        if let Some(r) = reference {
            if r.is_empty() || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!("ref {r:?} must be non-empty without whitespace"));
            }
            out.push_str("?ref=");
            out.push_str(&escape(&r));
        }
    }
    Ok(out)
}

fn canonical_archive_url(data: &str) -> Result<String, String> {
    let url = unescape(data)?;
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(escape(&format!("file://{}", clean_absolute(path)?.display())));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(escape(&url));
    }
    Err(format!("the location must be an escaped file://, https:// or http:// URL, not {url:?}"))
}

/// appc: `name?label=value&…`, labels sorted by name so equal points compare equal.
fn canonical_appc(data: &str) -> Result<String, String> {
    let (name, query) = data.split_once('?').map_or((data, None), |(n, q)| (n, Some(q)));
    let name_ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~/".contains(&b));
    if !name_ok {
        return Err(format!("app name {name:?} must be lowercase letters, digits and -._~/"));
    }
    let mut labels = Vec::new();
    for kv in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("label {kv:?} is not name=value"))?;
        if labels.iter().any(|(existing, _): &(String, String)| existing == k) {
            return Err(format!("label {k:?} is given twice"));
        }
        labels.push((k.to_string(), v.to_string()));
    }
    labels.sort();
    let mut out = name.to_string();
    for (i, (k, v)) in labels.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&format!("{k}={v}"));
    }
    Ok(out)
}

/// Docker Hub's registry host, for names without one.
const DOCKER_HUB: &str = "registry-1.docker.io";

/// Docker's defaults: a first component without '.', ':' or "localhost" is a Docker Hub
/// repository; a one-component Hub name lives under `library/`; no tag means `latest`.
pub(crate) fn docker_reference(name: &str) -> String {
    let (host, path) = docker_host_and_path(name);
    let last = path.rsplit('/').next().unwrap_or("");
    let tagged = path.contains('@') || last.contains(':');
    if tagged { format!("{host}/{path}") } else { format!("{host}/{path}:latest") }
}

/// A Docker name split as Docker's rule places it: (registry host, path with any tag or
/// digest), Docker Hub as `registry-1.docker.io` with one-component names under `library/`.
pub(crate) fn docker_host_and_path(name: &str) -> (String, String) {
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let has_host = !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let (host, path) =
        if has_host { (first.to_string(), rest.to_string()) } else { (DOCKER_HUB.to_string(), name.to_string()) };
    let host = if host == "docker.io" || host == "index.docker.io" { DOCKER_HUB.to_string() } else { host };
    let path = if host == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
    (host, path)
}

/// `host[:port]/path[:tag][@digest]`, as the distribution spec names repositories.
fn canonical_registry_ref(data: &str) -> Result<String, String> {
    let (name, digest) = data.split_once('@').map_or((data, None), |(n, d)| (n, Some(d)));
    if let Some(d) = digest {
        d.parse::<crate::store::Digest>().map_err(|e| e.to_string())?;
    }
    let (host, path) =
        name.split_once('/').ok_or_else(|| format!("{name:?} has no registry host (host/repository)"))?;
    let (repo, tag) = match path.rsplit_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (path, None),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
        return Err(format!("registry host {host:?} is not a host[:port]"));
    }
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !repo_ok {
        return Err(format!("repository {repo:?} must be lowercase path components of [a-z0-9._-]"));
    }
    if let Some(t) = tag {
        let tag_ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !t.starts_with(['.', '-']);
        if !tag_ok {
            return Err(format!("tag {t:?} must be up to 128 of [A-Za-z0-9_.-], not starting with . or -"));
        }
    }
    Ok(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_points_round_trip_with_escaping() {
        let p = DistributionPoint::oci_layout(Path::new("/srv/images/my app"), Some("v1.0")).unwrap();
        assert_eq!(p.to_string(), "cimd:oci-layout:v=0:file%3A%2F%2F%2Fsrv%2Fimages%2Fmy%20app?ref=v1.0");
        let again: DistributionPoint = p.to_string().parse().unwrap();
        assert_eq!(again, p);
        assert_eq!(again.local_path().unwrap(), Path::new("/srv/images/my app"));
        assert_eq!(again.reference().as_deref(), Some("v1.0"));
    }

    #[test]
    fn layout_paths_are_cleaned() {
        let p: DistributionPoint = "cimd:oci-layout:v=0:file%3A%2F%2F%2Fa%2F.%2Fb%2F..%2Fc".parse().unwrap();
        assert_eq!(p.local_path().unwrap(), Path::new("/a/c"));
    }

    #[test]
    fn appc_labels_are_sorted() {
        let p: DistributionPoint = "cimd:appc:v=0:coreos.com/etcd?version=v3&arch=amd64&os=linux".parse().unwrap();
        assert_eq!(p.to_string(), "cimd:appc:v=0:coreos.com/etcd?arch=amd64&os=linux&version=v3");
    }

    #[test]
    fn malformed_points_name_the_wrong_part() {
        let cases = [
            ("docker://busybox", "does not start with"),
            ("cimd:docker", "expected cimd:<type>:v=0:<data>"),
            ("cimd:docker:v=1:x/y", "version \"v=1\""),
            ("cimd:Docker:v=0:x/y", "type \"Docker\""),
            ("cimd:oci:v=0:busybox", "no registry host"),
            ("cimd:docker:v=0:h.io/Busy", "repository \"Busy\""),
            ("cimd:docker:v=0:h.io/b@sha256:zz", "invalid digest"),
            ("cimd:oci-layout:v=0:relative", "file:// URL"),
            ("cimd:oci-layout:v=0:file%3A%2F%2F%2Fx?tag=1", "unknown query parameter"),
            ("cimd:appc:v=0:Example.com/app", "app name"),
        ];
        for (input, expected) in cases {
            let err = input.parse::<DistributionPoint>().unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn a_handler_may_add_a_ref_but_not_change_the_layout() {
        let asked = DistributionPoint::oci_layout(Path::new("/l"), None).unwrap();
        let with_ref = DistributionPoint::oci_layout(Path::new("/l"), Some("latest")).unwrap();
        let elsewhere = DistributionPoint::oci_layout(Path::new("/other"), Some("latest")).unwrap();
        assert!(asked.refines(&with_ref));
        assert!(!asked.refines(&elsewhere));
        assert!(!with_ref.refines(&DistributionPoint::oci_layout(Path::new("/l"), Some("v2")).unwrap()));
    }
}
