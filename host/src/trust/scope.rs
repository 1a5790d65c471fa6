//! Scopes: which image names a trusted key may sign, and where its file lives.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

use super::TrustError;

/// What a prefix directory name escapes: `/` (so a prefix is one directory, never a path)
/// and `%` (the escape itself).
const ESCAPED: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

/// Which names a key is trusted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "prefix", rename_all = "lowercase")]
pub enum Scope {
    /// Every name (`trust/root.d`).
    Root,
    /// Names equal to the prefix or under it on a path-segment boundary
    /// (`trust/prefix.d/<escaped prefix>`).
    Prefix(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Root => f.write_str("every name (root)"),
            Scope::Prefix(p) => write!(f, "prefix {p:?}"),
        }
    }
}

impl Scope {
    /// A prefix scope, checked: lowercase ASCII letters, digits and `-._~:`, in
    /// `/`-separated non-empty segments (an appc name; `:` for a host's port). One
    /// trailing `/` is dropped.
    pub fn prefix(prefix: &str) -> Result<Scope, TrustError> {
        let bad = |reason| TrustError::InvalidPrefix { prefix: prefix.to_string(), reason };
        let p = prefix.strip_suffix('/').unwrap_or(prefix);
        if p.is_empty() {
            return Err(bad("it is empty (use --root-key to trust a key for every name)"));
        }
        if !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~:/".contains(&b)) {
            return Err(bad("only lowercase letters, digits, '-', '.', '_', '~', ':' and '/' may appear"));
        }
        if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(bad("a path segment is empty, '.' or '..'"));
        }
        Ok(Scope::Prefix(p.to_string()))
    }

    /// Whether a key of this scope may sign `name`: root keys sign everything; a prefix
    /// signs itself and names below it, never a name that merely starts with the same
    /// characters (`example.com/ap` does not sign `example.com/app`).
    pub fn applies_to(&self, name: &str) -> bool {
        match self {
            Scope::Root => true,
            Scope::Prefix(p) => {
                name.strip_prefix(p.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }

    /// The directory holding this scope's keys under `trust_dir`.
    pub(crate) fn dir(&self, trust_dir: &Path) -> PathBuf {
        match self {
            Scope::Root => trust_dir.join("root.d"),
            Scope::Prefix(p) => trust_dir.join("prefix.d").join(utf8_percent_encode(p, ESCAPED).to_string()),
        }
    }

    /// The scope a `prefix.d` directory name stands for; `None` for a name no prefix
    /// escapes to.
    pub(crate) fn from_dir_name(name: &str) -> Option<Scope> {
        let decoded = percent_decode_str(name).decode_utf8().ok()?;
        let scope = Scope::prefix(&decoded).ok()?;
        (scope.dir(Path::new("")).file_name()? == name).then_some(scope)
    }
}

/// `name` and each shorter prefix of it on segment boundaries, longest first:
/// `example.com/app/sub`, `example.com/app`, `example.com`.
pub fn prefixes_of(name: &str) -> Vec<String> {
    let name = name.trim_end_matches('/');
    let mut out = vec![name.to_string()];
    let mut rest = name;
    while let Some((head, _)) = rest.rsplit_once('/') {
        if !head.is_empty() {
            out.push(head.to_string());
        }
        rest = head;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Scope {
        Scope::prefix(s).unwrap()
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(p("example.com/app").applies_to("example.com/app"));
        assert!(p("example.com/app").applies_to("example.com/app/sub"));
        assert!(p("example.com").applies_to("example.com/app"));
        assert!(!p("example.com/ap").applies_to("example.com/app"));
        assert!(!p("example.com/app").applies_to("example.com/apple"));
        assert!(!p("example.com/app/sub").applies_to("example.com/app"));
        assert!(!p("example.co").applies_to("example.com"));
        assert!(Scope::Root.applies_to("anything.org/x"));
    }

    #[test]
    fn prefixes_are_validated() {
        assert_eq!(p("example.com/app/"), p("example.com/app"));
        for bad in ["", "/", "Example.com", "a//b", "/abs", "a/../b", "..", "a b", "a%2Fb", "a\\b"] {
            assert!(Scope::prefix(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Scope::prefix("127.0.0.1:5000/app").is_ok());
    }

    #[test]
    fn a_prefix_is_one_directory_and_round_trips() {
        let scope = p("example.com/app/sub");
        let dir = scope.dir(Path::new("/t"));
        assert_eq!(dir, Path::new("/t/prefix.d/example.com%2Fapp%2Fsub"));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(Scope::from_dir_name(name), Some(scope));
        // Not what any prefix escapes to: ignored, never decoded into a path.
        assert_eq!(Scope::from_dir_name("example.com%2F..%2Fx"), None);
        assert_eq!(Scope::from_dir_name("example.com%2fapp"), None);
        assert_eq!(Scope::dir(&Scope::Root, Path::new("/t")), Path::new("/t/root.d"));
    }

    #[test]
    fn prefixes_of_a_name_longest_first() {
        assert_eq!(prefixes_of("example.com/app/sub"), ["example.com/app/sub", "example.com/app", "example.com"]);
        assert_eq!(prefixes_of("example.com"), ["example.com"]);
    }
}
