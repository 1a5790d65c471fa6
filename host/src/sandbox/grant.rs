//! Grants: what one handler run may touch, decided by the host before it starts.
//! Deny by default: a handler gets no file system, network, environment or clock
//! beyond what is written here.

use std::path::PathBuf;
use std::time::Duration;

use crate::transport::LocalKind;

/// Per-run resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory of all the component's instances together.
    pub memory_bytes: usize,
    /// Time spent running guest code (time in host calls, such as ingests, not counted).
    pub time_budget: Duration,
    /// Largest answer of one `local-read`, `store.read` or HTTP body.
    pub read_cap: u32,
    /// Blobs ingested at once.
    pub max_concurrent_ingests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 128 << 20,
            time_budget: Duration::from_secs(30),
            read_cap: 4 << 20,
            max_concurrent_ingests: 4,
        }
    }
}

/// One local path a handler may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGrant {
    pub path: PathBuf,
    pub kind: LocalKind,
}

/// The hosts a handler may send requests to. Entries are `host[:port]`, matched
/// exactly (case-insensitively); mirrors configured for a granted registry are reached
/// by the host on the handler's behalf, and so are token realms and redirects the
/// registry itself announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkGrant {
    pub hosts: Vec<String>,
}

impl NetworkGrant {
    /// `*` grants every host (appc discovery, whose templates may name any).
    pub fn is_open(&self) -> bool {
        self.hosts.iter().any(|h| h == "*")
    }

    pub fn allows(&self, authority: &str) -> bool {
        self.is_open() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(authority))
    }
}

/// Everything a handler run is allowed.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Read-only access to one directory or file (an image layout, an archive).
    pub local: Option<LocalGrant>,
    pub network: NetworkGrant,
    pub limits: Limits,
}

impl Grant {
    pub fn local(path: PathBuf, kind: LocalKind) -> Grant {
        Grant { local: Some(LocalGrant { path, kind }), ..Grant::default() }
    }

    pub fn network(hosts: Vec<String>) -> Grant {
        Grant { network: NetworkGrant { hosts }, ..Grant::default() }
    }
}
