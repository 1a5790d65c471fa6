//! `berth image …`: list, inspect, cat-manifest, render, extract, export, verify, rm.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use berth::ErrorKind;
use berth::export::ExportFormat;
use berth::ops;

use super::Ctx;
use super::output::{age, exit, human_size, print, print_json};
use super::progress::Progress;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List stored images.
    #[command(alias = "ls")]
    List,
    /// Show an image's stored record as JSON.
    Inspect {
        /// A distribution point it was fetched by (friendly or canonical), or a digest or ID prefix.
        image: String,
    },
    /// Print an image's manifest exactly as stored.
    CatManifest {
        /// A distribution point it was fetched by, or a digest or ID prefix.
        image: String,
    },
    /// Render an image's root file system into DIR: a flattened copy of its layers
    /// (DIR must not exist, or be empty), or with --overlay an overlay mount of its
    /// layer snapshots at DIR/rootfs (with DIR/upper and DIR/work), left mounted.
    ///
    /// A flattened tree is recorded in the store (every entry's type, mode, owner,
    /// mtime, content digest, link target and xattrs) for `berth image verify DIR`.
    #[command(after_help = "Examples:\n  berth image render docker://busybox ./rootfs\n  berth image verify ./rootfs")]
    Render {
        /// A distribution point it was fetched by, or a digest or ID prefix.
        image: String,
        dir: PathBuf,
        /// Mount an overlay of the image's snapshots instead of copying.
        #[arg(long, conflicts_with = "no_record")]
        overlay: bool,
        /// Do not record the rendered tree (saves re-reading it; `verify` then cannot check it).
        #[arg(long)]
        no_record: bool,
    },
    /// Extract an image into DIR as rkt lays one out: DIR/rootfs (flattened, recorded as
    /// by `render`), DIR/manifest (the manifest as stored) and DIR/config (its config).
    Extract {
        /// A distribution point it was fetched by, or a digest or ID prefix.
        image: String,
        dir: PathBuf,
        /// Write only the root file system, directly into DIR (the same as `render`).
        #[arg(long)]
        rootfs_only: bool,
        /// Do not record the rendered tree.
        #[arg(long)]
        no_record: bool,
    },
    /// Export an image as an OCI image layout (a directory; an existing layout gains the
    /// image under TAG) or an oci-archive (one tar file, written only to a new path).
    /// Blobs are copied as stored and re-hashed on the way, so digests are kept.
    #[command(after_help = "Examples:\n  berth image export docker://busybox ./layout --tag busybox\n  \
        skopeo inspect oci:./layout:busybox\n  berth image export docker://busybox busybox.tar")]
    Export {
        /// A distribution point it was fetched by, or a digest or ID prefix.
        image: String,
        out: PathBuf,
        /// `oci` (a directory) or `oci-archive` (a tar); default: oci-archive when OUT
        /// ends in .tar, else oci.
        #[arg(long, value_parser = ["oci", "oci-archive"])]
        format: Option<String>,
        /// The tag (org.opencontainers.image.ref.name) to give the image in the layout.
        #[arg(long, default_value = "latest")]
        tag: String,
    },
    /// Check a tree written by `berth image render` or `extract` against the record taken
    /// when it was written: lists every entry added, removed or changed since.
    #[command(
        after_help = "Exits 0 when the tree is unchanged, 6 when it differs, 3 when berth has no inventory of it."
    )]
    Verify {
        /// The directory given to `render` (or `extract`, or its rootfs).
        dir: PathBuf,
    },
    /// Remove refs or images. A point removes that ref (and the image when no other ref
    /// names it); a digest removes the image and all its refs. Unneeded blobs are then
    /// removed unless --keep-blobs.
    #[command(alias = "rmi")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        /// Leave the blobs for a later `berth gc`.
        #[arg(long)]
        keep_blobs: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::List => list(ctx),
        ImageCommand::Inspect { image } => {
            let found = ops::inspect_image(&ctx.ops, &image)?;
            let mut shown = json!({
                "id": found.record.manifest.digest,
                "refs": found.refs,
                "created": found.created_at,
                "record": found.record,
            });
            if let Some(id) = found.record.appc_image_id() {
                shown["appcImageId"] = json!(id);
            }
            print_json(&shown)?;
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::CatManifest { image } => {
            let bytes = ops::cat_manifest(&ctx.ops, &image)?;
            print(&String::from_utf8_lossy(&bytes))?;
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Render { image, dir, overlay, no_record } => render(ctx, &image, &dir, overlay, !no_record),
        ImageCommand::Extract { image, dir, rootfs_only, no_record } => {
            if rootfs_only {
                render(ctx, &image, &dir, false, !no_record)
            } else {
                extract(ctx, &image, &dir, !no_record)
            }
        }
        ImageCommand::Export { image, out, format, tag } => export(ctx, &image, &out, format.as_deref(), &tag),
        ImageCommand::Verify { dir } => verify(ctx, &dir),
        ImageCommand::Rm { images, keep_blobs } => rm(ctx, &images, keep_blobs),
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let images = ops::list_images(&ctx.ops)?;
    if ctx.global.json {
        let rows: Vec<_> = images
            .iter()
            .map(|i| {
                let mut row = json!({
                    "id": i.record.manifest.digest,
                    "refs": i.refs,
                    "format": i.record.format,
                    "platform": i.record.platform,
                    "size": i.record.size(),
                    "layers": i.record.layers.len(),
                    "created": i.created_at,
                });
                if let Some(id) = i.record.appc_image_id() {
                    row["appcImageId"] = json!(id);
                }
                row
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    // appc names images by the sha512 of the ACI (rkt showed `sha512-…`): a column of its
    // own, shown when an appc image is stored.
    let appc = images.iter().any(|i| i.record.appc_image_id().is_some());
    let appc_header = if appc { format!("{:<20} ", "APPC ID") } else { String::new() };
    let mut text = format!(
        "{:<14} {appc_header}{:<7} {:<14} {:>10}  {:<16} {}\n",
        "IMAGE ID", "FORMAT", "PLATFORM", "SIZE", "CREATED", "REF"
    );
    for i in &images {
        let platform = i.record.platform.as_ref().map_or("-".to_string(), |p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        });
        let appc_id = match (appc, i.record.appc_image_id()) {
            (false, _) => String::new(),
            (true, Some(id)) => format!("{:<20} ", &id[..id.len().min(19)]),
            (true, None) => format!("{:<20} ", "-"),
        };
        let refs = if i.refs.is_empty() { vec!["<none>".to_string()] } else { i.refs.clone() };
        for (n, r) in refs.iter().enumerate() {
            if n == 0 {
                text.push_str(&format!(
                    "{:<14} {appc_id}{:<7} {:<14} {:>10}  {:<16} {r}\n",
                    i.record.manifest.digest.short(),
                    i.record.format.name(),
                    platform,
                    human_size(i.record.size()),
                    age(i.created_at),
                ));
            } else {
                let pad = " ".repeat(appc_header.len());
                text.push_str(&format!("{:<14} {pad}{:<7} {:<14} {:>10}  {:<16} {r}\n", "", "", "", "", ""));
            }
        }
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn render(ctx: &Ctx, input: &str, dir: &Path, overlay: bool, inventory: bool) -> anyhow::Result<ExitCode> {
    let progress = Arc::new(Progress::new(ctx.global.json, ctx.global.quiet));
    let result = ops::render(&ctx.ops, input, dir, overlay, inventory, progress.clone());
    progress.finish();
    let rendered = result?;
    if ctx.global.json {
        print_json(&json!({
            "image": rendered.image,
            "rootfs": rendered.rootfs,
            "layers": rendered.report.layers,
            "snapshotter": rendered.report.snapshotter,
        }))?;
    } else if !ctx.global.quiet {
        let reused = rendered.report.layers.iter().filter(|l| l.action == "reused").count();
        print(&format!(
            "rendered {} ({} layers, {} reused) at {}\n",
            rendered.image.short(),
            rendered.report.layers.len(),
            reused,
            rendered.rootfs.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(ctx: &Ctx, inputs: &[String], keep_blobs: bool) -> anyhow::Result<ExitCode> {
    let removal = ops::remove_images(&ctx.ops, inputs, keep_blobs)?;
    if ctx.global.json {
        print_json(&removal)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for r in &removal.removed {
        if r.image_removed {
            text.push_str(&format!("removed image {}\n", r.image));
        } else {
            text.push_str(&format!("removed ref {} (the image has other refs)\n", r.input));
        }
    }
    if let Some(gc) = &removal.gc {
        text.push_str(&format!("freed {} in {} blobs\n", human_size(gc.bytes_freed), gc.blobs_removed));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn extract(ctx: &Ctx, input: &str, dir: &Path, inventory: bool) -> anyhow::Result<ExitCode> {
    let progress = Arc::new(Progress::new(ctx.global.json, ctx.global.quiet));
    let result = ops::extract(&ctx.ops, input, dir, inventory, progress.clone());
    progress.finish();
    let extracted = result?;
    if ctx.global.json {
        print_json(&json!({
            "image": extracted.image,
            "dir": dir,
            "rootfs": extracted.rootfs,
            "layers": extracted.report.layers,
        }))?;
    } else if !ctx.global.quiet {
        let config = if dir.join("config").exists() { ", config" } else { "" };
        print(&format!(
            "extracted {} ({} layers) into {}: rootfs, manifest{config}\n",
            extracted.image.short(),
            extracted.report.layers.len(),
            dir.display(),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export(ctx: &Ctx, input: &str, out: &Path, format: Option<&str>, tag: &str) -> anyhow::Result<ExitCode> {
    let format = format.map(|f| if f == "oci-archive" { ExportFormat::Archive } else { ExportFormat::Layout });
    let exported = ops::export(&ctx.ops, input, out, format, tag)?;
    let report = &exported.report;
    if ctx.global.json {
        print_json(report)?;
    } else if !ctx.global.quiet {
        let kind = match report.format {
            ExportFormat::Layout => "OCI layout",
            ExportFormat::Archive => "oci-archive",
        };
        print(&format!(
            "exported {} as {kind} {} ({} blobs: {} written, {} already there); `berth fetch {}` reads it\n",
            report.manifest.short(),
            out.display(),
            report.blobs_written + report.blobs_present,
            human_size(report.bytes_written),
            report.blobs_present,
            exported.point,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, dir: &Path) -> anyhow::Result<ExitCode> {
    let verified = ops::verify(&ctx.ops, dir)?;
    let (inventory, differences) = (&verified.inventory, &verified.differences);
    if ctx.global.json {
        print_json(&json!({
            "dir": inventory.dir,
            "image": inventory.image,
            "entries": inventory.entries.len(),
            "unchanged": differences.is_empty(),
            "differences": differences,
        }))?;
    } else {
        let summary =
            if differences.is_empty() { "unchanged".to_string() } else { format!("{} differences", differences.len()) };
        let mut text = format!(
            "{}: {} entries rendered from {}: {summary}\n",
            inventory.dir.display(),
            inventory.entries.len(),
            inventory.image.short(),
        );
        for d in differences {
            text.push_str(&format!("  {d}\n"));
        }
        print(&text)?;
    }
    Ok(if differences.is_empty() { ExitCode::SUCCESS } else { exit(ErrorKind::Corrupt) })
}
