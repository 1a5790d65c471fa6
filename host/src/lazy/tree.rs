//! The tree a chunked layer's TOC describes, as the overlay wants a lower layer: tar
//! order (a later entry replaces an earlier one of the same name), directories a path
//! implies made, hardlinks sharing their target's inode, and whiteouts in overlayfs
//! form (`.wh.NAME` → a character device 0/0 named NAME, `.wh..wh..opq` → the directory
//! marked opaque), as a directory snapshot holds them.

use std::collections::BTreeMap;

use crate::chunked::toc::{Entry, Kind};

/// Inode 1 is the root (FUSE's convention).
pub const ROOT: u64 = 1;

#[derive(Debug)]
pub enum Content {
    /// A TOC entry's content (its index in the TOC).
    Entry(usize),
    /// eStargz's own TOC, which its tar holds last (`stargz.index.json`).
    Toc,
    Empty,
}

#[derive(Debug)]
pub enum NodeKind {
    Dir { children: BTreeMap<Vec<u8>, u64>, opaque: bool },
    File { content: Content, size: u64 },
    Symlink(Vec<u8>),
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

#[derive(Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub nlink: u32,
    pub parent: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Node {
    fn dir(parent: u64) -> Node {
        Node {
            kind: NodeKind::Dir { children: BTreeMap::new(), opaque: false },
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            nlink: 2,
            parent,
            xattrs: Vec::new(),
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<Vec<u8>, u64>> {
        match &self.kind {
            NodeKind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }
}

/// Every node of the layer, by inode number less one.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

impl Tree {
    /// The tree of `entries`; `toc_size`: eStargz's TOC, shown as `stargz.index.json`.
    pub fn build(entries: &[Entry], toc_size: Option<u64>) -> Tree {
        let mut tree = Tree { nodes: vec![Node::dir(ROOT)] };
        for (i, e) in entries.iter().enumerate() {
            tree.add(i, e);
        }
        if let Some(size) = toc_size {
            let node = Node {
                kind: NodeKind::File { content: Content::Toc, size },
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                nlink: 1,
                parent: ROOT,
                xattrs: Vec::new(),
            };
            tree.put(ROOT, crate::chunked::toc::TOC_TAR_NAME.as_bytes(), node);
        }
        tree.count_links();
        tree
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        ino.checked_sub(1).and_then(|i| self.nodes.get(i as usize))
    }

    fn get_mut(&mut self, ino: u64) -> &mut Node {
        &mut self.nodes[(ino - 1) as usize]
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Option<u64> {
        self.get(parent)?.children()?.get(name).copied()
    }

    /// The inode at `path` (components of a clean relative path), if any.
    fn find(&self, path: &[&[u8]]) -> Option<u64> {
        path.iter().try_fold(ROOT, |ino, name| self.lookup(ino, name))
    }

    /// The directory at `path`, made where missing (as tar extraction implies it); `None`
    /// when something else is in the way.
    fn dir_at(&mut self, path: &[&[u8]]) -> Option<u64> {
        let mut ino = ROOT;
        for name in path {
            ino = match self.lookup(ino, name) {
                Some(child) if matches!(self.get(child)?.kind, NodeKind::Dir { .. }) => child,
                Some(_) => return None,
                None => self.put(ino, name, Node::dir(ino)),
            };
        }
        Some(ino)
    }

    /// Put `node` at `name` in `parent`, replacing what was there; returns its inode.
    fn put(&mut self, parent: u64, name: &[u8], node: Node) -> u64 {
        self.nodes.push(node);
        let ino = self.nodes.len() as u64;
        self.link(parent, name, ino);
        ino
    }

    fn link(&mut self, parent: u64, name: &[u8], ino: u64) {
        if let NodeKind::Dir { children, .. } = &mut self.get_mut(parent).kind {
            children.insert(name.to_vec(), ino);
        }
    }

    fn add(&mut self, index: usize, e: &Entry) {
        let path = clean(&e.name);
        let Some((name, parents)) = path.split_last() else {
            // The root's own entry: its metadata.
            if e.kind == Kind::Dir {
                let root = self.get_mut(ROOT);
                set_meta(root, e);
            }
            return;
        };
        let Some(parent) = self.dir_at(parents) else {
            tracing::warn!(name = %e.name, "lazy layer: a non-directory is on the path; entry left out");
            return;
        };
        if *name == OPAQUE {
            if let NodeKind::Dir { opaque, .. } = &mut self.get_mut(parent).kind {
                *opaque = true;
            }
            return;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            let mut node = Node::dir(parent);
            node.kind = NodeKind::Char { major: 0, minor: 0 };
            node.mode = 0;
            node.nlink = 1;
            self.put(parent, hidden, node);
            return;
        }
        let existing = self.lookup(parent, name);
        let kind = match e.kind {
            Kind::Dir => {
                if let Some(ino) = existing
                    && matches!(self.get(ino).map(|n| &n.kind), Some(NodeKind::Dir { .. }))
                {
                    // The same directory again: new metadata, same children.
                    set_meta(self.get_mut(ino), e);
                    return;
                }
                NodeKind::Dir { children: BTreeMap::new(), opaque: false }
            }
            Kind::Reg => {
                let content = if e.digest.is_some() { Content::Entry(index) } else { Content::Empty };
                NodeKind::File { content, size: e.size }
            }
            Kind::Symlink => NodeKind::Symlink(e.link_name.as_bytes().to_vec()),
            Kind::Char => NodeKind::Char { major: e.dev_major, minor: e.dev_minor },
            Kind::Block => NodeKind::Block { major: e.dev_major, minor: e.dev_minor },
            Kind::Fifo => NodeKind::Fifo,
            Kind::Hardlink => {
                let target = clean(&e.link_name);
                match self.find(&target) {
                    Some(ino) if matches!(self.get(ino).map(|n| &n.kind), Some(NodeKind::File { .. })) => {
                        self.link(parent, name, ino);
                    }
                    _ => tracing::warn!(name = %e.name, target = %e.link_name, "lazy layer: hardlink to no file"),
                }
                return;
            }
        };
        let mut node = Node::dir(parent);
        node.kind = kind;
        set_meta(&mut node, e);
        node.nlink = 1;
        self.put(parent, name, node);
    }

    /// Links: a file's names; a directory's 2 plus its subdirectories.
    fn count_links(&mut self) {
        let mut counts = vec![0u32; self.nodes.len()];
        for node in &self.nodes {
            if let NodeKind::Dir { children, .. } = &node.kind {
                for &child in children.values() {
                    counts[(child - 1) as usize] += 1;
                }
            }
        }
        let subdirs: Vec<u32> = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Dir { children, .. } => children
                    .values()
                    .filter(|&&c| matches!(self.nodes[(c - 1) as usize].kind, NodeKind::Dir { .. }))
                    .count() as u32,
                _ => 0,
            })
            .collect();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.nlink = match node.kind {
                NodeKind::Dir { .. } => 2 + subdirs[i],
                _ => counts[i].max(1),
            };
        }
    }
}

fn set_meta(node: &mut Node, e: &Entry) {
    node.mode = e.mode & 0o7777;
    node.uid = e.uid as u32;
    node.gid = e.gid as u32;
    node.mtime = e.mtime;
    node.xattrs = e.xattrs.clone();
}

/// A TOC name as path components: `./`, `/`, `.` and empty components dropped. `..`
/// stays a component name (the TOC parser refuses names that climb).
fn clean(name: &str) -> Vec<&[u8]> {
    name.as_bytes().split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunked::toc::Kind;

    fn entry(name: &str, kind: Kind) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size: 0,
            mtime: 7,
            link_name: String::new(),
            mode: 0o644,
            uid: 1,
            gid: 2,
            user_name: String::new(),
            group_name: String::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            digest: None,
            chunks: Vec::new(),
        }
    }

