//! From `index.json` to an image record: pick a manifest by ref and platform, follow
//! nested indexes, ingest manifest, config and layers, and describe the image.

use berth_image_spec::{
    self as spec, Descriptor, DocumentKind, MAX_DOCUMENT_SIZE, Platform, REF_NAME_ANNOTATION,
    SpecError,
};

use crate::berth::handler::log::{self, Level};
use crate::berth::handler::store::{self, IngestRequest};
use crate::berth::handler::types::{self as wit, Error};
use crate::exports::berth::handler::resolver::{
    ImageFormat, ImageRecord, Layer, ResolveOptions, RuntimeConfig,
};
use crate::layout::Layout;
use crate::point;

/// Indexes may nest; a deeper chain is a loop or an attack.
const MAX_INDEX_DEPTH: usize = 4;

fn spec_error(e: SpecError) -> Error {
    match e {
        SpecError::UnsupportedMediaType { .. } => Error::Unsupported(e.to_string()),
        SpecError::NoMatchingPlatform { .. } => Error::NotFound(e.to_string()),
        _ => Error::InvalidInput(e.to_string()),
    }
}

pub fn resolve(point: &str, options: &ResolveOptions) -> Result<ImageRecord, Error> {
    let wanted = Platform {
        os: options.platform.os.clone(),
        architecture: options.platform.architecture.clone(),
        variant: options.platform.variant.clone(),
    };
    let reference = point::reference(point);
    let layout = Layout::open()?;

    let index = spec::parse_index(&layout.read_small("index.json")?, None).map_err(spec_error)?;
    let (chosen_ref, top) = select_top(&index.manifests, reference.as_deref(), &wanted)?;
    log::log(
        Level::Debug,
        &format!("index.json: ref {chosen_ref:?} -> {}", top.digest),
    );

    let (manifest_desc, kind) = descend(&layout, top.clone(), &wanted)?;
    let manifest_bytes = read_blob(&manifest_desc)?;
    let manifest = spec::parse_manifest(&manifest_bytes, kind).map_err(spec_error)?;

    ingest(&layout, std::slice::from_ref(&manifest.config))?;
    let config_bytes = read_blob(&manifest.config)?;
    let config = spec::parse_config(&config_bytes, manifest.layers.len()).map_err(spec_error)?;
    ingest(&layout, &manifest.layers)?;

    let exec = config.config.clone().unwrap_or_default();
    let canonical = match &chosen_ref {
        Some(r) => point::with_reference(point, r),
        None => point.to_string(),
    };
    Ok(ImageRecord {
        canonical,
        format: if kind.is_docker() {
            ImageFormat::Docker
        } else {
            ImageFormat::Oci
        },
        manifest: to_wit(&manifest_desc),
        config: Some(to_wit(&manifest.config)),
        layers: manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(blob, diff_id)| Layer {
                blob: to_wit(blob),
                diff_id: Some(diff_id.clone()),
            })
            .collect(),
        dependencies: Vec::new(),
        platform: Some(wit::Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        }),
        runtime: RuntimeConfig {
            entrypoint: exec.entrypoint.unwrap_or_default(),
            cmd: exec.cmd.unwrap_or_default(),
            env: exec.env.unwrap_or_default(),
            working_dir: exec.working_dir.filter(|w| !w.is_empty()),
            user: exec.user.filter(|u| !u.is_empty()),
            group: None,
            exposed_ports: exec.exposed_ports.unwrap_or_default().into_keys().collect(),
            stop_signal: exec.stop_signal,
            labels: exec.labels.unwrap_or_default().into_iter().collect(),
        },
        annotations: manifest.annotations.into_iter().collect(),
    })
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
        Some(r) => manifests
            .iter()
            .filter(|d| ref_of(d).as_deref() == Some(r))
            .cloned()
            .collect(),
        None if manifests.len() == 1 => manifests.to_vec(),
        None => manifests
            .iter()
            .filter(|d| ref_of(d).as_deref() == Some("latest"))
            .cloned()
            .collect(),
    };
    if candidates.is_empty() {
        let mut names: Vec<String> = manifests.iter().filter_map(ref_of).collect();
        names.sort();
        names.dedup();
        let offered = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(match reference {
            Some(r) => Error::NotFound(format!(
                "ref {r:?} is not in the layout's index.json (refs: {offered})"
            )),
            None if manifests.is_empty() => {
                Error::NotFound("the layout's index.json lists no manifests".into())
            }
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
fn descend(
    layout: &Layout,
    mut desc: Descriptor,
    wanted: &Platform,
) -> Result<(Descriptor, DocumentKind), Error> {
    for _ in 0..=MAX_INDEX_DEPTH {
        let kind = spec::classify(&desc.media_type).map_err(spec_error)?;
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(Error::InvalidInput(format!(
                "{} of {} bytes is over the document limit",
                desc.digest, desc.size
            )));
        }
        ingest(layout, std::slice::from_ref(&desc))?;
        if !kind.is_index() {
            return Ok((desc, kind));
        }
        let index = spec::parse_index(&read_blob(&desc)?, Some(kind)).map_err(spec_error)?;
        desc = spec::select_platform(&index.manifests, wanted)
            .map_err(spec_error)?
            .clone();
    }
    Err(Error::InvalidInput(format!(
        "indexes nest deeper than {MAX_INDEX_DEPTH} levels"
    )))
}

/// Ask the host to copy blobs from the layout into the store, all at once so it can
/// run them concurrently.
fn ingest(layout: &Layout, descs: &[Descriptor]) -> Result<(), Error> {
    let mut requests = Vec::with_capacity(descs.len());
    for d in descs {
        let digest = spec::parse_digest(&d.digest).map_err(spec_error)?;
        requests.push(IngestRequest {
            source: layout.source(&digest.layout_path(), d.size)?,
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
        });
    }
    store::ingest(&requests).into_iter().collect()
}

fn read_blob(desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(desc.size as usize);
    while (out.len() as u64) < desc.size {
        let want = (desc.size - out.len() as u64).min(1 << 20) as u32;
        let chunk = store::read(&desc.digest, out.len() as u64, want)?;
        if chunk.is_empty() {
            return Err(Error::Io(format!(
                "stored blob {} ended early",
                desc.digest
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn to_wit(d: &Descriptor) -> wit::Descriptor {
    wit::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
