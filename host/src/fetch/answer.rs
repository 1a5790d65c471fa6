//! A handler's answer (the WIT `image-record` it returns), checked and turned into the
//! store's [`ImageRecord`]. The handler is not trusted: every digest is parsed, and the
//! point it claims must be the one it was asked for.

use std::collections::BTreeMap;

use super::FetchError;
use crate::cimd::DistributionPoint;
use crate::sandbox::bindings_types as wit;
use crate::sandbox::{WitImageFormat, WitImageRecord};
use crate::store::{
    Dependency, Descriptor, Digest, HandlerIdentity, ImageFormat, ImageRecord, Layer, Platform, RuntimeConfig,
};

pub(super) fn image_record(
    asked: &DistributionPoint,
    r: WitImageRecord,
    handler: HandlerIdentity,
) -> Result<ImageRecord, FetchError> {
    let bad = |reason: String| FetchError::BadRecord { handler: handler.scheme.clone(), reason };
    let canonical: DistributionPoint =
        r.canonical.parse().map_err(|e| bad(format!("its canonical point is invalid: {e}")))?;
    if !asked.refines(&canonical) {
        return Err(bad(format!("it was asked for {asked} but answered for {canonical}")));
    }
    let digest = |d: &str| d.parse::<Digest>().map_err(|e| bad(e.to_string()));
    let descriptor = |d: wit::Descriptor| -> Result<Descriptor, FetchError> {
        Ok(Descriptor {
            digest: digest(&d.digest)?,
            media_type: d.media_type,
            size: d.size,
            annotations: d.annotations.into_iter().collect(),
        })
    };
    let layers = r
        .layers
        .into_iter()
        .map(|l| {
            Ok(Layer {
                blob: descriptor(l.blob)?,
                diff_id: l.diff_id.as_deref().map(digest).transpose()?,
                assembled: None,
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    let dependencies = r
        .dependencies
        .into_iter()
        .map(|d| {
            Ok(Dependency {
                name: d.name,
                labels: d.labels.into_iter().collect(),
                image_id: d.image_id.as_deref().map(digest).transpose()?,
                size: d.size,
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    let rt = r.runtime;
    Ok(ImageRecord {
        canonical: canonical.to_string(),
        format: match r.format {
            WitImageFormat::Oci => ImageFormat::Oci,
            WitImageFormat::Docker => ImageFormat::Docker,
            WitImageFormat::Appc => ImageFormat::Appc,
        },
        manifest: descriptor(r.manifest)?,
        config: r.config.map(descriptor).transpose()?,
        layers,
        dependencies,
        platform: r.platform.map(|p| Platform { os: p.os, architecture: p.architecture, variant: p.variant }),
        runtime: RuntimeConfig {
            entrypoint: rt.entrypoint,
            cmd: rt.cmd,
            env: rt.env,
            working_dir: rt.working_dir,
            user: rt.user,
            group: rt.group,
            exposed_ports: rt.exposed_ports,
            stop_signal: rt.stop_signal,
            labels: rt.labels.into_iter().collect::<BTreeMap<_, _>>(),
        },
        annotations: r.annotations.into_iter().collect(),
        handler,
    })
}
