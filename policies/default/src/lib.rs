//! berth's default policy: a declarative `policy.toml` in the spirit of containers'
//! `policy.json`, evaluated inside a component that can do nothing but compute.
//!
//! ```toml
//! default = "accept"                  # what applies when no rule matches: accept | reject
//!
//! [[rule]]                            # the most specific matching rule decides
//! kind = "docker"                     # point type, or "*" (the default)
//! scope = "registry.lan:5000/team"    # host[/name prefix], "" for every point of the kind
//! action = "signed-by"                # accept | reject | signed-by
//! keys = ["0123ABCD…"]                # signed-by: a fingerprint one signature must match
//!
//! [limits]
//! allowed-registries = ["registry.lan:5000", "registry-1.docker.io"]
//! max-image-size = "2GiB"             # bytes, or a number with KiB/MiB/GiB
//! forbid-root = true                  # no process may run as uid 0
//! forbidden-volume-sources = ["/", "/etc", "/var/run"]
//! ```
//!
//! A file that does not parse denies everything, with the parse error as the reason.

wit_bindgen::generate!({
    world: "policy",
    path: "../../wit/policy",
});

use berth::policy::facts::{PointFacts, ResolvedFacts, RunFacts};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    default: Action,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
    #[serde(default)]
    limits: Limits,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Action {
    #[default]
    Accept,
    Reject,
    SignedBy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default = "any_kind")]
    kind: String,
    #[serde(default)]
    scope: String,
    action: Action,
    #[serde(default)]
    keys: Vec<String>,
}

