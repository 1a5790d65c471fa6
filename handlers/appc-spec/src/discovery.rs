//! appc image discovery (`spec/discovery.md`), as the reference implementation
//! (`github.com/appc/spec/discovery`) does it.
//!
//! Glossary:
//! - *discovery URL*: `https://{prefix}?ac-discovery=1`, fetched for the name and then
//!   for each parent path of it (`example.com/a/b`, `example.com/a`, `example.com`)
//!   until one answers with what is looked for.
//! - *meta*: an HTML `<meta name="ac-discovery" content="PREFIX TEMPLATE">` (where the
//!   image and its signature are) or `<meta name="ac-discovery-pubkeys" content="PREFIX
//!   URL">` (the keys that sign them).
//! - *template*: a URL with `{name}`, `{ext}` and `{<label>}` placeholders; it is used
//!   only when every placeholder is filled. `{ext}` is `aci` for the image and
//!   `aci.asc` for its signature.
//! - *endpoint*: the (image URL, signature URL) pair a template renders to.
//!
//! The HTTP is the caller's: [`walk`] takes a function that fetches a discovery URL.

use std::collections::BTreeMap;

/// The version label discovery assumes when none is asked for.
pub const DEFAULT_VERSION: &str = "latest";

/// What a `meta` tag announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// `ac-discovery`: a URL template of images and signatures.
    Images,
    /// `ac-discovery-pubkeys`: the URL of signing keys.
    PublicKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: MetaKind,
    /// The names this meta applies to: those that start with it.
    pub prefix: String,
    /// A template (images) or a plain URL (keys).
    pub url: String,
}

/// What is being discovered: a name and the labels that select one of its images
/// (`version`, `os`, `arch`, any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Where one image and its detached signature are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub aci: String,
    pub asc: String,
}

/// What one discovery document says about an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Best first: the longest matching prefix, then document order.
    pub endpoints: Vec<Endpoint>,
    /// Best first, as endpoints; no duplicates.
    pub public_keys: Vec<String>,
}

/// The discovery URL of a name or one of its parent paths.
pub fn discovery_url(prefix: &str) -> String {
    format!("https://{prefix}?ac-discovery=1")
}

/// The name and then each of its parent paths, longest first.
pub fn prefixes(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    let mut rest = name;
    while let Some((parent, _)) = rest.rsplit_once('/') {
        if !parent.is_empty() {
            out.push(parent);
        }
        rest = parent;
    }
    out
}

/// Match a document's metas against `app`. Every meta whose prefix starts the app's
/// name counts; an `ac-discovery` template counts only if every placeholder in it is
/// filled. The spec lets the client choose among several matches; berth puts the most
/// specific (longest) prefix first and otherwise keeps the document's order, which is
/// the reference implementation's order.
pub fn discover(metas: &[Meta], app: &App) -> Discovered {
    let mut matching: Vec<&Meta> = metas.iter().filter(|m| app.name.starts_with(&m.prefix)).collect();
    // A stable sort: equal prefixes keep the document's order.
    matching.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
    let mut out = Discovered::default();
    for meta in matching {
        match meta.kind {
            MetaKind::Images => {
                let (Some(aci), Some(asc)) = (render(&meta.url, app, "aci"), render(&meta.url, app, "aci.asc")) else {
                    continue;
                };
                out.endpoints.push(Endpoint { aci, asc });
            }
            MetaKind::PublicKeys => {
                if !out.public_keys.contains(&meta.url) {
                    out.public_keys.push(meta.url.clone());
                }
            }
        }
    }
    out
}

/// Fill a template: `{name}` is the app's name, `{ext}` is `ext`, `{<label>}` a label's
/// value. `None` when a placeholder has no value. Values are put in as they are (no
/// escaping, as the reference implementation does) and are not themselves expanded.
pub fn render(template: &str, app: &App, ext: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            // A lone `{` is not a placeholder.
            out.push_str(&rest[open..]);
            return Some(out);
        };
        let key = &after[..close];
        let value = match key {
            "name" => app.name.as_str(),
            "ext" => ext,
            _ => app.labels.get(key)?.as_str(),
        };
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// One discovery URL that did not give what was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt<E> {
    pub url: String,
    /// `None`: it answered, with nothing that matched.
    pub error: Option<E>,
}

