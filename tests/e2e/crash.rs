//! Crash consistency: `berth fetch`, `berth image render` and `berth run IMAGE` killed
//! with SIGKILL at random points, over a multi-layer image served by a local registry.
//!
//! A kill lands after a random share of the command's uninterrupted duration (measured
//! first, per command and snapshot form; narrowed when a command ends before its kill, as
//! load changes), or, for fetches, at a random `--json` progress event (blob started /
//! blob done) plus a random fraction of the time between events.
//! After every kill:
//! - `berth fsck` is clean: every blob under `blobs/` is re-hashed, and only blobs of the
//!   image are there (a visible blob is complete and verified);
//! - every snapshot under `snapshots/` is complete: a directory, or the tree a layer image
//!   holds, equals what an uninterrupted render made; anything else is a `.tmp-*`;
//! - a flattened render's target is absent or complete; nothing of a killed `run`
//!   survives it (its container dies with it);
//! - the next run of the command completes and reuses exactly what the killed one left:
//!   fetch's `blobsReused`, render's reused layers;
//! - `berth gc` (after some kills) leaves no temporary file, `.tmp-*` snapshot, crashed
//!   container or its mount, and `fsck` stays clean.
//!
//! The seed is printed; `BERTH_CRASH_SEED=N` replays the same kill points (timing still
//! varies). `just soak` runs a longer campaign over a bigger image.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::registry::Registry;
use crate::render::is_root;
use crate::support::{Root, data_layout, data_sha256, mounts_under, sha256_hex};
use crate::tree::{Compare, manifest};

/// How big a campaign is.
struct Campaign {
    /// Layers of pseudo-random data on top of the busybox layer.
    data_layers: usize,
    layer_bytes: usize,
    fetch_kills: usize,
    /// Per snapshot form (directories, EROFS), plus as many flattened renders.
    render_kills: usize,
    /// Per snapshot form.
    run_kills: usize,
}

/// The default suite's campaign: 4 layers (busybox and three of 3 MiB), 110 kills.
#[test]
fn killed_fetches_renders_and_runs_leave_a_consistent_store() {
    let campaign = Campaign { data_layers: 3, layer_bytes: 3 << 20, fetch_kills: 50, render_kills: 10, run_kills: 15 };
    run_campaign("killed_fetches_renders_and_runs_leave_a_consistent_store", &campaign);
}

/// `just soak`: 8 layers (busybox and seven of 24 MiB), 660 kills.
#[test]
#[ignore = "a long campaign: `just soak` runs it"]
fn soak_killed_fetches_renders_and_runs_leave_a_consistent_store() {
    let campaign =
        Campaign { data_layers: 7, layer_bytes: 24 << 20, fetch_kills: 250, render_kills: 70, run_kills: 100 };
    run_campaign("soak_killed_fetches_renders_and_runs_leave_a_consistent_store", &campaign);
}

/// A xorshift generator: kill points are reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("BERTH_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ u64::from(std::process::id())
        });
        eprintln!("{test}: seed {seed} (BERTH_CRASH_SEED={seed} replays its kill points)");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `0..=max`.
    fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_nanos(self.below(max.as_nanos() as u64 + 1))
    }
}

/// The campaign's image, pushed to `reg` as `crash:v1`: busybox, then one layer per data
/// file. Returns the point and what `cat /data/* | sha256sum` prints in it.
fn push_image(reg: &Registry, campaign: &Campaign) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..campaign.data_layers as u64).collect();
    let layout = data_layout(dir.path(), &[("crash", &data)], campaign.layer_bytes);
    reg.push(&layout, "crash", "crash:v1", "oci");
    (format!("docker://{}/crash:v1", reg.addr), data_sha256(&data, campaign.layer_bytes))
}

/// What a kill attempt came to.
enum Outcome {
    Killed,
    /// The command ended before the kill; its status.
    Finished(ExitStatus),
}

