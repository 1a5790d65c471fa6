//! Media types of the OCI image spec and Docker's image manifest v2 schema 2.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// What a manifest-level media type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    OciIndex,
    OciManifest,
    DockerList,
    DockerManifest,
}

impl DocumentKind {
    pub fn is_index(self) -> bool {
        matches!(self, DocumentKind::OciIndex | DocumentKind::DockerList)
    }

    pub fn is_docker(self) -> bool {
        matches!(self, DocumentKind::DockerList | DocumentKind::DockerManifest)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            DocumentKind::OciIndex => OCI_INDEX,
            DocumentKind::OciManifest => OCI_MANIFEST,
            DocumentKind::DockerList => DOCKER_LIST,
            DocumentKind::DockerManifest => DOCKER_MANIFEST,
        }
    }
}

/// Classify the media type of a manifest or index; anything else (schema 1, artifacts,
/// unknown types) is unsupported and named in the error.
pub fn classify(media_type: &str) -> Result<DocumentKind, crate::SpecError> {
    match media_type {
        OCI_INDEX => Ok(DocumentKind::OciIndex),
        OCI_MANIFEST => Ok(DocumentKind::OciManifest),
        DOCKER_LIST => Ok(DocumentKind::DockerList),
        DOCKER_MANIFEST => Ok(DocumentKind::DockerManifest),
        other => Err(crate::SpecError::UnsupportedMediaType {
            what: if other == DOCKER_SCHEMA1 || other == DOCKER_SCHEMA1_SIGNED {
                "a manifest (Docker schema 1 is deprecated; re-push the image as schema 2 or OCI)"
            } else {
                "a manifest or index"
            },
            media_type: other.to_string(),
        }),
    }
}

pub fn is_layer_media_type(media_type: &str) -> bool {
    LAYER_TYPES.contains(&media_type)
}

pub fn is_config_media_type(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}
