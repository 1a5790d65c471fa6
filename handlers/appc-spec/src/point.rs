//! The distribution points of appc: `cimd:appc:v=0:<name>[?label=value&…]` (an image
//! found by discovery) and `cimd:aci-archive:v=0:<escaped URL>` (an ACI at a URL).

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::AppcError;
use crate::discovery::{App, DEFAULT_VERSION};
use crate::identifier::is_ac_identifier;
use crate::manifest::ImageManifest;

pub const APPC_PREFIX: &str = "cimd:appc:v=0:";
pub const ACI_ARCHIVE_PREFIX: &str = "cimd:aci-archive:v=0:";

/// What a `cimd:appc` point asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppcPoint {
    pub name: String,
    /// As the point gives them (sorted by name).
    pub labels: BTreeMap<String, String>,
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Parse `cimd:appc:v=0:<name>[?label=value&…]`, percent-decoding names and values.
pub fn parse_appc_point(point: &str) -> Result<AppcPoint, AppcError> {
    let bad = |reason: String| AppcError::InvalidPoint { point: point.to_string(), reason };
    let data = point.strip_prefix(APPC_PREFIX).ok_or_else(|| bad(format!("does not start with {APPC_PREFIX:?}")))?;
    let (name, query) = data.split_once('?').map_or((data, None), |(n, q)| (n, Some(q)));
    let name = decode(name);
    if !is_ac_identifier(&name) {
        return Err(bad(format!("{name:?} is not an AC Identifier")));
    }
    let mut labels = BTreeMap::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| bad(format!("label {pair:?} has no value")))?;
        let (key, value) = (decode(key), decode(value));
        if !is_ac_identifier(&key) || key == "name" {
            return Err(bad(format!("{key:?} is not a label name")));
        }
        if labels.insert(key.clone(), value).is_some() {
            return Err(bad(format!("label {key:?} is given twice")));
        }
    }
    Ok(AppcPoint { name, labels })
}

/// The URL of a `cimd:aci-archive` point.
pub fn parse_aci_archive_point(point: &str) -> Result<String, AppcError> {
    let bad = |reason: String| AppcError::InvalidPoint { point: point.to_string(), reason };
    let data = point
        .strip_prefix(ACI_ARCHIVE_PREFIX)
        .ok_or_else(|| bad(format!("does not start with {ACI_ARCHIVE_PREFIX:?}")))?;
    let url = decode(data);
    if !(url.starts_with("file:///") || url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad(format!("{url:?} is not a file:///, http:// or https:// URL")));
    }
    Ok(url)
}

/// The URL of an ACI's detached signature, as rkt finds it next to an image fetched by
/// URL: the path with `.aci` trimmed and `.aci.asc` added (query and fragment kept).
pub fn signature_url(aci_url: &str) -> String {
    let split = aci_url.find(['?', '#']).unwrap_or(aci_url.len());
    let (path, tail) = aci_url.split_at(split);
    format!("{}.aci.asc{tail}", path.strip_suffix(".aci").unwrap_or(path))
}

/// What discovery looks for, with rkt's defaults for labels the point leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub app: App,
    /// The point gave no version: `latest` was assumed, and the image need not carry it.
    pub version_defaulted: bool,
}

/// Fill in `version=latest` and the platform's `os`/`arch` (already in appc's naming,
/// see [`crate::platform::to_appc`]) where the point names none.
pub fn wanted(point: &AppcPoint, os: &str, arch: &str) -> Wanted {
    let mut labels = point.labels.clone();
    let version_defaulted = !labels.contains_key("version") || labels["version"].is_empty();
    if version_defaulted {
        labels.insert("version".into(), DEFAULT_VERSION.into());
    }
    labels.entry("os".into()).or_insert_with(|| os.to_string());
    labels.entry("arch".into()).or_insert_with(|| arch.to_string());
    Wanted { app: App { name: point.name.clone(), labels }, version_defaulted }
}

