//! `berth system …`: the store as a whole.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use berth::ErrorKind;
use berth::ops;

use super::Ctx;
use super::output::{exit, human_size, print, print_json};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show the store's disk use: blobs, layer snapshots and images, containers, caches,
    /// and what `berth gc` would reclaim.
    Df,
    /// Remove the whole store: every image, blob, snapshot, trusted key and drop-in
    /// handler under the store root, after detaching the layer mounts berth keeps up.
    #[command(after_help = "Exits 0 when the store is gone (or was never there), 4 when the confirmation \
                            is declined.\n\nOther ways out: `berth image rm IMAGE…` then `berth gc` removes \
                            images and what only they needed, detaching their layer mounts.")]
    Reset(ResetArgs),
}

#[derive(Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

pub fn run(ctx: &Ctx, cmd: SystemCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SystemCommand::Df => df(ctx),
        SystemCommand::Reset(args) => reset(ctx, args),
    }
}

fn df(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let usage = ops::disk_usage(&ctx.ops)?;
    if ctx.global.json {
        print_json(&usage)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!("{} ({} images)\n", usage.root.display(), usage.images);
    text.push_str(&format!("{:<16} {:>7} {:>10} {:>12}\n", "TYPE", "COUNT", "SIZE", "RECLAIMABLE"));
    for u in &usage.usage {
        let count = if u.kind == "other" { "-".to_string() } else { u.count.to_string() };
        text.push_str(&format!(
            "{:<16} {:>7} {:>10} {:>12}\n",
            u.kind,
            count,
            human_size(u.bytes),
            human_size(u.reclaimable)
        ));
    }
    let reclaimable: u64 = usage.usage.iter().map(|u| u.reclaimable).sum();
    text.push_str(&format!(
        "{:<16} {:>7} {:>10} {:>12}\n",
        "total",
        "",
        human_size(usage.total),
        human_size(reclaimable)
    ));
    if reclaimable > 0 {
        text.push_str("`berth gc` frees what is reclaimable.\n");
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn reset(ctx: &Ctx, args: ResetArgs) -> anyhow::Result<ExitCode> {
    let root = ctx.ops.root().to_path_buf();
    if !args.force && root.exists() {
        eprint!("This removes everything berth stored under {}. Continue? [y/N] ", root.display());
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        let stdin = std::io::stdin();
        stdin.lock().read_line(&mut answer)?;
        if !stdin.is_terminal() {
            eprintln!("{}", answer.trim());
        }
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("berth: not removing the store (pass -f to skip this question)");
            return Ok(exit(ErrorKind::Denied));
        }
    }
    let reset = ops::system_reset(&ctx.ops)?;
    if ctx.global.json {
        print_json(&reset)?;
    } else if !ctx.global.quiet {
        if reset.existed {
            print(&format!(
                "removed the store at {} ({} mounts detached)\n",
                reset.root.display(),
                reset.mounts_detached
            ))?;
        } else {
            print(&format!("no store at {}; nothing to remove\n", reset.root.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
