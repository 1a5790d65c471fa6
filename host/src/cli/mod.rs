//! Command-line front end: each command parses flags, builds options, calls one library
//! function and prints the result (text, or JSON with `--json`).

mod completion;
mod fetch;
mod fsck;
mod gc;
mod handler;
mod image;
mod info;
mod output;
mod policy;
mod progress;
mod registry;
mod run;
mod serve;
mod system;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use berth::ops::{self, PolicyConfig};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  an I/O or system error
  2  usage: bad flags, a malformed distribution point, an ambiguous image name
  3  not found: the image, ref, layout or blob does not exist
  4  denied by a grant, trust or policy
  5  invalid or unsupported image content (bad JSON, unknown media type)
  6  corrupt content: a digest or size mismatch, a truncated layer (fsck: problems found)
  7  a handler component crashed or exceeded its time or memory limit
  8  unavailable: something needed could not be reached

Environment:
  BERTH_ROOT   store directory (default /var/lib/berth as root, else ~/.local/share/berth)
  BERTH_POLICY policy file (default ~/.config/berth/policy.toml, then /etc/berth/policy.toml)
  BERTH_LOG    log filter, e.g. debug or berth=trace (overrides -v)";

/// Fetch, store, render and run container images, with a sandbox around every parser.
///
/// Images are named by distribution points: canonical `cimd:<type>:v=0:<data>` URIs or
/// friendly forms such as `oci-layout:./dir:tag`, `oci-archive:img.tar` and
/// `docker://busybox`. berth prints the canonical point it used.
#[derive(Parser)]
#[command(name = "berth", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct GlobalOpts {
    /// Store directory.
    #[arg(long, global = true, env = "BERTH_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (and JSON progress events on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars or informational messages.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Policy file (TOML) deciding what may be fetched and run; see `berth policy --help`.
    #[arg(long, global = true, env = "BERTH_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A policy component (`berth:policy` world) to use instead of the built-in one; it
    /// receives the policy file's text.
    #[arg(long, global = true, env = "BERTH_POLICY_COMPONENT", value_name = "FILE.wasm")]
    policy_component: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch an image into the store and print its canonical distribution point.
    Fetch(fetch::FetchArgs),
    /// List, inspect, render and remove stored images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Remove blobs and layer snapshots no stored image needs, and leftovers of interrupted work.
    Gc(gc::GcArgs),
    /// Re-hash every blob; move corrupt ones to quarantine and report missing ones.
    Fsck(fsck::FsckArgs),
    /// Check and save credentials for a registry (in auth.json, as podman and skopeo do).
    Login(registry::LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(registry::LogoutArgs),
    /// Drop-in handler components: list, add, verify, inspect, remove; trust their signers.
    #[command(subcommand)]
    Handler(handler::HandlerCommand),
    /// Trust OpenPGP keys to sign appc images for a name prefix; list and remove them.
    Trust(trust::TrustArgs),
    /// Image policy: what the policy file decides before fetch, after resolve and before run.
    #[command(subcommand, after_help = policy::POLICY_FILE_HELP)]
    Policy(policy::PolicyCommand),
    /// Run a command in new namespaces: in an image, or in a root file system (--rootfs).
    Run(run::RunArgs),
    /// Write an OCI runtime bundle (config.json) that runc or crun run as `berth run` would.
    Bundle(run::BundleArgs),
    /// Serve the store as an OCI distribution registry: pull, push, pull-through for other nodes.
    Serve(serve::ServeArgs),
    /// The store as a whole: `df` shows where its space goes, `reset` removes it.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Show the store, the snapshot form in use, kernel support and handler versions.
    Info(info::InfoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Write the man pages into a directory (`just install` does).
    #[command(hide = true)]
    Man(completion::ManArgs),
}

/// What every command needs: the global options, and the library's context.
pub struct Ctx {
    global: GlobalOpts,
    ops: ops::Context,
}

impl Ctx {
    fn new(global: GlobalOpts) -> Ctx {
        let quiet = global.quiet;
        let policy = PolicyConfig { file: global.policy.clone(), component: global.policy_component.clone() };
        let ops =
            ops::Context::new(global.root.clone()).with_policy(policy).with_wait_notice(Arc::new(move |why: &str| {
                if !quiet {
                    eprintln!("berth: {why}");
                }
            }));
        Ctx { global, ops }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        // fuser (lazy runs' layers) warns of every operation a read-only file system
        // leaves to the kernel's defaults; those are not the user's concern.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},fuser=error")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.global.verbose);
    let ctx = Ctx::new(cli.global);
    let result = match cli.command {
        Command::Fetch(args) => fetch::run(&ctx, args),
        Command::Image(cmd) => image::run(&ctx, cmd),
        Command::Gc(args) => gc::run(&ctx, args),
        Command::Fsck(args) => fsck::run(&ctx, args),
        Command::Login(args) => registry::login(&ctx, args),
        Command::Logout(args) => registry::logout(&ctx, args),
        Command::Policy(cmd) => policy::run(&ctx, cmd),
        Command::Handler(cmd) => handler::run(&ctx, cmd),
        Command::Trust(args) => trust::run(&ctx, args),
        Command::Run(args) => run::run(&ctx, args),
        Command::Bundle(args) => run::bundle(&ctx, args),
        Command::Serve(args) => serve::run(&ctx, args),
        Command::System(cmd) => system::run(&ctx, cmd),
        Command::Info(args) => info::run(&ctx, args),
        Command::Completion(args) => completion::completion(args),
        Command::Man(args) => completion::man(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => output::report_error(&e),
    }
}
