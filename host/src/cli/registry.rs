//! Registry options shared by commands that reach registries, and `berth login/logout`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use berth::ops::{self, LoginRequest, RegistryOptions, UsageError};

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
    /// Whether `--insecure-options` relaxes `option`.
    fn insecure(&self, option: InsecureOption) -> bool {
        self.insecure_options.iter().any(|o| *o == option || *o == InsecureOption::All)
    }

    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure_registries: self.insecure_registries.clone(),
            certs_dir: self.certs_dir.clone(),
            authfile: self.authfile.clone(),
            registries_conf: self.registries_conf.clone(),
            plain_http: self.insecure(InsecureOption::Http),
            insecure_image: self.insecure(InsecureOption::Image),
            skip_mirrors: Vec::new(),
        }
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

pub fn login(ctx: &Ctx, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the password from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return Err(UsageError::new("give the password with --password-stdin (or --password)").into()),
    };
    let request = LoginRequest {
        registry: args.registry,
        username: args.username,
        password,
        options: args.registry_args.options(),
    };
    let (host, file) = ops::login(&ctx.ops, &request)?;
    print(&format!("login succeeded for {host}; credentials saved in {}\n", file.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    registry: String,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

pub fn logout(ctx: &Ctx, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let host = ops::logout(&ctx.ops, &args.registry, &args.registry_args.options())?;
    print(&format!("removed the credentials for {host}\n"))?;
    Ok(ExitCode::SUCCESS)
}
