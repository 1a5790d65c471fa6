//! `login` and `logout`: registry credentials in auth.json, as podman and skopeo keep them.

use std::path::PathBuf;

use super::fetch::RegistryOptions;
use super::{Context, Doing, Error, UsageError};
use crate::transport::auth::{self, Credential, Credentials};
use crate::transport::{HttpClient, Request, TransportError};

#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// `host[:port]`; `docker.io` means Docker Hub.
    pub registry: String,
    pub username: String,
    pub password: String,
    pub options: RegistryOptions,
}

/// Check the credentials against the registry (`GET /v2/` must succeed with them) and
/// save them in the first credentials file; returns the registry as stored and the file.
pub fn login(_ctx: &Context, request: &LoginRequest) -> Result<(String, PathBuf), Error> {
    let host = auth::normalize_registry(&request.registry);
    let credential = Credential { username: request.username.clone(), password: request.password.clone() };
    let mut options = request.options.http_options()?;
    options.credentials = Credentials::only(&host, credential.clone());
    let client = HttpClient::new(options);
    let url = format!("https://{host}/v2/");
    let response = client.request(&Request { method: "GET".into(), url, headers: vec![], body: None }, 1 << 20)?;
    let status = TransportError::Status { url: response.url.clone(), status: response.status };
    if response.status == 401 || response.status == 403 {
        return Err(status).doing(|| format!("{host} refused the credentials of {}", request.username));
    }
    if !(200..300).contains(&response.status) {
        return Err(status).doing(|| format!("{host} is not a registry, or not working"));
    }
    let file = login_file(&request.options)?;
    auth::store_credential(&file, &host, &credential)?;
    Ok((host, file))
}

/// Remove the saved credentials for `registry` from every credentials file.
pub fn logout(_ctx: &Context, registry: &str, options: &RegistryOptions) -> Result<String, Error> {
    let host = auth::normalize_registry(registry);
    let mut removed = false;
    for file in options.auth_files() {
        removed |= auth::remove_credential(&file, &host)?;
    }
    if !removed {
        return Err(Error::NotLoggedIn { registry: host });
    }
    Ok(host)
}

/// The file `login` writes: `--authfile`, else the first default location.
fn login_file(options: &RegistryOptions) -> Result<PathBuf, UsageError> {
    options
        .auth_files()
        .into_iter()
        .next()
        .ok_or_else(|| UsageError::new("no auth file location: pass --authfile or set HOME"))
}
