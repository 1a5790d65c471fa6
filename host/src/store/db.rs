//! `berth.db`: SQLite metadata next to the blobs. WAL journal so readers never block
//! the writer; a busy timeout so two processes take turns instead of failing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::record::{Attachment, ContentEncoding, FileSource, ImageRecord};
use super::{Digest, StoreError};

/// Each entry upgrades the schema by one version; `PRAGMA user_version` says how many
/// have run. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: images, their layers, and refs from canonical distribution points.
    "CREATE TABLE images (
        manifest_digest TEXT PRIMARY KEY,
        format TEXT NOT NULL,
        config_digest TEXT,
        size INTEGER NOT NULL,
        record TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE layers (
        manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        digest TEXT NOT NULL,
        diff_id TEXT,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (manifest_digest, position)
    );
    CREATE INDEX layers_by_digest ON layers(digest);
    CREATE TABLE refs (
        point TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX refs_by_image ON refs(manifest_digest);",
    // 2: where the store holds a file's content, by the content's digest: regular files of
    // eStargz layers (from their tables of contents), for partial pulls. A hint only: the
    // content is hashed again whenever it is read.
    "CREATE TABLE file_contents (
        content_digest TEXT NOT NULL,
        blob TEXT NOT NULL,
        offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        encoding TEXT NOT NULL,
        PRIMARY KEY (content_digest, blob)
    );
    CREATE INDEX file_contents_by_blob ON file_contents(blob);",
    // 3: documents attached to an image (signatures, SBOMs) that `berth serve` was given:
    // named by the point they were pushed under (a tag, or the repository pinned to their
    // digest), kept while the document they are attached to (`subject`) is kept.
    "CREATE TABLE attachments (
        point TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        subject TEXT NOT NULL,
        blobs TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX attachments_by_subject ON attachments(subject);",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A stored image and the refs that point at it.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub record: ImageRecord,
    pub refs: Vec<String>,
    pub created_at: i64,
}

pub struct Db {
    conn: Connection,
    path: PathBuf,
}

/// An exclusive `flock` on `<db>.open-lock`, held only while a connection is set up.
struct OpenLock {
    _file: std::fs::File,
}