/// Kill `child` after `delay`, unless it ends first; also returns how long it ran.
fn kill_after(mut child: Child, delay: Duration) -> (Outcome, Duration) {
    let started = Instant::now();
    // Waiting here is the experiment (where the kill lands), not a synchronisation; in
    // small steps, to know when a command that ends first ended.
    loop {
        let left = delay.saturating_sub(started.elapsed());
        if left.is_zero() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(2)));
    }
    let ran = started.elapsed();
    (kill(&mut child), ran)
}

/// The kill window after a command ended before its kill: the machine got faster since
/// the window was measured (load comes and goes). Halve it, but not below what the
/// command took, so kill points keep covering its whole run.
fn narrowed(window: Duration, outcome: &Outcome, ran: Duration) -> Duration {
    match outcome {
        Outcome::Killed => window,
        Outcome::Finished(_) => ran.max(window / 2),
    }
}

fn kill(child: &mut Child) -> Outcome {
    if let Some(status) = child.try_wait().unwrap() {
        return Outcome::Finished(status);
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    // It may have exited on its own between try_wait and kill.
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL) {
        Outcome::Killed
    } else {
        Outcome::Finished(status)
    }
}

/// Time an uninterrupted command, which must succeed.
fn timed(mut cmd: Command) -> (Duration, String, String) {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let took = start.elapsed();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{cmd:?} failed ({}): {stderr}", out.status);
    (took, stdout, stderr)
}

/// The blobs of the image, and what complete snapshots hold.
struct Reference {
    /// Manifest, config and layers.
    blobs: BTreeSet<String>,
    layers: usize,
    /// Progress events of an uninterrupted cold fetch.
    fetch_events: usize,
    /// Snapshot name → its content (the tree of a directory, or of a layer image).
    snapshots: BTreeMap<String, String>,
    /// The tree of a flattened render.
    flat: BTreeMap<String, String>,
    data_sha256: String,
}

/// Counts for the summary line.
#[derive(Default)]
struct Tally {
    kills: BTreeMap<&'static str, usize>,
    finished_first: BTreeMap<&'static str, usize>,
    gcs: usize,
    completions: usize,
    /// What kills left behind (evidence that they landed all over the commands' work).
    left: BTreeMap<&'static str, usize>,
}

struct Ctx<'a> {
    root: &'a Root,
    point: &'a str,
    reference: Reference,
    rng: Rng,
    tally: Tally,
    scratch: tempfile::TempDir,
    /// A string in every container's command line, to find survivors of a killed run.
    marker: String,
    next_target: usize,
    /// Crashed containers seen so far (until a gc removes them).
    containers_seen: BTreeSet<String>,
    /// Files in `tmp/` seen so far (until a gc removes them).
    tmp_seen: BTreeSet<String>,
}

