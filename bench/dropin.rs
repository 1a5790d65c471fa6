//! Drop-in handler overhead, in-process (run by `just bench`): reading a drop-in and
//! checking its signature against the trusted keys (done on every fetch), and loading it
//! into the sandbox cold (Cranelift) and warm (compile cache).
//!
//! Needs `BERTH_BENCH_DROPIN`: an unsigned handler component (the SDK example).

use berth::fetch::dropin::DropIn;
use berth::sandbox::Sandbox;
use berth::trust::HandlerKeyring;

#[path = "timing.rs"]
mod timing;
use timing::time;

fn main() {
    let component = std::fs::read(std::env::var("BERTH_BENCH_DROPIN").expect("BERTH_BENCH_DROPIN")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kp = wasmsign2::KeyPair::generate();
    let module = wasmsign2::Module::deserialize(&mut &component[..]).unwrap();
    let mut signed = Vec::new();
    kp.sk.sign(module, None).unwrap().serialize(&mut signed).unwrap();
    let path = dir.path().join("h.wasm");
    std::fs::write(&path, &signed).unwrap();
    let trust = HandlerKeyring::new(dir.path());
    trust.add("http-tar", kp.pk.to_pem().as_bytes()).unwrap();
    // Three more trusted keys, for other schemes, as a machine might have.
    for scheme in ["s3", "git", "ipfs"] {
        trust.add(scheme, wasmsign2::KeyPair::generate().pk.to_pem().as_bytes()).unwrap();
    }

    let verify = time(50, || DropIn::read(&path).unwrap().verify(&trust).unwrap());
    let cache = dir.path().join("cache");
    let cold = time(5, || Sandbox::new(None).unwrap().load("http-tar", &signed).unwrap());
    Sandbox::new(Some(cache.clone())).unwrap().load("http-tar", &signed).unwrap();
    let warm = time(20, || Sandbox::new(Some(cache.clone())).unwrap().load("http-tar", &signed).unwrap());
    println!("drop-in: read + verify signature     {:>10.2?}  ({} KiB, 4 trusted keys)", verify, signed.len() / 1024);
    println!("drop-in: first load (compile)        {:>10.2?}", cold);
    println!("drop-in: cached load                 {:>10.2?}", warm);
    println!("drop-in: per-fetch overhead, cached  {:>10.2?}  (verify + cached load)", verify + warm);
}