impl OpenLock {
    fn acquire(db: &Path) -> Result<OpenLock, StoreError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".open-lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(super::error::io("opening", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| super::error::io("locking", &path)(e.into()))?;
        Ok(OpenLock { _file: file })
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        let err = |source| StoreError::Database { path: path.to_path_buf(), source };
        // Switching a new database to WAL and migrating it answer SQLITE_BUSY at once,
        // without the busy handler, when another process does the same: take turns.
        let _opening = OpenLock::acquire(path)?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        let mut db = Db { conn, path: path.to_path_buf() };
        db.migrate()?;
        Ok(db)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Database { path: self.path.clone(), source }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Database { path: path.clone(), source };
        // IMMEDIATE: two processes opening a new store at once must not both migrate.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path, found: version, supported: SCHEMA_VERSION });
        }
        for sql in &MIGRATIONS[version as usize..] {
            tx.execute_batch(sql).map_err(err)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(self.err())
    }

    /// Record an image and point `record.canonical` at it, in one transaction.
    pub fn put_image(&mut self, record: &ImageRecord) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Database { path: path.clone(), source };
        let json = serde_json::to_string(record).expect("image records serialize");
        let digest = record.manifest.digest.to_string();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute(
            "INSERT INTO images (manifest_digest, format, config_digest, size, record, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(manifest_digest) DO UPDATE SET record = excluded.record",
            params![
                digest,
                record.format.name(),
                record.config.as_ref().map(|c| c.digest.to_string()),
                record.size() as i64,
                json,
                now()
            ],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM layers WHERE manifest_digest = ?1", [&digest]).map_err(err)?;
        for (position, layer) in record.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO layers (manifest_digest, position, digest, diff_id, media_type, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    digest,
                    position as i64,
                    layer.blob.digest.to_string(),
                    layer.diff_id.as_ref().map(|d| d.to_string()),
                    layer.blob.media_type,
                    layer.blob.size as i64
                ],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT INTO refs (point, manifest_digest, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(point) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            params![record.canonical, digest, now()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The manifest digest a distribution point refers to, if any.
    pub fn resolve_ref(&self, point: &str) -> Result<Option<Digest>, StoreError> {
        let found: Option<String> = self
            .conn
            .query_row("SELECT manifest_digest FROM refs WHERE point = ?1", [point], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        Ok(found.and_then(|d| d.parse().ok()))
    }

    pub fn image(&self, digest: &Digest) -> Result<Option<StoredImage>, StoreError> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row("SELECT record, created_at FROM images WHERE manifest_digest = ?1", [digest.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(self.err())?;
        let Some((json, created_at)) = row else {
            return Ok(None);
        };
        let record = serde_json::from_str(&json)
            .map_err(|source| StoreError::CorruptRecord { digest: digest.clone(), source })?;
        Ok(Some(StoredImage { record, refs: self.refs_of(digest)?, created_at }))
    }

    fn refs_of(&self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT point FROM refs WHERE manifest_digest = ?1 ORDER BY point")
            .map_err(self.err())?;
        let rows = stmt.query_map([digest.to_string()], |r| r.get(0)).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Manifest digests of all images, oldest first.
    pub fn image_digests(&self) -> Result<Vec<Digest>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT manifest_digest FROM images ORDER BY created_at, manifest_digest")
            .map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(self.err())?;
        let all: Vec<String> = rows.collect::<Result<_, _>>().map_err(self.err())?;
        Ok(all.into_iter().filter_map(|d| d.parse().ok()).collect())
    }

    /// Remove one ref; the image goes too when no other ref points at it.
    /// Returns whether the image was removed.
    pub fn remove_ref(&mut self, point: &str) -> Result<bool, StoreError> {
        let Some(digest) = self.resolve_ref(point)? else {
            return Ok(false);
        };
        let path = self.path.clone();
        let err = |source| StoreError::Database { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute("DELETE FROM refs WHERE point = ?1", [point]).map_err(err)?;
        let left: i64 = tx
            .query_row("SELECT count(*) FROM refs WHERE manifest_digest = ?1", [digest.to_string()], |r| r.get(0))
            .map_err(err)?;
        if left == 0 {
            tx.execute("DELETE FROM images WHERE manifest_digest = ?1", [digest.to_string()]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(left == 0)
    }

    /// Record where `blob` holds file contents (replacing what was recorded for it).
    pub fn index_files(&mut self, blob: &Digest, files: &[FileSource]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Database { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute("DELETE FROM file_contents WHERE blob = ?1", [blob.to_string()]).map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR IGNORE INTO file_contents (content_digest, blob, offset, size, encoding)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for f in files {
                stmt.execute(params![
                    f.content.to_string(),
                    blob.to_string(),
                    f.offset as i64,
                    f.size as i64,
                    f.encoding.name()
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Where the store may hold content `digest`.
    pub fn file_sources(&self, digest: &Digest) -> Result<Vec<(Digest, FileSource)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT blob, offset, size, encoding FROM file_contents WHERE content_digest = ?1")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([digest.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (blob, offset, size, encoding) = row.map_err(self.err())?;
            let (Ok(blob), Some(encoding)) = (blob.parse::<Digest>(), ContentEncoding::from_name(&encoding)) else {
                continue;
            };
            out.push((
                blob,
                FileSource { content: digest.clone(), offset: offset as u64, size: size as u64, encoding },
            ));
        }
        Ok(out)
    }

    /// Every content digest the file index names, as text.
    pub fn indexed_contents(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT content_digest FROM file_contents").map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Blobs the file index names.
    pub fn indexed_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT blob FROM file_contents").map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(self.err())?;
        let all: Vec<String> = rows.collect::<Result<_, _>>().map_err(self.err())?;
        Ok(all.into_iter().filter_map(|d| d.parse().ok()).collect())
    }

    /// Forget the files of a blob that is gone.
    pub fn unindex_blob(&mut self, blob: &Digest) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM file_contents WHERE blob = ?1", [blob.to_string()])
            .map(|_| ())
            .map_err(self.err())
    }

    /// Record an attachment, replacing what its point named before.
    pub fn put_attachment(&mut self, a: &Attachment) -> Result<(), StoreError> {
        let blobs: Vec<String> = a.blobs.iter().map(Digest::to_string).collect();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO attachments (point, digest, subject, blobs, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    a.point,
                    a.digest.to_string(),
                    a.subject.to_string(),
                    serde_json::to_string(&blobs).expect("strings serialize"),
                    now()
                ],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Every attachment, by point.
    pub fn attachments(&self) -> Result<Vec<Attachment>, StoreError> {
        self.select_attachments("", None)
    }

    /// The attachment pushed under `point`.
    pub fn attachment(&self, point: &str) -> Result<Option<Attachment>, StoreError> {
        Ok(self.select_attachments("WHERE point = ?1", Some(point))?.pop())
    }

    /// The attachments of `subject`, by point.
    pub fn attachments_of(&self, subject: &Digest) -> Result<Vec<Attachment>, StoreError> {
        self.select_attachments("WHERE subject = ?1", Some(&subject.to_string()))
    }

    fn select_attachments(&self, filter: &str, param: Option<&str>) -> Result<Vec<Attachment>, StoreError> {
        let sql = format!("SELECT point, digest, subject, blobs FROM attachments {filter} ORDER BY point");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.err())?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        };
        let rows = match param {
            Some(p) => stmt.query_map([p], row),
            None => stmt.query_map([], row),
        }
        .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (point, digest, subject, blobs) = row.map_err(self.err())?;
            let blobs: Vec<String> = serde_json::from_str(&blobs).unwrap_or_default();
            // A row that does not parse names nothing berth could serve: skipped.
            let (Ok(digest), Ok(subject)) = (digest.parse(), subject.parse()) else { continue };
            out.push(Attachment {
                point,
                digest,
                subject,
                blobs: blobs.iter().filter_map(|b| b.parse().ok()).collect(),
            });
        }
        Ok(out)
    }

    pub fn remove_attachment(&mut self, point: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM attachments WHERE point = ?1", [point]).map(|_| ()).map_err(self.err())
    }

    /// Remove an image and every ref to it.
    pub fn remove_image(&mut self, digest: &Digest) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM images WHERE manifest_digest = ?1", [digest.to_string()])
            .map(|_| ())
            .map_err(self.err())
    }
}
