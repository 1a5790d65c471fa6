use crate::SpecError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A digest checked against the OCI grammar for the registered algorithms:
/// "the encoded portion MUST match /[a-f0-9]{64}/" (sha256) or "/[a-f0-9]{128}/" (sha512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDigest<'a> {
    pub algorithm: Algorithm,
    pub hex: &'a str,
}

impl ParsedDigest<'_> {
    /// Where an OCI image layout keeps this blob: `blobs/<alg>/<hex>`.
    pub fn layout_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex)
    }
}

pub fn parse_digest(digest: &str) -> Result<ParsedDigest<'_>, SpecError> {
    let invalid = |reason| SpecError::InvalidDigest { digest: digest.to_string(), reason };
    let (alg, hex) = digest.split_once(':').ok_or_else(|| invalid("expected <algorithm>:<hex>"))?;
    let algorithm = match alg {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return Err(invalid("algorithm must be sha256 or sha512")),
    };
    if hex.len() != algorithm.hex_len() {
        return Err(invalid("wrong length for its algorithm"));
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("encoded part must be lowercase hex"));
    }
    Ok(ParsedDigest { algorithm, hex })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn accepts_sha256_and_builds_layout_path() {
        let d = format!("sha256:{HEX64}");
        let parsed = parse_digest(&d).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Sha256);
        assert_eq!(parsed.layout_path(), format!("blobs/sha256/{HEX64}"));
    }

    #[test]
    fn rejects_traversal_and_malformed_digests() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256/../x",
            "md5:abcd",
            "sha256:ABCDEF",
            &format!("sha256:{}", HEX64.to_uppercase()),
            &format!("sha512:{HEX64}"),
            "",
        ] {
            assert!(parse_digest(bad).is_err(), "{bad} accepted");
        }
    }
}
