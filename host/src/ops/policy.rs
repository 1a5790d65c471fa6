//! `policy eval`: what the configured policy decides about an image, and why, at each
//! decision point that can be evaluated without fetching or running anything (a stored
//! registry image's signatures are looked up, as a fetch would).

use std::sync::Arc;

use super::{Context, Error, UsageError};
use crate::fetch;
use crate::policy::{self, DecisionPoint, Evaluated, Policy, RunFacts, VolumeFacts};
use crate::store::LockMode;

#[derive(Debug, Clone, Default)]
pub struct EvalRequest {
    /// A distribution point, or a stored image's name, digest or ID prefix.
    pub image: String,
    /// Also decide before a run.
    pub run: bool,
    /// `uid[:gid]` to run as; `None`: the image's configured user.
    pub user: Option<String>,
    /// `HOST:CONTAINER[:ro]` volumes the run would mount.
    pub volumes: Vec<String>,
}

pub struct Evaluation {
    pub policy: Arc<Policy>,
    pub decisions: Vec<(DecisionPoint, Evaluated)>,
}

impl Evaluation {
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|(_, e)| e.decision.allow)
    }
}

/// Evaluate (without enforcing or auditing) `before-fetch` always, `after-resolve` when
/// the image is stored, and `before-run` when asked.
pub fn evaluate_policy(ctx: &Context, request: &EvalRequest) -> Result<Evaluation, Error> {
    let policy = ctx.policy(false)?.ok_or_else(|| {
        UsageError::new(
            "no policy is configured: give --policy FILE (or $BERTH_POLICY), or create \
             ~/.config/berth/policy.toml or /etc/berth/policy.toml",
        )
    })?;
    let store = ctx.open_store(LockMode::Shared)?;
    let point = ctx.point(&request.image).ok();
    let stored = match &point {
        Some(p) => store.resolve_ref(&p.to_string())?,
        None => None,
    };
    let stored = match stored {
        Some(s) => Some(s),
        None => store.find_image(&request.image, None).ok(),
    };
    let point = match (point, &stored) {
        (Some(p), _) => p,
        (None, Some(s)) => ctx.point(&s.record.canonical)?,
        (None, None) => {
            return Err(UsageError::new(format!(
                "{:?} is neither a distribution point nor a stored image",
                request.image
            ))
            .into());
        }
    };

    let mut points = vec![DecisionPoint::BeforeFetch(policy::facts::point(&point))];
    // Why no signature counted, for a denial after the resolve.
    let mut signature_notes = Vec::new();
    if let Some(s) = &stored {
        let source = if s.record.handler.scheme == point.kind().name() { "builtin" } else { "drop-in" };
        // Signatures are checked now, as a fetch would (they are not stored with the image).
        let options = super::fetch::fetch_options(ctx, point.kind(), &super::FetchRequest::default())?;
        let checked = fetch::check_signatures(&store, &ctx.sandbox()?, &point, &s.record, &options)?;
        if checked.signers.is_empty() {
            signature_notes = checked.notes.clone();
        }
        let facts = policy::facts::resolved(&point, &s.record, checked.fingerprints(), source);
        points.push(DecisionPoint::AfterResolve(facts));
    }
    if request.run {
        let configured = stored.as_ref().and_then(|s| s.record.runtime.user.clone()).unwrap_or_default();
        let user = request.user.clone().unwrap_or(configured);
        let uid_text = user.split(':').next().unwrap_or_default();
        let uid = if uid_text.is_empty() || uid_text == "root" {
            0
        } else {
            uid_text.parse().map_err(|_| {
                UsageError::new(format!("user {user:?} is a name; give --user with a numeric uid to evaluate it"))
            })?
        };
        let volumes = request
            .volumes
            .iter()
            .map(|v| {
                let mut parts = v.split(':');
                let source = parts.next().unwrap_or_default().to_string();
                let target = parts
                    .next()
                    .ok_or_else(|| UsageError::new(format!("--volume {v:?} is not HOST:CONTAINER[:ro]")))?;
                Ok(VolumeFacts { source, target: target.to_string(), read_only: parts.next() == Some("ro") })
            })
            .collect::<Result<Vec<_>, UsageError>>()?;
        points.push(DecisionPoint::BeforeRun(RunFacts {
            image: point.to_string(),
            user: if user.is_empty() { "0".into() } else { user },
            uid,
            capabilities: Vec::new(),
            volumes,
            network: "host".into(),
            read_only_rootfs: false,
        }));
    }
    let decisions = points
        .into_iter()
        .map(|p| {
            let mut e = policy.evaluate(&p);
            if matches!(p, DecisionPoint::AfterResolve(_)) && !e.decision.allow {
                e.decision.reasons.extend(signature_notes.iter().map(|n| format!("signatures: {n}")));
            }
            (p, e)
        })
        .collect();
    Ok(Evaluation { policy, decisions })
}
