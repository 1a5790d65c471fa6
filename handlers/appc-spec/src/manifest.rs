//! The ACI image manifest (`spec/aci.md`, "Image Manifest Schema"), read and checked as
//! the spec requires. Unknown fields are ignored; a `null` reads as an absent field (as
//! the reference implementation's JSON decoding has it).

use serde_json::{Map, Value};

use crate::AppcError;
use crate::identifier::{is_ac_identifier, is_ac_name, is_env_name};

/// The only `acKind` an image manifest has.
pub const IMAGE_MANIFEST_KIND: &str = "ImageManifest";

/// Operating systems and their architectures the spec lists (`types.ValidOSArch`);
/// a label `os` outside them, or an `arch` outside its OS's list, is refused.
pub const VALID_OS_ARCH: &[(&str, &[&str])] = &[
    ("linux", &["amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64", "ppc64le", "s390x"]),
    ("freebsd", &["amd64", "i386", "arm"]),
    ("darwin", &["x86_64", "i386"]),
];

/// A parsed and validated image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    pub ac_version: String,
    /// An AC Identifier; "SHOULD have a URL-like structure to facilitate discovery".
    pub name: String,
    /// Unique names (never `name`), in the manifest's order.
    pub labels: Vec<(String, String)>,
    pub app: Option<App>,
    pub annotations: Vec<(String, String)>,
    /// "The ordering is significant": placed in the rootfs before this image's files.
    pub dependencies: Vec<Dependency>,
    /// Absolute paths; empty means "everything".
    pub path_whitelist: Vec<String>,
}

impl ImageManifest {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How the image runs by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct App {
    /// The executable and its arguments; the spec lets it be empty and relative
    /// (searched in `PATH`).
    pub exec: Vec<String>,
    /// Required: a user name or a UID.
    pub user: String,
    /// Required: a group name or a GID.
    pub group: String,
    /// Absolute when given.
    pub working_directory: Option<String>,
    pub environment: Vec<(String, String)>,
    pub ports: Vec<Port>,
    pub mount_points: Vec<MountPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// An AC Name.
    pub name: String,
    pub protocol: String,
    /// 1–65535.
    pub port: u16,
    /// Ports `port ..= port + count - 1`; 1 when unset.
    pub count: u32,
    pub socket_activated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// An AC Name.
    pub name: String,
    pub path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub image_name: String,
    /// An Image ID, `sha512-<128 hex digits>`, as the manifest has it.
    pub image_id: Option<String>,
    pub labels: Vec<(String, String)>,
    /// "The ACE SHOULD ensure it matches"; 0 reads as unset.
    pub size: Option<u64>,
}

impl Dependency {
    /// The image ID as an OCI digest (`sha512:<hex>`).
    pub fn image_digest(&self) -> Option<String> {
        self.image_id.as_deref().map(image_id_to_digest)
    }
}

/// `sha512-<hex>` → `sha512:<hex>`, for an ID [`parse_manifest`] accepted.
pub fn image_id_to_digest(id: &str) -> String {
    id.replacen('-', ":", 1)
}

/// Parse and validate the bytes of an ACI's `manifest` member.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, AppcError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| AppcError::manifest("(document)", format!("not JSON: {e}")))?;
    let root = value.as_object().ok_or_else(|| AppcError::manifest("(document)", "not a JSON object"))?;
    let ac_kind = required_str(root, "acKind", "acKind")?;
    if ac_kind != IMAGE_MANIFEST_KIND {
        return Err(AppcError::manifest("acKind", format!("{ac_kind:?} is not \"{IMAGE_MANIFEST_KIND}\"")));
    }
    let ac_version = required_str(root, "acVersion", "acVersion")?;
    check_semver(&ac_version).map_err(|why| AppcError::manifest("acVersion", format!("{ac_version:?} {why}")))?;
    let name = required_str(root, "name", "name")?;
    if !is_ac_identifier(&name) {
        return Err(AppcError::manifest("name", format!("{name:?} is not an AC Identifier")));
    }
    let labels = labels(root.get("labels"), "labels")?;
    let app = match field(root, "app") {
        None => None,
        Some(v) => Some(app(v)?),
    };
    let annotations = annotations(root.get("annotations"))?;
    let dependencies = list(root.get("dependencies"), "dependencies")?
        .iter()
        .enumerate()
        .map(|(i, v)| dependency(v, &format!("dependencies[{i}]")))
        .collect::<Result<_, _>>()?;
    let path_whitelist = string_list(root.get("pathWhitelist"), "pathWhitelist")?;
    for (i, p) in path_whitelist.iter().enumerate() {
        if !p.starts_with('/') {
            return Err(AppcError::manifest(format!("pathWhitelist[{i}]"), format!("{p:?} is not an absolute path")));
        }
    }
    Ok(ImageManifest { ac_version, name, labels, app, annotations, dependencies, path_whitelist })
}

