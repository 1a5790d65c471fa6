//! `berth gc`.

use std::process::ExitCode;

use berth::ops;

use super::Ctx;
use super::output::{human_size, print, print_json};

#[derive(clap::Args)]
pub struct GcArgs {}

pub fn run(ctx: &Ctx, _args: GcArgs) -> anyhow::Result<ExitCode> {
    let collected = ops::gc(&ctx.ops)?;
    if ctx.global.json {
        print_json(&collected)?;
    } else {
        print(&format!(
            "removed {} blobs, {} snapshots, {} records of deleted renders, {} crashed containers and {} \
             temporary files, freeing {}\n",
            collected.store.blobs_removed,
            collected.snapshots_removed,
            collected.render_records_removed,
            collected.crashed_containers_removed,
            collected.store.temp_files_removed,
            human_size(collected.store.bytes_freed)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
