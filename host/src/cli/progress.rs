//! Progress of blob ingests: bars on a terminal, JSON lines with `--json`, else nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use berth::store::{Digest, IngestObserver};

pub enum Progress {
    Bars { multi: MultiProgress, total: ProgressBar, bars: Mutex<HashMap<Digest, ProgressBar>> },
    Json,
    Silent,
}

impl Progress {
    pub fn new(json: bool, quiet: bool) -> Progress {
        if json {
            return Progress::Json;
        }
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::Silent;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.enable_steady_tick(Duration::from_millis(100));
        Progress::Bars { multi, total, bars: Mutex::new(HashMap::new()) }
    }

    pub fn finish(&self) {
        if let Progress::Bars { multi, total, .. } = self {
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }

    fn event(value: serde_json::Value) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{value}");
    }
}

impl IngestObserver for Progress {
    fn started(&self, digest: &Digest, size: u64, media_type: &str) {
        match self {
            Progress::Bars { multi, total, bars } => {
                let bar = multi.insert_before(total, ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.short().to_string());
                total.inc_length(size);
                bars.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), bar);
            }
            Progress::Json => Self::event(serde_json::json!({
                "event": "blob-started", "digest": digest.to_string(), "size": size, "mediaType": media_type,
            })),
            Progress::Silent => {}
        }
    }

    fn advanced(&self, digest: &Digest, bytes: u64) {
        if let Progress::Bars { total, bars, .. } = self {
            if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(digest) {
                bar.inc(bytes);
            }
            total.inc(bytes);
        }
    }

    fn finished(&self, digest: &Digest, reused: bool) {
        match self {
            Progress::Bars { bars, .. } => {
                if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).remove(digest) {
                    bar.finish_and_clear();
                }
            }
            Progress::Json => Self::event(serde_json::json!({
                "event": "blob-done", "digest": digest.to_string(), "reused": reused,
            })),
            Progress::Silent => {}
        }
    }
}
