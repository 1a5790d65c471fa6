//! `berth policy eval`: what the policy decides about an image, and why.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use berth::ErrorKind;
use berth::ops::{self, EvalRequest};
use berth::policy::facts;

use super::Ctx;
use super::output::{exit, print, print_json};

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
    let request = EvalRequest { image: args.image, run: args.run, user: args.user, volumes: args.volume };
    let evaluation = ops::evaluate_policy(&ctx.ops, &request)?;
    let policy = &evaluation.policy;
    let allowed = evaluation.allowed();
    if ctx.global.json {
        print_json(&json!({
            "policy": { "digest": policy.digest(), "component": policy.source(), "config": policy.config_origin() },
            "allow": allowed,
            "decisions": evaluation.decisions.iter().map(|(p, e)| {
                let (stage, subject) = facts::describe(p);
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
        for (p, e) in &evaluation.decisions {
            let (stage, subject) = facts::describe(p);
            text.push_str(&format!("{:5} {stage}: {subject}\n", if e.decision.allow { "allow" } else { "DENY" }));
            for r in &e.decision.reasons {
                text.push_str(&format!("        {r}\n"));
            }
        }
        print(&text)?;
    }
    Ok(if allowed { ExitCode::SUCCESS } else { exit(ErrorKind::Denied) })
}
