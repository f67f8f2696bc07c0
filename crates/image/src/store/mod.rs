//! The content store: verified blobs, unpacked layer snapshots, and the
//! metadata database that says which images, tags and layers exist.
//!
//! Layout under the root (see docs/images.md):
//!
//! ```text
//! berth.db                 SQLite (WAL): images, tags, layers, blobs
//! blobs/sha256/<hex>       manifests, configs, compressed layers
//! snapshots/<chain-hex>/fs one unpacked layer, an overlay lower dir
//! tmp/<pid>-<n>/           work in progress of a live process
//! locks/<chain-hex>.lock   flock per chain id
//! ```
//!
//! The rule that makes the store crash safe: a file or directory is written
//! under `tmp/`, renamed into place, and only then named by a database row
//! (committed in one transaction). A blob file or a snapshot directory that
//! exists is therefore complete; one that no row names is garbage that
//! `remove`/`prune` collect; a row whose file is missing is repaired by the
//! next pull (which checks the file, not the row).

mod inspect;
mod query;
mod remove;
mod schema;
mod tmp;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::digest::Digest;

pub use inspect::{familiar_name, HistoryEntry};
pub use remove::{GcLock, ImageUsers, NoUsers, Removed};
pub use schema::SCHEMA_VERSION;
pub use tmp::{FileLock, TempDir, TempPath};

/// Errors of the store. Messages name the path or the value involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image id prefix {0} is ambiguous: it matches several images")]
    Ambiguous(String),
    #[error("invalid reference {name}: {reason}")]
    BadName { name: String, reason: String },
    #[error("conflict: unable to delete {id} (must be forced) - {reason}")]
    Conflict { id: String, reason: String },
    #[error("image database holds a bad value {value}: {reason}")]
    Corrupt { value: String, reason: String },
    #[error("blob {expected} does not match its content: computed {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("image database schema version {found} is newer than this berth supports ({supported}); upgrade berth")]
    SchemaTooNew { found: i64, supported: i64 },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An image as the CLI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config digest.
    pub id: Digest,
    pub manifest_digest: Digest,
    /// Full normalised names (`docker.io/library/busybox:latest`), sorted.
    pub tags: Vec<String>,
    /// `repo@sha256:...`, full normalised repository names, sorted.
    pub repo_digests: Vec<String>,
    /// RFC 3339, from the image config.
    pub created: Option<String>,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// One layer of an image, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// The blob this image's manifest names for the layer (as pulled).
    pub blob_digest: Digest,
    pub media_type: String,
    /// Size of the blob in bytes.
    pub blob_size: u64,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}

/// A layer snapshot ready to be renamed into place and recorded.
#[derive(Debug)]
pub struct LayerCommit {
    pub chain_id: Digest,
    pub parent: Option<Digest>,
    pub diff_id: Digest,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// The compressed blob, when one was written with this layer.
    pub blob: Option<BlobCommit>,
    /// The unpacked layer: a directory whose `fs/` is the lower dir; `None`
    /// when the snapshot already exists and only the blob is new.
    pub snapshot: Option<TempDir>,
}

/// A verified blob in the temporary area, ready to be renamed into place.
#[derive(Debug)]
pub struct BlobCommit {
    pub file: TempPath,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The repository it was fetched from (`registry/repo`), used by push to
    /// try a cross-repository mount.
    pub source_repo: Option<String>,
}

/// An image to record; its blobs and layers are already committed.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Bottom first: (chain id, blob digest, blob media type).
    pub layers: Vec<(Digest, Digest, String)>,
    /// Full normalised name to point at the image (`registry/repo:tag`).
    pub tag: Option<String>,
    /// Full normalised `registry/repo@sha256:...` the image was pulled by.
    pub repo_digest: Option<String>,
}

