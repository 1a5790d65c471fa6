//! `berth:handler/transport`: reads of the granted local path; HTTP is refused until a
//! grant can name hosts.

use std::sync::Arc;

use super::transport_error;
use crate::sandbox::bindings::berth::handler::transport::{
    Host, HttpRequest, HttpResponse, LocalKind,
};
use crate::sandbox::bindings::berth::handler::types::Error as WitError;
use crate::sandbox::state::HostTime;
use crate::transport::{self, LocalAccess, TransportError};

pub struct TransportCtx {
    pub(crate) handler: String,
    pub(crate) local: Option<Arc<LocalAccess>>,
    pub(crate) read_cap: u32,
    pub(crate) host_time: HostTime,
}

impl TransportCtx {
    fn local(&self) -> Result<&LocalAccess, WitError> {
        self.local
            .as_deref()
            .ok_or_else(|| transport_error(TransportError::NoLocalGrant))
    }
}

impl Host for TransportCtx {
    fn request(&mut self, req: HttpRequest) -> Result<HttpResponse, WitError> {
        tracing::warn!(handler = %self.handler, url = %req.url, "denied: no network grant");
        Err(WitError::Denied(format!(
            "handler {} has no network grant, so {} {} was refused",
            self.handler, req.method, req.url
        )))
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
        self.host_time
            .measure(|| local.size(&path))
            .map_err(transport_error)
    }

    fn local_read(&mut self, path: String, offset: u64, length: u32) -> Result<Vec<u8>, WitError> {
        let local = self.local()?;
        let len = length.min(self.read_cap) as usize;
        self.host_time
            .measure(|| local.read_at(&path, offset, len))
            .map_err(transport_error)
    }
}
