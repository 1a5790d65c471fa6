//! `berth:handler/transport`: reads of the granted local path; HTTP is refused until a
//! grant can name hosts.

use std::sync::Arc;

use super::transport_error;
use crate::sandbox::bindings::berth::handler::transport::{Host, HttpRequest, HttpResponse, LocalKind};
use crate::sandbox::bindings::berth::handler::types::Error as WitError;
use crate::sandbox::clock::HostTime;
use crate::sandbox::grant::NetworkGrant;
use crate::transport::{self, HttpClient, LocalAccess, TransportError};

pub struct TransportCtx {
    pub(crate) handler: String,
    pub(crate) local: Option<Arc<LocalAccess>>,
    pub(crate) http: Option<Arc<HttpClient>>,
    pub(crate) network: NetworkGrant,
    pub(crate) read_cap: u32,
    pub(crate) host_time: HostTime,
}

impl TransportCtx {
    fn local(&self) -> Result<&LocalAccess, WitError> {
        self.local.as_deref().ok_or_else(|| transport_error(TransportError::NoLocalGrant))
    }
}

/// The client for `url`, if the grant names its host; every refusal is logged.
pub(super) fn check_network<'a>(
    handler: &str,
    grant: &NetworkGrant,
    http: Option<&'a Arc<HttpClient>>,
    url: &str,
) -> Result<&'a Arc<HttpClient>, WitError> {
    let authority = reqwest::Url::parse(url)
        .map(|u| transport::authority(&u))
        .map_err(|e| WitError::InvalidInput(format!("{url:?}: {e}")))?;
    match http {
        Some(http) if grant.allows(&authority) => Ok(http),
        _ => {
            tracing::warn!(handler, host = %authority, "denied: host outside the network grant");
            let allowed = if grant.hosts.is_empty() { "none".to_string() } else { grant.hosts.join(", ") };
            Err(transport_error(TransportError::NotGranted { host: authority, allowed }))
        }
    }
}

impl Host for TransportCtx {
    fn request(&mut self, req: HttpRequest) -> Result<HttpResponse, WitError> {
        let http = check_network(&self.handler, &self.network, self.http.as_ref(), &req.url)?;
        let request = transport::Request { method: req.method, url: req.url, headers: req.headers, body: req.body };
        let https = request.url.starts_with("https://");
        let resp = self.host_time.measure(|| http.request(&request, self.read_cap as usize)).map_err(|e| {
            let unreachable = matches!(&e, TransportError::Http { source, .. } if source.is_connect());
            let mut error = transport_error(e);
            // Discovery may lead to servers that speak only plain HTTP; say how to allow it.
            if unreachable
                && https
                && self.network.is_open()
                && !http.options().plain_http
                && let WitError::Unavailable(m) | WitError::Io(m) = &mut error
            {
                m.push_str(" (plain HTTP is tried only with --insecure-options=http)");
            }
            error
        })?;
        Ok(HttpResponse { status: resp.status, url: resp.url, headers: resp.headers, body: resp.body })
    }

    fn local_grant(&mut self) -> LocalKind {
        match self.local.as_deref().map(LocalAccess::kind) {
            None => LocalKind::None,
            Some(transport::LocalKind::Directory) => LocalKind::Directory,
            Some(transport::LocalKind::File) => LocalKind::File,
        }
    }

    fn local_size(&mut self, path: String) -> Result<u64, WitError> {
        let local = self.local()?;
        self.host_time.measure(|| local.size(&path)).map_err(transport_error)
    }

    fn local_read(&mut self, path: String, offset: u64, length: u32) -> Result<Vec<u8>, WitError> {
        let local = self.local()?;
        let len = length.min(self.read_cap) as usize;
        self.host_time.measure(|| local.read_at(&path, offset, len)).map_err(transport_error)
    }
}
