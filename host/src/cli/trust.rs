//! `berth trust`: the keys trusted to sign images, per name prefix: OpenPGP keys (appc
//! images, containers' simple signing) and sigstore keys (cosign).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use berth::ErrorKind;
use berth::ops::{self, KeyReview, TrustAdd};
use berth::trust::{self, KeyInfo, KeyKind, Scope};

use super::Ctx;
use super::output::{exit, print, print_json};

const TRUST_HELP: &str = "\
berth checks image signatures against the keys trusted for the image's name:
  appc images (ACIs)   the detached signature NAME.aci.asc, with OpenPGP keys
  registry images      containers' simple signing (skopeo copy --sign-by), read from the
                       registry's lookaside (lookaside = URL in registries.toml), with
                       OpenPGP keys; and cosign signatures stored in the registry (the
                       sha256-<hex>.sig tag, the referrers API), with sigstore keys
                       (ECDSA P-256 PEM, cosign.pub)
An appc image must be signed; a registry image's verified signers are what a policy's
signed-by rule sees (berth policy --help), under the fingerprints `berth trust list` shows.

A registry image's name is host/repository (docker.io/library/busybox for Docker Hub):
  --prefix example.com/app  trusts a key for example.com/app and names below it
                            (example.com/app/sub), on '/' boundaries: a key for
                            example.com covers example.com/app; one for example.com/ap
                            does not cover example.com/app
  --root-key                trusts a key for every name (use sparingly)

Before a key is added berth shows its fingerprint, user ids, creation and expiry and
asks; compare the fingerprint with one the publisher gave you another way (their web
site over HTTPS, a release announcement). Secret, revoked and expired keys are refused.
A KEY is a file (OpenPGP armored or binary, or a PEM public key) or an https:// URL
(http:// only with --insecure-allow-http). With --prefix and no KEY, the keys the prefix
announces through appc discovery (ac-discovery-pubkeys) are fetched and reviewed.

Keys live in $BERTH_ROOT/trust/root.d/<FINGERPRINT> and
$BERTH_ROOT/trust/prefix.d/<prefix, '/' as %2F>/<FINGERPRINT> (sigstore keys with .pub).

Examples:
  gpg --armor --export release@example.com > example.gpg
  berth trust --prefix example.com/app example.gpg
  berth trust --prefix example.com/app https://example.com/pubkeys.gpg
  berth trust --prefix example.com/app            # keys announced by discovery
  berth trust --root-key company.gpg
  berth trust --prefix registry.lan/team cosign.pub
  berth trust list
  berth trust rm 5D2B2F5C4A1E3F8B --prefix example.com/app";

/// Trust keys to sign images (OpenPGP: appc, simple signing; sigstore: cosign) for a
/// name prefix, or for every name; list and remove them. (Keys for drop-in handlers are
/// `berth handler trust`.)
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true, after_help = TRUST_HELP)]
pub struct TrustArgs {
    #[command(subcommand)]
    command: Option<TrustCommand>,
    #[command(flatten)]
    add: AddArgs,
}

#[derive(Subcommand)]
enum TrustCommand {
    /// List trusted keys: scope, fingerprint, user ids, expiry.
    List,
    /// Stop trusting a key (in one scope, or in all).
    Rm(RmArgs),
}

#[derive(Args)]
struct AddArgs {
    /// Trust the keys for images named PREFIX or below it (e.g. example.com/app).
    #[arg(long, value_name = "PREFIX", required_unless_present = "root_key", conflicts_with = "root_key")]
    prefix: Option<String>,
    /// Trust the keys for every image name.
    #[arg(long)]
    root_key: bool,
    /// Add without showing the key and asking (for scripts that checked it already).
    #[arg(long)]
    skip_fingerprint_review: bool,
    /// Allow fetching keys (and discovery) over plain http://.
    #[arg(long)]
    insecure_allow_http: bool,
    /// Key files or https:// URLs; none with --prefix: discover them.
    #[arg(value_name = "KEY", required_unless_present = "prefix")]
    keys: Vec<String>,
}

#[derive(Args)]
struct RmArgs {
    /// The key's fingerprint, or its 16-digit key id (spaces and case ignored).
    fingerprint: String,
    /// Only the entry for this prefix.
    #[arg(long, value_name = "PREFIX", conflicts_with = "root_key")]
    prefix: Option<String>,
    /// Only the root entry.
    #[arg(long)]
    root_key: bool,
}

