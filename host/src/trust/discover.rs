//! appc discovery of the keys that sign a prefix's images (`ac-discovery-pubkeys`), for
//! `berth trust --prefix NAME` without a key file.

use std::path::Path;

use super::TrustError;
use crate::transport::HttpOptions;

/// URLs of the public keys that appc discovery announces for `prefix` (an appc name or
/// a leading part of one: `example.com/app`), in the order announced.
///
/// - `store_root`: the store (`$BERTH_ROOT`), for the component cache and drop-in
///   handlers of the `appc` handler that does the discovery.
/// - `http`: the host HTTP client's options (CA directories, proxies, retries); the
///   caller adds the prefix's host to `insecure_hosts` when plain HTTP is allowed.
/// - `insecure_allow_http`: discovery may fall back to plain HTTP
///   (`--insecure-allow-http`); otherwise only HTTPS is tried.
///
/// The caller fetches each URL itself (with the same options) and shows every key for
/// review before trusting it: discovery only says where keys are, never that they are
/// trustworthy.
///
/// Not wired yet: the discovery runs in the appc handler component
/// (`berth:handler/discovery.discover-pubkeys`); until then this says so.
pub fn discover_pubkey_urls(
    _store_root: &Path,
    _http: &HttpOptions,
    prefix: &str,
    _insecure_allow_http: bool,
) -> Result<Vec<String>, TrustError> {
    Err(TrustError::DiscoveryUnavailable { prefix: prefix.to_string() })
}
