//! `erofs_image TAR OUT`: write the EROFS image berth's writer makes of a layer tar, for
//! the `erofs_check` seeds (`fuzz/make-seeds.sh`).

use berth::render::{TarDialect, write_erofs_image};
use berth::store::{Algorithm, Digest};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tar, out] = &args[..] else {
        eprintln!("usage: erofs_image TAR OUT");
        std::process::exit(2);
    };
    let input = std::fs::File::open(tar).unwrap_or_else(|e| panic!("opening {tar}: {e}"));
    let output = std::fs::File::create(out).unwrap_or_else(|e| panic!("creating {out}: {e}"));
    let layer = Digest::of_bytes(Algorithm::Sha256, tar.as_bytes());
    if let Err(e) = write_erofs_image(input, layer, TarDialect::Layer, output) {
        eprintln!("erofs_image: {e}");
        std::process::exit(1);
    }
}
