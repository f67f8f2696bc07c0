//! Removing images (`rmi`, `image prune`) and collecting what nothing uses.
//!
//! Docker's rules: removing a name untags it and deletes the image only when
//! it was the image's last tag; removing by id deletes the image, but refuses
//! (unless forced) when several names point at it or a container uses it.
//! Rows go in one transaction; files are deleted after the commit, snapshots
//! first renamed into the temporary area so none is ever seen half-deleted.
//!
//! Removal and pulls exclude each other through `locks/gc.lock`: pulls hold
//! it shared, removal exclusive, so a layer a running pull has just reused is
//! never collected under it.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::query::{normalise, resolve_id, tag_counts};
use super::tmp::{remove_tree, FileLock};
use super::{parse_digest, Result, Store, StoreError};
use crate::digest::Digest;

/// What a removal did, in the order Docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name (full normalised form) no longer points at the image.
    Untagged(String),
    /// An image id, or a layer chain id, deleted.
    Deleted(Digest),
}

/// Who uses an image besides its tags; the engine implements it with its
/// containers table. The store refuses to delete a used image unless forced.
pub trait ImageUsers {
    /// Names or ids of the containers created from the image.
    fn containers_using(&self, image_id: &Digest) -> Vec<String>;
}

/// No containers exist (the image library alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUsers;

impl ImageUsers for NoUsers {
    fn containers_using(&self, _: &Digest) -> Vec<String> {
        Vec::new()
    }
}

/// Blob and snapshot files to delete once the transaction committed.
#[derive(Default)]
struct Garbage {
    blobs: Vec<Digest>,
    snapshots: Vec<Digest>,
}

