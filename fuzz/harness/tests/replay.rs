//! Replays the committed seeds and crash regressions through every fuzz target, so that a
//! crash fixed once fails `cargo test` if it comes back. Fuzzing itself is `just fuzz`.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing {}: {e}", dir.display()),
    };
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_run_clean_through_every_target() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("fuzz/harness has a parent");
    for target in berth_fuzz::TARGETS {
        let seeds = inputs(&fuzz_dir.join("seeds").join(target.name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{} holds no seed", target.name);
        let regressions = inputs(&fuzz_dir.join("regressions").join(target.name));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            eprintln!("{}: {}", target.name, file.strip_prefix(fuzz_dir).unwrap_or(file).display());
            (target.run)(&data);
        }
    }
}