fn any_kind() -> String {
    "*".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Limits {
    allowed_registries: Option<Vec<String>>,
    max_image_size: Option<Size>,
    #[serde(default)]
    forbid_root: bool,
    #[serde(default)]
    forbidden_volume_sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64, String> {
        let text = match self {
            Size::Bytes(n) => return Ok(*n),
            Size::Text(t) => t.trim(),
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: u64 = number.parse().map_err(|_| format!("max-image-size {text:?} is not a size"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" | "K" => 10,
            "MiB" | "M" => 20,
            "GiB" | "G" => 30,
            "TiB" | "T" => 40,
            u => return Err(format!("max-image-size {text:?}: unknown unit {u:?} (use B, KiB, MiB, GiB, TiB)")),
        };
        n.checked_mul(1 << shift).ok_or_else(|| format!("max-image-size {text:?} is too large"))
    }
}

/// Outcome while evaluating: every deny reason is kept, so the user sees them all.
struct Verdict {
    denials: Vec<String>,
    notes: Vec<String>,
}

impl Verdict {
    fn new() -> Verdict {
        Verdict { denials: Vec::new(), notes: Vec::new() }
    }

    fn deny(&mut self, why: String) {
        self.denials.push(why);
    }

    fn note(&mut self, why: String) {
        self.notes.push(why);
    }

    fn decision(self) -> Decision {
        if self.denials.is_empty() {
            Decision { allow: true, reasons: self.notes }
        } else {
            Decision { allow: false, reasons: self.denials }
        }
    }
}

/// `host/name` of a point, the string scopes are matched against.
fn scope_subject(p: &PointFacts) -> String {
    match (&p.host, &p.name) {
        (Some(h), Some(n)) => format!("{h}/{n}"),
        (Some(h), None) => h.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => p.canonical.clone(),
    }
}

/// Whether `scope` covers `subject`: equal, or a prefix ending at a `/` or `:` boundary.
fn in_scope(scope: &str, subject: &str) -> bool {
    scope.is_empty()
        || subject == scope
        || subject.strip_prefix(scope).is_some_and(|rest| rest.starts_with('/') || rest.starts_with(':'))
}

impl PolicyFile {
    pub fn parse(text: &str) -> Result<PolicyFile, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| format!("policy file: {}", e.message()))?;
        if let Some(size) = &file.limits.max_image_size {
            size.bytes()?;
        }
        for r in &file.rules {
            if r.action == Action::SignedBy && r.keys.is_empty() {
                return Err(format!("policy file: the signed-by rule for {:?} lists no keys", r.scope));
            }
        }
        Ok(file)
    }

    /// The most specific rule for a point: exact kind before `*`, longer scope first.
    fn rule_for(&self, p: &PointFacts) -> Option<&Rule> {
        let subject = scope_subject(p);
        self.rules
            .iter()
            .filter(|r| (r.kind == "*" || r.kind == p.kind) && in_scope(&r.scope, &subject))
            .max_by_key(|r| (r.scope.len(), r.kind != "*"))
    }

    fn describe(rule: Option<&Rule>) -> String {
        match rule {
            Some(r) => format!("rule {}:{:?}", r.kind, r.scope),
            None => "the default".into(),
        }
    }

    fn action_for(&self, p: &PointFacts) -> (Action, Option<&Rule>) {
        let rule = self.rule_for(p);
        (rule.map_or(self.default, |r| r.action), rule)
    }

    fn check_point(&self, p: &PointFacts, v: &mut Verdict) {
        let (action, rule) = self.action_for(p);
        match action {
            Action::Reject => v.deny(format!("{} rejects {}", Self::describe(rule), p.canonical)),
            Action::Accept => v.note(format!("{} accepts {}", Self::describe(rule), p.canonical)),
            Action::SignedBy => {
                v.note(format!("{} requires a signature (checked after resolve)", Self::describe(rule)))
            }
        }
        if let (Some(allowed), Some(host)) = (&self.limits.allowed_registries, &p.host)
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
        {
            v.deny(format!("registry {host} is not in allowed-registries ({})", allowed.join(", ")));
        }
    }

    fn check_resolved(&self, r: &ResolvedFacts, v: &mut Verdict) {
        self.check_point(&r.point, v);
        if let (Action::SignedBy, Some(rule)) = self.action_for(&r.point) {
            let signed = r.signed_by.iter().any(|f| rule.keys.iter().any(|k| k.eq_ignore_ascii_case(f)));
            if signed {
                v.note(format!("signed by a key {} names", Self::describe(Some(rule))));
            } else if r.signed_by.is_empty() {
                v.deny(format!(
                    "{} requires a signature by {}; the image has none",
                    Self::describe(Some(rule)),
                    rule.keys.join(", ")
                ));
            } else {
                v.deny(format!(
                    "{} requires a signature by {}; signed only by {}",
                    Self::describe(Some(rule)),
                    rule.keys.join(", "),
                    r.signed_by.join(", ")
                ));
            }
        }
        if let Some(max) = &self.limits.max_image_size {
            let max = max.bytes().unwrap_or(0);
            if r.total_size > max {
                v.deny(format!("the image is {} bytes, over max-image-size {max}", r.total_size));
            }
        }
    }

    fn check_run(&self, run: &RunFacts, v: &mut Verdict) {
        if self.limits.forbid_root && run.uid == 0 {
            v.deny(format!("{} would run as uid 0 (user {:?}) and forbid-root is set", run.image, run.user));
        }
        for vol in &run.volumes {
            let source = vol.source.trim_end_matches('/');
            for forbidden in &self.limits.forbidden_volume_sources {
                let f = forbidden.trim_end_matches('/');
                let covered = source == f || f.is_empty() || source.strip_prefix(f).is_some_and(|r| r.starts_with('/'));
                // A forbidden "/" covers only "/" itself; anything else would forbid all volumes.
                let covered = if f.is_empty() { source.is_empty() } else { covered };
                if covered {
                    v.deny(format!(
                        "volume source {} is forbidden (forbidden-volume-sources: {forbidden})",
                        vol.source
                    ));
                }
            }
        }
    }

    pub fn evaluate(&self, point: &DecisionPoint) -> Decision {
        let mut v = Verdict::new();
        match point {
            DecisionPoint::BeforeFetch(p) => self.check_point(p, &mut v),
            DecisionPoint::AfterResolve(r) => self.check_resolved(r, &mut v),
            DecisionPoint::BeforeRun(run) => self.check_run(run, &mut v),
        }
        v.decision()
    }
}

struct DefaultPolicy;

impl Guest for DefaultPolicy {
    fn evaluate(config: String, point: DecisionPoint) -> Decision {
        match PolicyFile::parse(&config) {
            Ok(policy) => policy.evaluate(&point),
            Err(why) => Decision { allow: false, reasons: vec![why] },
        }
    }
}

export!(DefaultPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use berth::policy::facts::VolumeFacts;

    fn point(kind: &str, host: &str, name: &str) -> PointFacts {
        PointFacts {
            canonical: format!("cimd:{kind}:v=0:{host}/{name}:v1"),
            kind: kind.into(),
            host: Some(host.into()),
            name: Some(name.into()),
        }
    }

    fn resolved(p: PointFacts, size: u64, signed_by: &[&str]) -> ResolvedFacts {
        ResolvedFacts {
            point: p,
            format: "oci".into(),
            manifest_digest: "sha256:00".into(),
            config_digest: None,
            layers: vec![],
            total_size: size,
            signed_by: signed_by.iter().map(|s| s.to_string()).collect(),
            handler_scheme: "oci".into(),
            handler_digest: "sha256:11".into(),
            handler_source: "builtin".into(),
        }
    }

    fn run(uid: u32, volumes: &[&str]) -> RunFacts {
        RunFacts {
            image: "app".into(),
            user: uid.to_string(),
            uid,
            capabilities: vec![],
            volumes: volumes
                .iter()
                .map(|s| VolumeFacts { source: s.to_string(), target: "/mnt".into(), read_only: false })
                .collect(),
            network: "host".into(),
            read_only_rootfs: false,
        }
    }

    fn eval(text: &str, p: DecisionPoint) -> Decision {
        PolicyFile::parse(text).unwrap().evaluate(&p)
    }

    #[test]
    fn the_most_specific_rule_decides() {
        let text = r#"
            default = "reject"
            [[rule]]
            kind = "docker"
            scope = "r.io"
            action = "accept"
            [[rule]]
            scope = "r.io/secret"
            action = "reject"
        "#;
        assert!(eval(text, DecisionPoint::BeforeFetch(point("docker", "r.io", "app"))).allow);
        let d = eval(text, DecisionPoint::BeforeFetch(point("docker", "r.io", "secret/x")));
        assert!(!d.allow && d.reasons[0].contains("r.io/secret"), "{d:?}");
        // A scope is not a bare string prefix: r.io does not cover r.iox.
        assert!(!eval(text, DecisionPoint::BeforeFetch(point("docker", "r.iox", "app"))).allow);
        assert!(!eval(text, DecisionPoint::BeforeFetch(point("oci", "r.io", "app"))).allow);
    }

    #[test]
    fn registries_sizes_signatures_root_and_volumes() {
        let text = r#"
            [[rule]]
            scope = "r.io/signed"
            action = "signed-by"
            keys = ["AAAA"]
            [limits]
            allowed-registries = ["r.io"]
            max-image-size = "1KiB"
            forbid-root = true
            forbidden-volume-sources = ["/etc", "/"]
        "#;
        let d = eval(text, DecisionPoint::BeforeFetch(point("docker", "evil.io", "app")));
        assert!(!d.allow && d.reasons.iter().any(|r| r.contains("allowed-registries")), "{d:?}");
        assert!(eval(text, DecisionPoint::AfterResolve(resolved(point("oci", "r.io", "a"), 1024, &[]))).allow);
        let d = eval(text, DecisionPoint::AfterResolve(resolved(point("oci", "r.io", "a"), 1025, &[])));
        assert!(!d.allow && d.reasons[0].contains("max-image-size 1024"), "{d:?}");
        let d = eval(text, DecisionPoint::AfterResolve(resolved(point("oci", "r.io", "signed/a"), 10, &["BBBB"])));
        assert!(!d.allow && d.reasons.iter().any(|r| r.contains("signed only by BBBB")), "{d:?}");
        assert!(
            eval(text, DecisionPoint::AfterResolve(resolved(point("oci", "r.io", "signed/a"), 10, &["aaaa"]))).allow
        );
        assert!(!eval(text, DecisionPoint::BeforeRun(run(0, &[]))).allow);
        assert!(eval(text, DecisionPoint::BeforeRun(run(1000, &["/srv/data", "/etcetera"]))).allow);
        let d = eval(text, DecisionPoint::BeforeRun(run(1000, &["/etc/ssl", "/"])));
        assert_eq!(d.reasons.len(), 2, "{d:?}");
    }

    #[test]
    fn a_broken_file_denies_with_the_reason() {
        for text in
            ["default = \"maybe\"", "[limits]\nmax-image-size = \"12 parsecs\"", "[[rule]]\naction = \"signed-by\""]
        {
            let err = PolicyFile::parse(text).unwrap_err();
            assert!(err.starts_with("policy file") || err.contains("max-image-size"), "{err}");
        }
        let d = <DefaultPolicy as Guest>::evaluate("nonsense =".into(), DecisionPoint::BeforeRun(run(1, &[])));
        assert!(!d.allow);
    }
}
