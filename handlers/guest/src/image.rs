//! From parsed documents to the image record the host stores.

use berth_image_spec::{Descriptor, DocumentKind, ImageConfig, Manifest, Platform, SpecError};

use crate::Error;
use crate::berth::handler::types as wit;
use crate::exports::berth::handler::resolver::{ImageFormat, ImageRecord, Layer, ResolveOptions, RuntimeConfig};

/// Map a spec error onto the WIT error the user will read.
pub fn spec_error(e: SpecError) -> Error {
    match e {
        SpecError::UnsupportedMediaType { .. } => Error::Unsupported(e.to_string()),
        SpecError::NoMatchingPlatform { .. } => Error::NotFound(e.to_string()),
        _ => Error::InvalidInput(e.to_string()),
    }
}

pub fn wanted_platform(options: &ResolveOptions) -> Platform {
    Platform {
        os: options.platform.os.clone(),
        architecture: options.platform.architecture.clone(),
        variant: options.platform.variant.clone(),
    }
}

pub fn to_wit(d: &Descriptor) -> wit::Descriptor {
    wit::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The record of an OCI or Docker image: its manifest, config and layers, and the
/// runtime defaults of its config.
pub fn build_record(
    canonical: String,
    kind: DocumentKind,
    manifest_desc: &Descriptor,
    manifest: Manifest,
    config: ImageConfig,
) -> ImageRecord {
    let exec = config.config.clone().unwrap_or_default();
    ImageRecord {
        canonical,
        format: if kind.is_docker() { ImageFormat::Docker } else { ImageFormat::Oci },
        manifest: to_wit(manifest_desc),
        config: Some(to_wit(&manifest.config)),
        layers: manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(blob, diff_id)| Layer { blob: to_wit(blob), diff_id: Some(diff_id.clone()) })
            .collect(),
        dependencies: Vec::new(),
        platform: Some(wit::Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        }),
        runtime: RuntimeConfig {
            entrypoint: exec.entrypoint.unwrap_or_default(),
            cmd: exec.cmd.unwrap_or_default(),
            env: exec.env.unwrap_or_default(),
            working_dir: exec.working_dir.filter(|w| !w.is_empty()),
            user: exec.user.filter(|u| !u.is_empty()),
            group: None,
            exposed_ports: exec.exposed_ports.unwrap_or_default().into_keys().collect(),
            stop_signal: exec.stop_signal,
            labels: exec.labels.unwrap_or_default().into_iter().collect(),
        },
        annotations: manifest.annotations.into_iter().collect(),
    }
}
