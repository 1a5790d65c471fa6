//! Image references as the distribution spec names them.

use berth_guest::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Docker,
    Oci,
}

const DOCKER_HUB: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` of the registry's API.
    pub registry: String,
    /// The repository name, `a/b/c`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parse the data of a `cimd:docker:` or `cimd:oci:` point.
    pub fn parse(data: &str, flavor: Flavor) -> Result<Reference, Error> {
        let bad = |why: &str| Error::InvalidInput(format!("reference {data:?}: {why}"));
        let (name_part, digest) = match data.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (data, None),
        };
        if let Some(d) = &digest {
            berth_image_spec::parse_digest(d).map_err(|e| bad(&e.to_string()))?;
        }
        let (first, rest) = name_part.split_once('/').unwrap_or(("", name_part));
        let has_host = !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
        let (mut registry, mut path) = if has_host {
            (first.to_ascii_lowercase(), rest.to_string())
        } else if flavor == Flavor::Docker {
            (DOCKER_HUB.to_string(), name_part.to_string())
        } else {
            return Err(bad("an oci reference names its registry host (host/name:tag)"));
        };
        let mut tag = None;
        if let Some((p, t)) = path.rsplit_once(':')
            && !t.contains('/')
        {
            tag = Some(t.to_string());
            path = p.to_string();
        }
        if flavor == Flavor::Docker {
            if registry == "docker.io" || registry == "index.docker.io" {
                registry = DOCKER_HUB.to_string();
            }
            if registry == DOCKER_HUB && !path.contains('/') {
                path = format!("library/{path}");
            }
            if tag.is_none() && digest.is_none() {
                tag = Some("latest".to_string());
            }
        }
        if path.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("name a tag (:tag) or a digest (@sha256:…)"));
        }
        Ok(Reference { registry, name: path, tag, digest })
    }

    /// What to ask `/manifests/` for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).expect("a tag or a digest")
    }

    pub fn api(&self, tail: &str) -> String {
        format!("https://{}/v2/{}/{tail}", self.registry, self.name)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn docker_defaults() {
        let r = Reference::parse("busybox", Flavor::Docker).unwrap();
        assert_eq!(r.to_string(), "registry-1.docker.io/library/busybox:latest");
        let r = Reference::parse("docker.io/me/app:v1", Flavor::Docker).unwrap();
        assert_eq!(r.to_string(), "registry-1.docker.io/me/app:v1");
        let r = Reference::parse(&format!("localhost:5000/a/b@{D}"), Flavor::Docker).unwrap();
        assert_eq!((r.registry.as_str(), r.name.as_str(), r.tag.as_deref()), ("localhost:5000", "a/b", None));
        assert_eq!(r.manifest_reference(), D);
    }

    #[test]
    fn oci_is_plain() {
        assert!(Reference::parse("busybox:1", Flavor::Oci).is_err());
        assert!(Reference::parse("r.io/app", Flavor::Oci).is_err());
        let r = Reference::parse("127.0.0.1:5000/app:v2", Flavor::Oci).unwrap();
        assert_eq!(r.api("manifests/v2"), "https://127.0.0.1:5000/v2/app/manifests/v2");
    }
}
