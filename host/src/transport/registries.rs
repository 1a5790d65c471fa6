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
//! token-realms = ["auth.example.com"] # other hosts its Bearer token realm may name
//! lookaside = "https://sigs.example.com/sigs" # simple-signing signatures (or file:///…)
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
    /// Hosts its `WWW-Authenticate` token realm may name besides its own site (see
    /// [`realm_allowed`]).
    #[serde(default)]
    pub token_realms: Vec<String>,
    /// Where containers' simple-signing signatures of its images are kept (a "lookaside"
    /// as in containers' registries.d): `https://…`, `http://…` or `file:///…`. The
    /// signatures of `host/repo` manifest `sha256:<hex>` are
    /// `<lookaside>/<repo>@sha256=<hex>/signature-<n>`, n = 1, 2, …
    #[serde(default)]
    pub lookaside: Option<String>,
}

/// Whether a registry at `registry` (`host[:port]`) may send berth, with its
/// credentials, to the token realm at `realm` (`host[:port]`): the same host (any port),
/// a host of the registry's own site (the registry's host without its first label, when
/// that still has two labels: `registry-1.docker.io` → `auth.docker.io`), or a host the
/// user listed in the registry's `token-realms`. Anything else could be a registry
/// steering credentials and requests to a host the user never chose.
pub fn realm_allowed(config: &RegistriesConfig, registry: &str, realm: &str) -> bool {
    let host = |a: &str| -> String {
        let h = match a.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
            _ => a,
        };
        h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
    };
    let (registry_host, realm_host) = (host(registry), host(realm));
    if registry_host == realm_host {
        return true;
    }
    let is_name = registry_host.bytes().any(|b| b.is_ascii_alphabetic()) && !registry_host.contains(':');
    if let Some((_, site)) = registry_host.split_once('.')
        && is_name
        && site.contains('.')
        && (realm_host == site || realm_host.ends_with(&format!(".{site}")))
    {
        return true;
    }
    config
        .registry(registry)
        .or_else(|| config.registry(&registry_host))
        .is_some_and(|r| r.token_realms.iter().any(|t| host(t) == realm_host))
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
            Err(source) => return Err(TransportError::File { action: "reading", path: file.to_path_buf(), source }),
        };
        Self::parse(&text, file).map(Some)
    }

    /// Parse and check the text of one registries.toml; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<RegistriesConfig, TransportError> {
        let cfg: RegistriesConfig = toml::from_str(text)
            .map_err(|e| TransportError::ConfigSyntax { path: file.to_path_buf(), source: Box::new(e) })?;
        for r in &cfg.registries {
            if r.prefix.is_empty() || r.prefix.contains("://") {
                return Err(TransportError::Config {
                    path: file.to_path_buf(),
                    reason: format!("prefix {:?} must be a registry host[:port]", r.prefix),
                });
            }
            if let Some(l) = &r.lookaside
                && !["https://", "http://", "file:///"].iter().any(|s| l.starts_with(s))
            {
                return Err(TransportError::Config {
                    path: file.to_path_buf(),
                    reason: format!("lookaside {l:?} of {:?} must be an https://, http:// or file:/// URL", r.prefix),
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
    fn a_token_realm_must_be_the_registrys_own_site_or_listed() {
        let none = RegistriesConfig::default();
        assert!(realm_allowed(&none, "registry-1.docker.io", "auth.docker.io"));
        assert!(realm_allowed(&none, "127.0.0.1:5000", "127.0.0.1:5001"));
        assert!(realm_allowed(&none, "r.example.com", "example.com"));
        assert!(!realm_allowed(&none, "r.example.com", "evil.com"));
        assert!(!realm_allowed(&none, "r.example.com", "example.com.evil.com"));
        assert!(!realm_allowed(&none, "ghcr.io", "evil.io"), "no site is a bare top-level domain");
        assert!(!realm_allowed(&none, "127.0.0.1:5000", "127.0.0.2:5000"), "addresses have no site");
        let cfg: RegistriesConfig =
            toml::from_str("[[registry]]\nprefix = \"127.0.0.1:5000\"\ntoken-realms = [\"127.0.0.2\"]\n").unwrap();
        assert!(realm_allowed(&cfg, "127.0.0.1:5000", "127.0.0.2:8080"));
    }

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
        let err = RegistriesConfig::load(&[f]).unwrap_err();
        // The file in the message, the parser's finding in its source (printed after it).
        let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
        assert!(err.to_string().contains("r.toml") && source.contains("mirrors-by-digest"), "{err}: {source}");
    }
}
