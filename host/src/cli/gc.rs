//! `berth gc`.

use berth::store::LockMode;

use super::Ctx;
use super::output::{human_size, print, print_json};

#[derive(clap::Args)]
pub struct GcArgs {}

pub fn run(ctx: &Ctx, _args: GcArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = ctx.open_store(LockMode::Exclusive)?;
    let report = store.gc()?;
    let containers = berth::render::remove_crashed_containers(&store)?;
    let snapshots = berth::render::remove_unused_snapshots(&store)?;
    let records = berth::render::remove_stale_records(&store)?;
    if ctx.global.json {
        let mut value = serde_json::to_value(&report)?;
        value["snapshots_removed"] = snapshots.into();
        value["render_records_removed"] = records.into();
        value["crashed_containers_removed"] = containers.into();
        print_json(&value)?;
    } else {
        print(&format!(
            "removed {} blobs, {} snapshots, {} records of deleted renders, {} crashed containers and {} temporary files, freeing {}\n",
            report.blobs_removed,
            snapshots,
            records,
            containers,
            report.temp_files_removed,
            human_size(report.bytes_freed)
        ))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
