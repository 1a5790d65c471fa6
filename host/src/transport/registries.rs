//! `registries.toml`: per-registry mirrors, insecure and blocked flags, in the spirit of
//! containers' `registries.conf`. Read from `/etc/berth/registries.toml`, then the user's
//! `~/.config/berth/registries.toml` (its entries replace the system's for a prefix).
//!
//! ```toml
//! [[registry]]
//! prefix = "registry-1.docker.io"    # a registry host[:port]
//! insecure = false                   # allow plain HTTP and unverified TLS
//! blocked = false                    # refuse every fetch from it
//! mirror-by-digest-only = true       # mirrors serve only digest-addressed requests
//! [[registry.mirror]]
//! location = "mirror.internal:5000"
//! insecure = true
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TransportError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    #[serde(default, rename = "registry")]
    pub registries: Vec<Registry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Registry {
    pub prefix: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub mirror_by_digest_only: bool,
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

pub fn default_registries_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/berth/registries.toml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = config_home {
        files.push(dir.join("berth/registries.toml"));
    }
    files
}

impl RegistriesConfig {
    /// Read and merge `files` in order; later files replace earlier entries per prefix.
    pub fn load(files: &[PathBuf]) -> Result<RegistriesConfig, TransportError> {
        let mut merged = RegistriesConfig::default();
        for file in files {
            let Some(cfg) = Self::read(file)? else { continue };
            for r in cfg.registries {
                merged.registries.retain(|e| e.prefix != r.prefix);
                merged.registries.push(r);
            }
        }
        Ok(merged)
    }

    fn read(file: &Path) -> Result<Option<RegistriesConfig>, TransportError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TransportError::Config { path: file.to_path_buf(), reason: e.to_string() }),
        };
        Self::parse(&text, file).map(Some)
    }

    /// Parse and check the text of one registries.toml; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<RegistriesConfig, TransportError> {
        let cfg: RegistriesConfig = toml::from_str(text)
            .map_err(|e| TransportError::Config { path: file.to_path_buf(), reason: e.to_string() })?;
        for r in &cfg.registries {
            if r.prefix.is_empty() || r.prefix.contains("://") {
                return Err(TransportError::Config {
                    path: file.to_path_buf(),
                    reason: format!("prefix {:?} must be a registry host[:port]", r.prefix),
                });
            }
        }
        Ok(cfg)
    }

    pub fn registry(&self, host: &str) -> Option<&Registry> {
        self.registries.iter().find(|r| r.prefix.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_replace_earlier_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system.toml");
        let user = dir.path().join("user.toml");
        std::fs::write(&system, "[[registry]]\nprefix = \"a.io\"\nblocked = true\n[[registry]]\nprefix = \"b.io\"\n")
            .unwrap();
        std::fs::write(
            &user,
            "[[registry]]\nprefix = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m:5000\"\ninsecure = true\n",
        )
        .unwrap();
        let cfg = RegistriesConfig::load(&[system, user, dir.path().join("missing.toml")]).unwrap();
        let a = cfg.registry("a.io").unwrap();
        assert!(!a.blocked && a.mirror_by_digest_only);
        assert_eq!(a.mirrors[0].location, "m:5000");
        assert!(cfg.registry("b.io").is_some());
    }

    #[test]
    fn a_typo_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.toml");
        std::fs::write(&f, "[[registry]]\nprefix = \"a.io\"\nmirrors-by-digest = true\n").unwrap();
        let err = RegistriesConfig::load(&[f]).unwrap_err().to_string();
        assert!(err.contains("r.toml") && err.contains("mirrors-by-digest"), "{err}");
    }
}
