//! The JSON documents of an image, with the checks the spec requires of a reader.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::media_type::{self, DocumentKind};
use crate::{SpecError, parse_digest};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DescriptorPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ExecConfig>,
    pub rootfs: RootFs,
}

/// The `config` object of an image config: "the execution parameters which SHOULD be
/// used as a base when running a container using the image".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::InvalidDocument { what, reason: reason.into() }
}

fn check_descriptor(what: &'static str, d: &Descriptor) -> Result<(), SpecError> {
    parse_digest(&d.digest)?;
    if d.media_type.is_empty() {
        return Err(invalid(what, format!("descriptor {} has no mediaType", d.digest)));
    }
    Ok(())
}

/// The document's own `mediaType`, when present, "MUST" match the descriptor that
/// pointed at it; a mismatch is how a swapped blob would show.
fn check_declared_type(what: &'static str, declared: Option<&str>, expected: DocumentKind) -> Result<(), SpecError> {
    match declared {
        Some(t) if t != expected.media_type() => {
            Err(invalid(what, format!("mediaType {t:?} does not match its descriptor's {:?}", expected.media_type())))
        }
        _ => Ok(()),
    }
}

pub fn parse_index(bytes: &[u8], kind: Option<DocumentKind>) -> Result<Index, SpecError> {
    let index: Index = serde_json::from_slice(bytes).map_err(|e| invalid("index", e.to_string()))?;
    if index.schema_version != 2 {
        return Err(invalid("index", format!("schemaVersion {} is not 2", index.schema_version)));
    }
    if let Some(kind) = kind {
        check_declared_type("index", index.media_type.as_deref(), kind)?;
    }
    for d in &index.manifests {
        check_descriptor("index", d)?;
    }
    Ok(index)
}

pub fn parse_manifest(bytes: &[u8], kind: DocumentKind) -> Result<Manifest, SpecError> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| invalid("manifest", e.to_string()))?;
    if manifest.schema_version != 2 {
        return Err(invalid("manifest", format!("schemaVersion {} is not 2", manifest.schema_version)));
    }
    check_declared_type("manifest", manifest.media_type.as_deref(), kind)?;
    check_descriptor("manifest", &manifest.config)?;
    if !media_type::is_config_media_type(&manifest.config.media_type) {
        return Err(SpecError::UnsupportedMediaType {
            what: "an image config (is this an artifact rather than an image?)",
            media_type: manifest.config.media_type.clone(),
        });
    }
    if manifest.config.size > crate::MAX_DOCUMENT_SIZE {
        return Err(invalid("manifest", format!("config of {} bytes", manifest.config.size)));
    }
    for layer in &manifest.layers {
        check_descriptor("manifest", layer)?;
        if !media_type::is_layer_media_type(&layer.media_type) {
            return Err(SpecError::UnsupportedMediaType { what: "a layer", media_type: layer.media_type.clone() });
        }
    }
    Ok(manifest)
}

pub fn parse_config(bytes: &[u8], layer_count: usize) -> Result<ImageConfig, SpecError> {
    let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| invalid("image config", e.to_string()))?;
    if config.rootfs.kind != "layers" {
        return Err(invalid("image config", format!("rootfs.type {:?} is not \"layers\"", config.rootfs.kind)));
    }
    if config.rootfs.diff_ids.len() != layer_count {
        return Err(invalid(
            "image config",
            format!("{} rootfs.diff_ids for {} layers in the manifest", config.rootfs.diff_ids.len(), layer_count),
        ));
    }
    for diff_id in &config.rootfs.diff_ids {
        parse_digest(diff_id)?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn manifest_json(config_type: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{config_type}","digest":"{D}","size":2}},"layers":[{{"mediaType":"{layer_type}","digest":"{D}","size":3}}]}}"#,
            media_type::OCI_MANIFEST
        )
    }

    #[test]
    fn parses_an_oci_manifest() {
        let json = manifest_json(media_type::OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar+gzip");
        let m = parse_manifest(json.as_bytes(), DocumentKind::OciManifest).unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, 3);
    }

    #[test]
    fn names_an_unknown_layer_media_type() {
        let json = manifest_json(media_type::OCI_CONFIG, "application/x-mystery");
        let err = parse_manifest(json.as_bytes(), DocumentKind::OciManifest).unwrap_err();
        assert!(err.to_string().contains("application/x-mystery"), "{err}");
    }

    #[test]
    fn refuses_an_artifact_config() {
        let json = manifest_json("application/vnd.example.sbom", "application/vnd.oci.image.layer.v1.tar");
        assert!(matches!(
            parse_manifest(json.as_bytes(), DocumentKind::OciManifest),
            Err(SpecError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn refuses_a_manifest_whose_media_type_disagrees_with_its_descriptor() {
        let json = manifest_json(media_type::OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar");
        assert!(parse_manifest(json.as_bytes(), DocumentKind::DockerManifest).is_err());
    }

    #[test]
    fn refuses_a_config_whose_diff_ids_do_not_match_the_layers() {
        let json = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#);
        assert!(parse_config(json.as_bytes(), 1).is_ok());
        assert!(parse_config(json.as_bytes(), 2).is_err());
    }

    #[test]
    fn reports_invalid_json() {
        let err = parse_index(b"{not json", None).unwrap_err();
        assert!(err.to_string().starts_with("invalid index document"), "{err}");
    }
}
