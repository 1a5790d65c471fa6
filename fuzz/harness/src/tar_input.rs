//! Turning fuzzer bytes into tar streams that get past the header checksum.

/// Rewrite the checksum of every header block of `tar`, walking it as a tar reader does
/// (a header, then its data rounded up to 512-byte blocks). A mutated byte then reaches
/// the code that reads the field instead of failing the checksum every time.
pub fn fix_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while let Some(block) = tar.get_mut(at..at + 512) {
        if block.iter().all(|b| *b == 0) {
            at += 512;
            continue;
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(block);
        header.set_cksum();
        block.copy_from_slice(header.as_bytes());
        let Some(next) = header
            .entry_size()
            .ok()
            .and_then(|size| size.checked_next_multiple_of(512))
            .and_then(|size| usize::try_from(size).ok())
            .and_then(|size| at.checked_add(512)?.checked_add(size))
        else {
            return;
        };
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_of_every_header_are_rewritten() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in [("a", &b"12345"[..]), ("b", &b""[..])] {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        let mut tar = b.into_inner().unwrap();
        tar[0] = b'x'; // the first name, now "x", breaks the first checksum
        tar[1024] = b'y'; // the second header (after one data block)
        fix_checksums(&mut tar);
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["x", "y"]);
    }
}
