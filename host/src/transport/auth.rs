//! Registry credentials, read from the files other container tools write, and the
//! Bearer token challenge flow. Only the host ever sees a password or a token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::TransportError;

/// A username and password for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential {{ username: {:?}, password: <redacted> }}", self.username)
    }
}

impl Credential {
    pub fn basic_header(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.username, self.password)))
    }
}

#[derive(Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// `https://index.docker.io/v1/` and `docker.io` name Docker Hub's registry host.
pub fn normalize_registry(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
        _ => host,
    }
}

/// The auth files berth reads, first match wins: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
/// `~/.docker/config.json`.
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        files.push(PathBuf::from(&h).join(".config/containers/auth.json"));
        files.push(PathBuf::from(&h).join(".docker/config.json"));
    }
    files
}

/// Credentials by registry host.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
}

impl Credentials {
    /// Read `files` in order; a host's first entry wins. Missing files are skipped.
    pub fn load(files: &[PathBuf]) -> Result<Credentials, TransportError> {
        let mut by_host = HashMap::new();
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(TransportError::File { action: "reading", path: file.clone(), source }),
            };
            for (host, credential) in Self::parse(&text, file)? {
                by_host.entry(host).or_insert(credential);
            }
        }
        Ok(Credentials { by_host })
    }

    /// Only `credential`, for `host`: to check credentials before saving them.
    pub fn only(host: &str, credential: Credential) -> Credentials {
        Credentials { by_host: HashMap::from([(normalize_registry(host), credential)]) }
    }

    /// The (registry host, credential) pairs of one auth file's text, in no particular
    /// order; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Vec<(String, Credential)>, TransportError> {
        let parsed: AuthFile = serde_json::from_str(text)
            .map_err(|source| TransportError::AuthFileSyntax { path: file.to_path_buf(), source })?;
        let mut out = Vec::new();
        for (key, entry) in parsed.auths {
            let Some(auth) = entry.auth else { continue };
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
            let Some((username, password)) = decoded else {
                return Err(TransportError::AuthEntry { path: file.to_path_buf(), key });
            };
            out.push((normalize_registry(&key), Credential { username, password }));
        }
        Ok(out)
    }

    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(&normalize_registry(host))
    }
}

/// Add or replace `host`'s credential in `file` (creating it 0600), keeping other keys.
pub fn store_credential(file: &Path, host: &str, cred: &Credential) -> Result<(), TransportError> {
    let mut parsed = read_auth_file(file)?.unwrap_or_default();
    let auth = STANDARD.encode(format!("{}:{}", cred.username, cred.password));
    parsed.auths.insert(normalize_registry(host), AuthEntry { auth: Some(auth), other: Default::default() });
    write_private(file, &parsed).map_err(|source| TransportError::File {
        action: "writing",
        path: file.to_path_buf(),
        source,
    })
}

/// Remove `host`'s credential from `file`; returns whether there was one.
pub fn remove_credential(file: &Path, host: &str) -> Result<bool, TransportError> {
    let Some(mut parsed) = read_auth_file(file)? else { return Ok(false) };
    let key = normalize_registry(host);
    let before = parsed.auths.len();
    parsed.auths.retain(|k, _| normalize_registry(k) != key);
    if parsed.auths.len() == before {
        return Ok(false);
    }
    write_private(file, &parsed).map_err(|source| TransportError::File {
        action: "writing",
        path: file.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// An auth file, or `None` when it does not exist.
fn read_auth_file(file: &Path) -> Result<Option<AuthFile>, TransportError> {
    match std::fs::read_to_string(file) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|source| TransportError::AuthFileSyntax { path: file.to_path_buf(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TransportError::File { action: "reading", path: file.to_path_buf(), source }),
    }
}

fn write_private(file: &Path, value: &AuthFile) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::Builder::new().permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).tempfile_in(dir)?;
    tmp.write_all(serde_json::to_string_pretty(value).expect("auth files serialize").as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// The parameters of a `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parse `Bearer realm="…",service="…",scope="…"` (quoted values may hold commas).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key, value.trim().to_string());
    }
    Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example.com/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#).unwrap().scheme, "basic");
    }

    #[test]
    fn credentials_round_trip_through_an_auth_file_and_redact() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"credHelpers":{}}"#).unwrap();
        let cred = Credential { username: "me".into(), password: "s3cret".into() };
        store_credential(&file, "127.0.0.1:5000", &cred).unwrap();
        let loaded = Credentials::load(std::slice::from_ref(&file)).unwrap();
        assert_eq!(loaded.get("127.0.0.1:5000"), Some(&cred));
        assert_eq!(loaded.get("docker.io").unwrap().username, "u");
        assert!(!format!("{loaded:?}").contains("s3cret"));
        assert!(std::fs::read_to_string(&file).unwrap().contains("credHelpers"));
        assert!(remove_credential(&file, "127.0.0.1:5000").unwrap());
        assert!(Credentials::load(&[file]).unwrap().get("127.0.0.1:5000").is_none());
    }
}
