//! `berth fsck`.

use berth::ErrorKind;
use berth::store::{LockMode, Problem};

use super::Ctx;
use super::output::{human_size, print, print_json};

#[derive(clap::Args)]
#[command(after_help = "Exits 0 when the store is clean and 6 when it found problems.")]
pub struct FsckArgs {}

pub fn run(ctx: &Ctx, _args: FsckArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = ctx.open_store(LockMode::Exclusive)?;
    let report = store.fsck()?;
    let images = berth::render::check_layer_images(&store)?;
    let clean = report.is_clean() && images.damaged.is_empty();
    if ctx.global.json {
        let mut value = serde_json::to_value(&report)?;
        value["layer_images"] = serde_json::to_value(&images)?;
        print_json(&value)?;
    } else {
        let mut text = format!(
            "checked {} blobs ({}) and {} images: {}\n",
            report.blobs_checked,
            human_size(report.bytes_checked),
            report.images_checked,
            if report.is_clean() { "no problems".to_string() } else { format!("{} problems", report.problems.len()) }
        );
        for p in &report.problems {
            text.push_str(&match p {
                Problem::Corrupt { digest, actual, quarantined_as } => {
                    format!("  corrupt blob {digest} (its bytes hash to {actual}); moved to {quarantined_as}\n")
                }
                Problem::StrayFile { path } => format!("  stray file {path} (not named by a digest)\n"),
                Problem::Missing { image, digest } => {
                    format!("  image {image} needs blob {digest}, which is missing\n")
                }
                Problem::WrongSize { image, digest, expected, actual } => {
                    format!("  image {image} expects blob {digest} of {expected} bytes; it has {actual}\n")
                }
            });
        }
        text.push_str(&format!(
            "checked {} layer images: {}\n",
            images.checked,
            if images.damaged.is_empty() {
                "no problems".to_string()
            } else {
                format!("{} damaged", images.damaged.len())
            }
        ));
        for d in &images.damaged {
            text.push_str(&format!("  {}; removed, it is rebuilt from its layer when needed\n", d.reason));
        }
        print(&text)?;
    }
    Ok(if clean {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(ErrorKind::Corrupt.exit_code() as u8)
    })
}