fn run_campaign(test: &str, campaign: &Campaign) {
    let started = Instant::now();
    let reg = Registry::start();
    let (point, data_sha256) = push_image(&reg, campaign);
    let root = Root::new();
    let rng = Rng::seeded(test);
    let marker = format!("berth-crash-{}-{}", std::process::id(), rng.0 % 1_000_000);

    // An uninterrupted cold fetch: the image's blobs, the duration and progress events.
    // Timed the second time: the first compiles the handler (cached in the store after).
    root.ok(&["fetch", "-q", &point]);
    root.ok(&["image", "rm", &point]);
    let (fetch_cold, stdout, stderr) = timed(root.cmd(&["--json", "fetch", "--pull-policy", "update", &point]));
    let fetched: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut blobs: BTreeSet<String> = [&fetched["manifest"], &fetched["config"]]
        .into_iter()
        .chain(fetched["layers"].as_array().unwrap())
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    blobs.retain(|d| !d.is_empty());
    let layers = fetched["layers"].as_array().unwrap().len();
    assert_eq!(layers, campaign.data_layers + 1);
    let fetch_events = stderr.lines().filter(|l| l.starts_with('{')).count();
    assert!(fetch_events >= layers, "too few progress events: {stderr}");

    let mut ctx = Ctx {
        root: &root,
        point: &point,
        reference: Reference {
            blobs,
            layers,
            fetch_events,
            snapshots: BTreeMap::new(),
            flat: BTreeMap::new(),
            data_sha256,
        },
        rng,
        tally: Tally::default(),
        scratch: tempfile::tempdir().unwrap(),
        marker,
        next_target: 0,
        containers_seen: BTreeSet::new(),
        tmp_seen: BTreeSet::new(),
    };

    fetch_kills(&mut ctx, campaign.fetch_kills, fetch_cold);
    if is_root() {
        for form in ["dir", "erofs"] {
            let cold = reference_render(&mut ctx, form);
            render_kills(&mut ctx, campaign.render_kills, Some(form), cold);
        }
        let cold = reference_flat(&mut ctx);
        render_kills(&mut ctx, campaign.render_kills, None, cold);
        for form in ["dir", "erofs"] {
            let cold = reference_run(&mut ctx, form);
            run_kills(&mut ctx, campaign.run_kills, form, cold);
        }
    } else {
        eprintln!("{test}: not root: renders and runs (overlay mounts, namespaces) are not killed; CI runs as root");
    }

    // The store ends usable: a last fetch reuses everything, gc and fsck are clean.
    gc_and_check(&mut ctx);
    let last = root.json(&["fetch", "--pull-policy", "update", &point]);
    assert_eq!(last["blobsReused"], ctx.reference.blobs.len(), "{last}");
    let t = &ctx.tally;
    let total: usize = t.kills.values().sum();
    eprintln!(
        "{test}: {total} kills {:?}; ended before the kill {:?}; kills that left {:?}; {} completions checked, {} gc runs; {:.1?}",
        t.kills,
        t.finished_first,
        t.left,
        t.completions,
        t.gcs,
        started.elapsed()
    );
}

impl Ctx<'_> {
    fn cmd(&self, form: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = self.root.cmd(args);
        cmd.env("BERTH_SNAPSHOTTER", form.unwrap_or("dir")).stdin(Stdio::null());
        cmd
    }

    fn target(&mut self) -> PathBuf {
        self.next_target += 1;
        self.scratch.path().join(format!("t{}", self.next_target))
    }

    fn count(&mut self, what: &'static str, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Killed => {
                *self.tally.kills.entry(what).or_default() += 1;
                true
            }
            Outcome::Finished(status) => {
                assert!(status.success(), "{what} failed on its own: {status}");
                *self.tally.finished_first.entry(what).or_default() += 1;
                false
            }
        }
    }

    /// The image's blobs present in the store; every blob there must be one of them.
    fn present_blobs(&self) -> BTreeSet<String> {
        let present: BTreeSet<String> =
            self.root.blob_names().into_iter().map(|(alg, hex)| format!("{alg}:{hex}")).collect();
        let stray: Vec<_> = present.difference(&self.reference.blobs).collect();
        assert!(stray.is_empty(), "blobs that belong to no image: {stray:?}");
        present
    }

    /// fsck is clean, and every snapshot is complete (or a `.tmp-*` leftover).
    fn check_store(&self) {
        self.root.assert_fsck_clean();
        self.present_blobs();
        for (name, content) in snapshots(self.root) {
            let want = self.reference.snapshots.get(&name);
            assert_eq!(want, Some(&content), "snapshot {name} is visible but not what a complete render makes");
        }
        assert!(
            std::fs::read_dir(self.root.path().join("quarantine")).is_err(),
            "fsck quarantined something after a kill"
        );
    }

    /// Count what the last kill left: partly written blobs and snapshots, some but not
    /// all of the image's blobs or snapshots, a crashed container (mounted or not).
    fn note_leftovers(&mut self) {
        let root = self.root.path();
        let mut left = Vec::new();
        let tmp: BTreeSet<String> = std::fs::read_dir(root.join("tmp"))
            .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if tmp.difference(&self.tmp_seen).next().is_some() {
            left.push("a partial blob in tmp/");
        }
        self.tmp_seen = tmp;
        let present = self.present_blobs().len();
        if present > 0 && present < self.reference.blobs.len() {
            left.push("some of the blobs");
        }
        if !temporary_snapshots(self.root).is_empty() {
            left.push("a .tmp-* snapshot");
        }
        let complete = snapshots(self.root).len();
        if complete > 0 && !complete.is_multiple_of(self.reference.layers) {
            left.push("some of the snapshots");
        }
        // Containers and mounts of earlier kills stay until a gc, as temporary files: count
        // new ones.
        let containers = root.join("containers");
        let names: BTreeSet<String> = std::fs::read_dir(&containers)
            .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let mounts: BTreeSet<String> = mounts_under(&containers).into_iter().collect();
        if names.difference(&self.containers_seen).next().is_some() {
            left.push("a crashed container");
        }
        if mounts.iter().any(|m| names.difference(&self.containers_seen).any(|n| m.contains(n.as_str()))) {
            left.push("a crashed container's overlay mount");
        }
        self.containers_seen = names;
        for what in left {
            *self.tally.left.entry(what).or_default() += 1;
        }
    }

    /// The snapshots of `form` present and complete: layers a render will reuse.
    fn complete_snapshots(&self, form: &str) -> usize {
        snapshots(self.root).keys().filter(|n| n.ends_with(".erofs") == (form == "erofs")).count()
    }
}