pub fn run(ctx: &Ctx, args: TrustArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(TrustCommand::List) => list(ctx),
        Some(TrustCommand::Rm(rm)) => remove(ctx, rm),
        None => add(ctx, args.add),
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let keys = ops::list_trusted_keys(&ctx.ops)?;
    if ctx.global.json {
        print_json(&keys)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    // OpenPGP fingerprints are 40 digits, sigstore ones 64.
    let width = keys.iter().map(|k| k.fingerprint.len()).max().unwrap_or(40);
    if !keys.is_empty() {
        text.push_str(&format!(
            "{:<24} {:<8} {:<width$} {:<12} {}\n",
            "SCOPE", "KIND", "FINGERPRINT", "EXPIRES", "USER IDS"
        ));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    for k in &keys {
        let scope = match &k.scope {
            Scope::Root => "(root)".to_string(),
            Scope::Prefix(p) => p.clone(),
        };
        let expires = match k.expires {
            None => "never".to_string(),
            Some(t) if t <= now => "EXPIRED".to_string(),
            Some(t) => trust::utc(t)[..10].to_string(),
        };
        let kind = match k.kind {
            KeyKind::Openpgp => "openpgp",
            KeyKind::Sigstore => "sigstore",
        };
        text.push_str(&format!(
            "{scope:<24} {kind:<8} {:<width$} {expires:<12} {}\n",
            k.fingerprint,
            k.user_ids.join("; ")
        ));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &Ctx, args: RmArgs) -> anyhow::Result<ExitCode> {
    let scope = match (&args.prefix, args.root_key) {
        (Some(p), _) => Some(Scope::prefix(p).map_err(ops::Error::from)?),
        (None, true) => Some(Scope::Root),
        (None, false) => None,
    };
    let removed = ops::remove_trusted_key(&ctx.ops, &args.fingerprint, scope.as_ref())?;
    if ctx.global.json {
        print_json(&removed)?;
    } else if !ctx.global.quiet {
        let text: String = removed.iter().map(|k| format!("removed {} for {}\n", k.fingerprint, k.scope)).collect();
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<ExitCode> {
    let scope = match &args.prefix {
        Some(p) => Scope::prefix(p).map_err(ops::Error::from)?,
        None => Scope::Root,
    };
    let request = TrustAdd { scope, keys: args.keys.clone(), allow_http: args.insecure_allow_http };
    let mut prompt = Prompt { quiet: ctx.global.quiet };
    let review: Option<&mut dyn KeyReview> = if args.skip_fingerprint_review { None } else { Some(&mut prompt) };
    let trusted = ops::trust_keys(&ctx.ops, &request, review)?;
    if ctx.global.json {
        print_json(&trusted.added)?;
    } else if !ctx.global.quiet {
        let text: String = trusted
            .added
            .iter()
            .map(|k| format!("trusted {} for {}: {}\n", k.fingerprint, k.scope, k.path.display()))
            .collect();
        print(&text)?;
    }
    if !trusted.declined.is_empty() {
        eprintln!("berth: declined at review, not trusted: {}", trusted.declined.join(", "));
        return Ok(exit(ErrorKind::Denied));
    }
    Ok(ExitCode::SUCCESS)
}

/// The review at a prompt: each key is shown on stderr and confirmed on stdin.
struct Prompt {
    quiet: bool,
}

impl KeyReview for Prompt {
    fn announced(&mut self, prefix: &str, urls: &[String]) {
        if !self.quiet {
            eprintln!("berth: discovery for {prefix:?} announced {} key(s): {}", urls.len(), urls.join(", "));
        }
    }

    fn confirm(&mut self, key: &KeyInfo, source: &str, n: usize, of: usize, scope: &Scope) -> Result<bool, ops::Error> {
        eprint!("{}", describe(key, source, n, of));
        let yes = confirm(&format!("Trust this key for {}? [y/N] ", scope_question(scope)))?;
        if !yes {
            eprintln!("berth: not trusting {}", key.fingerprint);
        }
        Ok(yes)
    }
}

fn scope_question(scope: &Scope) -> String {
    match scope {
        Scope::Root => "every image name (root)".to_string(),
        Scope::Prefix(p) => format!("{p:?}"),
    }
}

/// The review text rkt showed: fingerprint in groups of four, user ids, dates.
fn describe(info: &KeyInfo, source: &str, n: usize, of: usize) -> String {
    let grouped: Vec<&str> =
        info.fingerprint.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    let mut text = if of > 1 { format!("Key {n} of {of}, from {source}:\n") } else { format!("Key from {source}:\n") };
    text.push_str(&format!("  fingerprint  {}\n", grouped.join(" ")));
    if info.kind == KeyKind::Sigstore {
        // A bare public key says nothing more (no user ids, dates or subkeys).
        text.push_str("  kind         sigstore (ECDSA P-256; checks cosign signatures)\n");
        return text;
    }
    for uid in &info.user_ids {
        text.push_str(&format!("  user id      {uid}\n"));
    }
    text.push_str(&format!("  created      {}\n", trust::utc(info.created)));
    text.push_str(&format!("  expires      {}\n", info.expires.map_or("never".to_string(), trust::utc)));
    for sub in &info.signing_subkeys {
        text.push_str(&format!("  signing key  {sub}\n"));
    }
    text
}

/// Ask on stderr, read a line from stdin (a terminal or a pipe); only y or yes agree.
fn confirm(question: &str) -> Result<bool, ops::Error> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    let stdin = std::io::stdin();
    stdin.lock().read_line(&mut answer).map_err(|source| ops::Error::Io {
        action: "reading the answer from",
        path: "standard input".into(),
        source,
    })?;
    if !stdin.is_terminal() {
        // A piped answer is not echoed; end the question's line.
        eprintln!("{}", answer.trim());
    }
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
