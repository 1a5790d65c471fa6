//! A layer blob as a stream of tar bytes: decompressed by media type, and hashed as it
//! is read so the uncompressed digest can be checked against the image's `diff_id`.

use std::io::{BufReader, Read};

use super::RenderError;
use crate::store::{Algorithm, Digest, Hasher, Layer, Store};

/// Bytes read from the blob at a time.
const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// The media type berth stores an appc image archive (ACI) under; its compression is
/// told by its first bytes.
pub const ACI_MEDIA_TYPE: &str = "application/vnd.appc.aci";

impl Compression {
    /// The compression a layer media type names (OCI and Docker), or None if the type
    /// is no tar layer.
    pub fn of_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression an archive's first bytes announce (none if no magic matches).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// Wrap `input` in the decoder of this compression.
    pub fn decoder<'a, R: std::io::BufRead + Send + 'a>(self, input: R) -> std::io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        })
    }
}

/// Decompress `input` by its magic number: the tar stream of an ACI.
pub fn sniffed_decoder<'a, R: std::io::BufRead + Send + 'a>(
    mut input: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let head = input.fill_buf()?;
    Compression::sniff(head).decoder(input)
}

/// Reads through to an inner reader, hashing every byte.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader { inner, hasher: Hasher::new(algorithm) }
    }

    /// Read what is left (tar pads past its end-of-archive blocks) and return the digest.
    pub fn finish(mut self) -> std::io::Result<Digest> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(self.hasher.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A tar stream that may end without its padding and end-of-archive blocks: `umoci
/// insert` (0.4.7) writes such layers, and Go's archive/tar, hence umoci and podman, read
/// them. At the inner stream's end this supplies zeros up to the next 512-byte block and
/// two zero blocks. Zeros standing in for an entry's *data* would hide a truncated layer
/// whose diff ID names the truncated bytes, so the reader of the tar checks each entry's
/// data against [`EndPadded::end`] (Go's reader fails there too).
pub struct EndPadded<R> {
    inner: R,
    read: u64,
    /// Zeros still to supply once the inner stream has ended.
    padding: Option<u64>,
    end: StreamEnd,
}

/// Where the bytes of an [`EndPadded`] stream really end (unknown until they do).
#[derive(Debug, Clone, Default)]
pub struct StreamEnd(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl StreamEnd {
    /// Did the stream really hold every byte before `offset`?
    pub fn covers(&self, offset: u64) -> bool {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => true,
            // `end` is the length plus one.
            end => offset < end,
        }
    }

    fn set(&self, len: u64) {
        // Stored plus one: 0 means "not ended yet".
        self.0.store(len + 1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<R: Read> EndPadded<R> {
    pub fn new(inner: R) -> Self {
        EndPadded { inner, read: 0, padding: None, end: StreamEnd::default() }
    }

    /// Where the inner stream ends, once it has.
    pub fn end(&self) -> StreamEnd {
        self.end.clone()
    }
}

impl<R: Read> Read for EndPadded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(left) = &mut self.padding {
            let n = buf.len().min(*left as usize);
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.end.set(self.read);
            let to_block = (512 - self.read % 512) % 512;
            self.padding = Some(to_block + 1024);
            return self.read(buf);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Open a layer's blob and return its uncompressed tar stream, hashed with the
/// algorithm of its diff_id (sha256 when the record has none).
pub fn open(store: &Store, layer: &Layer) -> Result<HashingReader<Box<dyn Read + Send>>, RenderError> {
    let digest = &layer.blob.digest;
    let blob: Box<dyn Read + Send> = match store.layer_read_observer() {
        Some(observer) => {
            observer.started(digest, layer.blob.size, &layer.blob.media_type);
            Box::new(Observed {
                inner: store.blobs().open_blob(digest)?,
                observer: observer.clone(),
                digest: digest.clone(),
                unreported: 0,
            })
        }
        None => Box::new(store.blobs().open_blob(digest)?),
    };
    let file = BufReader::with_capacity(READ_BUFFER, blob);
    let tar_err = |source| RenderError::Tar { layer: digest.clone(), source };
    let tar = if layer.blob.media_type == ACI_MEDIA_TYPE {
        sniffed_decoder(file).map_err(tar_err)?
    } else {
        let compression = Compression::of_media_type(&layer.blob.media_type).ok_or_else(|| {
            RenderError::UnsupportedMediaType { layer: digest.clone(), media_type: layer.blob.media_type.clone() }
        })?;
        compression.decoder(file).map_err(tar_err)?
    };
    let algorithm = layer.diff_id.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
    Ok(HashingReader::new(tar, algorithm))
}

/// A layer blob being read, reported to a progress observer in steps of
/// [`REPORT_STEP`] bytes; `finished` when dropped.
struct Observed<R> {
    inner: R,
    observer: std::sync::Arc<dyn crate::store::IngestObserver>,
    digest: Digest,
    unreported: u64,
}

const REPORT_STEP: u64 = 256 << 10;

impl<R: Read> Read for Observed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.unreported += n as u64;
        if self.unreported >= REPORT_STEP || n == 0 {
            self.observer.advanced(&self.digest, std::mem::take(&mut self.unreported));
        }
        Ok(n)
    }
}

impl<R> Drop for Observed<R> {
    fn drop(&mut self) {
        if self.unreported > 0 {
            self.observer.advanced(&self.digest, self.unreported);
        }
        self.observer.finished(&self.digest, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_media_types_map_to_their_compression() {
        assert_eq!(
            Compression::of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::of_media_type("application/vnd.oci.image.layer.v1.tar+zstd"), Some(Compression::Zstd));
        assert_eq!(Compression::of_media_type("application/vnd.oci.image.layer.v1.tar"), Some(Compression::None));
        assert_eq!(Compression::of_media_type("application/vnd.oci.image.config.v1+json"), None);
    }

    #[test]
    fn hashing_reader_hashes_the_tail_too() {
        let data = b"0123456789".repeat(1000);
        let mut r = HashingReader::new(&data[..], Algorithm::Sha256);
        let mut head = [0u8; 10];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.finish().unwrap(), Digest::of_bytes(Algorithm::Sha256, &data));
    }
}

#[cfg(test)]
mod end_padded_tests {
    use std::io::Read;

    use super::EndPadded;

    fn padded(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        EndPadded::new(&vec![7u8; len][..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn an_unterminated_stream_gets_block_padding_and_two_zero_blocks() {
        let out = padded(700);
        assert_eq!(out.len(), 1024 + 1024);
        assert!(out[..700].iter().all(|b| *b == 7) && out[700..].iter().all(|b| *b == 0));
        assert_eq!(padded(1024).len(), 1024 + 1024, "a stream on a block boundary gets only the end blocks");
    }

    #[test]
    fn the_end_tells_real_bytes_from_padding() {
        let mut stream = EndPadded::new(&[7u8; 700][..]);
        let end = stream.end();
        assert!(end.covers(5000), "nothing is known before the end");
        std::io::copy(&mut stream, &mut std::io::sink()).unwrap();
        assert!(end.covers(700) && !end.covers(701));
    }
}