/// Names under `snapshots/` (but `.tmp-*` leftovers) → their content.
fn snapshots(root: &Root) -> BTreeMap<String, String> {
    let dir = root.path().join("snapshots");
    let Ok(entries) = std::fs::read_dir(&dir) else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for e in entries {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            continue;
        }
        let path = dir.join(&name);
        let content = if name.ends_with(".erofs") { erofs_tree(&path) } else { tree(&path) };
        out.insert(name, content);
    }
    out
}

/// A tree's manifest, hashed. Directory mtimes are left out: a layer without entries for
/// the parents of its files gets them made at render time.
fn tree(dir: &Path) -> String {
    sha256_hex(format!("{:?}", manifest(dir, Compare { dir_mtimes: false })).as_bytes())
}

/// The tree a layer image holds (mounted here, read-only): its bytes differ between
/// renders in those directory mtimes.
fn erofs_tree(image: &Path) -> String {
    let mnt = tempfile::tempdir().unwrap();
    let flags = rustix::mount::MountFlags::RDONLY;
    rustix::mount::mount(image, mnt.path(), "erofs", flags, c"").unwrap_or_else(|e| {
        panic!("{} is visible but does not mount: {e}", image.display());
    });
    let content = tree(mnt.path());
    rustix::mount::unmount(mnt.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
    content
}

fn temporary_snapshots(root: &Root) -> Vec<String> {
    match std::fs::read_dir(root.path().join("snapshots")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn unmount_all_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH).unwrap();
    }
}

/// Start over with no snapshots (a cold render): nothing of berth is running.
fn drop_snapshots(root: &Root) {
    unmount_all_under(&root.path().join("mounts"));
    let _ = std::fs::remove_dir_all(root.path().join("mounts"));
    let _ = std::fs::remove_dir_all(root.path().join("snapshots"));
}

/// `berth gc`, then: no temporary files, `.tmp-*` snapshots, crashed containers or
/// their mounts are left, and fsck is clean.
fn gc_and_check(ctx: &mut Ctx) {
    let root = ctx.root;
    root.ok(&["gc"]);
    ctx.tally.gcs += 1;
    ctx.containers_seen.clear();
    ctx.tmp_seen.clear();
    let tmp: Vec<_> = std::fs::read_dir(root.path().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "gc left temporary files: {tmp:?}");
    assert_eq!(temporary_snapshots(root), Vec::<String>::new(), "gc left temporary snapshots");
    let containers = root.path().join("containers");
    assert_eq!(mounts_under(&containers), Vec::<String>::new(), "gc left mounts of crashed containers");
    let left: Vec<_> = std::fs::read_dir(&containers).map(|rd| rd.collect::<Vec<_>>()).unwrap_or_default();
    assert!(left.is_empty(), "gc left crashed containers: {left:?}");
    ctx.check_store();
}

