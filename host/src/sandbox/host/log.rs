//! `berth:handler/log`: guest messages become structured host log events.

use crate::sandbox::bindings::berth::handler::log::{Host, Level};

pub struct LogCtx {
    pub(crate) handler: String,
}

/// Guest messages are truncated; a handler must not flood the host's log.
const MAX_MESSAGE: usize = 4096;

impl Host for LogCtx {
    fn log(&mut self, level: Level, message: String) {
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let handler = self.handler.as_str();
        match level {
            Level::Trace => tracing::trace!(handler, "{message}"),
            Level::Debug => tracing::debug!(handler, "{message}"),
            Level::Info => tracing::info!(handler, "{message}"),
            Level::Warn => tracing::warn!(handler, "{message}"),
            Level::Error => tracing::error!(handler, "{message}"),
        }
    }
}