/// The content store. Cheap to share between threads (`&Store`): the
/// database connection sits behind a mutex; file work happens outside it.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
    tmp: tmp::TempArea,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, migrates the schema
    /// and removes the temporary work of processes that died.
    pub fn open(root: &Path) -> Result<Store> {
        for dir in ["blobs/sha256", "snapshots", "tmp", "locks"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|e| StoreError::io("create directory", &path, e))?;
        }
        let mut conn = Connection::open(root.join("berth.db"))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")?;
        schema::migrate(&mut conn)?;
        let tmp = tmp::TempArea::create(&root.join("tmp"))?;
        Ok(Store {
            root: root.to_path_buf(),
            db: Mutex::new(conn),
            tmp,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned mutex is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| StoreError::io("read blob", &path, e))
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File> {
        let path = self.blob_path(digest);
        fs::File::open(&path).map_err(|e| StoreError::io("open blob", &path, e))
    }

    /// `snapshots/<chain-hex>`; the lower dir is its `fs/`.
    pub fn snapshot_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// True when the snapshot is complete (it exists only once renamed into place).
    pub fn has_snapshot(&self, chain_id: &Digest) -> bool {
        self.snapshot_path(chain_id).join("fs").is_dir()
    }

    /// A new temporary file for a blob being downloaded.
    pub fn temp_file(&self) -> Result<(TempPath, fs::File)> {
        self.tmp.file("blob")
    }

    /// A new temporary directory; unpack a layer into its `fs/`.
    pub fn temp_dir(&self) -> Result<TempDir> {
        let dir = self.tmp.dir("snap")?;
        let fs_dir = dir.path().join("fs");
        fs::create_dir(&fs_dir).map_err(|e| StoreError::io("create directory", &fs_dir, e))?;
        Ok(dir)
    }

    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        self.tmp.path(what)
    }

    /// Waits for, then holds, the lock of a chain id: two processes that pull
    /// the same layer unpack it once.
    pub fn lock_chain(&self, chain_id: &Digest) -> Result<FileLock> {
        let path = self
            .root
            .join("locks")
            .join(format!("{}.lock", chain_id.hex()));
        FileLock::acquire(&path, false)?
            .ok_or_else(|| StoreError::io("flock", &path, io::ErrorKind::WouldBlock.into()))
    }

    /// Writes a small blob (manifest, config) whose digest is computed here.
    pub fn put_blob(
        &self,
        bytes: &[u8],
        media_type: &str,
        source_repo: Option<&str>,
    ) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            let (path, mut file) = self.temp_file()?;
            file.write_all(bytes)
                .map_err(|e| StoreError::io("write", path.path(), e))?;
            path.persist(&self.blob_path(&digest))?;
        }
        self.record_blob(&digest, bytes.len() as u64, media_type, source_repo)?;
        Ok(digest)
    }

    /// Renames a verified temporary blob into place and records it.
    pub fn commit_blob(&self, blob: BlobCommit) -> Result<()> {
        blob.file.persist(&self.blob_path(&blob.digest))?;
        self.record_blob(
            &blob.digest,
            blob.size,
            &blob.media_type,
            blob.source_repo.as_deref(),
        )
    }

    fn record_blob(
        &self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        source: Option<&str>,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO blobs (digest, size, media_type, source_repo) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(digest) DO UPDATE SET source_repo = COALESCE(blobs.source_repo, excluded.source_repo)",
            params![digest.to_string(), size as i64, media_type, source],
        )?;
        Ok(())
    }

    /// Size and media type of a recorded blob.
    pub fn blob_info(&self, digest: &Digest) -> Result<Option<(u64, String)>> {
        let row: Option<(i64, String)> = self
            .db()
            .query_row(
                "SELECT size, media_type FROM blobs WHERE digest = ?1",
                [digest.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(s, m)| (s.max(0) as u64, m)))
    }

    /// The repository a blob was fetched from, if recorded.
    pub fn blob_source(&self, digest: &Digest) -> Result<Option<String>> {
        let src: Option<Option<String>> = self
            .db()
            .query_row(
                "SELECT source_repo FROM blobs WHERE digest = ?1",
                [digest.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(src.flatten())
    }

    /// Renames the blob and the snapshot of a layer into place, then records
    /// both in one transaction. Call while holding [`Store::lock_chain`].
    pub fn commit_layer(&self, layer: LayerCommit) -> Result<()> {
        let blob_row = match layer.blob {
            Some(blob) => {
                blob.file.persist(&self.blob_path(&blob.digest))?;
                Some((blob.digest, blob.size, blob.media_type, blob.source_repo))
            }
            None => None,
        };
        if let Some(snapshot) = layer.snapshot {
            // `false`: an identical snapshot is already in place; ours is dropped.
            snapshot.persist(&self.snapshot_path(&layer.chain_id))?;
        }
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some((digest, size, media_type, source)) = &blob_row {
            tx.execute(
                "INSERT INTO blobs (digest, size, media_type, source_repo) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(digest) DO NOTHING",
                params![digest.to_string(), *size as i64, media_type, source],
            )?;
        }
        tx.execute(
            "INSERT INTO layers (chain_id, diff_id, blob_digest, size, parent) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(chain_id) DO UPDATE SET blob_digest = COALESCE(layers.blob_digest, excluded.blob_digest)",
            params![
                layer.chain_id.to_string(),
                layer.diff_id.to_string(),
                blob_row.as_ref().map(|b| b.0.to_string()),
                layer.size as i64,
                layer.parent.map(|p| p.to_string()),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records an image, its layers, its tag and repo digest in one
    /// transaction. Moves the tag if it pointed to another image.
    pub fn commit_image(&self, image: &NewImage) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = image.id.to_string();
        let mut size: i64 = 0;
        for (chain_id, _, _) in &image.layers {
            let s: Option<i64> = tx
                .query_row(
                    "SELECT size FROM layers WHERE chain_id = ?1",
                    [chain_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            size += s.ok_or_else(|| StoreError::NotFound(format!("layer {chain_id}")))?;
        }
        tx.execute(
            "INSERT INTO images (id, manifest_digest, created, size, os, architecture, variant, added)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest",
            params![
                id,
                image.manifest_digest.to_string(),
                image.created,
                size,
                image.os,
                image.architecture,
                image.variant,
                now(),
            ],
        )?;
        tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])?;
        for (pos, (chain_id, blob, media_type)) in image.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers (image_id, position, chain_id, blob_digest, media_type)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id,
                    pos as i64,
                    chain_id.to_string(),
                    blob.to_string(),
                    media_type
                ],
            )?;
        }
        if let Some(tag) = &image.tag {
            tx.execute(
                "INSERT INTO tags (name, image_id, manifest_digest, tagged) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id,
                 manifest_digest = excluded.manifest_digest, tagged = excluded.tagged",
                params![tag, id, image.manifest_digest.to_string(), now()],
            )?;
        }
        if let Some(rd) = &image.repo_digest {
            let (repo, digest) = rd.rsplit_once('@').ok_or_else(|| StoreError::BadName {
                name: rd.clone(),
                reason: "a repo digest is repository@digest".into(),
            })?;
            tx.execute(
                "INSERT OR REPLACE INTO repo_digests (repo, digest, image_id) VALUES (?1, ?2, ?3)",
                params![repo, digest, id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// True when the layer's snapshot is in place and recorded.
    pub fn has_layer(&self, chain_id: &Digest) -> Result<bool> {
        let row: Option<String> = self
            .db()
            .query_row(
                "SELECT chain_id FROM layers WHERE chain_id = ?1",
                [chain_id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(row.is_some() && self.has_snapshot(chain_id))
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| StoreError::Corrupt {
        value: s.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
