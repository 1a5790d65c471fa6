//! Friendly forms of distribution points, mapped onto canonical ones.

use std::path::{Path, PathBuf};

use super::point::{clean_absolute, docker_reference, escape};
use super::{CimdError, DistributionPoint, PointKind};

/// Map what a user typed onto a canonical distribution point. Relative paths are taken
/// from `cwd`; local paths that exist are resolved through symlinks so that one layout
/// has one canonical point.
///
/// Accepted: `cimd:…`; `oci-layout:PATH[:REF]` and `oci-archive:PATH[:REF]`;
/// `docker://NAME[:TAG|@DIGEST]` and `oci://HOST/NAME[:TAG|@DIGEST]`; `appc:NAME[:VERSION]`
/// (appc discovery); a path to an image
/// layout directory, an `.aci` file, or an `http(s)://…/x.aci` URL; and a bare
/// `NAME[:TAG]` (Docker's naming rules).
pub fn parse_friendly(input: &str, cwd: &Path) -> Result<DistributionPoint, CimdError> {
    if input.starts_with("cimd:") {
        return input.parse();
    }
    if let Some(rest) = input.strip_prefix("oci-layout:").or_else(|| input.strip_prefix("oci-archive:")) {
        let (path, reference) = split_path_ref(rest);
        return DistributionPoint::oci_layout(&absolute(path, cwd)?, reference);
    }
    if let Some(rest) = input.strip_prefix("docker://") {
        return DistributionPoint::new(PointKind::Docker, &docker_reference(rest));
    }
    if let Some(rest) = input.strip_prefix("appc:") {
        // rkt's form: NAME[:VERSION], the version a label.
        return match rest.rsplit_once(':') {
            Some((name, version)) if !version.contains('/') => {
                DistributionPoint::new(PointKind::Appc, &format!("{name}?version={}", escape(version)))
            }
            _ => DistributionPoint::new(PointKind::Appc, rest),
        };
    }
    if let Some(rest) = input.strip_prefix("oci://") {
        return DistributionPoint::new(PointKind::Oci, rest);
    }
    if (input.starts_with("https://") || input.starts_with("http://")) && input.ends_with(".aci") {
        return DistributionPoint::new(PointKind::AciArchive, &escape(input));
    }
    let looks_like_path = input.starts_with('/') || input.starts_with("./") || input.starts_with("../");
    let local = cwd.join(input);
    if input.ends_with(".aci") && (looks_like_path || local.is_file()) {
        let path = absolute(input, cwd)?;
        return DistributionPoint::new(PointKind::AciArchive, &escape(&format!("file://{}", path.display())));
    }
    if looks_like_path || local.join("oci-layout").is_file() {
        return DistributionPoint::oci_layout(&absolute(input, cwd)?, None);
    }
    DistributionPoint::new(PointKind::Docker, &docker_reference(input))
}

/// `PATH[:REF]`: the ref is what follows the last ':' when it holds no '/'.
fn split_path_ref(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((path, r)) if !path.is_empty() && !r.is_empty() && !r.contains('/') => (path, Some(r)),
        _ => (s, None),
    }
}

fn absolute(path: &str, cwd: &Path) -> Result<PathBuf, CimdError> {
    if path.is_empty() {
        return Err(CimdError::Path { path: path.into(), reason: "empty path".into() });
    }
    let joined = cwd.join(path);
    if let Ok(real) = joined.canonicalize() {
        return Ok(real);
    }
    clean_absolute(&joined.to_string_lossy()).map_err(|reason| CimdError::Path { path: path.into(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str) -> String {
        parse_friendly(input, Path::new("/work")).unwrap().to_string()
    }

    #[test]
    fn docker_names_get_docker_defaults() {
        assert_eq!(canon("docker://busybox"), "cimd:docker:v=0:registry-1.docker.io/library/busybox:latest");
        assert_eq!(canon("busybox:1.36"), "cimd:docker:v=0:registry-1.docker.io/library/busybox:1.36");
        assert_eq!(canon("docker://docker.io/me/app"), "cimd:docker:v=0:registry-1.docker.io/me/app:latest");
        assert_eq!(canon("localhost:5000/app:v1"), "cimd:docker:v=0:localhost:5000/app:v1");
        assert_eq!(canon("quay.io/org/app"), "cimd:docker:v=0:quay.io/org/app:latest");
    }

    #[test]
    fn layout_forms_become_file_urls() {
        assert_eq!(canon("oci-layout:/srv/l:v2"), "cimd:oci-layout:v=0:file%3A%2F%2F%2Fsrv%2Fl?ref=v2");
        assert_eq!(canon("oci-archive:rel/img.tar"), "cimd:oci-layout:v=0:file%3A%2F%2F%2Fwork%2Frel%2Fimg.tar");
        assert_eq!(canon("./x/../l"), "cimd:oci-layout:v=0:file%3A%2F%2F%2Fwork%2Fl");
    }

    #[test]
    fn appc_names_take_an_optional_version() {
        assert_eq!(canon("appc:example.com/app:1.0"), "cimd:appc:v=0:example.com/app?version=1.0");
        assert_eq!(canon("appc:example.com/app"), "cimd:appc:v=0:example.com/app");
    }

    #[test]
    fn aci_files_and_urls() {
        assert_eq!(canon("./app.aci"), "cimd:aci-archive:v=0:file%3A%2F%2F%2Fwork%2Fapp.aci");
        assert_eq!(canon("https://example.com/app.aci"), "cimd:aci-archive:v=0:https%3A%2F%2Fexample.com%2Fapp.aci");
    }
}
