//! `berth gc`.

use berth::store::LockMode;

use super::Ctx;
use super::output::{human_size, print, print_json};

#[derive(clap::Args)]
pub struct GcArgs {}

pub fn run(ctx: &Ctx, _args: GcArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = ctx.open_store(LockMode::Exclusive)?;
    let report = store.gc()?;
    if ctx.global.json {
        print_json(&report)?;
    } else {
        print(&format!(
            "removed {} blobs and {} temporary files, freeing {}\n",
            report.blobs_removed,
            report.temp_files_removed,
            human_size(report.bytes_freed)
        ))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