impl Store {
    /// `rmi NAME_OR_ID` with no container users.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<Removed>> {
        self.remove_with(name, force, &NoUsers)
    }

    /// `rmi NAME_OR_ID`, asking `users` whether a container uses the image.
    pub fn remove_with(
        &self,
        name: &str,
        force: bool,
        users: &dyn ImageUsers,
    ) -> Result<Vec<Removed>> {
        let _gc = self.gc_lock(false)?;
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = resolve_id(&tx, name)?.ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let tags = tags_of(&tx, &id)?;
        let by_name = match normalise(name) {
            Ok(r) if r.digest.is_none() => tags.contains(&r.to_string()).then(|| r.to_string()),
            _ => None,
        };
        let mut removed = Vec::new();
        if let Some(tag) = &by_name {
            if tags.len() > 1 {
                tx.execute("DELETE FROM tags WHERE name = ?1", [tag])?;
                tx.commit()?;
                return Ok(vec![Removed::Untagged(tag.clone())]);
            }
        } else if tags.len() > 1 && !force {
            let short = short_id(&id);
            return Err(StoreError::Conflict {
                id: short,
                reason: "image is referenced in multiple repositories".into(),
            });
        }
        let digest = parse_digest(&id)?;
        let containers = users.containers_using(&digest);
        if !containers.is_empty() && !force {
            return Err(StoreError::Conflict {
                id: short_id(&id),
                reason: format!("image is being used by container {}", containers.join(", ")),
            });
        }
        removed.extend(tags.into_iter().map(Removed::Untagged));
        removed.extend(
            repo_digests_of(&tx, &id)?
                .into_iter()
                .map(Removed::Untagged),
        );
        let garbage = delete_image(&tx, &id)?;
        tx.commit()?;
        drop(db);
        removed.push(Removed::Deleted(digest));
        self.delete_files(&garbage, &mut removed);
        Ok(removed)
    }

    /// `image prune`: deletes dangling images (no tag), or with `all` every
    /// image no container uses, then every layer and blob nothing uses.
    pub fn prune(&self, all: bool, users: &dyn ImageUsers) -> Result<Vec<Removed>> {
        let _gc = self.gc_lock(false)?;
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut removed = Vec::new();
        let mut garbage = Garbage::default();
        for (id, tags) in tag_counts(&tx)? {
            let digest = parse_digest(&id)?;
            if (tags > 0 && !all) || !users.containers_using(&digest).is_empty() {
                continue;
            }
            removed.extend(tags_of(&tx, &id)?.into_iter().map(Removed::Untagged));
            removed.extend(
                repo_digests_of(&tx, &id)?
                    .into_iter()
                    .map(Removed::Untagged),
            );
            let g = delete_image(&tx, &id)?;
            garbage.blobs.extend(g.blobs);
            garbage.snapshots.extend(g.snapshots);
            removed.push(Removed::Deleted(digest));
        }
        let orphans = collect_orphans(&tx)?;
        garbage.blobs.extend(orphans.blobs);
        garbage.snapshots.extend(orphans.snapshots);
        tx.commit()?;
        drop(db);
        self.delete_files(&garbage, &mut removed);
        self.delete_strays()?;
        Ok(removed)
    }

    /// Blob files and snapshot directories no row names: a pull killed
    /// between renaming them into place and committing its transaction.
    /// Only called under the exclusive gc lock, so no pull is running.
    fn delete_strays(&self) -> Result<()> {
        let db = self.db();
        let known = |table: &str, column: &str, value: String| -> Result<bool> {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1");
            let n: i64 = db.query_row(&sql, [value], |r| r.get(0))?;
            Ok(n > 0)
        };
        let mut strays = Vec::new();
        let snapshots = self.root().join("snapshots");
        for entry in std::fs::read_dir(&snapshots)
            .map_err(|e| StoreError::io("read directory", &snapshots, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known("layers", "chain_id", format!("sha256:{name}"))? {
                strays.push(entry.path());
            }
        }
        let blobs = self.root().join("blobs").join("sha256");
        for entry in std::fs::read_dir(&blobs)
            .map_err(|e| StoreError::io("read directory", &blobs, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known("blobs", "digest", format!("sha256:{name}"))? {
                strays.push(entry.path());
            }
        }
        drop(db);
        for path in strays {
            let to = self.tmp_path("deleted");
            if std::fs::rename(&path, &to).is_ok() {
                remove_tree(&to);
            }
        }
        Ok(())
    }

    /// Shared by pulls and loads, exclusive for removal.
    pub fn gc_lock(&self, shared: bool) -> Result<GcLock> {
        let path = self.root().join("locks").join("gc.lock");
        GcLock::acquire(&path, shared)
    }

    fn delete_files(&self, garbage: &Garbage, removed: &mut Vec<Removed>) {
        for chain in &garbage.snapshots {
            let from = self.snapshot_path(chain);
            let to = self.tmp_path("deleted");
            if std::fs::rename(&from, &to).is_ok() {
                remove_tree(&to);
            }
            removed.push(Removed::Deleted(chain.clone()));
        }
        for blob in &garbage.blobs {
            let _ = std::fs::remove_file(self.blob_path(blob));
        }
    }
}

/// A shared or exclusive lock on the store's garbage collection.
#[derive(Debug)]
pub struct GcLock {
    _lock: FileLock,
}

impl GcLock {
    fn acquire(path: &Path, shared: bool) -> Result<GcLock> {
        Ok(GcLock {
            _lock: FileLock::acquire_mode(path, shared)?,
        })
    }
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn tags_of(tx: &Transaction<'_>, id: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn repo_digests_of(tx: &Transaction<'_>, id: &str) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare("SELECT repo || '@' || digest FROM repo_digests WHERE image_id = ?1 ORDER BY 1")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the image's rows, then its layers and blobs that nothing else uses.
fn delete_image(tx: &Transaction<'_>, id: &str) -> Result<Garbage> {
    let manifest: String = tx.query_row(
        "SELECT manifest_digest FROM images WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let mut candidates_blobs: BTreeSet<String> = [id.to_string(), manifest].into();
    let mut candidates_layers = BTreeSet::new();
    {
        let mut stmt =
            tx.prepare("SELECT chain_id, blob_digest FROM image_layers WHERE image_id = ?1")?;
        let rows = stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (chain, blob) = row?;
            candidates_layers.insert(chain);
            candidates_blobs.insert(blob);
        }
    }
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM repo_digests WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    let mut garbage = Garbage::default();
    for chain in candidates_layers {
        let used: i64 = tx.query_row(
            "SELECT COUNT(*) FROM image_layers WHERE chain_id = ?1",
            [&chain],
            |r| r.get(0),
        )?;
        if used == 0 {
            let blob: Option<String> = tx.query_row(
                "SELECT blob_digest FROM layers WHERE chain_id = ?1",
                [&chain],
                |r| r.get(0),
            )?;
            candidates_blobs.extend(blob);
            tx.execute("DELETE FROM layers WHERE chain_id = ?1", [&chain])?;
            garbage.snapshots.push(parse_digest(&chain)?);
        }
    }
    for blob in candidates_blobs {
        if !blob_used(tx, &blob)? {
            tx.execute("DELETE FROM blobs WHERE digest = ?1", [&blob])?;
            garbage.blobs.push(parse_digest(&blob)?);
        }
    }
    Ok(garbage)
}

fn blob_used(tx: &Transaction<'_>, blob: &str) -> Result<bool> {
    let n: i64 = tx.query_row(
        "SELECT (SELECT COUNT(*) FROM images WHERE id = ?1 OR manifest_digest = ?1)
              + (SELECT COUNT(*) FROM image_layers WHERE blob_digest = ?1)
              + (SELECT COUNT(*) FROM layers WHERE blob_digest = ?1)",
        params![blob],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Layers no image uses, and blobs nothing names (left by interrupted pulls).
fn collect_orphans(tx: &Transaction<'_>) -> Result<Garbage> {
    let mut garbage = Garbage::default();
    let chains: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT chain_id FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for chain in chains {
        tx.execute("DELETE FROM layers WHERE chain_id = ?1", [&chain])?;
        garbage.snapshots.push(parse_digest(&chain)?);
    }
    let blobs: Vec<String> = {
        let mut stmt = tx.prepare("SELECT digest FROM blobs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for blob in blobs {
        if !blob_used(tx, &blob)? {
            tx.execute("DELETE FROM blobs WHERE digest = ?1", [&blob])?;
            garbage.blobs.push(parse_digest(&blob)?);
        }
    }
    Ok(garbage)
}
