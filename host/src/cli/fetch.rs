//! `berth fetch`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use berth::fetch::PullPolicy;
use berth::ops::{self, FetchRequest};

use super::Ctx;
use super::output::{human_size, print, print_json};
use super::progress::Progress;
use super::registry::RegistryArgs;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  berth fetch docker://busybox
  berth fetch --insecure-registry registry.lan:5000 oci://registry.lan:5000/app:v1
  berth fetch oci-layout:./busybox-layout:latest
  berth fetch oci-archive:./image.tar
  berth fetch 'cimd:oci-layout:v=0:file%3A%2F%2F%2Fsrv%2Flayout?ref=v1'")]
pub struct FetchArgs {
    /// The image's distribution point (canonical `cimd:` URI or a friendly form).
    point: String,
    /// Platform to select from a multi-platform index, os/arch[/variant] (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Seconds of guest time the handler may use.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    handler_timeout: u64,
    /// Blobs ingested at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_concurrent_downloads: usize,
    /// never: only the store; new: the store if fetched before, else the source;
    /// update: always ask the source. Default: update for local layouts, new for registries.
    #[arg(long, value_enum, value_name = "POLICY")]
    pull_policy: Option<PullPolicyArg>,
    /// For eStargz layers, download only the table of contents and the files the store
    /// does not hold yet (HTTP Range, each chunk checked against the TOC). Such layers
    /// are stored assembled, not as their blob: `berth export` cannot write them.
    #[arg(long)]
    partial: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum PullPolicyArg {
    Never,
    New,
    Update,
}

impl PullPolicyArg {
    pub(super) fn policy(self) -> PullPolicy {
        match self {
            PullPolicyArg::Never => PullPolicy::Never,
            PullPolicyArg::New => PullPolicy::New,
            PullPolicyArg::Update => PullPolicy::Update,
        }
    }
}

pub fn run(ctx: &Ctx, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let request = FetchRequest {
        platform: args.platform,
        handler_timeout: Some(Duration::from_secs(args.handler_timeout)),
        max_concurrent_downloads: Some(args.max_concurrent_downloads),
        pull_policy: args.pull_policy.map(PullPolicyArg::policy),
        partial: args.partial,
        // A fetch stores what it fetched before it returns.
        lazy: false,
        registry: args.registry.options(),
    };
    let progress = Arc::new(Progress::new(ctx.global.json, ctx.global.quiet));
    let result = ops::fetch(&ctx.ops, &args.point, &request, progress.clone());
    progress.finish();
    let fetched = result?;
    let r = &fetched.record;

    if ctx.global.json {
        print_json(&json!({
            "canonical": r.canonical,
            "manifest": r.manifest.digest,
            "config": r.config.as_ref().map(|c| &c.digest),
            "layers": r.layers.iter().map(|l| &l.blob.digest).collect::<Vec<_>>(),
            "size": r.size(),
            "blobsWritten": fetched.ingest.blobs_written,
            "bytesWritten": fetched.ingest.bytes_written,
            "blobsReused": fetched.ingest.blobs_reused,
            "layersPartial": fetched.ingest.layers_partial,
            "partialBytesFetched": fetched.ingest.partial_bytes_fetched,
            "filesFetched": fetched.ingest.files_fetched,
            "filesReused": fetched.ingest.files_reused,
            "fromStore": fetched.from_store,
            "signedBy": fetched.signers,
            "handler": { "scheme": r.handler.scheme, "digest": r.handler.digest },
            "elapsedMs": fetched.elapsed.as_millis() as u64,
        }))?;
    } else {
        let mut text = format!("{}\n", r.canonical);
        if !ctx.global.quiet {
            text.push_str(&format!(
                "  manifest {}\n  {} layers, {} in total; {} blobs written ({}), {} already stored, in {:.2?}\n",
                r.manifest.digest,
                r.layers.len(),
                human_size(r.size()),
                fetched.ingest.blobs_written,
                human_size(fetched.ingest.bytes_written),
                fetched.ingest.blobs_reused,
                fetched.elapsed,
            ));
            let i = &fetched.ingest;
            if i.layers_partial > 0 {
                text.push_str(&format!(
                    "  {} eStargz layers pulled partially: {} fetched by range, {} files fetched, {} taken from the store\n",
                    i.layers_partial,
                    human_size(i.partial_bytes_fetched),
                    i.files_fetched,
                    i.files_reused,
                ));
            }
            for signer in &fetched.signers {
                let who = if signer.user_ids.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", signer.user_ids.join("; "))
                };
                text.push_str(&format!("  signed by {}{who}, trusted for {}\n", signer.fingerprint, signer.scope));
            }
        }
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
