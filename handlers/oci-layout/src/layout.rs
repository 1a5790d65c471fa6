//! The granted layout, as a directory or as an archive: where its files are, and how to
//! read the small ones. Both forms answer the same two questions.

use std::collections::HashMap;

use berth_image_spec::MAX_DOCUMENT_SIZE;

use crate::archive::{self, Member};
use berth_guest::Error;
use berth_guest::berth::handler::store::{LocalRange, Source};
use berth_guest::berth::handler::transport::{self, LocalKind};

/// Host reads are capped per call; ask for chunks no larger than this.
const CHUNK: u64 = 1024 * 1024;

pub enum Layout {
    Directory,
    Archive(HashMap<String, Member>),
}

impl Layout {
    pub fn open() -> Result<Layout, Error> {
        let layout = match transport::local_grant() {
            LocalKind::Directory => Layout::Directory,
            LocalKind::File => {
                let total = transport::local_size("")?;
                Layout::Archive(archive::index(total, |off, len| transport::local_read("", off, len))?)
            }
            LocalKind::None => {
                return Err(Error::Denied("this handler was granted no local path to read".into()));
            }
        };
        layout.check_marker()?;
        Ok(layout)
    }

    /// "The `oci-layout` file MUST be a JSON object with an `imageLayoutVersion` field."
    fn check_marker(&self) -> Result<(), Error> {
        let bytes = self.read_small("oci-layout").map_err(|e| match e {
            Error::NotFound(_) => Error::InvalidInput("not an OCI image layout: it has no `oci-layout` file".into()),
            other => other,
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidInput(format!("oci-layout file: {e}")))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(v) if v.starts_with("1.") => Ok(()),
            Some(v) => Err(Error::Unsupported(format!("image layout version {v}"))),
            None => Err(Error::InvalidInput("oci-layout file has no imageLayoutVersion".into())),
        }
    }

    /// Where the bytes of `path` are, for the host to ingest.
    pub fn source(&self, path: &str, size: u64) -> Result<Source, Error> {
        match self {
            Layout::Directory => Ok(Source::Local(LocalRange { path: path.to_string(), offset: 0, length: size })),
            Layout::Archive(members) => {
                let m = self.member(members, path)?;
                if m.size != size {
                    return Err(Error::DigestMismatch(berth_guest::berth::handler::types::Mismatch {
                        expected: format!("{size} bytes"),
                        actual: format!("{} bytes", m.size),
                        subject: path.to_string(),
                    }));
                }
                Ok(Source::Local(LocalRange { path: String::new(), offset: m.offset, length: m.size }))
            }
        }
    }

    /// Read a small, not content-addressed file (`oci-layout`, `index.json`).
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (file, offset, size) = match self {
            Layout::Directory => (path, 0, transport::local_size(path)?),
            Layout::Archive(members) => {
                let m = self.member(members, path)?;
                ("", m.offset, m.size)
            }
        };
        if size > MAX_DOCUMENT_SIZE {
            return Err(Error::InvalidInput(format!(
                "{path} is {size} bytes, over the {MAX_DOCUMENT_SIZE}-byte limit"
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        while (out.len() as u64) < size {
            let want = (size - out.len() as u64).min(CHUNK) as u32;
            let chunk = transport::local_read(file, offset + out.len() as u64, want)?;
            if chunk.is_empty() {
                return Err(Error::Io(format!("{path} ended after {} of {size} bytes", out.len())));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn member(&self, members: &HashMap<String, Member>, path: &str) -> Result<Member, Error> {
        members.get(path).copied().ok_or_else(|| Error::NotFound(format!("{path} is not in the oci-archive")))
    }
}
