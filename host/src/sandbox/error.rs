use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::transport::TransportError;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("configuring the wasm engine")]
    Engine(#[source] wasmtime::Error),
    #[error("handler component {digest} is invalid")]
    Compile {
        digest: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("handler component {digest} does not fit the berth:handler@0.1.0 world")]
    Link {
        digest: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("handler {handler} ran longer than its time budget of {budget:?} and was stopped")]
    Timeout { handler: String, budget: Duration },
    #[error(
        "handler {handler} tried to grow its memory to {wanted} bytes, over its cap of {cap} bytes, and was stopped"
    )]
    MemoryCap { handler: String, wanted: usize, cap: usize },
    #[error("handler {handler} crashed: {message}{}", stderr_suffix(.stderr))]
    Trap { handler: String, message: String, stderr: String },
    #[error("opening the local grant of handler {handler}")]
    Grant {
        handler: String,
        #[source]
        source: TransportError,
    },
    #[error("compile cache {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() { String::new() } else { format!("; it said: {s}") }
}

impl HasKind for SandboxError {
    fn kind(&self) -> ErrorKind {
        match self {
            SandboxError::Grant { source, .. } => source.kind(),
            SandboxError::Cache { .. } => ErrorKind::Io,
            SandboxError::Engine(_) => ErrorKind::Io,
            _ => ErrorKind::Sandbox,
        }
    }
}
