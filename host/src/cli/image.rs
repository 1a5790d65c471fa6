//! `berth image …`: list, inspect, cat-manifest, render, extract, export, verify, rm.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use berth::store::{LockMode, Store, StoredImage};

use super::Ctx;
use super::output::{age, human_size, print, print_json};

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
    #[command(after_help = "Exits 0 when the tree is unchanged, 6 when it differs, 3 when berth has no record of it.")]
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

impl Ctx {
    /// Find an image by what the user typed: a point (friendly or canonical) or a digest.
    pub(super) fn find(&self, store: &Store, input: &str) -> anyhow::Result<StoredImage> {
        let canonical = self.point(input).ok().map(|p| p.to_string());
        Ok(store.find_image(input, canonical.as_deref())?)
    }
}

pub fn run(ctx: &Ctx, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::List => list(ctx),
        ImageCommand::Inspect { image } => {
            let store = ctx.open_store(LockMode::Shared)?;
            let found = ctx.find(&store, &image)?;
            let mut shown = json!({
                "id": found.record.manifest.digest,
                "refs": found.refs,
                "created": found.created_at,
                "record": found.record,
            });
            // appc names an image by the sha512 of its decompressed ACI, as `sha512-<hex>`.
            if found.record.format == berth::store::ImageFormat::Appc
                && let Some(id) = found.record.layers.first().and_then(|l| l.diff_id.as_ref())
            {
                shown["appcImageId"] = json!(format!("{}-{}", id.algorithm().name(), id.hex()));
            }
            print_json(&shown)?;
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::CatManifest { image } => {
            let store = ctx.open_store(LockMode::Shared)?;
            let found = ctx.find(&store, &image)?;
            let mut bytes = Vec::new();
            store.blobs().open_blob(&found.record.manifest.digest)?.read_to_end(&mut bytes)?;
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
    let store = ctx.open_store(LockMode::Shared)?;
    let images = store.images()?;
    if ctx.global.json {
        let rows: Vec<_> = images
            .iter()
            .map(|i| {
                json!({
                    "id": i.record.manifest.digest,
                    "refs": i.refs,
                    "format": i.record.format,
                    "platform": i.record.platform,
                    "size": i.record.size(),
                    "layers": i.record.layers.len(),
                    "created": i.created_at,
                })
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text =
        format!("{:<14} {:<7} {:<14} {:>10}  {:<16} {}\n", "IMAGE ID", "FORMAT", "PLATFORM", "SIZE", "CREATED", "REF");
    for i in &images {
        let platform = i.record.platform.as_ref().map_or("-".to_string(), |p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        });
        let refs = if i.refs.is_empty() { vec!["<none>".to_string()] } else { i.refs.clone() };
        for (n, r) in refs.iter().enumerate() {
            if n == 0 {
                text.push_str(&format!(
                    "{:<14} {:<7} {:<14} {:>10}  {:<16} {r}\n",
                    i.record.manifest.digest.short(),
                    i.record.format.name(),
                    platform,
                    human_size(i.record.size()),
                    age(i.created_at),
                ));
            } else {
                text.push_str(&format!("{:<14} {:<7} {:<14} {:>10}  {:<16} {r}\n", "", "", "", "", ""));
            }
        }
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn render(ctx: &Ctx, input: &str, dir: &Path, overlay: bool, record: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store(LockMode::Shared)?;
    let image = ctx.find(&store, input)?;
    let (rootfs, report) = if overlay {
        let mut mounted = berth::render::mount_rootfs(&store, &image, dir).with_context(|| {
            format!("rendering {} as an overlay at {}", image.record.manifest.digest, dir.display())
        })?;
        let report = std::mem::take(&mut mounted.report);
        (mounted.keep_mounted(), report)
    } else {
        let report = berth::render::flatten(&store, &image, dir)
            .with_context(|| format!("rendering {} into {}", image.record.manifest.digest, dir.display()))?;
        if record {
            save_record(&store, dir, &image)?;
        }
        (dir.to_path_buf(), report)
    };
    if ctx.global.json {
        print_json(&json!({
            "image": image.record.manifest.digest,
            "rootfs": rootfs,
            "layers": report.layers,
            "snapshotter": report.snapshotter,
        }))?;
    } else if !ctx.global.quiet {
        let reused = report.layers.iter().filter(|l| l.action == "reused").count();
        print(&format!(
            "rendered {} ({} layers, {} reused) at {}\n",
            image.record.manifest.digest.short(),
            report.layers.len(),
            reused,
            rootfs.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(ctx: &Ctx, inputs: &[String], keep_blobs: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store(LockMode::Exclusive)?;
    if let Some(refusal) = needed_by_others(ctx, &store, inputs)? {
        eprintln!("berth: {refusal}");
        return Ok(ExitCode::from(berth::ErrorKind::Usage.exit_code() as u8));
    }
    let mut removed = Vec::new();
    for input in inputs {
        let canonical = ctx.point(input).ok().map(|p| p.to_string());
        let image = store.remove(input, canonical.as_deref())?;
        let digest = image.record.manifest.digest.clone();
        let remaining = store.image(&digest)?.map_or(0, |i| i.refs.len());
        removed.push(json!({ "input": input, "image": digest, "imageRemoved": remaining == 0 }));
    }
    let gc = if keep_blobs { None } else { Some(store.gc()?) };
    if !keep_blobs {
        berth::render::remove_unused_snapshots(&store)?;
    }
    if ctx.global.json {
        print_json(&json!({ "removed": removed, "gc": gc }))?;
    } else {
        let mut text = String::new();
        for r in &removed {
            if r["imageRemoved"] == true {
                text.push_str(&format!("removed image {}\n", r["image"].as_str().unwrap_or_default()));
            } else {
                text.push_str(&format!(
                    "removed ref {} (the image has other refs)\n",
                    r["input"].as_str().unwrap_or_default()
                ));
            }
        }
        if let Some(gc) = gc {
            text.push_str(&format!("freed {} in {} blobs\n", human_size(gc.bytes_freed), gc.blobs_removed));
        }
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Why removing `inputs` would break an appc image that stays (one of them is its
/// dependency), if it would.
fn needed_by_others(ctx: &Ctx, store: &Store, inputs: &[String]) -> anyhow::Result<Option<String>> {
    let targets = inputs.iter().map(|i| ctx.find(store, i)).collect::<anyhow::Result<Vec<_>>>()?;
    let removing: std::collections::HashSet<_> = targets.iter().map(|t| t.record.manifest.digest.clone()).collect();
    for other in store.images()? {
        if other.record.format != berth::store::ImageFormat::Appc || removing.contains(&other.record.manifest.digest) {
            continue;
        }
        for dep in &other.record.dependencies {
            let Ok(found) = berth::render::find_dependency(store, &other, dep) else { continue };
            if let Some(target) = targets.iter().find(|t| t.record.manifest.digest == found.record.manifest.digest) {
                return Ok(Some(format!(
                    "{} is a dependency of {}, which renders on top of it: remove that image too (or first)",
                    target.record.canonical, other.record.canonical
                )));
            }
        }
    }
    Ok(None)
}

fn save_record(store: &Store, dir: &Path, image: &StoredImage) -> anyhow::Result<()> {
    berth::render::save_record(store, dir, &image.record.manifest.digest).with_context(|| {
        format!("recording the rendered tree {} (it was rendered; `verify` cannot check it)", dir.display())
    })?;
    Ok(())
}

fn extract(ctx: &Ctx, input: &str, dir: &Path, record: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store(LockMode::Shared)?;
    let image = ctx.find(&store, input)?;
    let report = berth::render::extract(&store, &image, dir)
        .with_context(|| format!("extracting {} into {}", image.record.manifest.digest, dir.display()))?;
    let rootfs = dir.join("rootfs");
    if record {
        save_record(&store, &rootfs, &image)?;
    }
    if ctx.global.json {
        print_json(
            &json!({ "image": image.record.manifest.digest, "dir": dir, "rootfs": rootfs, "layers": report.layers }),
        )?;
    } else if !ctx.global.quiet {
        let config = if image.record.config.is_some() { ", config" } else { "" };
        print(&format!(
            "extracted {} ({} layers) into {}: rootfs, manifest{config}\n",
            image.record.manifest.digest.short(),
            report.layers.len(),
            dir.display(),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export(ctx: &Ctx, input: &str, out: &Path, format: Option<&str>, tag: &str) -> anyhow::Result<ExitCode> {
    use berth::export::ExportFormat;
    let format = match format {
        Some("oci-archive") => ExportFormat::Archive,
        Some(_) => ExportFormat::Layout,
        None if out.extension().is_some_and(|e| e == "tar") => ExportFormat::Archive,
        None => ExportFormat::Layout,
    };
    let store = ctx.open_store(LockMode::Shared)?;
    let image = ctx.find(&store, input)?;
    let report = berth::export::export(&store, &image, out, format, tag)
        .with_context(|| format!("exporting {} to {}", image.record.manifest.digest, out.display()))?;
    if ctx.global.json {
        print_json(&report)?;
    } else if !ctx.global.quiet {
        let (kind, point) = match format {
            ExportFormat::Layout => ("OCI layout", format!("oci-layout:{}:{tag}", out.display())),
            ExportFormat::Archive => ("oci-archive", format!("oci-archive:{}", out.display())),
        };
        print(&format!(
            "exported {} as {kind} {} ({} blobs: {} written, {} already there); `berth fetch {point}` reads it\n",
            image.record.manifest.digest.short(),
            out.display(),
            report.blobs_written + report.blobs_present,
            human_size(report.bytes_written),
            report.blobs_present,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, dir: &Path) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store(LockMode::Shared)?;
    // `extract` records DIR/rootfs; let the user name DIR.
    let target = if berth::render::has_record(&store, dir)? || !dir.join("rootfs").is_dir() {
        dir.to_path_buf()
    } else {
        dir.join("rootfs")
    };
    let (record, differences) = berth::render::verify_tree(&store, &target)?;
    if ctx.global.json {
        print_json(&json!({
            "dir": record.dir,
            "image": record.image,
            "entries": record.entries.len(),
            "unchanged": differences.is_empty(),
            "differences": differences,
        }))?;
    } else {
        let summary =
            if differences.is_empty() { "unchanged".to_string() } else { format!("{} differences", differences.len()) };
        let mut text = format!(
            "{}: {} entries rendered from {}: {summary}\n",
            record.dir.display(),
            record.entries.len(),
            record.image.short(),
        );
        for d in &differences {
            text.push_str(&format!("  {d}\n"));
        }
        print(&text)?;
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(berth::ErrorKind::Corrupt.exit_code() as u8)
    })
}
