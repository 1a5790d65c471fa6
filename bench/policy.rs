//! Policy costs, in-process (run by `just bench`): loading the default policy component
//! (compile vs cached), and one warm decision at each decision point — a fresh instance,
//! the TOML parse and the rules, under fuel metering.

use berth::policy::{DecisionPoint, PointFacts, Policy, ResolvedFacts, RunFacts, VolumeFacts};

#[path = "timing.rs"]
mod timing;
use timing::time;

const POLICY: &str = r#"
default = "accept"
[[rule]]
kind = "docker"
scope = "registry.lan:5000/prod"
action = "signed-by"
keys = ["8A3F0C2D9E1B4A7C6D5E8F90A1B2C3D4E5F60718"]
[[rule]]
scope = "untrusted.example.com"
action = "reject"
[limits]
allowed-registries = ["registry.lan:5000", "registry-1.docker.io"]
max-image-size = "4GiB"
forbid-root = true
forbidden-volume-sources = ["/", "/etc", "/var/run"]
"#;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cold = time(5, || Policy::builtin(POLICY.into(), "bench", None).unwrap());
    Policy::builtin(POLICY.into(), "bench", Some(cache.clone())).unwrap();
    let warm = time(20, || Policy::builtin(POLICY.into(), "bench", Some(cache.clone())).unwrap());

    let policy = Policy::builtin(POLICY.into(), "bench", Some(cache)).unwrap();
    let point = PointFacts {
        canonical: "cimd:docker:v=0:registry.lan:5000/prod/app:v1".into(),
        kind: "docker".into(),
        host: Some("registry.lan:5000".into()),
        name: Some("prod/app".into()),
    };
    let before_fetch = DecisionPoint::BeforeFetch(point.clone());
    let after_resolve = DecisionPoint::AfterResolve(ResolvedFacts {
        point,
        format: "oci".into(),
        manifest_digest: "sha256:00".into(),
        config_digest: Some("sha256:01".into()),
        layers: vec![],
        total_size: 123_456_789,
        signed_by: vec!["8A3F0C2D9E1B4A7C6D5E8F90A1B2C3D4E5F60718".into()],
        handler_scheme: "docker".into(),
        handler_digest: "sha256:02".into(),
        handler_source: "builtin".into(),
    });
    let before_run = DecisionPoint::BeforeRun(RunFacts {
        image: "app".into(),
        user: "1000".into(),
        uid: 1000,
        capabilities: vec![],
        volumes: vec![VolumeFacts { source: "/srv/data".into(), target: "/data".into(), read_only: true }],
        network: "host".into(),
        read_only_rootfs: false,
    });
    println!("policy:  load, cold (compile)         {:>10.2?}", cold);
    println!("policy:  load, warm (cached)          {:>10.2?}", warm);
    for (name, p) in [("before-fetch", &before_fetch), ("after-resolve", &after_resolve), ("before-run", &before_run)] {
        let e = policy.evaluate(p);
        assert!(e.decision.allow, "{name}: {:?}", e.decision.reasons);
        let per = time(500, || policy.evaluate(p));
        println!("policy:  decision {name:14}      {:>10.2?}  ({} fuel)", per, e.fuel_used);
    }
}