/// Fetch the discovery URL of the name, then of its parent paths, until `enough` says a
/// document's findings suffice; return them. `fetch` returns the body of a 200 answer
/// and an error otherwise (the spec: a 4xx, or no matching meta, moves on to the parent).
pub fn walk<E>(
    app: &App,
    mut fetch: impl FnMut(&str) -> Result<String, E>,
    enough: impl Fn(&Discovered) -> bool,
) -> Result<Discovered, Vec<Attempt<E>>> {
    let mut attempts = Vec::new();
    for prefix in prefixes(&app.name) {
        let url = discovery_url(prefix);
        match fetch(&url) {
            Ok(body) => {
                let found = discover(&parse_metas(&body), app);
                if enough(&found) {
                    return Ok(found);
                }
                attempts.push(Attempt { url, error: None });
            }
            Err(error) => attempts.push(Attempt { url, error: Some(error) }),
        }
    }
    Err(attempts)
}

/// The `ac-discovery` and `ac-discovery-pubkeys` metas of an HTML document, in order.
/// Tags and attribute names are matched without regard to case, values may be quoted
/// either way or not at all, and character references in them are decoded; comments,
/// other tags and the text of raw-text elements (`script`, `style`, …) are skipped.
pub fn parse_metas(html: &str) -> Vec<Meta> {
    let mut out = Vec::new();
    let mut scanner = Scanner { s: html.as_bytes(), i: 0 };
    while let Some(tag) = scanner.next_tag() {
        let attr = |key: &str| tag.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if tag.name == "meta" {
            let kind = match attr("name").map(str::to_ascii_lowercase).as_deref() {
                Some("ac-discovery") => MetaKind::Images,
                Some("ac-discovery-pubkeys") => MetaKind::PublicKeys,
                _ => continue,
            };
            let content = attr("content").unwrap_or("").trim();
            let Some((prefix, url)) = content.split_once(|c: char| c.is_ascii_whitespace()) else { continue };
            let url = url.trim();
            if prefix.is_empty() || url.is_empty() {
                continue;
            }
            out.push(Meta { kind, prefix: prefix.to_string(), url: url.to_string() });
        }
        if RAW_TEXT.contains(&tag.name.as_str()) && !tag.self_closing {
            scanner.skip_raw_text(&tag.name);
        }
    }
    out
}

/// Elements whose content is text, never tags.
const RAW_TEXT: &[&str] =
    &["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"];

struct Tag {
    /// Lowercase.
    name: String,
    /// Lowercase keys; the first of duplicate attributes wins.
    attributes: Vec<(String, String)>,
    self_closing: bool,
}

