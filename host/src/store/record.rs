//! The image record: what a handler resolved a distribution point to, as stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Oci,
    Docker,
    Appc,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
            ImageFormat::Appc => "appc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub blob: Descriptor,
    pub diff_id: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub image_id: Option<Digest>,
    pub size: Option<u64>,
}

/// `name,label=value,…`, as appc writes a dependency.
impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (k, v) in &self.labels {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Which component produced a record, so a decision can be traced to code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerIdentity {
    pub scheme: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    pub canonical: String,
    pub format: ImageFormat,
    pub manifest: Descriptor,
    pub config: Option<Descriptor>,
    pub layers: Vec<Layer>,
    pub dependencies: Vec<Dependency>,
    pub platform: Option<Platform>,
    pub runtime: RuntimeConfig,
    pub annotations: BTreeMap<String, String>,
    pub handler: HandlerIdentity,
}

impl ImageRecord {
    /// Every blob the image needs: manifest, config, layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.manifest).chain(self.config.iter()).chain(self.layers.iter().map(|l| &l.blob))
    }

    /// Bytes of all its blobs, as stored.
    pub fn size(&self) -> u64 {
        self.blobs().map(|d| d.size).sum()
    }

    /// appc names an image by the sha512 of its decompressed ACI, as `sha512-<hex>`
    /// (the diff ID of its one layer); `None` for other formats.
    pub fn appc_image_id(&self) -> Option<String> {
        if self.format != ImageFormat::Appc {
            return None;
        }
        let id = self.layers.first()?.diff_id.as_ref()?;
        Some(format!("{}-{}", id.algorithm().name(), id.hex()))
    }
}
