//! `berth-runtime`: berth as an OCI runtime, with runc's command line, for podman
//! (`--runtime`) and containerd (the runc shim's `BinaryName`). Each verb parses its flags,
//! makes one `berth::ops::runtime_*` call and prints; the work is in the library.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use berth::HasKind as _;
use berth::ops::{self, CreateRequest};
use berth::runtime::state::{StateRoot, rfc3339};

/// Run containers from OCI bundles, as runc does (its verbs and flags).
#[derive(Parser)]
#[command(name = "berth-runtime", version = version(), about)]
struct Cli {
    /// Where containers' state is kept.
    #[arg(long, value_name = "DIR", default_value = berth::runtime::state::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and, with --debug, more) to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// cgroupsPath is systemd's `slice:prefix:name` (mapped to cgroupfs directories:
    /// berth does not ask systemd for a unit).
    #[arg(long)]
    systemd_cgroup: bool,
    #[arg(long)]
    debug: bool,
    /// Accepted for runc compatibility; berth-runtime runs as root only.
    #[arg(long = "rootless", value_name = "true|false|auto")]
    _rootless: Option<String>,
    /// Accepted for runc compatibility (no checkpoint support).
    #[arg(long = "criu", value_name = "PATH")]
    _criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0")
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create {
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// Write the container's init pid here.
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
        /// Send the terminal's master here (with process.terminal).
        #[arg(long, value_name = "SOCKET")]
        console_socket: Option<PathBuf>,
        /// Accepted for runc compatibility; berth always uses pivot_root.
        #[arg(long)]
        no_pivot: bool,
        /// Accepted for runc compatibility; berth makes no session keyring.
        #[arg(long)]
        no_new_keyring: bool,
        /// Keep descriptors 3 .. 3+N open in the container.
        #[arg(long, value_name = "N", default_value_t = 0)]
        preserve_fds: u32,
        id: String,
    },
    /// Let a created container's process run.
    Start { id: String },
    /// Print a container's state (the runtime spec's JSON).
    State { id: String },
    /// Send a signal (default TERM) to a container's process.
    Kill {
        /// Every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped or created container (with --force, a running one too).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List the containers under --root.
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a container.
    Ps {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
    },
    /// Print what this runtime supports (the runtime spec's features JSON).
    Features,
    /// Verbs of runc that berth-runtime does not implement.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let root = StateRoot::new(Some(cli.root.clone()));
    match &cli.command {
        Command::Create { bundle, pid_file, console_socket, no_pivot: _, no_new_keyring: _, preserve_fds, id } => {
            ops::runtime_create(&CreateRequest {
                root,
                id: id.clone(),
                bundle: bundle.clone(),
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                systemd_cgroup: cli.systemd_cgroup,
                preserve_fds: *preserve_fds,
            })?;
        }
        Command::Start { id } => ops::runtime_start(&root, id)?,
        Command::State { id } => print_json(&ops::runtime_state(&root, id)?)?,
        Command::Kill { all, id, signal } => ops::runtime_kill(&root, id, signal, *all)?,
        Command::Delete { force, id } => ops::runtime_delete(&root, id, *force)?,
        Command::List { format, quiet } => {
            let states = ops::runtime_list(&root);
            if *format == Format::Json {
                print_json(&states)?;
            } else if *quiet {
                states.iter().for_each(|s| println!("{}", s.id));
            } else {
                println!("{:<24} {:>8} {:<8} {:<40} CREATED", "ID", "PID", "STATUS", "BUNDLE");
                for s in states {
                    let pid = s.pid.unwrap_or(0);
                    println!("{:<24} {pid:>8} {:<8} {:<40} {}", s.id, s.status.as_str(), s.bundle.display(), s.created);
                }
            }
        }
        Command::Ps { format, id } => {
            let pids = ops::runtime_ps(&root, id)?;
            if *format == Format::Json {
                print_json(&pids)?;
            } else {
                println!("PID");
                pids.iter().for_each(|p| println!("{p}"));
            }
        }
        Command::Features => print_json(&ops::runtime_features())?,
        Command::Other(args) => {
            let verb = args.first().cloned().unwrap_or_default();
            return Err(berth::runtime::RuntimeError::UnsupportedVerb { verb }.into());
        }
    }
    Ok(())
}

/// Write the error where the caller reads it: stderr, and the --log file (one line; as
/// JSON, podman and containerd read its `msg`).
fn report(cli: &Cli, message: &str) {
    eprintln!("berth-runtime: {message}");
    let Some(path) = &cli.log else { return };
    let time = rfc3339(std::time::SystemTime::now());
    let line = match cli.log_format {
        LogFormat::Json => serde_json::json!({"level": "error", "msg": message, "time": time}).to_string(),
        LogFormat::Text => format!("time={time:?} level=error msg={message:?}"),
    };
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{line}");
    }
}

/// The exit code of an error: the library's kind, as `berth` reports it.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<ops::Error>() {
            return e.kind().exit_code() as u8;
        }
        if let Some(e) = cause.downcast_ref::<berth::runtime::RuntimeError>() {
            return e.kind().exit_code() as u8;
        }
    }
    1
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let filter = if cli.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&cli, &format!("{e:#}"));
            ExitCode::from(exit_code(&e))
        }
    }
}
