//! The eStargz footer: an empty gzip member at the end of the blob whose header's extra
//! field names the offset of the table of contents.
//!
//! eStargz (51 bytes): gzip header with FEXTRA, `XLEN = 26`, one subfield `SI1 SI2 = "SG"`,
//! `LEN = 22`, data `"%016x" (TOC offset) + "STARGZ"`; then an empty deflate block and
//! the trailer. The legacy stargz footer (47 bytes) has the 22 data bytes as the whole
//! extra field, without a subfield header. Both are valid gzip: other tools see an empty
//! member.

/// Bytes of the eStargz footer; the legacy one is four shorter.
pub const FOOTER_SIZE: u64 = 51;
pub const LEGACY_FOOTER_SIZE: u64 = 47;

/// The offset of the TOC and the footer's length, from the blob's last [`FOOTER_SIZE`]
/// bytes (or all of a shorter blob). `None` when neither footer form is there.
pub fn parse(tail: &[u8]) -> Option<(u64, u64)> {
    if tail.len() as u64 >= FOOTER_SIZE {
        let f = &tail[tail.len() - FOOTER_SIZE as usize..];
        if f[..4] == [0x1f, 0x8b, 0x08, 0x04]
            && f[10..12] == [26, 0]
            && &f[12..14] == b"SG"
            && f[14..16] == [22, 0]
            && let Some(offset) = offset_and_magic(&f[16..38])
        {
            return Some((offset, FOOTER_SIZE));
        }
    }
    if tail.len() as u64 >= LEGACY_FOOTER_SIZE {
        let f = &tail[tail.len() - LEGACY_FOOTER_SIZE as usize..];
        if f[..4] == [0x1f, 0x8b, 0x08, 0x04]
            && f[10..12] == [22, 0]
            && let Some(offset) = offset_and_magic(&f[12..34])
        {
            return Some((offset, LEGACY_FOOTER_SIZE));
        }
    }
    None
}

/// `%016x` followed by `STARGZ`.
fn offset_and_magic(data: &[u8]) -> Option<u64> {
    if &data[16..22] != b"STARGZ" {
        return None;
    }
    let hex = std::str::from_utf8(&data[..16]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footer ctr-remote 0.12 wrote for a layer whose TOC starts at 0x4abab0.
    const ESTARGZ: [u8; 51] = [
        0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 0x1a, 0x00, b'S', b'G', 0x16, 0x00, b'0', b'0', b'0', b'0', b'0',
        b'0', b'0', b'0', b'0', b'0', b'4', b'a', b'b', b'a', b'b', b'0', b'S', b'T', b'A', b'R', b'G', b'Z', 0x01,
        0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn the_estargz_footer_names_the_toc_offset() {
        assert_eq!(parse(&ESTARGZ), Some((0x4abab0, FOOTER_SIZE)));
        let mut longer = vec![7u8; 100];
        longer.extend_from_slice(&ESTARGZ);
        assert_eq!(parse(&longer), Some((0x4abab0, FOOTER_SIZE)));
    }

    #[test]
    fn the_legacy_footer_is_read_too() {
        let mut legacy = vec![0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0];
        legacy.extend_from_slice(b"0000000000000400STARGZ");
        legacy.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(legacy.len() as u64, LEGACY_FOOTER_SIZE);
        assert_eq!(parse(&legacy), Some((0x400, LEGACY_FOOTER_SIZE)));
    }

    #[test]
    fn other_tails_have_no_footer() {
        assert_eq!(parse(&[0u8; 51]), None);
        assert_eq!(parse(b"short"), None);
        let mut bad_hex = ESTARGZ;
        bad_hex[16] = b'x';
        assert_eq!(parse(&bad_hex), None);
    }
}