fn fetch_kills(ctx: &mut Ctx, kills: usize, mut cold: Duration) {
    let mut done = 0;
    let mut attempts = 0;
    while done < kills {
        attempts += 1;
        assert!(attempts <= kills * 4, "too few attempts ended in a kill ({done} of {attempts})");
        if ctx.rng.chance(60) && ctx.root.image_count() > 0 {
            // Cold: `image rm` removes the image and its blobs.
            ctx.root.ok(&["image", "rm", ctx.point]);
        }
        let args = ["--json", "fetch", "--pull-policy", "update", ctx.point];
        let outcome = if ctx.rng.chance(50) {
            // At a random progress event, plus a random share of the time to the next.
            let event = 1 + ctx.rng.below(ctx.reference.fetch_events as u64) as usize;
            let extra = ctx.rng.delay(cold / ctx.reference.fetch_events as u32);
            let mut child = ctx.cmd(None, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
            let stderr = child.stderr.take().unwrap();
            let seen =
                BufReader::new(stderr).lines().map_while(Result::ok).filter(|l| l.starts_with('{')).nth(event - 1);
            if seen.is_some() {
                std::thread::sleep(extra);
            }
            kill(&mut child)
        } else {
            let child = ctx.cmd(None, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let (outcome, ran) = kill_after(child, ctx.rng.delay(cold));
            cold = narrowed(cold, &outcome, ran);
            outcome
        };
        if !ctx.count("fetch", &outcome) {
            continue;
        }
        done += 1;
        ctx.note_leftovers();
        ctx.check_store();
        if ctx.rng.chance(40) {
            gc_and_check(ctx);
        }
        if ctx.rng.chance(50) || done == kills {
            // The next fetch completes and reuses every blob the killed one verified.
            let present = ctx.present_blobs().len();
            let again = ctx.root.json(&["fetch", "--pull-policy", "update", ctx.point]);
            assert_eq!(again["blobsReused"], present, "{again}");
            assert_eq!(again["blobsWritten"], ctx.reference.blobs.len() - present, "{again}");
            ctx.tally.completions += 1;
        }
    }
    if ctx.root.image_count() == 0 {
        ctx.root.ok(&["fetch", ctx.point]);
    }
}

/// An uninterrupted cold overlay render with snapshots of `form`: its duration; the
/// snapshots it made become the reference.
fn reference_render(ctx: &mut Ctx, form: &str) -> Duration {
    drop_snapshots(ctx.root);
    let target = ctx.target();
    let (took, stdout, _) =
        timed(ctx.cmd(Some(form), &["--json", "image", "render", "--overlay", ctx.point, target.to_str().unwrap()]));
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["snapshotter"], form, "{out}");
    unmount_all_under(&target);
    let made = snapshots(ctx.root);
    assert_eq!(made.len(), ctx.reference.layers, "{made:?}");
    // A second cold render makes the same snapshots: the comparison after kills is fair.
    drop_snapshots(ctx.root);
    let again = ctx.target();
    timed(ctx.cmd(Some(form), &["image", "render", "--overlay", ctx.point, again.to_str().unwrap()]));
    unmount_all_under(&again);
    assert_eq!(snapshots(ctx.root), made, "two uninterrupted renders made different {form} snapshots");
    ctx.reference.snapshots.extend(made);
    took
}

/// An uninterrupted flattened render: its duration and tree.
fn reference_flat(ctx: &mut Ctx) -> Duration {
    let target = ctx.target();
    let (took, _, _) = timed(ctx.cmd(None, &["image", "render", ctx.point, target.to_str().unwrap()]));
    ctx.reference.flat = manifest(&target, Compare { dir_mtimes: false });
    took
}

/// `form`: overlay renders with snapshots of that form; `None`: flattened renders.
fn render_kills(ctx: &mut Ctx, kills: usize, form: Option<&str>, mut cold: Duration) {
    let what = match form {
        Some("dir") => "render --overlay (dir)",
        Some(_) => "render --overlay (erofs)",
        None => "render (flattened)",
    };
    let mut done = 0;
    let mut attempts = 0;
    while done < kills {
        attempts += 1;
        assert!(attempts <= kills * 4, "too few attempts ended in a kill ({done} of {attempts})");
        if form.is_some() && ctx.rng.chance(70) {
            drop_snapshots(ctx.root);
        }
        let target = ctx.target();
        let t = target.to_str().unwrap();
        let args: Vec<&str> = match form {
            Some(_) => vec!["--json", "image", "render", "--overlay", ctx.point, t],
            None => vec!["--json", "image", "render", ctx.point, t],
        };
        let child = ctx.cmd(form, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let (outcome, ran) = kill_after(child, ctx.rng.delay(cold));
        cold = narrowed(cold, &outcome, ran);
        unmount_all_under(&target);
        if !ctx.count(what, &outcome) {
            continue;
        }
        done += 1;
        ctx.note_leftovers();
        ctx.check_store();
        if form.is_none() && target.exists() {
            // The rename happened: the tree is whole.
            let tree = manifest(&target, Compare { dir_mtimes: false });
            crate::tree::assert_same("the killed render", &tree, "an uninterrupted one", &ctx.reference.flat);
        }
        if ctx.rng.chance(40) {
            gc_and_check(ctx);
        }
        if let Some(form) = form
            && (ctx.rng.chance(50) || done == kills)
        {
            // The next render completes and reuses every snapshot the killed one left.
            let complete = ctx.complete_snapshots(form);
            let again = ctx.target();
            let out =
                ctx.cmd(Some(form), &["--json", "image", "render", "--overlay", ctx.point, again.to_str().unwrap()]);
            let (_, stdout, _) = timed(out);
            unmount_all_under(&again);
            let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let reused = out["layers"].as_array().unwrap().iter().filter(|l| l["action"] == "reused").count();
            assert_eq!(reused, complete, "{out}");
            ctx.tally.completions += 1;
        }
    }
}

/// The container's command: hash the data layers; the marker finds survivors.
fn run_args<'a>(ctx: &'a Ctx, script: &'a str) -> Vec<&'a str> {
    vec!["run", ctx.point, "--", "/bin/busybox", "sh", "-c", script]
}

/// `linger`: the container then sleeps, so a kill after its work still finds it running.
fn run_script(ctx: &Ctx, linger: bool) -> String {
    let sleep = if linger { "sleep 1000; " } else { "" };
    format!("cat /data/* | sha256sum; {sleep}: {}", ctx.marker)
}

/// An uninterrupted cold run with snapshots of `form`: its duration.
fn reference_run(ctx: &mut Ctx, form: &str) -> Duration {
    drop_snapshots(ctx.root);
    let script = run_script(ctx, false);
    let (took, stdout, _) = timed(ctx.cmd(Some(form), &run_args(ctx, &script)));
    assert!(stdout.starts_with(&ctx.reference.data_sha256), "{stdout}");
    took
}

fn run_kills(ctx: &mut Ctx, kills: usize, form: &str, mut cold: Duration) {
    let what = if form == "dir" { "run IMAGE (dir)" } else { "run IMAGE (erofs)" };
    let lingering = run_script(ctx, true);
    let script = run_script(ctx, false);
    let mut done = 0;
    let mut attempts = 0;
    while done < kills {
        attempts += 1;
        assert!(attempts <= kills * 4, "too few attempts ended in a kill ({done} of {attempts})");
        if ctx.rng.chance(50) {
            drop_snapshots(ctx.root);
        }
        let child = ctx
            .cmd(Some(form), &run_args(ctx, &lingering))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (outcome, ran) = kill_after(child, ctx.rng.delay(cold));
        cold = narrowed(cold, &outcome, ran);
        if !ctx.count(what, &outcome) {
            continue;
        }
        done += 1;
        assert_no_survivor(&ctx.marker);
        ctx.note_leftovers();
        ctx.check_store();
        if ctx.rng.chance(40) || done == kills {
            gc_and_check(ctx);
        }
        if ctx.rng.chance(50) {
            let (_, stdout, _) = timed(ctx.cmd(Some(form), &run_args(ctx, &script)));
            assert!(stdout.starts_with(&ctx.reference.data_sha256), "{stdout}");
            ctx.tally.completions += 1;
        }
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Nothing of a killed `berth run` outlives it: its container is killed with it. The
/// kernel delivers that kill asynchronously; wait for it (with a generous bound).
fn assert_no_survivor(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the container of a killed berth run survived it: pids {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Regression: `berth run` killed with SIGKILL left its container running (an orphan
/// outside any supervision, its snapshots no longer protected by the store lock), its
/// overlay mounted and `containers/<name>` in place, and gc cleared neither.
#[test]
fn a_killed_run_takes_its_container_with_it_and_gc_clears_what_it_left() {
    if !is_root() {
        eprintln!("skipped: needs root (overlay mounts, namespaces); CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = data_layout(dir.path(), &[("img", &[0])], 1 << 16);
    let point = crate::support::layout_arg(&layout, "img");
    let root = Root::new();
    root.ok(&["fetch", "-q", &point]);
    let marker = format!("berth-killed-run-{}", std::process::id());
    let script = format!("echo ready; sleep 1000; : {marker}");
    let mut child = root
        .cmd(&["run", &point, "--", "/bin/busybox", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    if let Outcome::Finished(status) = kill(&mut child) {
        panic!("berth run ended before the kill: {status}");
    }
    assert_no_survivor(&marker);

    let containers = root.path().join("containers");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 1, "the killed run's directory is there");
    let gc = root.json(&["gc"]);
    assert_eq!(gc["crashed_containers_removed"], 1, "{gc}");
    assert_eq!(mounts_under(&containers), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0);
    root.assert_fsck_clean();
    // A container kept with --keep (only its upper directory left) is no crash.
    let kept = root.ok(&["run", "--keep", &point, "--", "/bin/busybox", "touch", "/made"]);
    assert!(kept.is_empty());
    let gc = root.json(&["gc"]);
    assert_eq!(gc["crashed_containers_removed"], 0, "{gc}");
    let names: Vec<_> = std::fs::read_dir(&containers).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].join("upper/made").exists());
}

/// Regression: an EROFS probe killed while its image was mounted leaves
/// `snapshots/.tmp-probe-*/mnt` mounted; gc then failed removing it (the read-only
/// mount refused the deletion of its files), and every later gc failed the same way.
#[test]
fn gc_removes_a_killed_erofs_probe_with_its_mount() {
    if !is_root() {
        eprintln!("skipped: needs root (EROFS mounts); CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = data_layout(dir.path(), &[("img", &[0])], 1 << 16);
    let point = crate::support::layout_arg(&layout, "img");
    let root = Root::with_snapshotter("erofs");
    root.ok(&["fetch", "-q", &point]);
    let target = dir.path().join("render");
    root.ok(&["image", "render", "--overlay", &point, target.to_str().unwrap()]);
    unmount_all_under(&target);
    // What the killed probe left: a temporary directory with an image mounted inside.
    let snapshots = root.path().join("snapshots");
    let image = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "erofs"))
        .unwrap();
    let probe = snapshots.join(".tmp-probe-killed");
    std::fs::create_dir_all(probe.join("mnt")).unwrap();
    std::fs::copy(&image, probe.join("probe.erofs")).unwrap();
    rustix::mount::mount(
        probe.join("probe.erofs").as_path(),
        probe.join("mnt").as_path(),
        "erofs",
        rustix::mount::MountFlags::RDONLY,
        c"",
    )
    .unwrap();

    let gc = root.json(&["gc"]);
    assert_eq!(gc["snapshots_removed"], 1, "{gc}");
    assert!(!probe.exists());
    assert_eq!(mounts_under(&snapshots), Vec::<String>::new());
    root.assert_fsck_clean();
}
