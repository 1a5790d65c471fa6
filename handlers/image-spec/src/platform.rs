//! Choosing one manifest of an index for a platform, as container engines do.

use std::fmt;

use crate::{Descriptor, SpecError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// arm64 without a variant means v8, as in containerd's platform normaliser.
fn normalized_variant<'a>(architecture: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (architecture, variant) {
        ("arm64", None) => Some("v8"),
        (_, v) => v,
    }
}

fn matches(wanted: &Platform, os: &str, architecture: &str, variant: Option<&str>) -> bool {
    if wanted.os != os || wanted.architecture != architecture {
        return false;
    }
    match wanted.variant.as_deref() {
        None => true,
        Some(v) => normalized_variant(architecture, Some(v)) == normalized_variant(architecture, variant),
    }
}

/// Pick the manifest for `wanted` among `candidates`. A descriptor without a platform
/// matches only when it is the single candidate (an image layout's plain ref).
pub fn select_platform<'a>(candidates: &'a [Descriptor], wanted: &Platform) -> Result<&'a Descriptor, SpecError> {
    if let [only] = candidates
        && only.platform.is_none()
    {
        return Ok(only);
    }
    candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| matches(wanted, &p.os, &p.architecture, p.variant.as_deref())))
        .ok_or_else(|| SpecError::NoMatchingPlatform { wanted: wanted.to_string(), offered: offered(candidates) })
}

fn offered(candidates: &[Descriptor]) -> String {
    let list: Vec<String> = candidates
        .iter()
        .map(|d| match &d.platform {
            Some(p) => Platform { os: p.os.clone(), architecture: p.architecture.clone(), variant: p.variant.clone() }
                .to_string(),
            None => format!("(no platform: {})", d.digest),
        })
        .collect();
    if list.is_empty() { "nothing".to_string() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::DescriptorPlatform;

    fn desc(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: crate::media_type::OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}"),
            size: 1,
            annotations: Default::default(),
            platform: Some(DescriptorPlatform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    fn want(arch: &str, variant: Option<&str>) -> Platform {
        Platform { os: "linux".into(), architecture: arch.into(), variant: variant.map(Into::into) }
    }

    #[test]
    fn picks_the_matching_architecture() {
        let list = [desc("amd64", None), desc("arm64", Some("v8"))];
        assert_eq!(select_platform(&list, &want("arm64", None)).unwrap().digest, "sha256:arm64");
        assert_eq!(select_platform(&list, &want("amd64", None)).unwrap().digest, "sha256:amd64");
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        let list = [desc("arm64", None)];
        assert!(select_platform(&list, &want("arm64", Some("v8"))).is_ok());
        let list = [desc("arm", Some("v6")), desc("arm", Some("v7"))];
        assert_eq!(select_platform(&list, &want("arm", Some("v7"))).unwrap().digest, "sha256:arm");
    }

    #[test]
    fn no_match_lists_what_the_index_offers() {
        let list = [desc("amd64", None), desc("s390x", None)];
        let err = select_platform(&list, &want("riscv64", None)).unwrap_err().to_string();
        assert!(err.contains("linux/riscv64") && err.contains("linux/amd64, linux/s390x"), "{err}");
    }
}
