//! appc images: the dependency graph as a stack of layers, and the path whitelist.
//!
//! An ACI names its dependencies (by image ID, or by name and labels); each is an
//! image in the store (fetched with it). appc renders them as the appc reference
//! renderer (`acirenderer`) does: the image first, then its dependencies depth first,
//! the last-named dependency before the earlier ones, and a file already provided by
//! an earlier image wins. As a stack of layers (lowest first) that is this order
//! reversed, with overlay semantics giving the same precedence: a directory merges, a
//! file or a non-directory replacing a directory hides everything below it.
//!
//! *Path whitelists* (`pathWhitelist`), as acirenderer applies them: a non-directory
//! path of the rendered tree stays only if the image that provides it (the first in
//! appc order whose archive holds it) lists it in its own whitelist, if it has one, and
//! in the whitelist of its topmost ancestor that has one. They are applied after the
//! layers (directories stay; docs/decisions.md).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::RenderError;
use super::error::io;
use crate::cimd::DistributionPoint;
use crate::store::{Dependency, ImageFormat, Layer, Store, StoredImage};

/// Annotation holding an appc image's `pathWhitelist` (a JSON array of absolute paths).
pub const PATH_WHITELIST_ANNOTATION: &str = "org.appc.path-whitelist";

/// Deepest dependency chain followed; deeper is treated as a loop.
const MAX_DEPTH: usize = 32;

/// The layers to stack for `image`, lowest first: its own for OCI and Docker images;
/// for appc, its dependency graph in appc order. A partially pulled layer is its
/// assembled tar ([`Layer::as_rendered`]).
pub fn image_layers(store: &Store, image: &StoredImage) -> Result<Vec<Layer>, RenderError> {
    if image.record.format != ImageFormat::Appc || image.record.dependencies.is_empty() {
        return Ok(image.record.layers.iter().map(Layer::as_rendered).collect());
    }
    let order = appc_order(store, image)?;
    Ok(order.into_iter().rev().flat_map(|(img, _)| img.record.layers).collect())
}

/// The image and its dependencies, each with its depth, in acirenderer's order: highest
/// precedence first, each image followed by its dependencies' subtrees, the last-named
/// first.
fn appc_order(store: &Store, image: &StoredImage) -> Result<Vec<(StoredImage, usize)>, RenderError> {
    // (image, depth) in acirenderer order: highest precedence first.
    let mut order: Vec<(StoredImage, usize)> = vec![(image.clone(), 0)];
    let mut i = 0;
    while i < order.len() {
        let (current, depth) = order[i].clone();
        for dep in &current.record.dependencies {
            let found = find_dependency(store, &current, dep)?;
            // A dependency that is one of its own ancestors on this branch is a loop.
            let mut level = depth + 1;
            for (ancestor, d) in order[..=i].iter().rev() {
                if *d < level {
                    if ancestor.record.manifest.digest == found.record.manifest.digest {
                        return Err(dependency_error(&current, dep, "it depends on itself (a dependency loop)"));
                    }
                    level = *d;
                }
            }
            if depth + 1 > MAX_DEPTH {
                return Err(dependency_error(&current, dep, &format!("dependencies nest deeper than {MAX_DEPTH}")));
            }
            order.insert(i + 1, (found, depth + 1));
        }
        i += 1;
    }
    Ok(order)
}

fn dependency_error(image: &StoredImage, dep: &Dependency, reason: &str) -> RenderError {
    RenderError::Dependency {
        image: image.record.canonical.clone(),
        dependency: describe(dep),
        reason: reason.to_string(),
    }
}

fn describe(dep: &Dependency) -> String {
    match &dep.image_id {
        Some(id) => format!("{dep} ({id})"),
        None => dep.to_string(),
    }
}

/// The stored image a dependency names: by image ID when it has one (the uncompressed
/// digest of the ACI, which is its layer's diff ID), else by the point it was fetched by.
pub fn find_dependency(store: &Store, image: &StoredImage, dep: &Dependency) -> Result<StoredImage, RenderError> {
    let point = DistributionPoint::appc(&dep.name, &dep.labels)
        .map_err(|e| dependency_error(image, dep, &format!("not a valid appc name: {e}")))?;
    let by_point = store.resolve_ref(&point.to_string())?;
    let found = match (&dep.image_id, by_point) {
        (Some(id), by_point) => {
            let matches = |img: &StoredImage| {
                img.record.format == ImageFormat::Appc
                    && img.record.layers.iter().any(|l| l.diff_id.as_ref() == Some(id))
            };
            match by_point.filter(|i| matches(i)) {
                Some(i) => Some(i),
                None => store.images()?.into_iter().find(|i| matches(i)),
            }
        }
        (None, by_point) => by_point,
    };
    found.ok_or_else(|| dependency_error(image, dep, &format!("not in the store (fetch {point})")))
}

