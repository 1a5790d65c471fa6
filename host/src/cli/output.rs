//! Printing: results on stdout, errors and progress on stderr, JSON when asked.

use std::io::Write;
use std::process::ExitCode;

use berth::ops::{Error, UsageError};
use berth::{ErrorKind, HasKind};

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

/// The kind of the first error in the chain that has one: an operation's error, or a
/// usage error of the command line itself; anything else (an I/O error while printing)
/// is an I/O failure.
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<UsageError>() {
            return e.kind();
        }
    }
    ErrorKind::Io
}

/// The exit code of a kind, for commands that end without an error value.
pub fn exit(kind: ErrorKind) -> ExitCode {
    ExitCode::from(kind.exit_code() as u8)
}

pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let is_broken_pipe = e
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
    if is_broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("berth: {e:#}");
    exit(kind_of(e))
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