    #[test]
    fn whiteouts_hardlinks_and_implied_directories_become_what_the_overlay_reads() {
        let mut link = entry("a/b/hard", Kind::Hardlink);
        link.link_name = "./a/b/file".into();
        let entries = vec![
            entry("./a/b/file", Kind::Reg),
            link,
            entry("a/.wh.gone", Kind::Reg),
            entry("a/b/.wh..wh..opq", Kind::Reg),
            entry("a/b/", Kind::Dir),
        ];
        let tree = Tree::build(&entries, Some(10));
        let a = tree.lookup(ROOT, b"a").unwrap();
        let b = tree.lookup(a, b"b").unwrap();
        assert_eq!(tree.get(a).unwrap().mode, 0o755, "implied");
        assert_eq!(tree.get(b).unwrap().mtime, 7, "the later directory entry gives its metadata");
        assert!(matches!(tree.get(b).unwrap().kind, NodeKind::Dir { opaque: true, .. }));
        let gone = tree.get(tree.lookup(a, b"gone").unwrap()).unwrap();
        assert!(matches!(gone.kind, NodeKind::Char { major: 0, minor: 0 }));
        assert!(tree.lookup(a, b".wh.gone").is_none());
        let file = tree.lookup(b, b"file").unwrap();
        assert_eq!(tree.lookup(b, b"hard"), Some(file));
        assert_eq!(tree.get(file).unwrap().nlink, 2);
        assert!(tree.lookup(ROOT, b"stargz.index.json").is_some());
        assert_eq!(tree.get(ROOT).unwrap().nlink, 3);
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one_and_a_file_in_the_way_drops_the_entry() {
        let entries = vec![entry("x", Kind::Reg), entry("x", Kind::Symlink), entry("x/y", Kind::Reg)];
        let tree = Tree::build(&entries, None);
        let x = tree.get(tree.lookup(ROOT, b"x").unwrap()).unwrap();
        assert!(matches!(x.kind, NodeKind::Symlink(_)));
        assert!(tree.lookup(ROOT, b"y").is_none());
    }
}
