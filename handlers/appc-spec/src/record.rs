//! What an ACI contributes to the image record, in plain Rust: the handlers map it onto
//! the WIT record (see `handlers/aci`).

use serde_json::json;

use crate::manifest::ImageManifest;
use crate::platform::to_oci;

/// The manifest's media type as stored.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.appc.image-manifest+json";
/// The ACI's media type as stored: the one layer of an appc image.
pub const ACI_MEDIA_TYPE: &str = "application/vnd.appc.aci";
/// The largest ACI berth stores.
pub const MAX_ACI_SIZE: u64 = 8 << 30;

/// Annotation keys of an appc image record.
pub mod annotation {
    /// The manifest's name.
    pub const NAME: &str = "org.appc.name";
    /// The URL the image came from, when discovery found it.
    pub const ACI: &str = "org.appc.aci";
    /// The URL of the image's detached signature.
    pub const SIGNATURE: &str = "org.appc.signature";
    /// JSON array of the key URLs discovery announced (when any).
    pub const PUBKEYS: &str = "org.appc.pubkeys";
    /// JSON array of the manifest's `pathWhitelist` (when not empty).
    pub const PATH_WHITELIST: &str = "org.appc.path-whitelist";
    /// JSON array of `{name, path, readOnly}` of the app's mount points (when any).
    pub const MOUNT_POINTS: &str = "org.appc.mount-points";
    /// Prefix of the manifest's own annotations.
    pub const ANNOTATION_PREFIX: &str = "org.appc.annotation.";
}

/// Where an image came from, for its annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The discovered ACI URL (`cimd:appc` only).
    pub aci: Option<String>,
    pub signature: String,
    pub public_keys: Vec<String>,
}

/// The runtime defaults of an ACI (the record's `runtime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub exposed_ports: Vec<String>,
    pub labels: Vec<(String, String)>,
}

/// `app.exec` is the entrypoint (there is no separate command); ports are
/// `<port>/<protocol>`; with no app, everything is empty.
pub fn runtime(manifest: &ImageManifest) -> Runtime {
    let Some(app) = &manifest.app else { return Runtime::default() };
    Runtime {
        entrypoint: app.exec.clone(),
        env: app.environment.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: app.working_directory.clone(),
        user: Some(app.user.clone()),
        group: Some(app.group.clone()),
        exposed_ports: app.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol)).collect(),
        labels: manifest.labels.clone(),
    }
}

/// The (os, architecture, variant) of the image, in OCI naming, when its labels give
/// both `os` and `arch`.
pub fn platform(manifest: &ImageManifest) -> Option<(String, String, Option<String>)> {
    Some(to_oci(manifest.label("os")?, manifest.label("arch")?))
}

/// The record's annotations, in this order: name, ACI URL, signature URL, key URLs,
/// path whitelist, mount points, then the manifest's own.
pub fn annotations(manifest: &ImageManifest, provenance: &Provenance) -> Vec<(String, String)> {
    let mut out = vec![(annotation::NAME.to_string(), manifest.name.clone())];
    if let Some(aci) = &provenance.aci {
        out.push((annotation::ACI.into(), aci.clone()));
    }
    out.push((annotation::SIGNATURE.into(), provenance.signature.clone()));
    if !provenance.public_keys.is_empty() {
        out.push((annotation::PUBKEYS.into(), json!(provenance.public_keys).to_string()));
    }
    if !manifest.path_whitelist.is_empty() {
        out.push((annotation::PATH_WHITELIST.into(), json!(manifest.path_whitelist).to_string()));
    }
    let mounts = manifest.app.as_ref().map_or(&[][..], |a| &a.mount_points[..]);
    if !mounts.is_empty() {
        let list: Vec<_> =
            mounts.iter().map(|m| json!({"name": m.name, "path": m.path, "readOnly": m.read_only})).collect();
        out.push((annotation::MOUNT_POINTS.into(), serde_json::Value::Array(list).to_string()));
    }
    out.extend(manifest.annotations.iter().map(|(k, v)| (format!("{}{k}", annotation::ANNOTATION_PREFIX), v.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;

    fn manifest(extra: &str) -> ImageManifest {
        parse_manifest(
            format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app"{extra}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn runtime_of_an_app() {
        let m = manifest(
            r#","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"aarch64"}],
            "app":{"exec":["/bin/sh","-c","x"],"user":"0","group":"wheel","workingDirectory":"/w",
            "environment":[{"name":"A","value":"b=c"}],"ports":[{"name":"http","port":80,"protocol":"tcp","count":3}]}"#,
        );
        let r = runtime(&m);
        assert_eq!(r.entrypoint, ["/bin/sh", "-c", "x"]);
        assert_eq!(r.env, ["A=b=c"]);
        assert_eq!(r.working_dir.as_deref(), Some("/w"));
        assert_eq!((r.user.as_deref(), r.group.as_deref()), (Some("0"), Some("wheel")));
        assert_eq!(r.exposed_ports, ["80/tcp"]);
        assert_eq!(r.labels, [("os".into(), "linux".into()), ("arch".into(), "aarch64".into())]);
        assert_eq!(platform(&m), Some(("linux".into(), "arm64".into(), None)));
    }

    #[test]
    fn no_app_no_runtime() {
        let m = manifest(r#","labels":[{"name":"os","value":"linux"}]"#);
        assert_eq!(runtime(&m), Runtime::default());
        assert_eq!(platform(&m), None);
    }

    #[test]
    fn annotations_in_order() {
        let m = manifest(
            r#","pathWhitelist":["/a","/b"],"annotations":[{"name":"authors","value":"me"}],
            "app":{"user":"0","group":"0","mountPoints":[{"name":"data","path":"/data","readOnly":true}]}"#,
        );
        let p = Provenance {
            aci: Some("https://h/app.aci".into()),
            signature: "https://h/app.aci.asc".into(),
            public_keys: vec!["https://h/keys.gpg".into()],
        };
        let got = annotations(&m, &p);
        let want: Vec<(String, String)> = [
            ("org.appc.name", "example.com/app"),
            ("org.appc.aci", "https://h/app.aci"),
            ("org.appc.signature", "https://h/app.aci.asc"),
            ("org.appc.pubkeys", r#"["https://h/keys.gpg"]"#),
            ("org.appc.path-whitelist", r#"["/a","/b"]"#),
            ("org.appc.mount-points", r#"[{"name":"data","path":"/data","readOnly":true}]"#),
            ("org.appc.annotation.authors", "me"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        // An archive: no ACI URL, no keys; nothing empty is written.
        let bare =
            annotations(&manifest(""), &Provenance { signature: "file:///x.aci.asc".into(), ..Default::default() });
        assert_eq!(bare.len(), 2);
    }
}
