//! `handler`: built-in and drop-in handler components, and the keys that sign drop-ins.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::io;
use super::{Context, Error, UsageError};
use crate::fetch::dropin::{self, Declaration, DropIn, DropInError};
use crate::fetch::handlers;
use crate::store::{Algorithm, Digest};
use crate::trust::{HandlerKey, HandlerKeyring, HandlerSigner};

/// One handler as `handler list`, `verify` and `inspect` show it.
#[derive(Debug, Serialize)]
pub struct HandlerRow {
    /// `None`: a drop-in file that could not be read.
    pub scheme: Option<String>,
    pub digest: Option<Digest>,
    /// `builtin`, or the drop-in's path.
    pub source: String,
    pub signer: Option<String>,
    /// `built in`, `trusted`, `refused: …` or `unusable: …`.
    pub status: String,
    /// What a drop-in declares it needs; built-ins get what the point type decides.
    pub grants: Option<Declaration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    #[serde(skip)]
    pub trusted: bool,
}

impl HandlerRow {
    fn builtin(scheme: &str) -> HandlerRow {
        let bytes = handlers::builtin_named(scheme).unwrap_or_default();
        HandlerRow {
            scheme: Some(scheme.to_string()),
            digest: Some(Digest::of_bytes(Algorithm::Sha256, bytes)),
            source: "builtin".into(),
            signer: None,
            status: "built in".into(),
            grants: None,
            note: Some(
                "grants decided by the point type: oci-layout and local ACIs read one path; docker and oci \
                 reach the point's registry, its token realm and mirrors; appc reaches what discovery names",
            ),
            trusted: true,
        }
    }

    fn dropin(d: &DropIn, keys: &HandlerKeyring) -> HandlerRow {
        let (status, signer, trusted) = match d.verify(keys) {
            Ok(s) => ("trusted".to_string(), Some(s.key_id), true),
            Err(e) => (format!("refused: {e}"), None, false),
        };
        HandlerRow {
            scheme: Some(d.declaration.scheme.clone()),
            digest: Some(d.digest.clone()),
            source: d.path.display().to_string(),
            signer,
            status,
            grants: Some(d.declaration.clone()),
            note: None,
            trusted,
        }
    }

    fn unusable(e: &DropInError) -> HandlerRow {
        HandlerRow {
            scheme: None,
            digest: None,
            source: "-".into(),
            signer: None,
            status: format!("unusable: {e}"),
            grants: None,
            note: None,
            trusted: false,
        }
    }
}

/// Built-in handlers, then every drop-in in the handler directories.
pub fn list_handlers(ctx: &Context) -> Result<Vec<HandlerRow>, Error> {
    let keys = HandlerKeyring::new(ctx.root());
    let mut rows: Vec<HandlerRow> = handlers::builtin_types().into_iter().map(HandlerRow::builtin).collect();
    for d in dropin::discover(&dropin::default_dirs(ctx.root())) {
        rows.push(match d {
            Ok(d) => HandlerRow::dropin(&d, &keys),
            Err(e) => HandlerRow::unusable(&e),
        });
    }
    Ok(rows)
}

/// Check drop-ins (the given files, or every one in the handler directories) against
/// the trusted keys.
pub fn verify_handlers(ctx: &Context, files: &[PathBuf]) -> Result<Vec<HandlerRow>, Error> {
    let keys = HandlerKeyring::new(ctx.root());
    let found: Vec<_> = if files.is_empty() {
        dropin::discover(&dropin::default_dirs(ctx.root()))
    } else {
        files.iter().map(|f| DropIn::read(f)).collect()
    };
    Ok(found
        .iter()
        .map(|d| match d {
            Ok(d) => HandlerRow::dropin(d, &keys),
            Err(e) => HandlerRow::unusable(e),
        })
        .collect())
}

