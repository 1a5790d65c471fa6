//! `berth handler`: built-in and drop-in handler components, their signers and grants.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use berth::fetch::handlers;
use berth::sandbox::dropin::{self, DropIn, HandlerTrust};
use berth::store::{Algorithm, Digest};

use super::Ctx;
use super::output::{print, print_json};

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
    let root = ctx.root();
    let trust = HandlerTrust::new(&root);
    let dirs = dropin::default_dirs(&root);
    match cmd {
        HandlerCommand::List => list(ctx, &dirs, &trust),
        HandlerCommand::Add(args) => add(ctx, &root, &trust, args),
        HandlerCommand::Verify(args) => verify(ctx, &dirs, &trust, args),
        HandlerCommand::Rm(args) => rm(ctx, &root, args),
        HandlerCommand::Inspect(args) => inspect(ctx, &dirs, &trust, args),
        HandlerCommand::Trust(args) => {
            let key = std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
            let id = trust.add(&args.scheme, &key)?;
            if ctx.global.json {
                print_json(&json!({"key": id, "scheme": args.scheme}))?;
            } else {
                print(&format!("trusted key {id} for handlers of scheme {}\n", args.scheme))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HandlerCommand::Keys(args) => {
            if let Some(id) = &args.rm {
                let n = trust.remove(id, args.scheme.as_deref())?;
                anyhow::ensure!(n > 0, "no trusted handler key {id}");
                print(&format!("removed {n} key entr{}\n", if n == 1 { "y" } else { "ies" }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let keys = trust.keys()?;
            if ctx.global.json {
                print_json(&keys.iter().map(|k| json!({"key": k.id, "scheme": k.scheme})).collect::<Vec<_>>())?;
            } else {
                let mut text = String::new();
                for k in &keys {
                    text.push_str(&format!("{}  {}\n", k.id, k.scheme));
                }
                print(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(d: &DropIn, trust: &HandlerTrust) -> serde_json::Value {
    let (status, signer) = match d.verify(trust) {
        Ok(s) => ("trusted".to_string(), Some(s.key_id)),
        Err(e) => (format!("refused: {e}"), None),
    };
    json!({
        "scheme": d.declaration.scheme,
        "digest": d.digest,
        "source": d.path,
        "signer": signer,
        "status": status,
        "grants": d.declaration,
    })
}

fn list(ctx: &Ctx, dirs: &[PathBuf], trust: &HandlerTrust) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<serde_json::Value> = handlers::builtin_types()
        .into_iter()
        .map(|scheme| {
            let bytes = handlers::builtin_named(scheme).unwrap_or_default();
            json!({
                "scheme": scheme,
                "digest": Digest::of_bytes(Algorithm::Sha256, bytes),
                "source": "builtin",
                "signer": null,
                "status": "built in",
                "grants": "decided by the point type",
            })
        })
        .collect();
    for d in dropin::discover(dirs) {
        rows.push(match d {
            Ok(d) => describe(&d, trust),
            Err(e) => json!({"scheme": null, "status": format!("unusable: {e}")}),
        });
    }
    if ctx.global.json {
        print_json(&rows)?;
    } else {
        let mut text = format!("{:<12} {:<19} {:<18} {}\n", "SCHEME", "DIGEST", "SIGNER", "SOURCE / STATUS");
        for r in &rows {
            let digest = r["digest"].as_str().map_or("-".to_string(), |d| d.chars().take(19).collect());
            text.push_str(&format!(
                "{:<12} {:<19} {:<18} {} ({})\n",
                r["scheme"].as_str().unwrap_or("?"),
                digest,
                r["signer"].as_str().unwrap_or("-"),
                r["source"].as_str().unwrap_or("-"),
                r["status"].as_str().unwrap_or(""),
            ));
        }
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn add(ctx: &Ctx, root: &Path, trust: &HandlerTrust, args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut d = DropIn::read(&args.file)?;
    if let Some(sig) = &args.sig {
        d.detached_signature = Some(std::fs::read(sig).with_context(|| format!("reading {}", sig.display()))?);
    }
    let signer = d.verify(trust)?;
    let dir = root.join("handlers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(format!("{}.wasm", d.declaration.scheme));
    let write = |path: &Path, bytes: &[u8]| -> anyhow::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut tmp, bytes)?;
        tmp.persist(path).map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    };
    let sig_target = PathBuf::from(format!("{}.sig", target.display()));
    match &d.detached_signature {
        Some(sig) => write(&sig_target, sig)?,
        None => {
            let _ = std::fs::remove_file(&sig_target);
        }
    }
    write(&target, &d.bytes)?;
    if ctx.global.json {
        print_json(
            &json!({"scheme": d.declaration.scheme, "digest": d.digest, "signer": signer.key_id, "path": target}),
        )?;
    } else {
        print(&format!(
            "added handler for {} ({}), signed by {}, as {}\n",
            d.declaration.scheme,
            d.digest,
            signer.key_id,
            target.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, dirs: &[PathBuf], trust: &HandlerTrust, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let found: Vec<_> = if args.files.is_empty() {
        dropin::discover(dirs)
    } else {
        args.files.iter().map(|f| DropIn::read(f)).collect()
    };
    let mut ok = true;
    let mut rows = Vec::new();
    for d in found {
        let row = match d {
            Ok(d) => describe(&d, trust),
            Err(e) => json!({"status": format!("unusable: {e}")}),
        };
        ok &= row["status"] == "trusted";
        rows.push(row);
    }
    if ctx.global.json {
        print_json(&rows)?;
    } else {
        let mut text = String::new();
        for r in &rows {
            text.push_str(&format!(
                "{}: {}\n",
                r["source"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("")
            ));
        }
        print(&text)?;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(berth::ErrorKind::Denied.exit_code() as u8) })
}

fn rm(ctx: &Ctx, root: &Path, args: RmArgs) -> anyhow::Result<ExitCode> {
    let dir = root.join("handlers");
    let by_name = dir.join(&args.name);
    let target = if by_name.extension().is_some_and(|e| e == "wasm") && by_name.exists() {
        by_name
    } else {
        let scheme = dropin::discover(std::slice::from_ref(&dir))
            .into_iter()
            .flatten()
            .find(|d| d.declaration.scheme == args.name)
            .map(|d| d.path);
        scheme.with_context(|| format!("no drop-in handler {:?} in {}", args.name, dir.display()))?
    };
    std::fs::remove_file(&target).with_context(|| format!("removing {}", target.display()))?;
    let _ = std::fs::remove_file(format!("{}.sig", target.display()));
    if !ctx.global.quiet {
        print(&format!("removed {}\n", target.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(ctx: &Ctx, dirs: &[PathBuf], trust: &HandlerTrust, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let path = Path::new(&args.handler);
    let row = if path.exists() {
        describe(&DropIn::read(path)?, trust)
    } else {
        let found = dropin::discover(dirs).into_iter().flatten().find(|d| d.declaration.scheme == args.handler);
        match found {
            Some(d) => describe(&d, trust),
            None => {
                anyhow::ensure!(
                    handlers::builtin_types().contains(&args.handler.as_str()),
                    "no handler for scheme {:?} (built in: {})",
                    args.handler,
                    handlers::builtin_types().join(", ")
                );
                json!({"scheme": args.handler, "source": "builtin", "grants": "decided by the point type: \
                       oci-layout reads one path; docker and oci reach the point's registry, its token realm and mirrors"})
            }
        }
    };
    if ctx.global.json {
        print_json(&row)?;
    } else {
        print(&format!("{}\n", serde_json::to_string_pretty(&row)?))?;
    }
    Ok(ExitCode::SUCCESS)
}