/// A small HTML tokenizer: just enough to find start tags and their attributes.
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn rest(&self) -> &[u8] {
        &self.s[self.i.min(self.s.len())..]
    }

    fn skip_past(&mut self, needle: &[u8]) {
        match find(self.rest(), needle) {
            Some(at) => self.i += at + needle.len(),
            None => self.i = self.s.len(),
        }
    }

    fn skip_raw_text(&mut self, name: &str) {
        let end = format!("</{name}");
        while self.i < self.s.len() {
            match find(self.rest(), b"</") {
                Some(at) => {
                    self.i += at;
                    let candidate = &self.rest()[..end.len().min(self.rest().len())];
                    if candidate.eq_ignore_ascii_case(end.as_bytes()) {
                        return;
                    }
                    self.i += 2;
                }
                None => self.i = self.s.len(),
            }
        }
    }

    fn next_tag(&mut self) -> Option<Tag> {
        loop {
            let at = self.rest().iter().position(|&b| b == b'<')?;
            self.i += at + 1;
            let rest = self.rest();
            if rest.starts_with(b"!--") {
                self.i += 3;
                self.skip_past(b"-->");
            } else if rest.first().is_some_and(|b| matches!(b, b'!' | b'?' | b'/')) {
                // A doctype, a processing instruction or an end tag.
                self.skip_past(b">");
            } else if rest.first().is_some_and(u8::is_ascii_alphabetic) {
                return Some(self.tag());
            }
            // Otherwise a lone `<` in text.
        }
    }

    fn tag(&mut self) -> Tag {
        let name = self.take_while(|b| !b.is_ascii_whitespace() && b != b'/' && b != b'>').to_ascii_lowercase();
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut self_closing = false;
        loop {
            self.take_while(|b| b.is_ascii_whitespace());
            match self.rest().first() {
                None => break,
                Some(b'>') => {
                    self.i += 1;
                    break;
                }
                Some(b'/') => {
                    self.i += 1;
                    self_closing = self.rest().first() == Some(&b'>');
                    continue;
                }
                _ => {}
            }
            let key =
                self.take_while(|b| !b.is_ascii_whitespace() && !matches!(b, b'/' | b'>' | b'=')).to_ascii_lowercase();
            let key = if key.is_empty() {
                // A stray `=`: take it as the name, as browsers do.
                self.i += 1;
                "=".to_string()
            } else {
                key
            };
            self.take_while(|b| b.is_ascii_whitespace());
            let mut value = String::new();
            if self.rest().first() == Some(&b'=') {
                self.i += 1;
                self.take_while(|b| b.is_ascii_whitespace());
                value = match self.rest().first() {
                    Some(&q @ (b'"' | b'\'')) => {
                        self.i += 1;
                        let v = self.take_while(|b| b != q);
                        self.i += 1;
                        v
                    }
                    _ => self.take_while(|b| !b.is_ascii_whitespace() && b != b'>'),
                };
                value = decode_references(&value);
            }
            if !attributes.iter().any(|(k, _)| *k == key) {
                attributes.push((key, value));
            }
        }
        Tag { name, attributes, self_closing }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> String {
        let rest = self.rest();
        let n = rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len());
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.i += n;
        text
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decode the character references a URL in an attribute may hold: numeric ones and
/// the few named ones that matter (`&amp;` above all). Unknown ones stay as written.
fn decode_references(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let number = entity.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, labels: &[(&str, &str)]) -> App {
        App { name: name.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn linux(name: &str) -> App {
        app(name, &[("version", "1.0.0"), ("os", "linux"), ("arch", "amd64")])
    }

    // The reference implementation's test documents.
    const META01: &str = r#"<!DOCTYPE html>
<html>
<head>
	<title>My app</title>
	<meta name="ac-discovery" content="example.com https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}">
	<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head>
<body><h1>My App</h1></body>
</html>"#;

    const META06: &str = r#"<html><head>
	<meta name="ac-discovery" content="example.com https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}">
	<meta name="ac-discovery" content="example.com https://storage.example.com/{name}-{version}.{ext}">
	<meta name="ac-discovery" content="example.com hdfs://storage.example.com/{name}-{version}-{os}-{arch}.{ext}">
	<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head></html>"#;

    #[test]
    fn spec_example() {
        let found = discover(&parse_metas(META01), &linux("example.com/myapp"));
        assert_eq!(
            found.endpoints,
            [Endpoint {
                aci: "https://storage.example.com/example.com/myapp-1.0.0-linux-amd64.aci".into(),
                asc: "https://storage.example.com/example.com/myapp-1.0.0-linux-amd64.aci.asc".into(),
            }]
        );
        assert_eq!(found.public_keys, ["https://example.com/pubkeys.gpg"]);
    }

    #[test]
    fn several_templates_keep_document_order() {
        let found = discover(&parse_metas(META06), &linux("example.com/myapp"));
        let acis: Vec<&str> = found.endpoints.iter().map(|e| e.aci.as_str()).collect();
        assert_eq!(
            acis,
            [
                "https://storage.example.com/example.com/myapp-1.0.0-linux-amd64.aci",
                "https://storage.example.com/example.com/myapp-1.0.0.aci",
                "hdfs://storage.example.com/example.com/myapp-1.0.0-linux-amd64.aci",
            ]
        );
    }

    #[test]
    fn a_template_with_an_unfilled_placeholder_is_skipped() {
        let html = r#"<meta name="ac-discovery" content="example.com https://s/{name}-{channel}.{ext}">
            <meta name="ac-discovery" content="example.com https://t/{name}-{version}.{ext}">"#;
        let found = discover(&parse_metas(html), &linux("example.com/myapp"));
        assert_eq!(found.endpoints.len(), 1);
        assert_eq!(found.endpoints[0].aci, "https://t/example.com/myapp-1.0.0.aci");
        // Any label fills its placeholder.
        let mut with_channel = linux("example.com/myapp");
        with_channel.labels.insert("channel".into(), "alpha".into());
        let found = discover(&parse_metas(html), &with_channel);
        assert_eq!(found.endpoints[0].aci, "https://s/example.com/myapp-alpha.aci");
    }

    #[test]
    fn longest_prefix_first_and_other_prefixes_ignored() {
        let html = r#"<meta name="ac-discovery" content="example.com https://generic/{name}.{ext}">
            <meta name="ac-discovery" content="example.com/myapp https://specific/{name}.{ext}">
            <meta name="ac-discovery" content="other.com https://other/{name}.{ext}">
            <meta name="ac-discovery-pubkeys" content="example.com https://example.com/all.gpg">
            <meta name="ac-discovery-pubkeys" content="example.com/myapp https://example.com/myapp.gpg">
            <meta name="ac-discovery-pubkeys" content="example.com/myapp https://example.com/myapp.gpg">"#;
        let found = discover(&parse_metas(html), &linux("example.com/myapp"));
        let acis: Vec<&str> = found.endpoints.iter().map(|e| e.aci.as_str()).collect();
        assert_eq!(acis, ["https://specific/example.com/myapp.aci", "https://generic/example.com/myapp.aci"]);
        assert_eq!(found.public_keys, ["https://example.com/myapp.gpg", "https://example.com/all.gpg"]);
    }

    #[test]
    fn rendering() {
        let a = linux("example.com/app");
        assert_eq!(render("https://x/{name}.{ext}", &a, "aci.asc").unwrap(), "https://x/example.com/app.aci.asc");
        assert_eq!(render("https://x/{nope}.{ext}", &a, "aci"), None);
        assert_eq!(render("https://x/{os}/{arch}/{os}", &a, "aci").unwrap(), "https://x/linux/amd64/linux");
        assert_eq!(render("https://x/a{b", &a, "aci").unwrap(), "https://x/a{b");
        // A value is not expanded again, and a label called "name" does not replace the name.
        let tricky = app("n", &[("version", "{os}"), ("os", "linux"), ("name", "other")]);
        assert_eq!(render("{name}-{version}", &tricky, "aci").unwrap(), "n-{os}");
    }

    #[test]
    fn tolerant_html() {
        let html = r#"<!-- <meta name="ac-discovery" content="example.com https://commented/{name}.{ext}"> -->
            <script>document.write('<meta name="ac-discovery" content="example.com https://script/{name}.{ext}">')</script>
            <META CONTENT='example.com   https://upper/{name}.{ext}?a=1&amp;b=2 ' NAME=AC-Discovery>
            <meta content=example.com name=ac-discovery>
            <meta name="ac-discovery" content="example.com">
            <meta name="ac-discovery" content="">
            <meta name="description" content="example.com https://not-discovery/">
            <link rel="x" href="y"/>
            <meta
                name = "ac-discovery-pubkeys"
                content = "example.com	https://keys/pubkeys.gpg" />
            <meta name="ac-discovery" name="ignored" content="example.com https://first-name-wins/{name}.{ext}">"#;
        let metas = parse_metas(html);
        assert_eq!(
            metas,
            [
                Meta {
                    kind: MetaKind::Images,
                    prefix: "example.com".into(),
                    url: "https://upper/{name}.{ext}?a=1&b=2".into()
                },
                Meta {
                    kind: MetaKind::PublicKeys,
                    prefix: "example.com".into(),
                    url: "https://keys/pubkeys.gpg".into()
                },
                Meta {
                    kind: MetaKind::Images,
                    prefix: "example.com".into(),
                    url: "https://first-name-wins/{name}.{ext}".into()
                },
            ]
        );
    }

    #[test]
    fn truncated_html_does_not_panic() {
        for html in [
            "<",
            "<meta",
            "<meta name=\"ac-discovery",
            "<!--",
            "<script>",
            "<meta name='ac-discovery' content='a b'",
            "&",
            "<meta a=&#xffffffff;>",
        ] {
            let _ = parse_metas(html);
        }
        assert_eq!(parse_metas("<meta name='ac-discovery' content='a b'").len(), 1);
    }

    #[test]
    fn references() {
        assert_eq!(decode_references("a&amp;b&#38;c&#x26;d&bogus;e&"), "a&b&c&d&bogus;e&");
    }

    #[test]
    fn parent_paths() {
        assert_eq!(prefixes("example.com/a/b"), ["example.com/a/b", "example.com/a", "example.com"]);
        assert_eq!(prefixes("example.com"), ["example.com"]);
        assert_eq!(discovery_url("example.com/a"), "https://example.com/a?ac-discovery=1");
    }

    /// A fake web: path → body, anything else a 404.
    fn web<'a>(
        pages: &'a [(&'a str, &'a str)],
        log: &'a std::cell::RefCell<Vec<String>>,
    ) -> impl FnMut(&str) -> Result<String, String> + 'a {
        move |url: &str| {
            log.borrow_mut().push(url.to_string());
            pages.iter().find(|(u, _)| *u == url).map(|(_, b)| b.to_string()).ok_or_else(|| "404".to_string())
        }
    }

    #[test]
    fn walk_tries_parent_paths() {
        let log = Default::default();
        let pages = [("https://example.com?ac-discovery=1", META01)];
        let found = walk(&linux("example.com/myapp/foobar"), web(&pages, &log), |d| !d.endpoints.is_empty()).unwrap();
        assert_eq!(
            found.endpoints[0].aci,
            "https://storage.example.com/example.com/myapp/foobar-1.0.0-linux-amd64.aci"
        );
        assert_eq!(
            *log.borrow(),
            [
                "https://example.com/myapp/foobar?ac-discovery=1",
                "https://example.com/myapp?ac-discovery=1",
                "https://example.com?ac-discovery=1"
            ]
        );
    }

    #[test]
    fn walk_stops_at_the_first_sufficient_answer() {
        // Images at the root, keys at /myapp (the reference implementation's meta02/meta03 case).
        let images = r#"<meta name="ac-discovery" content="example.com https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}">"#;
        let keys = r#"<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">"#;
        let pages =
            [("https://example.com?ac-discovery=1", images), ("https://example.com/myapp?ac-discovery=1", keys)];
        let log = Default::default();
        let found = walk(&linux("example.com/myapp"), web(&pages, &log), |d| !d.endpoints.is_empty()).unwrap();
        assert_eq!(found.endpoints.len(), 1);
        assert_eq!(log.borrow().len(), 2);
        let log = Default::default();
        let found = walk(&linux("example.com/myapp"), web(&pages, &log), |d| !d.public_keys.is_empty()).unwrap();
        assert_eq!(found.public_keys, ["https://example.com/pubkeys.gpg"]);
        assert_eq!(log.borrow().len(), 1);
    }

    #[test]
    fn walk_reports_every_attempt() {
        let log = Default::default();
        let pages = [("https://example.com/myapp?ac-discovery=1", "<html>nothing</html>")];
        let attempts = walk(&linux("example.com/myapp"), web(&pages, &log), |d| !d.endpoints.is_empty()).unwrap_err();
        assert_eq!(
            attempts,
            [
                Attempt { url: "https://example.com/myapp?ac-discovery=1".into(), error: None },
                Attempt { url: "https://example.com?ac-discovery=1".into(), error: Some("404".into()) },
            ]
        );
    }
}