/// What `handler` names: a component file, a drop-in's scheme, or a built-in scheme.
pub fn inspect_handler(ctx: &Context, handler: &str) -> Result<HandlerRow, Error> {
    let keys = HandlerKeyring::new(ctx.root());
    let path = Path::new(handler);
    if path.exists() {
        return Ok(HandlerRow::dropin(&DropIn::read(path)?, &keys));
    }
    let found = dropin::discover(&dropin::default_dirs(ctx.root()))
        .into_iter()
        .flatten()
        .find(|d| d.declaration.scheme == handler);
    match found {
        Some(d) => Ok(HandlerRow::dropin(&d, &keys)),
        None if handlers::builtin_types().contains(&handler) => Ok(HandlerRow::builtin(handler)),
        None => Err(UsageError::new(format!(
            "no handler for scheme {handler:?} (built in: {})",
            handlers::builtin_types().join(", ")
        ))
        .into()),
    }
}

/// Verify a drop-in (signature by a key trusted for its scheme) and copy it, with its
/// detached signature if any, into the store's handlers directory as `<scheme>.wasm`.
pub fn add_handler(
    ctx: &Context,
    file: &Path,
    signature: Option<&Path>,
) -> Result<(DropIn, HandlerSigner, PathBuf), Error> {
    let mut d = DropIn::read(file)?;
    if let Some(sig) = signature {
        d.detached_signature = Some(std::fs::read(sig).map_err(io("reading", sig))?);
    }
    let signer = d.verify(&HandlerKeyring::new(ctx.root()))?;
    let dir = ctx.root().join("handlers");
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let target = dir.join(format!("{}.wasm", d.declaration.scheme));
    let sig_target = PathBuf::from(format!("{}.sig", target.display()));
    match &d.detached_signature {
        Some(sig) => write_atomically(&dir, &sig_target, sig)?,
        None => {
            let _ = std::fs::remove_file(&sig_target);
        }
    }
    write_atomically(&dir, &target, &d.bytes)?;
    Ok((d, signer, target))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("creating a file in", dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io("writing", tmp.path().to_path_buf()))?;
    tmp.persist(path).map_err(|e| io("writing", path)(e.error))?;
    Ok(())
}

/// Remove a drop-in from the store's handlers directory, by scheme or file name;
/// returns the file removed.
pub fn remove_handler(ctx: &Context, name: &str) -> Result<PathBuf, Error> {
    let dir = ctx.root().join("handlers");
    let by_name = dir.join(name);
    let target = if by_name.extension().is_some_and(|e| e == "wasm") && by_name.exists() {
        by_name
    } else {
        dropin::discover(std::slice::from_ref(&dir))
            .into_iter()
            .flatten()
            .find(|d| d.declaration.scheme == name)
            .map(|d| d.path)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "no drop-in handler {name:?} in {} (`berth handler list` shows them)",
                    dir.display()
                ))
            })?
    };
    std::fs::remove_file(&target).map_err(io("removing", &target))?;
    let _ = std::fs::remove_file(format!("{}.sig", target.display()));
    Ok(target)
}

/// Trust an ed25519 public key to sign handlers for `scheme`; returns its id.
pub fn trust_handler_key(ctx: &Context, scheme: &str, key_file: &Path) -> Result<String, Error> {
    let key = std::fs::read(key_file).map_err(io("reading", key_file))?;
    Ok(HandlerKeyring::new(ctx.root()).add(scheme, &key)?)
}

/// The trusted handler keys.
pub fn handler_keys(ctx: &Context) -> Result<Vec<HandlerKey>, Error> {
    Ok(HandlerKeyring::new(ctx.root()).keys()?)
}

/// Stop trusting handler key `id` (a prefix of at least 4 digits), for one scheme or
/// all; returns how many entries went.
pub fn remove_handler_key(ctx: &Context, id: &str, scheme: Option<&str>) -> Result<usize, Error> {
    Ok(HandlerKeyring::new(ctx.root()).remove(id, scheme)?)
}
