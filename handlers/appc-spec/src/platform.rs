//! appc and OCI name platforms differently (`aarch64` vs `arm64`, `armv7l` vs `arm`/`v7`);
//! the spec's `ToAppcOSArch`/`ToGoOSArch` tables translate between them.

/// OCI (os, architecture, variant; `""` for none).
type OciPlatform = (&'static str, &'static str, &'static str);
/// appc (os, arch).
type AppcPlatform = (&'static str, &'static str);

const TABLE: &[(OciPlatform, AppcPlatform)] = &[
    (("linux", "amd64", ""), ("linux", "amd64")),
    (("linux", "386", ""), ("linux", "i386")),
    (("linux", "arm64", ""), ("linux", "aarch64")),
    (("linux", "arm", "v6"), ("linux", "armv6l")),
    (("linux", "arm", "v7"), ("linux", "armv7l")),
    (("linux", "ppc64", ""), ("linux", "ppc64")),
    (("linux", "ppc64le", ""), ("linux", "ppc64le")),
    (("linux", "s390x", ""), ("linux", "s390x")),
    (("freebsd", "amd64", ""), ("freebsd", "amd64")),
    (("freebsd", "386", ""), ("freebsd", "i386")),
    (("freebsd", "arm", "v6"), ("freebsd", "arm")),
    (("darwin", "amd64", ""), ("darwin", "x86_64")),
    (("darwin", "386", ""), ("darwin", "i386")),
];

/// The appc `os`/`arch` labels of an OCI platform; `linux`/`amd64` for an empty one.
/// A platform the table does not know is passed through as it is.
pub fn to_appc(os: &str, architecture: &str, variant: Option<&str>) -> (String, String) {
    if os.is_empty() && architecture.is_empty() {
        return ("linux".into(), "amd64".into());
    }
    // `arm` without a variant is v6 for appc, as for Go; `arm64/v8` is plain arm64.
    let variant = match (architecture, variant.unwrap_or("")) {
        ("arm", "") => "v6",
        ("arm64", "v8") => "",
        (_, v) => v,
    };
    TABLE
        .iter()
        .find(|((o, a, v), _)| *o == os && *a == architecture && *v == variant)
        .map_or((os.to_string(), architecture.to_string()), |(_, (o, a))| (o.to_string(), a.to_string()))
}

/// The OCI platform (os, architecture, variant) of appc `os`/`arch` labels. A pair the
/// table does not know is passed through as it is.
pub fn to_oci(os: &str, arch: &str) -> (String, String, Option<String>) {
    TABLE
        .iter()
        .find(|(_, (o, a))| *o == os && *a == arch)
        .map_or((os.to_string(), arch.to_string(), None), |((o, a, v), _)| {
            (o.to_string(), a.to_string(), (!v.is_empty()).then(|| v.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways() {
        assert_eq!(to_appc("linux", "amd64", None), ("linux".into(), "amd64".into()));
        assert_eq!(to_appc("linux", "arm64", Some("v8")), ("linux".into(), "aarch64".into()));
        assert_eq!(to_appc("linux", "arm", Some("v7")), ("linux".into(), "armv7l".into()));
        assert_eq!(to_appc("linux", "arm", None), ("linux".into(), "armv6l".into()));
        assert_eq!(to_appc("", "", None), ("linux".into(), "amd64".into()));
        assert_eq!(to_appc("linux", "riscv64", None), ("linux".into(), "riscv64".into()));
        assert_eq!(to_oci("linux", "aarch64"), ("linux".into(), "arm64".into(), None));
        assert_eq!(to_oci("linux", "armv7l"), ("linux".into(), "arm".into(), Some("v7".into())));
        assert_eq!(to_oci("darwin", "x86_64"), ("darwin".into(), "amd64".into(), None));
        assert_eq!(to_oci("linux", "armv7b"), ("linux".into(), "armv7b".into(), None));
    }
}
