//! Facts for policy decisions, built from berth's own types.

use super::{DecisionPoint, LayerFacts, PointFacts, ResolvedFacts, RunFacts, VolumeFacts};
use crate::cimd::{DistributionPoint, PointKind, unescape};
use crate::run::{Network, RunSpec, capability_name};
use crate::store::ImageRecord;

/// The facts of a point: its type, and the host and name a scope is matched against.
pub fn point(p: &DistributionPoint) -> PointFacts {
    let (host, name) = match p.kind() {
        PointKind::Docker | PointKind::Oci => {
            let (host, rest) = p.data().split_once('/').unwrap_or((p.data(), ""));
            // The repository without its tag or digest.
            let repo = rest.split_once('@').map_or(rest, |(r, _)| r);
            let repo = match repo.rsplit_once(':') {
                Some((r, tag)) if !tag.contains('/') => r,
                _ => repo,
            };
            (Some(host.to_ascii_lowercase()), Some(repo.to_string()))
        }
        PointKind::Appc => {
            let name = p.data().split('?').next().unwrap_or_default();
            let host = name.split('/').next().map(str::to_string);
            (host, Some(name.to_string()))
        }
        PointKind::OciLayout | PointKind::AciArchive | PointKind::Other(_) => {
            let base = p.data().split('?').next().unwrap_or_default();
            let url = unescape(base).unwrap_or_else(|_| base.to_string());
            match url.strip_prefix("file://") {
                Some(path) => (None, Some(path.to_string())),
                None => {
                    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                    let (host, path) = after_scheme.split_once('/').unwrap_or((after_scheme, ""));
                    (Some(host.to_ascii_lowercase()), Some(path.to_string()))
                }
            }
        }
    };
    PointFacts { canonical: p.to_string(), kind: p.kind().name().to_string(), host, name }
}

/// The facts of a resolved image. `signed_by`: fingerprints of keys whose signatures
/// verified; `handler_source`: `builtin` or a drop-in's path.
pub fn resolved(
    p: &DistributionPoint,
    record: &ImageRecord,
    signed_by: Vec<String>,
    handler_source: &str,
) -> ResolvedFacts {
    ResolvedFacts {
        point: point(p),
        format: record.format.name().to_string(),
        manifest_digest: record.manifest.digest.to_string(),
        config_digest: record.config.as_ref().map(|c| c.digest.to_string()),
        layers: record
            .layers
            .iter()
            .map(|l| LayerFacts {
                digest: l.blob.digest.to_string(),
                media_type: l.blob.media_type.clone(),
                size: l.blob.size,
            })
            .collect(),
        total_size: record.size(),
        signed_by,
        handler_scheme: record.handler.scheme.clone(),
        handler_digest: record.handler.digest.to_string(),
        handler_source: handler_source.to_string(),
    }
}

/// The facts of a run about to start: `image` names what runs (a canonical point, or a
/// rootfs path), `configured_user` the user as the image or `--user` gave it (empty:
/// the numeric uid is shown).
pub fn run(image: &str, spec: &RunSpec, configured_user: &str) -> RunFacts {
    RunFacts {
        image: image.to_string(),
        user: if configured_user.is_empty() { spec.process.user.uid.to_string() } else { configured_user.to_string() },
        uid: spec.process.user.uid,
        capabilities: spec.capabilities.iter().filter_map(|c| capability_name(*c)).map(String::from).collect(),
        volumes: spec
            .volumes
            .iter()
            .map(|v| VolumeFacts {
                source: v.host.display().to_string(),
                target: v.container.clone(),
                read_only: v.read_only,
            })
            .collect(),
        network: match spec.network {
            Network::Host => "host".into(),
            Network::None => "none".into(),
        },
        read_only_rootfs: spec.read_only,
    }
}

/// (stage, subject) of a decision point, for logs and messages.
pub fn describe(point: &DecisionPoint) -> (&'static str, String) {
    match point {
        DecisionPoint::BeforeFetch(p) => ("before-fetch", p.canonical.clone()),
        DecisionPoint::AfterResolve(r) => ("after-resolve", format!("{} ({})", r.point.canonical, r.manifest_digest)),
        DecisionPoint::BeforeRun(r) => ("before-run", r.image.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_points_split_into_host_and_repository() {
        let p = DistributionPoint::new(PointKind::Docker, "Registry.lan:5000/team/app:v1").unwrap();
        let f = point(&p);
        assert_eq!((f.host.as_deref(), f.name.as_deref()), (Some("registry.lan:5000"), Some("team/app")));
        let p = DistributionPoint::new(
            PointKind::Oci,
            "r.io/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        )
        .unwrap();
        assert_eq!(point(&p).name.as_deref(), Some("app"));
    }
}
