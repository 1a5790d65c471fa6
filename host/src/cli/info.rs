//! `berth info`.

use std::process::ExitCode;

use berth::ops;
use berth::render::Snapshotter;

use super::Ctx;
use super::output::{print, print_json};

#[derive(clap::Args)]
#[command(after_help = "See also: `berth system df` (disk use), `berth handler list` (drop-ins).")]
pub struct InfoArgs {}

pub fn run(ctx: &Ctx, _args: InfoArgs) -> anyhow::Result<ExitCode> {
    let info = ops::info(&ctx.ops)?;
    if ctx.global.json {
        print_json(&info)?;
        return Ok(ExitCode::SUCCESS);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let snapshots = match (&info.snapshotter, &info.snapshotter_note) {
        (Some(Snapshotter::Erofs), _) => "erofs (an EROFS image per layer, mounted read-only)".to_string(),
        (Some(Snapshotter::Dir), _) => "dir (a directory per layer)".to_string(),
        (None, Some(note)) => format!("unavailable: {note}"),
        (None, None) => "chosen at the first render (no store yet)".to_string(),
    };
    let mut text = format!(
        "berth {}\n\
         store:       {}{}\n\
         images:      {}\n\
         snapshots:   {snapshots}\n\
         kernel:      overlayfs {}, erofs {}\n\
         rootless:    {}\n\
         policy:      {}\n\
         handlers:\n",
        info.version,
        info.root.display(),
        if info.store_exists { "" } else { " (not created yet)" },
        info.images,
        yes_no(info.overlayfs),
        yes_no(info.erofs),
        yes_no(info.rootless),
        info.policy.as_deref().unwrap_or("none (everything is allowed; see `berth policy --help`)"),
    );
    for h in &info.handlers {
        text.push_str(&format!("  {:<12} {}  {}\n", h.scheme, h.digest.short(), h.source));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
