//! `berth fsck`.

use berth::ErrorKind;
use berth::ops;
use berth::store::Problem;

use super::Ctx;
use super::output::{exit, human_size, print, print_json};

#[derive(clap::Args)]
#[command(after_help = "Exits 0 when the store is clean and 6 when it found problems.")]
pub struct FsckArgs {}

pub fn run(ctx: &Ctx, _args: FsckArgs) -> anyhow::Result<std::process::ExitCode> {
    let checked = ops::fsck(&ctx.ops)?;
    let (report, images) = (&checked.store, &checked.layer_images);
    if ctx.global.json {
        print_json(&checked)?;
    } else {
        let mut text = format!(
            "checked {} blobs ({}) and {} images: {}\n",
            report.blobs_checked,
            human_size(report.bytes_checked),
            report.images_checked,
            if report.is_clean() { "no problems".to_string() } else { format!("{} problems", report.problems.len()) }
        );
        if report.assembled_layers_checked > 0 {
            text.push_str(&format!(
                "checked {} partially pulled layers against their tables of contents\n",
                report.assembled_layers_checked
            ));
        }
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
                Problem::Assembled { image, layer, reason } => {
                    format!("  image {image}: partially pulled layer {layer}: {reason}\n")
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
    Ok(if checked.is_clean() { std::process::ExitCode::SUCCESS } else { exit(ErrorKind::Corrupt) })
}
