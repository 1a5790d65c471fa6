//! Observing ingests, so a front end can draw progress without the store printing.

use super::Digest;

/// Told about each blob's ingest. Called from several threads at once.
pub trait IngestObserver: Send + Sync {
    fn started(&self, _digest: &Digest, _size: u64, _media_type: &str) {}
    fn advanced(&self, _digest: &Digest, _bytes: u64) {}
    /// `reused`: the blob was already in the store and nothing was transferred.
    fn finished(&self, _digest: &Digest, _reused: bool) {}
}

/// Observes nothing.
pub struct NoProgress;

impl IngestObserver for NoProgress {}