/// Apply the path whitelists of `image` and its dependencies to the tree rendered at
/// `root` (flattened, or through the overlay mount: removals become whiteouts in the
/// container's upper directory). Returns how many entries were removed.
pub fn apply_whitelists(store: &Store, image: &StoredImage, root: &Path) -> Result<u64, RenderError> {
    if image.record.format != ImageFormat::Appc {
        return Ok(0);
    }
    let order = if image.record.dependencies.is_empty() { vec![(image.clone(), 0)] } else { appc_order(store, image)? };
    let lists: Vec<Option<PathSet>> = order
        .iter()
        .map(|(img, _)| Ok(path_whitelist(img)?.map(|l| as_set(&l))))
        .collect::<Result<_, RenderError>>()?;
    // Each image's filters, as indexes into `lists`: its own list, and its topmost
    // ancestor's that has one.
    let mut filters: Vec<Vec<usize>> = Vec::new();
    for (i, (_, depth)) in order.iter().enumerate() {
        let mut upper = None;
        let mut level = *depth;
        for (j, (_, d)) in order[..i].iter().enumerate().rev() {
            if *d < level {
                if lists[j].is_some() {
                    upper = Some(j);
                }
                level = *d;
            }
        }
        filters.push(lists[i].as_ref().map(|_| i).into_iter().chain(upper).collect());
    }
    let passes =
        |rel: &Path, filter: &[usize]| filter.iter().all(|&j| lists[j].as_ref().is_some_and(|s| s.contains(rel)));
    if filters.iter().all(|f| *f == filters[0]) {
        // One filter for every image (no whitelist, or only the top image's): which image
        // provides a path does not matter, and no archive is read.
        if filters[0].is_empty() {
            return Ok(0);
        }
        return remove_unless(root, &|rel: &Path| passes(rel, &filters[0]));
    }
    // Which image provides each path: the first in appc order whose archive holds it.
    let mut provider: HashMap<PathBuf, usize> = HashMap::new();
    for (i, (img, _)) in order.iter().enumerate() {
        for layer in &img.record.layers {
            for path in archive_paths(store, layer)? {
                provider.entry(path).or_insert(i);
            }
        }
    }
    let allowed = |rel: &Path| match provider.get(rel) {
        // Not from any archive (berth made it): not the whitelists' to remove.
        None => true,
        Some(&i) => passes(rel, &filters[i]),
    };
    remove_unless(root, &allowed)
}

/// Tree paths relative to the root.
type PathSet = HashSet<PathBuf>;

fn as_set(list: &[String]) -> PathSet {
    list.iter().map(|p| Path::new(p.trim_start_matches('/')).components().collect()).collect()
}

/// The tree paths of an ACI's non-directory entries (`rootfs/...`, relative).
fn archive_paths(store: &Store, layer: &Layer) -> Result<Vec<PathBuf>, RenderError> {
    let digest = &layer.blob.digest;
    let tar_err = |source| RenderError::Tar { layer: digest.clone(), source };
    let mut archive = tar::Archive::new(super::layer::open(store, layer)?);
    let mut paths = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let entry = entry.map_err(tar_err)?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = entry.path_bytes();
        // Names outside `rootfs/`, or unusable ones (the render refused those already).
        if let Some(Ok(rel)) = super::apply::TarDialect::Aci.clean_tree_path(&name) {
            paths.push(rel.0);
        }
    }
    Ok(paths)
}

/// The image's own path whitelist, if it has a non-empty one.
fn path_whitelist(image: &StoredImage) -> Result<Option<Vec<String>>, RenderError> {
    let Some(raw) = image.record.annotations.get(PATH_WHITELIST_ANNOTATION) else { return Ok(None) };
    let list: Vec<String> = serde_json::from_str(raw).map_err(|e| RenderError::Dependency {
        image: image.record.canonical.clone(),
        dependency: "pathWhitelist".into(),
        reason: format!("the stored whitelist is not a JSON list of paths: {e}"),
    })?;
    Ok(if list.is_empty() { None } else { Some(list) })
}

/// Remove every non-directory under `root` whose relative path `keep` refuses. Symlinks
/// are removed as links, never followed; on an overlay mount removals become whiteouts.
fn remove_unless(root: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<u64, RenderError> {
    let mut removed = 0;
    let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<OsString> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("reading", &dir))? {
            names.push(entry.map_err(io("reading", &dir))?.file_name());
        }
        for name in names {
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(io("inspecting", &path))?;
            let rel_path = rel.join(&name);
            if meta.is_dir() {
                todo.push(rel_path);
            } else if !keep(&rel_path) {
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitelist_keeps_listed_files_and_all_directories() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("etc/empty")).unwrap();
        std::fs::write(r.join("bin/app"), b"x").unwrap();
        std::fs::write(r.join("bin/other"), b"x").unwrap();
        std::fs::write(r.join("etc/passwd"), b"x").unwrap();
        std::os::unix::fs::symlink("/bin/app", r.join("etc/link")).unwrap();
        let allowed = as_set(&["/bin/app".into(), "/etc/link".into()]);
        let removed = remove_unless(r, &|rel: &Path| allowed.contains(rel)).unwrap();
        assert_eq!(removed, 2);
        assert!(r.join("bin/app").exists() && r.join("etc/empty").is_dir());
        assert!(!r.join("bin/other").exists() && !r.join("etc/passwd").exists());
        assert!(std::fs::symlink_metadata(r.join("etc/link")).is_ok());
    }
}
