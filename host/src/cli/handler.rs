//! `berth handler`: built-in and drop-in handler components, their signers and grants.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use berth::ErrorKind;
use berth::ops::{self, HandlerRow};

use super::Ctx;
use super::output::{exit, print, print_json};

#[derive(Subcommand)]
pub enum HandlerCommand {
    /// List built-in and drop-in handlers: scheme, digest, signer, grants, source.
    List,
    /// Verify a drop-in (signature, trusted signer for its scheme) and copy it into the
    /// store's handlers directory.
    Add(AddArgs),
    /// Check drop-in handlers (all, or the given files) against the trusted keys.
    Verify(VerifyArgs),
    /// Remove a drop-in from the store's handlers directory, by scheme or file name.
    Rm(RmArgs),
    /// Show what a handler declares it needs, and where it comes from.
    Inspect(InspectArgs),
    /// Trust an ed25519 public key (raw, PEM or DER; wasmsign2's format) to sign handlers
    /// for one scheme.
    #[command(after_help = "Example:\n  wasmsign2 keygen --public-key k.pub --secret-key k.sec\n  \
                            berth handler trust --scheme s3 k.pub")]
    Trust(TrustArgs),
    /// List the trusted handler keys, or remove one (`--rm ID`).
    Keys(KeysArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// A detached signature (default: embedded, or FILE.sig next to it).
    #[arg(long, value_name = "FILE")]
    sig: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Component files (default: every drop-in in the handler directories).
    files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct RmArgs {
    /// A scheme, or the file name of a drop-in in the store's handlers directory.
    name: String,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A scheme, or a component file.
    handler: String,
}

#[derive(Args)]
pub struct TrustArgs {
    /// The scheme the key may sign handlers for.
    #[arg(long)]
    scheme: String,
    /// The public key file.
    key: PathBuf,
}

#[derive(Args)]
pub struct KeysArgs {
    /// Remove the key with this id (or id prefix of ≥ 4 digits).
    #[arg(long, value_name = "ID")]
    rm: Option<String>,
    /// With --rm: only for this scheme.
    #[arg(long)]
    scheme: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: HandlerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HandlerCommand::List => list(ctx),
        HandlerCommand::Add(args) => add(ctx, args),
        HandlerCommand::Verify(args) => verify(ctx, args),
        HandlerCommand::Rm(args) => {
            let removed = ops::remove_handler(&ctx.ops, &args.name)?;
            if !ctx.global.quiet {
                print(&format!("removed {}\n", removed.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HandlerCommand::Inspect(args) => {
            let row = ops::inspect_handler(&ctx.ops, &args.handler)?;
            if ctx.global.json {
                print_json(&row)?;
            } else {
                print(&format!("{}\n", serde_json::to_string_pretty(&row)?))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HandlerCommand::Trust(args) => {
            let id = ops::trust_handler_key(&ctx.ops, &args.scheme, &args.key)?;
            if ctx.global.json {
                print_json(&json!({"key": id, "scheme": args.scheme}))?;
            } else {
                print(&format!("trusted key {id} for handlers of scheme {}\n", args.scheme))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HandlerCommand::Keys(args) => {
            if let Some(id) = &args.rm {
                let n = ops::remove_handler_key(&ctx.ops, id, args.scheme.as_deref())?;
                print(&format!("removed {n} key entr{}\n", if n == 1 { "y" } else { "ies" }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let keys = ops::handler_keys(&ctx.ops)?;
            if ctx.global.json {
                print_json(&keys.iter().map(|k| json!({"key": k.id, "scheme": k.scheme})).collect::<Vec<_>>())?;
            } else {
                let text: String = keys.iter().map(|k| format!("{}  {}\n", k.id, k.scheme)).collect();
                print(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let rows = ops::list_handlers(&ctx.ops)?;
    if ctx.global.json {
        print_json(&rows)?;
    } else {
        let mut text = format!("{:<12} {:<19} {:<18} {}\n", "SCHEME", "DIGEST", "SIGNER", "SOURCE / STATUS");
        for r in &rows {
            let digest = r.digest.as_ref().map_or("-".to_string(), |d| d.to_string().chars().take(19).collect());
            text.push_str(&format!(
                "{:<12} {:<19} {:<18} {} ({})\n",
                r.scheme.as_deref().unwrap_or("?"),
                digest,
                r.signer.as_deref().unwrap_or("-"),
                r.source,
                r.status,
            ));
        }
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<ExitCode> {
    let (added, signer, target) = ops::add_handler(&ctx.ops, &args.file, args.sig.as_deref())?;
    if ctx.global.json {
        print_json(&json!({
            "scheme": added.declaration.scheme,
            "digest": added.digest,
            "signer": signer.key_id,
            "path": target,
        }))?;
    } else {
        print(&format!(
            "added handler for {} ({}), signed by {}, as {}\n",
            added.declaration.scheme,
            added.digest,
            signer.key_id,
            target.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let rows: Vec<HandlerRow> = ops::verify_handlers(&ctx.ops, &args.files)?;
    let all_trusted = rows.iter().all(|r| r.trusted);
    if ctx.global.json {
        print_json(&rows)?;
    } else {
        let text: String = rows.iter().map(|r| format!("{}: {}\n", r.source, r.status)).collect();
        print(&text)?;
    }
    Ok(if all_trusted { ExitCode::SUCCESS } else { exit(ErrorKind::Denied) })
}
