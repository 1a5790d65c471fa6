//! `berth policy eval`: what the policy decides about an image, and why.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use berth::ErrorKind;
use berth::ops::{self, EvalRequest};
use berth::policy::facts;

use super::Ctx;
use super::output::{exit, print, print_json};

/// The policy file, as `berth policy --help` teaches it (policies/default reads it).
pub const POLICY_FILE_HELP: &str = "\
The policy file (TOML) is read from --policy FILE, $BERTH_POLICY, ~/.config/berth/policy.toml
or /etc/berth/policy.toml, the first that exists. Without one, everything is allowed.

  default = \"accept\"                  # when no rule matches: accept | reject

  [[rule]]                            # the most specific matching rule decides
  kind = \"docker\"                     # point type (docker, oci, oci-layout, appc, ...) or \"*\"
  scope = \"registry.lan:5000/team\"    # host[/name prefix]; \"\" for every point of the kind;
                                      # a path for oci-layout and local ACIs
  action = \"reject\"                   # accept | reject | signed-by
  keys = [\"0123ABCD...\"]              # signed-by: fingerprints (berth trust list), one of
                                      # which a verified signature must be by

  [limits]
  allowed-registries = [\"registry.lan:5000\", \"registry-1.docker.io\"]
  max-image-size = \"2GiB\"             # bytes, or a number with KiB, MiB or GiB
  forbid-root = true                  # no process may run as uid 0
  forbidden-volume-sources = [\"/\", \"/etc\", \"/var/run\"]

A scope covers a name equal to it or below it at a '/' or ':' boundary (r.io covers r.io/app,
not r.iox). Unknown keys are errors. A file that does not parse denies everything, with the
parse error as the reason. Decisions are taken before a fetch (the point), after the handler
resolved it (manifest, sizes, handler) and before a run (user, volumes, capabilities,
network); every enforced decision is appended to $BERTH_ROOT/policy.log.
signed-by sees the keys whose signatures berth verified after the resolve: for a registry
image, simple-signing (lookaside) and cosign signatures by keys trusted for its name
(berth trust --help); a denial lists why each signature did not count.
A policy component of your own (`--policy-component FILE.wasm`, the berth:policy world in
wit/policy) receives the file's text instead.

Examples:
  berth --policy ./policy.toml policy eval docker://registry.lan:5000/team/app:v1
  berth --policy ./policy.toml policy eval --run --user 0 --volume /etc:/host-etc IMAGE
  berth --policy ./policy.toml fetch docker://registry.lan:5000/team/app:v1";

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
