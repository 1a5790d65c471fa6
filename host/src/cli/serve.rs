//! `berth serve`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use berth::ops::{self, FetchRequest, UsageError};
use berth::serve::{AccessEntry, Event, Limits, ServeEvents, ServeOptions, TlsFiles};

use super::Ctx;
use super::output::human_size;
use super::registry::RegistryArgs;

#[derive(clap::Args)]
#[command(after_help = "\
Names: a stored ref <registry>/<repository>:<tag> is served as repository
<registry>/<repository>, with :PORT written _PORT and Docker Hub as docker.io:
  berth fetch oci://127.0.0.1:5000/app:v1   ->  127.0.0.1_5000/app:v1
  berth fetch docker://busybox              ->  docker.io/library/busybox:latest
A name without a registry host (app, library/busybox) is what a mirror receives: with
the ns= parameter berth and containerd send, it is that registry's; without, it is looked
up under localhost/ (where such names are pushed), then in the first --pull-through
upstream, else Docker Hub. Digests are served under any name.

Examples:
  berth serve                                         # http://127.0.0.1:5050, read-write
  berth serve --listen 0.0.0.0:5050 --read-only       # share this node's store with the LAN
  berth serve --pull-through docker.io                # a Docker Hub cache for other nodes
  berth serve --tls-cert cert.pem --tls-key key.pem --htpasswd users.htpasswd
  skopeo inspect --tls-verify=false docker://127.0.0.1:5050/docker.io/library/busybox:latest
  skopeo copy --dest-tls-verify=false oci:layout:v1 docker://127.0.0.1:5050/app:v1
  podman pull --tls-verify=false 127.0.0.1:5050/localhost/app:v1

On another node, ~/.config/berth/registries.toml makes this server a mirror (with it
down, fetches go to the upstream itself):
  [[registry]]
  prefix = \"registry-1.docker.io\"
  [[registry.mirror]]
  location = \"node-a.lan:5050\"
  insecure = true

The access log goes to stdout (JSON lines with --json), notices to stderr. SIGTERM or
SIGINT stop accepting and let requests in flight finish (--shutdown-timeout).")]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5050")]
    listen: String,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require HTTP Basic credentials of a user in this htpasswd file (bcrypt: `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// Refuse pushes.
    #[arg(long)]
    read_only: bool,
    /// Fetch a manifest missed under this registry (host[:port], docker.io for Docker Hub)
    /// into the store, then serve it; repeatable, the first is where names without a
    /// registry host point. Uses the registry flags below, like `berth fetch`.
    #[arg(long, value_name = "REGISTRY")]
    pull_through: Vec<String>,
    /// Connections served at once (more wait to be accepted).
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// Close a connection idle this long; refuse a request body that stalls this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    idle_timeout: u64,
    /// After SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_timeout: u64,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Prints the access log on stdout and notices on stderr, or JSON lines on stdout.
struct Printer {
    json: bool,
    quiet: bool,
}

fn line(out: &mut dyn Write, text: &str) {
    // A closed pipe is the reader's choice; the server keeps serving.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

impl ServeEvents for Printer {
    fn request(&self, e: &AccessEntry) {
        let text = if self.json {
            let mut value = serde_json::to_value(e).unwrap_or_default();
            value["event"] = json!("request");
            value.to_string()
        } else {
            format!(
                "{} {} [{}] \"{} {}\" {} {} {:.1}ms{} \"{}\"",
                e.remote,
                e.user.as_deref().unwrap_or("-"),
                berth::trust::utc(e.time as i64),
                e.method,
                e.path,
                e.status,
                e.bytes,
                e.duration_ms,
                if e.complete { "" } else { " cut-off" },
                e.user_agent.as_deref().unwrap_or("-"),
            )
        };
        line(&mut std::io::stdout().lock(), &text);
    }

    fn notice(&self, event: &Event) {
        if self.json {
            line(&mut std::io::stdout().lock(), &serde_json::to_string(event).unwrap_or_default());
            return;
        }
        let text = match event {
            Event::Listening { addr, tls, read_only, pull_through } => {
                let scheme = if *tls { "https" } else { "http" };
                let mode = if *read_only { "read-only" } else { "read-write" };
                let pulls = if pull_through.is_empty() {
                    String::new()
                } else {
                    format!("; pull-through {}", pull_through.join(", "))
                };
                format!("serving the store on {scheme}://{addr}/v2/ ({mode}{pulls})")
            }
            Event::SkippedSelfMirrors { mirrors } => {
                format!(
                    "registries.toml names this server as a mirror ({}); its pull-through fetches skip it",
                    mirrors.join(", ")
                )
            }
            Event::Quarantined { digest, actual, moved_to } => {
                format!("blob {digest} is corrupt (it hashes to {actual}); quarantined as {moved_to}; run `berth fsck`")
            }
            Event::Pulled { point, manifest, elapsed_ms } => format!("pulled {point} ({manifest}) in {elapsed_ms} ms"),
            Event::PullFailed { point, error } => format!("pulling {point} failed: {error}"),
            Event::Pushed { point, manifest } => format!("stored pushed image {point} ({manifest})"),
            Event::Stopping { connections } => format!("stopping; waiting for {connections} connections"),
        };
        let important = matches!(event, Event::Quarantined { .. } | Event::PullFailed { .. });
        if !self.quiet || important {
            line(&mut std::io::stderr().lock(), &format!("berth serve: {text}"));
        }
    }
}

fn listen_addr(text: &str) -> Result<SocketAddr, UsageError> {
    let bad = || {
        UsageError::new(format!("--listen {text:?} is not ADDR:PORT (e.g. 127.0.0.1:5050, 0.0.0.0:5050, [::]:5050)"))
    };
    text.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)
}

pub fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let printer = Arc::new(Printer { json: ctx.global.json, quiet: ctx.global.quiet });
    let options = ServeOptions {
        listen: listen_addr(&args.listen)?,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key }),
        htpasswd: args.htpasswd,
        read_only: args.read_only,
        pull_through: args.pull_through,
        fetch: FetchRequest { registry: args.registry.options(), ..FetchRequest::default() },
        limits: Limits {
            max_connections: args.max_connections.max(1),
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            shutdown_grace: Duration::from_secs(args.shutdown_timeout),
        },
        events: printer.clone(),
    };
    let served = ops::serve(&ctx.ops, options)?;
    if ctx.global.json {
        let mut value = serde_json::to_value(&served)?;
        value["event"] = json!("stopped");
        line(&mut std::io::stdout().lock(), &value.to_string());
    } else if !ctx.global.quiet {
        eprintln!(
            "berth serve: stopped after {} connections, {} requests, {} sent{}",
            served.connections,
            served.requests,
            human_size(served.bytes_sent),
            if served.cut_at_shutdown > 0 {
                format!("; {} connections cut at the end of the grace period", served.cut_at_shutdown)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
