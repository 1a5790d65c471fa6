//! The part of `cimd:oci-layout:v=0:<escaped file URL>[?ref=<name>]` this handler needs:
//! the ref. The host has parsed and validated the point and granted its path.

use percent_encoding::percent_decode_str;

/// The `ref` query parameter, percent-decoded.
pub fn reference(point: &str) -> Option<String> {
    let (_, query) = point.split_once('?')?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("ref=")?;
        Some(percent_decode_str(value).decode_utf8_lossy().into_owned())
    })
}

/// The same point with `ref` set, so the canonical form names what was chosen.
pub fn with_reference(point: &str, reference: &str) -> String {
    let base = point.split_once('?').map_or(point, |(b, _)| b);
    let escaped = percent_encoding::utf8_percent_encode(reference, QUERY_VALUE);
    format!("{base}?ref={escaped}")
}

/// Escape what would end or split a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'&').add(b'#').add(b'%').add(b'=').add(b'?').add(b'+');
