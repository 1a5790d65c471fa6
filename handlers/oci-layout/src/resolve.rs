//! From `index.json` to an image record: pick a manifest by ref and platform, follow
//! nested indexes, ingest manifest, config and layers, and describe the image.

use berth_guest::berth::handler::log::{self, Level};
use berth_guest::berth::handler::store::Source;
use berth_guest::exports::berth::handler::resolver::{ImageRecord, ResolveOptions};
use berth_guest::image::{build_record, spec_error, wanted_platform};
use berth_guest::{Error, blob};
use berth_image_spec::{self as spec, Descriptor, DocumentKind, Platform, REF_NAME_ANNOTATION};

use crate::layout::Layout;
use crate::point;

/// Indexes may nest; a deeper chain is a loop or an attack.
const MAX_INDEX_DEPTH: usize = 4;

pub fn resolve(point: &str, options: &ResolveOptions) -> Result<ImageRecord, Error> {
    let wanted = wanted_platform(options);
    let reference = point::reference(point);
    let layout = Layout::open()?;

    let index = spec::parse_index(&layout.read_small("index.json")?, None).map_err(spec_error)?;
    let (chosen_ref, top) = select_top(&index.manifests, reference.as_deref(), &wanted)?;
    log::log(Level::Debug, &format!("index.json: ref {chosen_ref:?} -> {}", top.digest));

    let (manifest_desc, kind) = descend(&layout, top.clone(), &wanted)?;
    let manifest = spec::parse_manifest(&blob::read_document(&manifest_desc)?, kind).map_err(spec_error)?;

    ingest(&layout, std::slice::from_ref(&manifest.config))?;
    let config =
        spec::parse_config(&blob::read_document(&manifest.config)?, manifest.layers.len()).map_err(spec_error)?;
    ingest(&layout, &manifest.layers)?;

    let canonical = match &chosen_ref {
        Some(r) => point::with_reference(point, r),
        None => point.to_string(),
    };
    Ok(build_record(canonical, kind, &manifest_desc, manifest, config))
}

/// Choose among `index.json`'s entries: by ref name when one is asked for; otherwise
/// the only entry, or the entries named `latest`. Several entries left (one ref for
/// several platforms) are told apart by platform.
fn select_top<'a>(
    manifests: &'a [Descriptor],
    reference: Option<&str>,
    wanted: &Platform,
) -> Result<(Option<String>, &'a Descriptor), Error> {
    let ref_of = |d: &Descriptor| d.annotations.get(REF_NAME_ANNOTATION).cloned();
    let candidates: Vec<Descriptor> = match reference {
        Some(r) => manifests.iter().filter(|d| ref_of(d).as_deref() == Some(r)).cloned().collect(),
        None if manifests.len() == 1 => manifests.to_vec(),
        None => manifests.iter().filter(|d| ref_of(d).as_deref() == Some("latest")).cloned().collect(),
    };
    if candidates.is_empty() {
        let mut names: Vec<String> = manifests.iter().filter_map(ref_of).collect();
        names.sort();
        names.dedup();
        let offered = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(match reference {
            Some(r) => Error::NotFound(format!("ref {r:?} is not in the layout's index.json (refs: {offered})")),
            None if manifests.is_empty() => Error::NotFound("the layout's index.json lists no manifests".into()),
            None => Error::InvalidInput(format!(
                "the layout holds several images and none is named \"latest\"; name one with ?ref= (refs: {offered})"
            )),
        });
    }
    let chosen = spec::select_platform(&candidates, wanted).map_err(spec_error)?;
    let position = manifests.iter().position(|d| d == chosen).unwrap_or(0);
    Ok((ref_of(chosen), &manifests[position]))
}

/// Follow indexes down to one manifest for `wanted`, ingesting each document.
fn descend(layout: &Layout, mut desc: Descriptor, wanted: &Platform) -> Result<(Descriptor, DocumentKind), Error> {
    for _ in 0..=MAX_INDEX_DEPTH {
        let kind = spec::classify(&desc.media_type).map_err(spec_error)?;
        if desc.size > spec::MAX_DOCUMENT_SIZE {
            return Err(Error::InvalidInput(format!(
                "{} of {} bytes is over the document limit",
                desc.digest, desc.size
            )));
        }
        ingest(layout, std::slice::from_ref(&desc))?;
        if !kind.is_index() {
            return Ok((desc, kind));
        }
        let index = spec::parse_index(&blob::read_document(&desc)?, Some(kind)).map_err(spec_error)?;
        desc = spec::select_platform(&index.manifests, wanted).map_err(spec_error)?.clone();
    }
    Err(Error::InvalidInput(format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels")))
}

/// Ask the host to copy blobs from the layout into the store, all at once so it can
/// run them concurrently.
fn ingest(layout: &Layout, descs: &[Descriptor]) -> Result<(), Error> {
    let mut items: Vec<(&Descriptor, Source)> = Vec::with_capacity(descs.len());
    for d in descs {
        let digest = spec::parse_digest(&d.digest).map_err(spec_error)?;
        items.push((d, layout.source(&digest.layout_path(), d.size)?));
    }
    blob::ingest_all(items)
}
