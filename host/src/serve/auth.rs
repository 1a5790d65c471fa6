//! HTTP Basic authentication against an htpasswd file, as the CNCF registry does it:
//! bcrypt entries only (`htpasswd -B`). A credential that verified once is remembered
//! (by its SHA-256), so bcrypt's deliberate cost is paid once per user, not per request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::HeaderValue;
use sha2::{Digest as _, Sha256};

use super::ServeError;

/// Remembered credentials; more and the memory starts over.
const MAX_REMEMBERED: usize = 4096;

pub struct Htpasswd {
    /// user → bcrypt hash.
    users: HashMap<String, String>,
    /// SHA-256 of an `Authorization` value that verified → its user.
    accepted: Mutex<HashMap<[u8; 32], String>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::File {
            action: "reading the htpasswd file",
            path: path.to_path_buf(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |reason: &str| ServeError::Htpasswd { path: path.to_path_buf(), line: i + 1, reason: reason.into() };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("expected user:hash"))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(bad("only bcrypt hashes are supported (make them with `htpasswd -B`)"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(ServeError::Htpasswd { path: path.to_path_buf(), line: 0, reason: "it names no user".into() });
        }
        Ok(Htpasswd { users, accepted: Mutex::default() })
    }

    /// The user an `Authorization: Basic …` header authenticates, if it does.
    pub async fn authenticate(self: &Arc<Self>, header: Option<&HeaderValue>) -> Option<String> {
        let value = header?.to_str().ok()?.to_string();
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if let Some(user) = self.accepted.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(user.clone());
        }
        let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?.trim().to_string();
        let this = self.clone();
        // bcrypt takes milliseconds by design: not on an async worker.
        let user = tokio::task::spawn_blocking(move || this.verify(&encoded)).await.ok()??;
        let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        if accepted.len() >= MAX_REMEMBERED {
            accepted.clear();
        }
        accepted.insert(key, user.clone());
        Some(user)
    }

    fn verify(&self, encoded: &str) -> Option<String> {
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let hash = self.users.get(user)?;
        bcrypt::verify(password, hash).ok()?.then(|| user.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_users_authenticate_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, format!("# users\nalice:{}\n", bcrypt::hash("s3cret", 4).unwrap())).unwrap();
        let h = Arc::new(Htpasswd::load(&file).unwrap());
        let basic = |s: &str| {
            HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s))).unwrap()
        };
        assert_eq!(h.authenticate(Some(&basic("alice:s3cret"))).await.as_deref(), Some("alice"));
        assert_eq!(h.authenticate(Some(&basic("alice:s3cret"))).await.as_deref(), Some("alice"), "remembered");
        assert_eq!(h.authenticate(Some(&basic("alice:wrong"))).await, None);
        assert_eq!(h.authenticate(Some(&basic("bob:s3cret"))).await, None);
        assert_eq!(h.authenticate(None).await, None);
        std::fs::write(&file, "alice:{SHA}abc\n").unwrap();
        assert!(matches!(Htpasswd::load(&file), Err(ServeError::Htpasswd { line: 1, .. })));
    }
}
