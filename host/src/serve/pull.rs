//! Pull-through: a missed manifest of a `--pull-through` upstream is fetched into the
//! store by [`ops::fetch`] (the registry handler in the sandbox, with the host's
//! mirrors, credentials and policy), then served. Requests for a point whose pull is in
//! flight wait for that pull: one fetch for any number of clients. A pull runs to the
//! end even if every client that asked went away (the next one finds it stored).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::state::Registry;
use super::{Event, ServeError};
use crate::cimd::DistributionPoint;
use crate::store::NoProgress;
use crate::{ErrorKind, HasKind, ops};

/// How a pull ended: `Err((message, kind))`, shareable among the waiters.
type Outcome = Result<(), (String, ErrorKind)>;

#[derive(Default)]
pub struct Pulls {
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
}

impl Pulls {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Option<Outcome>>>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetch `point` into the store, or wait for the pull of it already running.
    pub async fn pull(&self, registry: &Arc<Registry>, point: DistributionPoint) -> Result<(), ServeError> {
        let key = point.to_string();
        let mut rx = {
            let mut in_flight = self.in_flight();
            match in_flight.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(key.clone(), rx.clone());
                    tokio::spawn(run(registry.clone(), key.clone(), tx));
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ServeError::PullLost { point: key.clone() })?
            .clone()
            .expect("waited for a result");
        outcome.map_err(|(message, kind)| ServeError::Pull { point: key, message, kind })
    }
}

async fn run(registry: Arc<Registry>, point: String, tx: watch::Sender<Option<Outcome>>) {
    let started = Instant::now();
    let reg = registry.clone();
    let p = point.clone();
    let fetched =
        tokio::task::spawn_blocking(move || ops::fetch(&reg.ctx, &p, &reg.config.fetch, Arc::new(NoProgress))).await;
    let outcome = match fetched {
        Ok(Ok(fetched)) => {
            registry.events.notice(&Event::Pulled {
                point: point.clone(),
                manifest: fetched.record.manifest.digest.to_string(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
            Ok(())
        }
        Ok(Err(e)) => {
            let message = super::response::chain(&e);
            registry.events.notice(&Event::PullFailed { point: point.clone(), error: message.clone() });
            Err((message, e.kind()))
        }
        Err(e) => Err((e.to_string(), ErrorKind::Io)),
    };
    // Later misses start a new pull; those waiting get this one's outcome.
    registry.pulls.in_flight().remove(&point);
    let _ = tx.send(Some(outcome));
}
