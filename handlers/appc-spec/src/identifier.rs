//! The spec's name types (`types.md`): AC Identifier and AC Name.

/// An AC Identifier: `^[a-z0-9]+([-._~/][a-z0-9]+)*$` (image names, label and
/// annotation names).
pub fn is_ac_identifier(s: &str) -> bool {
    is_separated(s, |c| matches!(c, b'-' | b'.' | b'_' | b'~' | b'/'))
}

/// An AC Name: `^[a-z0-9]+([-][a-z0-9]+)*$` (port and mount point names).
pub fn is_ac_name(s: &str) -> bool {
    is_separated(s, |c| c == b'-')
}

/// Runs of `[a-z0-9]` joined by single separators, with no separator at either end.
fn is_separated(s: &str, separator: impl Fn(u8) -> bool) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut after_separator = true;
    for &c in bytes {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            after_separator = false;
        } else if separator(c) && !after_separator {
            after_separator = true;
        } else {
            return false;
        }
    }
    !after_separator
}

/// An environment variable name as the appc spec and its reference implementation
/// accept it: `^[A-Za-z_][A-Za-z_0-9.-]*$`.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac_identifiers() {
        for ok in ["a", "example.com/app", "coreos.com/etcd", "a-b.c_d~e/f", "0", "x86_64"] {
            assert!(is_ac_identifier(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a//b", "a-.b", "example.com/", "/a", "a b", "a:b", "é"] {
            assert!(!is_ac_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn ac_names() {
        for ok in ["http", "data-1", "a"] {
            assert!(is_ac_name(ok), "{ok}");
        }
        for bad in ["", "Http", "a.b", "a_b", "a--b", "-a", "a-"] {
            assert!(!is_ac_name(bad), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        for ok in ["PATH", "_x", "a.b-c", "X1"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "1X", "-a", "A B", "A=B"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}
