//! Registry options shared by commands that reach registries, and `berth login/logout`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use berth::transport::auth::{self, Credential, Credentials};
use berth::transport::registries::{self, RegistriesConfig};
use berth::transport::{HttpClient, HttpOptions, Request, TransportError};

use super::Ctx;
use super::output::print;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct RegistryArgs {
    /// Allow plain HTTP and unverified TLS for this registry host[:port] (repeatable).
    /// Loopback registries may always use plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Directory of per-registry CA certificates, `<dir>/<host[:port]>/*.crt`
    /// (searched before /etc/berth/certs.d, /etc/containers/certs.d, /etc/docker/certs.d).
    #[arg(long, value_name = "DIR")]
    certs_dir: Option<PathBuf>,
    /// Credentials file (auth.json format); default: $REGISTRY_AUTH_FILE,
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Mirrors and registry flags (TOML); default: /etc/berth/registries.toml and
    /// ~/.config/berth/registries.toml.
    #[arg(long, value_name = "FILE", env = "BERTH_REGISTRIES_CONF")]
    registries_conf: Option<PathBuf>,
    /// Comma-separated security checks to relax: `http` (plain HTTP to any host when
    /// HTTPS fails: appc discovery and ACI downloads), `image` (store appc images without
    /// a valid signature from a trusted key), `all`.
    #[arg(long, value_name = "http,image", value_delimiter = ',', value_enum)]
    insecure_options: Vec<InsecureOption>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InsecureOption {
    Http,
    Image,
    All,
}

impl RegistryArgs {
    fn auth_files(&self) -> Vec<PathBuf> {
        match &self.authfile {
            Some(f) => vec![f.clone()],
            None => auth::default_auth_files(),
        }
    }

    /// The file `berth login` writes: `--authfile`, else the first default location.
    fn login_file(&self) -> anyhow::Result<PathBuf> {
        self.auth_files()
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no auth file location: pass --authfile or set HOME"))
    }

    pub fn http_options(&self) -> anyhow::Result<HttpOptions> {
        let mut options = HttpOptions {
            credentials: Credentials::load(&self.auth_files())?,
            registries: match &self.registries_conf {
                Some(f) => RegistriesConfig::load(std::slice::from_ref(f))?,
                None => RegistriesConfig::load(&registries::default_registries_files())?,
            },
            insecure_hosts: self.insecure_registries.clone(),
            plain_http: self.insecure(InsecureOption::Http),
            ..HttpOptions::default()
        };
        if let Some(dir) = &self.certs_dir {
            options.certs_dirs.insert(0, dir.clone());
        }
        Ok(options)
    }

    /// Whether `--insecure-options` relaxes `option`.
    pub fn insecure(&self, option: InsecureOption) -> bool {
        self.insecure_options.iter().any(|o| *o == option || *o == InsecureOption::All)
    }

    pub fn client(&self) -> anyhow::Result<Arc<HttpClient>> {
        Ok(Arc::new(HttpClient::new(self.http_options()?)))
    }
}

#[derive(clap::Args)]
#[command(after_help = "Example:\n  printf %s \"$TOKEN\" | berth login registry.example.com -u me --password-stdin")]
pub struct LoginArgs {
    /// Registry host[:port] (docker.io means Docker Hub).
    registry: String,
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input (safer than --password).
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The password (visible to other users in the process list; prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

pub fn login(_ctx: &Ctx, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the password from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin (or --password)"),
    };
    let host = auth::normalize_registry(&args.registry);
    let cred = Credential { username: args.username.clone(), password };
    // Check the credentials before saving them: GET /v2/ must succeed with them.
    let mut options = args.registry_args.http_options()?;
    let mut only_this = tempfile::NamedTempFile::new()?;
    {
        use std::io::Write;
        let auth = serde_json::json!({ "auths": { &host: { "auth": base64_basic(&cred) } } });
        only_this.write_all(auth.to_string().as_bytes())?;
    }
    options.credentials = Credentials::load(&[only_this.path().to_path_buf()])?;
    let client = HttpClient::new(options);
    let resp = client.request(
        &Request { method: "GET".into(), url: format!("https://{host}/v2/"), headers: vec![], body: None },
        1 << 20,
    )?;
    let status = TransportError::Status { url: resp.url.clone(), status: resp.status };
    if resp.status == 401 || resp.status == 403 {
        return Err(anyhow::Error::new(status).context(format!("{host} refused the credentials of {}", args.username)));
    }
    if !(200..300).contains(&resp.status) {
        return Err(anyhow::Error::new(status).context(format!("{host} is not a registry, or not working")));
    }
    let file = args.registry_args.login_file()?;
    auth::store_credential(&file, &host, &cred)?;
    print(&format!("login succeeded for {host}; credentials saved in {}\n", file.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn base64_basic(cred: &Credential) -> String {
    cred.basic_header().trim_start_matches("Basic ").to_string()
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    registry: String,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

pub fn logout(_ctx: &Ctx, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let host = auth::normalize_registry(&args.registry);
    let mut removed = false;
    for file in args.registry_args.auth_files() {
        removed |= auth::remove_credential(&file, &host)?;
    }
    if !removed {
        anyhow::bail!("not logged in to {host}");
    }
    print(&format!("removed the credentials for {host}\n"))?;
    Ok(ExitCode::SUCCESS)
}
