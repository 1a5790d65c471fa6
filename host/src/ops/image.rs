//! Stored images: list, inspect, cat-manifest, remove.

use std::collections::HashSet;
use std::io::Read;

use serde::Serialize;

use super::{Context, Error};
use crate::store::{GcReport, ImageFormat, LockMode, StoredImage};

/// Every stored image.
pub fn list_images(ctx: &Context) -> Result<Vec<StoredImage>, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    Ok(store.images()?)
}

/// The image `input` names.
pub fn inspect_image(ctx: &Context, input: &str) -> Result<StoredImage, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    ctx.find_image(&store, input)
}

/// The manifest of the image `input` names, exactly as stored.
pub fn cat_manifest(ctx: &Context, input: &str) -> Result<Vec<u8>, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    let found = ctx.find_image(&store, input)?;
    let digest = &found.record.manifest.digest;
    let mut bytes = Vec::new();
    store
        .blobs()
        .open_blob(digest)?
        .read_to_end(&mut bytes)
        .map_err(|source| crate::store::StoreError::Source { subject: digest.to_string(), source })?;
    Ok(bytes)
}

/// One input of [`remove_images`] and what it removed.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub input: String,
    pub image: String,
    /// The image went (no other ref names it), not only the ref.
    #[serde(rename = "imageRemoved")]
    pub image_removed: bool,
}

#[derive(Debug, Serialize)]
pub struct Removal {
    pub removed: Vec<Removed>,
    /// The gc that followed, unless blobs were kept.
    pub gc: Option<GcReport>,
}

/// Remove refs or images: a point removes that ref (and the image when no other ref
/// names it); a digest removes the image and all its refs. Then, unless `keep_blobs`,
/// blobs and snapshots nothing needs any more. Refused, removing nothing, when an appc
/// image that stays depends on one of them.
pub fn remove_images(ctx: &Context, inputs: &[String], keep_blobs: bool) -> Result<Removal, Error> {
    // A running container's image stays: say which container, rather than wait for it.
    {
        let shared = ctx.open_store(LockMode::Shared)?;
        let targets = inputs.iter().map(|i| ctx.find_image(&shared, i)).collect::<Result<Vec<_>, _>>()?;
        for c in super::containers::containers(ctx.root()).into_iter().filter(|c| c.live) {
            if let Some(t) = targets.iter().find(|t| t.record.manifest.digest.to_string() == c.info.digest) {
                return Err(Error::InUse {
                    image: t.record.canonical.clone(),
                    container: c.info.name,
                    pid: c.info.pid,
                });
            }
        }
    }
    let store = ctx.open_store_to_remove()?;
    let targets = inputs.iter().map(|i| ctx.find_image(&store, i)).collect::<Result<Vec<_>, _>>()?;
    refuse_needed_dependencies(&store, &targets)?;
    let mut removed = Vec::new();
    for input in inputs {
        let canonical = ctx.point(input).ok().map(|p| p.to_string());
        let image = store.remove(input, canonical.as_deref())?;
        let digest = image.record.manifest.digest.clone();
        let remaining = store.image(&digest)?.map_or(0, |i| i.refs.len());
        removed.push(Removed { input: input.clone(), image: digest.to_string(), image_removed: remaining == 0 });
    }
    let gc = if keep_blobs {
        None
    } else {
        let report = store.gc()?;
        crate::render::remove_unused_snapshots(&store)?;
        Some(report)
    };
    Ok(Removal { removed, gc })
}

/// An appc image renders on top of its dependencies: removing one while the image stays
/// would break it.
fn refuse_needed_dependencies(store: &crate::store::Store, targets: &[StoredImage]) -> Result<(), Error> {
    let removing: HashSet<_> = targets.iter().map(|t| t.record.manifest.digest.clone()).collect();
    for other in store.images()? {
        if other.record.format != ImageFormat::Appc || removing.contains(&other.record.manifest.digest) {
            continue;
        }
        for dep in &other.record.dependencies {
            let Ok(found) = crate::render::find_dependency(store, &other, dep) else { continue };
            if let Some(target) = targets.iter().find(|t| t.record.manifest.digest == found.record.manifest.digest) {
                return Err(Error::NeededBy {
                    image: target.record.canonical.clone(),
                    needed_by: other.record.canonical.clone(),
                });
            }
        }
    }
    Ok(())
}
