//! `berth policy eval`: what the policy decides about an image, and why.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use berth::policy::{self, DecisionPoint, Evaluated, RunFacts, VolumeFacts};
use berth::store::LockMode;

use super::Ctx;
use super::output::{print, print_json};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Evaluate the policy for an image at each decision point it can.
    ///
    /// Always `before-fetch` (the distribution point); `after-resolve` when the image is in
    /// the store (its manifest, sizes, handler); `before-run` with `--run`, for the image's
    /// configured user or `--user`, and `--volume`s. Exit code 0 when every decision
    /// allows, 4 when one denies.
    #[command(after_help = "Examples:\n  berth policy eval docker://registry.lan/app:v1\n  \
                            berth --policy ./policy.toml policy eval --run --user 0 --volume /etc:/host-etc busybox")]
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// The image: a distribution point, or a stored image's name, digest or ID prefix.
    image: String,
    /// Also decide as `berth run` would, before starting a process.
    #[arg(long)]
    run: bool,
    /// The user to run as, `uid[:gid]` (default: the image's configured user).
    #[arg(long, requires = "run", value_name = "UID[:GID]")]
    user: Option<String>,
    /// A volume `HOST:CONTAINER[:ro]` the run would mount (repeatable).
    #[arg(long, requires = "run", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
}

pub fn run(ctx: &Ctx, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Eval(args) = cmd;
    let policy = ctx.policy(false)?.context(
        "no policy is configured: give --policy FILE (or $BERTH_POLICY), or create \
         ~/.config/berth/policy.toml or /etc/berth/policy.toml",
    )?;
    let store = ctx.open_store(LockMode::Shared)?;
    let point = ctx.point(&args.image).ok();
    let stored = match &point {
        Some(p) => store.resolve_ref(&p.to_string())?,
        None => None,
    };
    let stored = match stored {
        Some(s) => Some(s),
        None => store.find_image(&args.image, None).ok(),
    };
    let point = match (point, &stored) {
        (Some(p), _) => p,
        (None, Some(s)) => ctx.point(&s.record.canonical)?,
        (None, None) => anyhow::bail!("{:?} is neither a distribution point nor a stored image", args.image),
    };

    let mut decisions: Vec<(DecisionPoint, Evaluated)> = Vec::new();
    let mut decide = |p: DecisionPoint| {
        let e = policy.evaluate(&p);
        decisions.push((p, e));
    };
    decide(DecisionPoint::BeforeFetch(policy::facts::point(&point)));
    if let Some(s) = &stored {
        let source = if s.record.handler.scheme == point.kind().name() { "builtin" } else { "drop-in" };
        decide(DecisionPoint::AfterResolve(policy::facts::resolved(&point, &s.record, Vec::new(), source)));
    }
    if args.run {
        let configured = stored.as_ref().and_then(|s| s.record.runtime.user.clone()).unwrap_or_default();
        let user = args.user.clone().unwrap_or(configured);
        let uid_text = user.split(':').next().unwrap_or_default();
        let uid = if uid_text.is_empty() || uid_text == "root" {
            0
        } else {
            uid_text
                .parse()
                .with_context(|| format!("user {user:?} is a name; give --user with a numeric uid to evaluate it"))?
        };
        let volumes = args
            .volume
            .iter()
            .map(|v| {
                let mut parts = v.split(':');
                let source = parts.next().unwrap_or_default().to_string();
                let target = parts.next().with_context(|| format!("--volume {v:?} is not HOST:CONTAINER[:ro]"))?;
                Ok(VolumeFacts { source, target: target.to_string(), read_only: parts.next() == Some("ro") })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        decide(DecisionPoint::BeforeRun(RunFacts {
            image: point.to_string(),
            user: if user.is_empty() { "0".into() } else { user },
            uid,
            capabilities: Vec::new(),
            volumes,
            network: "host".into(),
            read_only_rootfs: false,
        }));
    }

    let allowed = decisions.iter().all(|(_, e)| e.decision.allow);
    if ctx.global.json {
        print_json(&json!({
            "policy": { "digest": policy.digest(), "component": policy.source(), "config": policy.config_origin() },
            "allow": allowed,
            "decisions": decisions.iter().map(|(p, e)| {
                let (stage, subject) = policy::facts::describe(p);
                json!({
                    "stage": stage,
                    "subject": subject,
                    "allow": e.decision.allow,
                    "reasons": e.decision.reasons,
                    "fuel": e.fuel_used,
                    "elapsedUs": e.elapsed.as_micros() as u64,
                })
            }).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut text =
            format!("policy {} ({}, component {})\n", policy.config_origin(), policy.digest(), policy.source());
        for (p, e) in &decisions {
            let (stage, subject) = policy::facts::describe(p);
            text.push_str(&format!("{:5} {stage}: {subject}\n", if e.decision.allow { "allow" } else { "DENY" }));
            for r in &e.decision.reasons {
                text.push_str(&format!("        {r}\n"));
            }
        }
        print(&text)?;
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(berth::ErrorKind::Denied.exit_code() as u8) })
}
