//! Which chunked format a layer is in, from its manifest annotations (as the producers
//! write them), and how its TOC and chunks are compressed.
//!
//! - eStargz (`containerd.io/snapshot/stargz/toc.digest` on a gzip layer): the TOC is the
//!   tar entry `stargz.index.json` in a gzip member found through the footer; chunks are
//!   gzip members.
//! - zstd:chunked (`io.containers.zstd-chunked.manifest-position` =
//!   `offset:length:uncompressedLength:type` and `…manifest-checksum`, on a zstd layer):
//!   the TOC ("manifest", the same JSON) is zstd-compressed at `offset` inside a skippable
//!   frame, `manifest-checksum` is the digest of those compressed bytes; chunks are zstd
//!   frames. Producers such as ctr-remote also write the TOC digest annotation. The TOC
//!   is not part of the decompressed tar.

use crate::store::Digest;

/// The manifest annotation naming the TOC digest (of the uncompressed JSON).
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
pub const ZSTD_CHUNKED_POSITION: &str = "io.containers.zstd-chunked.manifest-position";
pub const ZSTD_CHUNKED_CHECKSUM: &str = "io.containers.zstd-chunked.manifest-checksum";

/// Bytes of a zstd skippable frame's header (magic, length) before the TOC.
const SKIPPABLE_HEADER: u64 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Estargz {
        toc_digest: Digest,
    },
    ZstdChunked {
        /// Where the compressed TOC is, its length, and its uncompressed length.
        offset: u64,
        length: u64,
        uncompressed: u64,
        /// The digest of the compressed TOC.
        checksum: Digest,
        toc_digest: Option<Digest>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
}

impl Format {
    /// The format a layer's media type and annotations announce: `Ok(None)` for a plain
    /// layer, `Err` for annotations that announce one but do not parse.
    pub fn of(media_type: &str, annotations: &[(String, String)]) -> Result<Option<Format>, String> {
        let get = |key: &str| annotations.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let digest = |key: &str, value: &str| -> Result<Digest, String> {
            value.parse().map_err(|e| format!("annotation {key} = {value:?}: {e}"))
        };
        let toc_digest = get(TOC_DIGEST_ANNOTATION).map(|v| digest(TOC_DIGEST_ANNOTATION, v)).transpose()?;
        if media_type.ends_with("zstd")
            && let Some(position) = get(ZSTD_CHUNKED_POSITION)
        {
            let fields: Vec<&str> = position.split(':').collect();
            let number = |s: &str| {
                s.parse::<u64>().map_err(|_| {
                    format!(
                        "annotation {ZSTD_CHUNKED_POSITION} = {position:?} is not offset:length:uncompressedLength:type"
                    )
                })
            };
            if fields.len() != 4 {
                return Err(format!(
                    "annotation {ZSTD_CHUNKED_POSITION} = {position:?} is not offset:length:uncompressedLength:type"
                ));
            }
            if fields[3] != "1" {
                return Err(format!(
                    "annotation {ZSTD_CHUNKED_POSITION} = {position:?}: manifest type {} (berth reads 1, a JSON TOC)",
                    fields[3]
                ));
            }
            let offset = number(fields[0])?;
            if offset < SKIPPABLE_HEADER {
                return Err(format!(
                    "annotation {ZSTD_CHUNKED_POSITION} = {position:?} puts the TOC inside the first frame"
                ));
            }
            let checksum = get(ZSTD_CHUNKED_CHECKSUM)
                .ok_or_else(|| format!("annotation {ZSTD_CHUNKED_POSITION} comes without {ZSTD_CHUNKED_CHECKSUM}"))?;
            return Ok(Some(Format::ZstdChunked {
                offset,
                length: number(fields[1])?,
                uncompressed: number(fields[2])?,
                checksum: digest(ZSTD_CHUNKED_CHECKSUM, checksum)?,
                toc_digest,
            }));
        }
        if media_type.ends_with("gzip")
            && let Some(toc_digest) = toc_digest
        {
            return Ok(Some(Format::Estargz { toc_digest }));
        }
        Ok(None)
    }

    pub fn codec(&self) -> Codec {
        match self {
            Format::Estargz { .. } => Codec::Gzip,
            Format::ZstdChunked { .. } => Codec::Zstd,
        }
    }

    /// The TOC digest the manifest announces, if it does.
    pub fn toc_digest(&self) -> Option<&Digest> {
        match self {
            Format::Estargz { toc_digest } => Some(toc_digest),
            Format::ZstdChunked { toc_digest, .. } => toc_digest.as_ref(),
        }
    }

    /// Where the chunks end: the TOC's gzip member, or the zstd:chunked TOC's skippable frame.
    pub fn chunks_end(&self, estargz_toc_offset: u64) -> u64 {
        match self {
            Format::Estargz { .. } => estargz_toc_offset,
            Format::ZstdChunked { offset, .. } => offset - SKIPPABLE_HEADER,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Estargz { .. } => "eStargz",
            Format::ZstdChunked { .. } => "zstd:chunked",
        }
    }
}

impl Codec {
    /// A decoder of the members or frames starting at the front of `input`.
    pub fn decoder<'a, R: std::io::BufRead + 'a>(self, input: R) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:9f57098d229e65b93e57bf01662728895dfd66ab38edf51644aede349831f9e9";
    const C: &str = "sha256:7743c2631effbbd0926f2c0da78d3b5b6e5ad821f08fea56eec2ddaf2664b6fa";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn formats_come_from_media_type_and_annotations() {
        let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        assert_eq!(
            Format::of(gzip, &pairs(&[(TOC_DIGEST_ANNOTATION, D)])).unwrap(),
            Some(Format::Estargz { toc_digest: D.parse().unwrap() })
        );
        // ctr-remote's zstd:chunked: both annotation families.
        let both = pairs(&[
            (TOC_DIGEST_ANNOTATION, D),
            (ZSTD_CHUNKED_POSITION, "4982669:6906:31822:1"),
            (ZSTD_CHUNKED_CHECKSUM, C),
        ]);
        assert_eq!(
            Format::of(zstd, &both).unwrap(),
            Some(Format::ZstdChunked {
                offset: 4982669,
                length: 6906,
                uncompressed: 31822,
                checksum: C.parse().unwrap(),
                toc_digest: Some(D.parse().unwrap()),
            })
        );
        assert_eq!(Format::of(gzip, &[]).unwrap(), None);
        assert_eq!(
            Format::of(zstd, &pairs(&[(TOC_DIGEST_ANNOTATION, D)])).unwrap(),
            None,
            "a TOC digest alone names no zstd format"
        );
        assert!(Format::of(zstd, &pairs(&[(ZSTD_CHUNKED_POSITION, "1:2:3"), (ZSTD_CHUNKED_CHECKSUM, C)])).is_err());
        assert!(Format::of(zstd, &pairs(&[(ZSTD_CHUNKED_POSITION, "100:2:3:1")])).is_err());
        assert!(Format::of(gzip, &pairs(&[(TOC_DIGEST_ANNOTATION, "sha256:nothex")])).is_err());
    }
}
