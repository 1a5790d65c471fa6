//! Printing: results on stdout, errors and progress on stderr, JSON when asked.

use std::io::Write;
use std::process::ExitCode;

use berth::ErrorKind;
use berth::cimd::CimdError;
use berth::export::ExportError;
use berth::fetch::FetchError;
use berth::policy::PolicyError;
use berth::render::RenderError;
use berth::run::RunError;
use berth::sandbox::SandboxError;
use berth::sandbox::dropin::DropInError;
use berth::store::StoreError;
use berth::transport::TransportError;
use berth::trust::TrustError;

/// Write to stdout; a closed pipe (`berth image list | head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// The kind of the first error in the chain that has one.
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<FetchError>().map(FetchError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<ExportError>().map(ExportError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<RenderError>().map(RenderError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<StoreError>().map(StoreError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<SandboxError>().map(SandboxError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<CimdError>().map(CimdError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<DropInError>().map(DropInError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<PolicyError>().map(PolicyError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<TransportError>().map(TransportError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<RunError>().map(RunError::kind) {
            return k;
        }
        if let Some(k) = cause.downcast_ref::<TrustError>().map(TrustError::kind) {
            return k;
        }
    }
    ErrorKind::Io
}

pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let is_broken_pipe = e
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
    if is_broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("berth: {e:#}");
    ExitCode::from(kind_of(e).exit_code() as u8)
}

/// `1.5 MiB`, as people read sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// `3 minutes ago`, for listing times.
pub fn age(unix_seconds: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let secs = (now - unix_seconds).max(0);
    match secs {
        0..=59 => format!("{secs} seconds ago"),
        60..=3599 => format!("{} minutes ago", secs / 60),
        3600..=86399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}