/// A field, with `null` read as absent.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AppcError> {
    v.as_object().ok_or_else(|| AppcError::manifest(path, "not a JSON object"))
}

fn list<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], AppcError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(AppcError::manifest(path, "not a JSON array")),
    }
}

fn optional_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, AppcError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AppcError::manifest(path, "not a string")),
    }
}

/// A string field that must be present and non-empty.
fn required_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, AppcError> {
    match optional_str(obj, key, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(AppcError::manifest(path, "required")),
    }
}

fn optional_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<bool, AppcError> {
    match field(obj, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(AppcError::manifest(path, "not a boolean")),
    }
}

fn optional_u64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, AppcError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| AppcError::manifest(path, "not a non-negative integer")),
    }
}

fn string_list(v: Option<&Value>, path: &str) -> Result<Vec<String>, AppcError> {
    list(v, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str().map(str::to_string).ok_or_else(|| AppcError::manifest(format!("{path}[{i}]"), "not a string"))
        })
        .collect()
}

/// A list of `{name, value}` objects, as labels, annotations and environments are.
fn name_values(v: Option<&Value>, path: &str) -> Result<Vec<(String, String)>, AppcError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, item) in list(v, path)?.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let obj = object(item, &at)?;
        let name = required_str(obj, "name", &format!("{at}.name"))?;
        let value = optional_str(obj, "value", &format!("{at}.value"))?.unwrap_or_default();
        if out.iter().any(|(n, _)| *n == name) {
            return Err(AppcError::manifest(&at, format!("duplicate name {name:?}")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Labels: AC Identifier names, never `name`, and a known os/arch pair.
fn labels(v: Option<&Value>, path: &str) -> Result<Vec<(String, String)>, AppcError> {
    let labels = name_values(v, path)?;
    for (i, (name, _)) in labels.iter().enumerate() {
        if !is_ac_identifier(name) {
            return Err(AppcError::manifest(format!("{path}[{i}].name"), format!("{name:?} is not an AC Identifier")));
        }
        if name == "name" {
            return Err(AppcError::manifest(format!("{path}[{i}].name"), "a label cannot be called \"name\""));
        }
    }
    check_os_arch(&labels).map_err(|why| AppcError::manifest(path, why))?;
    Ok(labels)
}

fn check_os_arch(labels: &[(String, String)]) -> Result<(), String> {
    let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // "arch is meaningful only if os is provided".
    let Some(os) = get("os") else { return Ok(()) };
    let Some((_, archs)) = VALID_OS_ARCH.iter().find(|(o, _)| *o == os) else {
        let oses: Vec<&str> = VALID_OS_ARCH.iter().map(|(o, _)| *o).collect();
        return Err(format!("bad os {os:?} (must be one of: {})", oses.join(", ")));
    };
    match get("arch") {
        Some(arch) if !archs.contains(&arch) => {
            Err(format!("bad arch {arch:?} for {os} (must be one of: {})", archs.join(", ")))
        }
        _ => Ok(()),
    }
}

fn annotations(v: Option<&Value>) -> Result<Vec<(String, String)>, AppcError> {
    let annotations = name_values(v, "annotations")?;
    for (i, (name, value)) in annotations.iter().enumerate() {
        let at = format!("annotations[{i}]");
        if !is_ac_identifier(name) {
            return Err(AppcError::manifest(format!("{at}.name"), format!("{name:?} is not an AC Identifier")));
        }
        // Well-known annotations with a required form.
        match name.as_str() {
            "homepage" | "documentation" if !is_http_url(value) => {
                return Err(AppcError::manifest(
                    format!("{at}.value"),
                    format!("{name} {value:?} is not an http or https URL"),
                ));
            }
            "created" if !is_rfc3339(value) => {
                return Err(AppcError::manifest(
                    format!("{at}.value"),
                    format!("created {value:?} is not an RFC 3339 date"),
                ));
            }
            _ => {}
        }
    }
    Ok(annotations)
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// A non-zero semantic version `MAJOR.MINOR.PATCH[-pre][+build]`.
fn check_semver(s: &str) -> Result<(), &'static str> {
    let (core, build) = s.split_once('+').map_or((s, None), |(c, b)| (c, Some(b)));
    let (core, pre) = core.split_once('-').map_or((core, None), |(c, p)| (c, Some(p)));
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || numbers.iter().any(|n| n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit())) {
        return Err("is not a semantic version (MAJOR.MINOR.PATCH)");
    }
    let identifiers_ok = |part: Option<&str>| {
        part.is_none_or(|p| {
            p.split('.').all(|id| !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        })
    };
    if !identifiers_ok(pre) || !identifiers_ok(build) {
        return Err("is not a semantic version (bad pre-release or build part)");
    }
    if numbers.iter().all(|n| n.bytes().all(|c| c == b'0')) && pre.is_none() && build.is_none() {
        return Err("is the zero version");
    }
    Ok(())
}

fn app(v: &Value) -> Result<App, AppcError> {
    let obj = object(v, "app")?;
    let exec = string_list(obj.get("exec"), "app.exec")?;
    if exec.first().is_some_and(String::is_empty) {
        return Err(AppcError::manifest("app.exec[0]", "the executable is empty"));
    }
    let user = required_str(obj, "user", "app.user")?;
    let group = required_str(obj, "group", "app.group")?;
    let working_directory = optional_str(obj, "workingDirectory", "app.workingDirectory")?.filter(|w| !w.is_empty());
    if let Some(w) = &working_directory
        && !w.starts_with('/')
    {
        return Err(AppcError::manifest("app.workingDirectory", format!("{w:?} is not an absolute path")));
    }
    let environment = name_values(obj.get("environment"), "app.environment")?;
    for (i, (name, _)) in environment.iter().enumerate() {
        if !is_env_name(name) {
            return Err(AppcError::manifest(
                format!("app.environment[{i}].name"),
                format!("{name:?} is not a valid environment variable name"),
            ));
        }
    }
    let ports = list(obj.get("ports"), "app.ports")?
        .iter()
        .enumerate()
        .map(|(i, v)| port(v, &format!("app.ports[{i}]")))
        .collect::<Result<_, _>>()?;
    let mount_points = list(obj.get("mountPoints"), "app.mountPoints")?
        .iter()
        .enumerate()
        .map(|(i, v)| mount_point(v, &format!("app.mountPoints[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(App { exec, user, group, working_directory, environment, ports, mount_points })
}

fn port(v: &Value, at: &str) -> Result<Port, AppcError> {
    let obj = object(v, at)?;
    let name = required_str(obj, "name", &format!("{at}.name"))?;
    if !is_ac_name(&name) {
        return Err(AppcError::manifest(format!("{at}.name"), format!("{name:?} is not an AC Name")));
    }
    let protocol = required_str(obj, "protocol", &format!("{at}.protocol"))?;
    let number = optional_u64(obj, "port", &format!("{at}.port"))?
        .ok_or_else(|| AppcError::manifest(format!("{at}.port"), "required"))?;
    let port = u16::try_from(number)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| AppcError::manifest(format!("{at}.port"), format!("{number} is not in 1-65535")))?;
    let count = match optional_u64(obj, "count", &format!("{at}.count"))? {
        None | Some(0) => 1,
        Some(c) => c,
    };
    if u64::from(port) + count > 65536 {
        return Err(AppcError::manifest(
            format!("{at}.count"),
            format!("ports {port} to {} run past 65535", u64::from(port) + count - 1),
        ));
    }
    let socket_activated = optional_bool(obj, "socketActivated", &format!("{at}.socketActivated"))?;
    Ok(Port { name, protocol, port, count: count as u32, socket_activated })
}

fn mount_point(v: &Value, at: &str) -> Result<MountPoint, AppcError> {
    let obj = object(v, at)?;
    let name = required_str(obj, "name", &format!("{at}.name"))?;
    if !is_ac_name(&name) {
        return Err(AppcError::manifest(format!("{at}.name"), format!("{name:?} is not an AC Name")));
    }
    let path = required_str(obj, "path", &format!("{at}.path"))?;
    let read_only = optional_bool(obj, "readOnly", &format!("{at}.readOnly"))?;
    Ok(MountPoint { name, path, read_only })
}

fn dependency(v: &Value, at: &str) -> Result<Dependency, AppcError> {
    let obj = object(v, at)?;
    let image_name = required_str(obj, "imageName", &format!("{at}.imageName"))?;
    if !is_ac_identifier(&image_name) {
        return Err(AppcError::manifest(format!("{at}.imageName"), format!("{image_name:?} is not an AC Identifier")));
    }
    let image_id = optional_str(obj, "imageID", &format!("{at}.imageID"))?;
    if let Some(id) = &image_id
        && !is_image_id(id)
    {
        return Err(AppcError::manifest(
            format!("{at}.imageID"),
            format!("{id:?} is not an image ID (sha512-<128 lowercase hex digits>)"),
        ));
    }
    let labels = labels(obj.get("labels"), &format!("{at}.labels"))?;
    let size = optional_u64(obj, "size", &format!("{at}.size"))?.filter(|s| *s > 0);
    Ok(Dependency { image_name, image_id, labels, size })
}

/// An Image ID: "hash-value", and "the only permitted hash algorithm is sha512".
pub fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha512-")
        .is_some_and(|hex| hex.len() == 128 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha512-cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    fn full() -> String {
        format!(
            r#"{{
            "acKind": "ImageManifest",
            "acVersion": "0.8.11",
            "name": "example.com/reduce-worker",
            "labels": [
                {{"name": "version", "value": "1.0.0"}},
                {{"name": "arch", "value": "amd64"}},
                {{"name": "os", "value": "linux"}}
            ],
            "app": {{
                "exec": ["/usr/bin/reduce-worker", "--quiet"],
                "user": "100",
                "group": "300",
                "supplementaryGIDs": [400, 500],
                "eventHandlers": [{{"exec": ["/usr/bin/data-downloader"], "name": "pre-start"}}],
                "workingDirectory": "/opt/work",
                "environment": [{{"name": "REDUCE_WORKER_DEBUG", "value": "true"}}],
                "isolators": [{{"name": "resource/cpu", "value": {{"request": "250m", "limit": "500m"}}}}],
                "mountPoints": [{{"name": "work", "path": "/var/lib/work", "readOnly": false}}],
                "ports": [{{"name": "health", "port": 4000, "protocol": "tcp", "socketActivated": true}},
                          {{"name": "range", "port": 8000, "count": 10, "protocol": "udp"}}]
            }},
            "dependencies": [
                {{"imageName": "example.com/reduce-worker-base", "imageID": "{ID}",
                  "labels": [{{"name": "os", "value": "linux"}}, {{"name": "env", "value": "canary"}}],
                  "size": 4096}},
                {{"imageName": "example.com/other"}}
            ],
            "pathWhitelist": ["/etc/ca/example.com/crt", "/usr/bin/map-reduce-worker"],
            "annotations": [
                {{"name": "authors", "value": "Carly Container <carly@example.com>"}},
                {{"name": "created", "value": "2014-10-27T19:32:58.203Z"}},
                {{"name": "homepage", "value": "https://example.com/"}}
            ],
            "somethingNew": {{"ignored": true}}
        }}"#
        )
    }

    #[test]
    fn parses_the_spec_example() {
        let m = parse_manifest(full().as_bytes()).unwrap();
        assert_eq!(m.name, "example.com/reduce-worker");
        assert_eq!(m.label("os"), Some("linux"));
        let app = m.app.as_ref().unwrap();
        assert_eq!(app.exec, ["/usr/bin/reduce-worker", "--quiet"]);
        assert_eq!((app.user.as_str(), app.group.as_str()), ("100", "300"));
        assert_eq!(app.working_directory.as_deref(), Some("/opt/work"));
        assert_eq!(app.environment, [("REDUCE_WORKER_DEBUG".to_string(), "true".to_string())]);
        assert_eq!(
            app.ports[0],
            Port { name: "health".into(), protocol: "tcp".into(), port: 4000, count: 1, socket_activated: true }
        );
        assert_eq!(app.ports[1].count, 10);
        assert_eq!(
            app.mount_points[0],
            MountPoint { name: "work".into(), path: "/var/lib/work".into(), read_only: false }
        );
        assert_eq!(m.dependencies.len(), 2);
        assert_eq!(m.dependencies[0].size, Some(4096));
        assert_eq!(m.dependencies[0].image_digest().unwrap(), ID.replace("sha512-", "sha512:"));
        assert_eq!(
            m.dependencies[1],
            Dependency { image_name: "example.com/other".into(), image_id: None, labels: vec![], size: None }
        );
        assert_eq!(m.path_whitelist.len(), 2);
        assert_eq!(m.annotations.len(), 3);
    }

    #[test]
    fn minimal_manifest_without_app() {
        let m =
            parse_manifest(br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","app":null,"labels":null}"#)
                .unwrap();
        assert_eq!(m.app, None);
        assert!(m.labels.is_empty() && m.dependencies.is_empty() && m.annotations.is_empty());
    }

    #[test]
    fn exec_may_be_relative_or_absent() {
        // The spec: exec is optional and a name without a slash is looked up in PATH.
        let m = parse_manifest(br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","app":{"exec":["nginx"],"user":"0","group":"0"}}"#).unwrap();
        assert_eq!(m.app.unwrap().exec, ["nginx"]);
        let m = parse_manifest(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","app":{"user":"0","group":"0"}}"#,
        )
        .unwrap();
        assert!(m.app.unwrap().exec.is_empty());
    }

    /// Replace `from` by `to` in the full example and expect an error naming `field`.
    fn refuses(from: &str, to: &str, field: &str) {
        let text = full();
        assert!(text.contains(from), "{from}");
        let err = parse_manifest(text.replacen(from, to, 1).as_bytes()).unwrap_err();
        match &err {
            AppcError::InvalidManifest { field: f, .. } => assert_eq!(f, field, "{err}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        refuses(r#""acKind": "ImageManifest""#, r#""acKind": "PodManifest""#, "acKind");
        refuses(r#""acVersion": "0.8.11""#, r#""acVersion": "eight""#, "acVersion");
        refuses(r#""acVersion": "0.8.11""#, r#""acVersion": "0.0.0""#, "acVersion");
        refuses(r#""acVersion": "0.8.11","#, "", "acVersion");
        refuses(r#""name": "example.com/reduce-worker""#, r#""name": "Example.com""#, "name");
        refuses(r#""name": "version""#, r#""name": "Version""#, "labels[0].name");
        refuses(r#""name": "version""#, r#""name": "name""#, "labels[0].name");
        refuses(r#""name": "version""#, r#""name": "arch""#, "labels[1]");
        refuses(r#""value": "amd64""#, r#""value": "x86_64""#, "labels");
        refuses(r#"{"name": "os", "value": "linux"}"#, r#"{"name": "os", "value": "plan9"}"#, "labels");
        refuses(r#""user": "100","#, "", "app.user");
        refuses(r#""group": "300""#, r#""group": """#, "app.group");
        refuses(r#""/opt/work""#, r#""opt/work""#, "app.workingDirectory");
        refuses(r#""exec": ["/usr/bin/reduce-worker", "--quiet"]"#, r#""exec": "/bin/sh""#, "app.exec");
        refuses(r#""exec": ["/usr/bin/reduce-worker", "--quiet"]"#, r#""exec": ["", "x"]"#, "app.exec[0]");
        refuses(r#""REDUCE_WORKER_DEBUG""#, r#""1BAD""#, "app.environment[0].name");
        refuses(r#""port": 4000"#, r#""port": 0"#, "app.ports[0].port");
        refuses(r#""port": 4000"#, r#""port": 70000"#, "app.ports[0].port");
        refuses(r#""port": 4000"#, r#""port": "4000""#, "app.ports[0].port");
        refuses(r#""port": 8000"#, r#""port": 65530"#, "app.ports[1].count");
        refuses(r#""name": "health""#, r#""name": "Health""#, "app.ports[0].name");
        refuses(r#", "protocol": "tcp""#, "", "app.ports[0].protocol");
        refuses(r#""path": "/var/lib/work""#, r#""path": """#, "app.mountPoints[0].path");
        refuses(r#""name": "work""#, r#""name": "work.dir""#, "app.mountPoints[0].name");
        refuses(r#""readOnly": false"#, r#""readOnly": "no""#, "app.mountPoints[0].readOnly");
        refuses(r#""imageName": "example.com/other""#, r#""imageName": "Other""#, "dependencies[1].imageName");
        refuses(&format!(r#""imageID": "{ID}""#), r#""imageID": "sha256-abc""#, "dependencies[0].imageID");
        refuses(&format!(r#""imageID": "{ID}""#), r#""imageID": "sha512-abc""#, "dependencies[0].imageID");
        refuses(r#""value": "canary""#, r#""value": 1"#, "dependencies[0].labels[1].value");
        refuses(r#""size": 4096"#, r#""size": -1"#, "dependencies[0].size");
        refuses(r#""/usr/bin/map-reduce-worker""#, r#""usr/bin""#, "pathWhitelist[1]");
        refuses(r#""name": "authors""#, r#""name": "created""#, "annotations[1]");
        refuses(r#""name": "authors""#, r#""name": "Authors""#, "annotations[0].name");
        refuses(r#""https://example.com/""#, r#""example.com""#, "annotations[2].value");
        refuses(r#""2014-10-27T19:32:58.203Z""#, r#""yesterday""#, "annotations[1].value");
    }

    #[test]
    fn not_json_or_not_an_object() {
        assert!(matches!(parse_manifest(b"{"), Err(AppcError::InvalidManifest { .. })));
        assert!(matches!(parse_manifest(b"[]"), Err(AppcError::InvalidManifest { .. })));
    }

    #[test]
    fn dates() {
        for ok in ["2014-10-27T19:32:58Z", "2014-10-27T19:32:58.203+02:00", "2014-10-27t19:32:58-07:00"] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in ["2014-10-27", "2014-10-27T19:32:58", "2014-10-27T19:32:58.Z", "2014-10-27 19:32:58Z"] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["0.8.11", "1.0.0-alpha.1", "1.0.0+build.5", "0.0.1"] {
            assert!(check_semver(ok).is_ok(), "{ok}");
        }
        for bad in ["1.0", "v1.0.0", "1.0.0-", "0.0.0", "1..0", ""] {
            assert!(check_semver(bad).is_err(), "{bad}");
        }
    }
}