/// "Implementations MUST ensure that the initial name and labels used for discovery
/// matches the name and labels in the Image Manifest": the same name, and each label
/// asked for present with the same value, except a `version` that was only assumed.
pub fn check_identity(wanted: &Wanted, manifest: &ImageManifest) -> Result<(), AppcError> {
    if manifest.name != wanted.app.name {
        return Err(AppcError::NameMismatch { asked: wanted.app.name.clone(), found: manifest.name.clone() });
    }
    for (label, asked) in &wanted.app.labels {
        if label == "version" && wanted.version_defaulted {
            continue;
        }
        let found = manifest.label(label);
        if found != Some(asked.as_str()) {
            return Err(AppcError::LabelMismatch {
                name: manifest.name.clone(),
                label: label.clone(),
                asked: asked.clone(),
                found: found.map(str::to_string),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;

    #[test]
    fn appc_points() {
        let p = parse_appc_point("cimd:appc:v=0:coreos.com/etcd?arch=amd64&version=v3.1%2B1").unwrap();
        assert_eq!(p.name, "coreos.com/etcd");
        assert_eq!(p.labels.get("version").unwrap(), "v3.1+1");
        assert_eq!(p.labels.get("arch").unwrap(), "amd64");
        assert!(parse_appc_point("cimd:appc:v=0:example.com/app").unwrap().labels.is_empty());
        for bad in [
            "cimd:docker:v=0:x",
            "cimd:appc:v=0:",
            "cimd:appc:v=0:Example.com",
            "cimd:appc:v=0:a?version",
            "cimd:appc:v=0:a?name=b",
            "cimd:appc:v=0:a?Os=linux",
            "cimd:appc:v=0:a?os=linux&os=linux",
        ] {
            assert!(matches!(parse_appc_point(bad), Err(AppcError::InvalidPoint { .. })), "{bad}");
        }
    }

    #[test]
    fn aci_archive_points() {
        assert_eq!(
            parse_aci_archive_point("cimd:aci-archive:v=0:file%3A%2F%2F%2Fsrv%2Fa%20b.aci").unwrap(),
            "file:///srv/a b.aci"
        );
        assert_eq!(parse_aci_archive_point("cimd:aci-archive:v=0:https%3A%2F%2Fh%2Fx.aci").unwrap(), "https://h/x.aci");
        assert!(parse_aci_archive_point("cimd:aci-archive:v=0:ftp%3A%2F%2Fh%2Fx").is_err());
        assert!(parse_aci_archive_point("cimd:appc:v=0:x").is_err());
    }

    #[test]
    fn signature_urls() {
        assert_eq!(signature_url("https://h/x.aci"), "https://h/x.aci.asc");
        assert_eq!(signature_url("https://h/x.aci?t=1"), "https://h/x.aci.asc?t=1");
        assert_eq!(signature_url("https://h/x.tar"), "https://h/x.tar.aci.asc");
        assert_eq!(signature_url("file:///srv/x.aci"), "file:///srv/x.aci.asc");
    }

    fn manifest(labels: &str) -> ImageManifest {
        parse_manifest(
            format!(
                r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app","labels":[{labels}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn defaults() {
        let w = wanted(&parse_appc_point("cimd:appc:v=0:example.com/app").unwrap(), "linux", "amd64");
        assert!(w.version_defaulted);
        assert_eq!(
            w.app.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            ["arch=amd64", "os=linux", "version=latest"]
        );
        let w =
            wanted(&parse_appc_point("cimd:appc:v=0:example.com/app?os=freebsd&version=1").unwrap(), "linux", "amd64");
        assert!(!w.version_defaulted);
        assert_eq!(w.app.labels["os"], "freebsd");
        assert_eq!(w.app.labels["version"], "1");
    }

    #[test]
    fn identity() {
        let point = parse_appc_point("cimd:appc:v=0:example.com/app").unwrap();
        let w = wanted(&point, "linux", "amd64");
        let good = manifest(
            r#"{"name":"os","value":"linux"},{"name":"arch","value":"amd64"},{"name":"version","value":"1.2"}"#,
        );
        // An assumed `latest` need not be in the manifest.
        check_identity(&w, &good).unwrap();
        // Labels the point did not ask for may be anything.
        check_identity(
            &w,
            &manifest(r#"{"name":"os","value":"linux"},{"name":"arch","value":"amd64"},{"name":"x","value":"y"}"#),
        )
        .unwrap();

        let err = check_identity(&w, &manifest(r#"{"name":"os","value":"linux"}"#)).unwrap_err();
        assert_eq!(
            err,
            AppcError::LabelMismatch {
                name: "example.com/app".into(),
                label: "arch".into(),
                asked: "amd64".into(),
                found: None
            }
        );
        assert!(err.to_string().contains("no such label"), "{err}");
        let w1 = wanted(&parse_appc_point("cimd:appc:v=0:example.com/app?version=1.3").unwrap(), "linux", "amd64");
        let err = check_identity(&w1, &good).unwrap_err();
        assert!(
            matches!(&err, AppcError::LabelMismatch { label, found: Some(f), .. } if label == "version" && f == "1.2"),
            "{err}"
        );
        assert!(err.to_string().contains("\"1.3\"") && err.to_string().contains("\"1.2\""), "{err}");
        let other = wanted(&parse_appc_point("cimd:appc:v=0:example.com/other").unwrap(), "linux", "amd64");
        assert_eq!(
            check_identity(&other, &good).unwrap_err(),
            AppcError::NameMismatch { asked: "example.com/other".into(), found: "example.com/app".into() }
        );
        // An explicit `version=latest` must be there.
        let latest =
            wanted(&parse_appc_point("cimd:appc:v=0:example.com/app?version=latest").unwrap(), "linux", "amd64");
        assert!(check_identity(&latest, &good).is_err());
    }
}
