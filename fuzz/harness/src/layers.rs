//! Targets of layer tar streams and EROFS images: the directory applier, the EROFS
//! writer, and the EROFS checker `berth fsck` runs.
//!
//! A tar target's input is a flags byte, then the tar (checksums rewritten, see
//! [`crate::fix_checksums`]). Flags: bit 0 overlay whiteouts (else delete), bit 1 the ACI
//! dialect (else a layer), bit 2 apply the tar twice (the second time over what the first
//! wrote, as a later layer is; `tar_apply` only).

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use berth::render::{Applier, TarDialect, Whiteouts, check_erofs_image, write_erofs_image};
use berth::store::{Algorithm, Digest};

use crate::scratch::with_slot;
use crate::tar_input::fix_checksums;

fn layer_digest() -> Digest {
    static LAYER: OnceLock<Digest> = OnceLock::new();
    LAYER.get_or_init(|| Digest::of_bytes(Algorithm::Sha256, b"fuzz layer")).clone()
}

struct Flags {
    whiteouts: Whiteouts,
    dialect: TarDialect,
    twice: bool,
}

/// The flags byte and the tar it is followed by.
fn split_input(data: &[u8]) -> Option<(Flags, Vec<u8>)> {
    let (&flags, tar) = data.split_first()?;
    let mut tar = tar.to_vec();
    fix_checksums(&mut tar);
    let flags = Flags {
        whiteouts: if flags & 1 == 0 { Whiteouts::Delete } else { Whiteouts::Overlay },
        dialect: if flags & 2 == 0 { TarDialect::Layer } else { TarDialect::Aci },
        twice: flags & 4 != 0,
    };
    Some((flags, tar))
}

/// `dir` must hold exactly `name`: whatever a layer writes stays inside its root.
fn assert_only_child(dir: &Path, name: &str) {
    let children: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(children, [name], "the layer wrote outside its root, beside it in {}", dir.display());
}

/// The directory applier (`host/src/render/apply.rs`), into `<slot>/up/root`: no panic,
/// and nothing may appear in `<slot>/up` or `<slot>` beside the root.
pub fn tar_apply(data: &[u8]) {
    let Some((flags, tar)) = split_input(data) else { return };
    with_slot(|slot| {
        let up = slot.join("up");
        let root = up.join("root");
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        for _ in 0..if flags.twice { 2 } else { 1 } {
            let applier = Applier::new(&root, layer_digest(), flags.whiteouts)
                .unwrap_or_else(|e| panic!("opening the root: {e}"))
                .with_dialect(flags.dialect);
            let result = applier.apply(&tar[..]);
            assert_only_child(slot, "up");
            assert_only_child(&up, "root");
            if result.is_err() {
                break;
            }
        }
    })
}

/// The EROFS writer (`host/src/render/erofs/{tree,format}.rs`): no panic, and every
/// image it finishes passes the checker.
pub fn erofs_write(data: &[u8]) {
    let Some((flags, tar)) = split_input(data) else { return };
    with_slot(|slot| {
        let path = slot.join("layer.erofs");
        let out = File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        if write_erofs_image(&tar[..], layer_digest(), flags.dialect, out).is_ok()
            && let Err(e) = check_erofs_image(&path)
        {
            panic!("the writer made an image its checker refuses: {e}");
        }
    })
}

/// The EROFS checker (`host/src/render/erofs/check.rs`) on arbitrary bytes as an image
/// file; its seeds are images made by the writer, which the fuzzer mutates.
pub fn erofs_check(data: &[u8]) {
    with_slot(|slot| {
        let path = slot.join("image.erofs");
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let _ = check_erofs_image(&path);
    })
}
