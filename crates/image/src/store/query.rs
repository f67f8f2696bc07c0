//! Reading the store: listing, resolving names, layers of an image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use super::{parse_digest, Image, ImageLayer, Result, Store, StoreError};
use crate::digest::Digest;
use crate::reference::Reference;

/// The full normalised form of a name (`busybox` -> `docker.io/library/busybox:latest`).
pub(crate) fn normalise(name: &str) -> Result<Reference> {
    Reference::parse(name).map_err(|e| StoreError::BadName {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

impl Store {
    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let db = self.db();
        let ids: Vec<String> = {
            let mut stmt = db.prepare("SELECT id FROM images ORDER BY added DESC, id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        ids.iter().map(|id| load_image(&db, id)).collect()
    }

    /// The image with this id.
    pub fn image(&self, id: &Digest) -> Result<Image> {
        load_image(&self.db(), &id.to_string())
    }

    /// Finds an image by name (`busybox`, `reg:5000/x:tag`, `x@sha256:...`),
    /// by id (`sha256:<hex>`, or a unique prefix of the hex), or by manifest
    /// digest. Names win over id prefixes, as in Docker.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let db = self.db();
        let id = resolve_id(&db, name)?.ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        load_image(&db, &id)
    }

    /// Points `dst` at the image `src` resolves to.
    pub fn tag(&self, src: &str, dst: &str) -> Result<()> {
        let dst_ref = normalise(dst)?;
        if dst_ref.digest.is_some() {
            return Err(StoreError::BadName {
                name: dst.to_string(),
                reason: "refusing to create a tag with a digest".into(),
            });
        }
        let image = self.resolve(src)?;
        self.db().execute(
            "INSERT INTO tags (name, image_id, manifest_digest, tagged) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id,
             manifest_digest = excluded.manifest_digest, tagged = excluded.tagged",
            params![
                dst_ref.to_string(),
                image.id.to_string(),
                image.manifest_digest.to_string(),
                super::now()
            ],
        )?;
        Ok(())
    }

    /// The layers of an image, bottom first.
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<ImageLayer>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT il.chain_id, l.diff_id, il.blob_digest, il.media_type, COALESCE(b.size, -1), l.size
             FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
             LEFT JOIN blobs b ON b.digest = il.blob_digest
             WHERE il.image_id = ?1 ORDER BY il.position",
        )?;
        let rows = stmt.query_map([id.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut layers = Vec::new();
        for row in rows {
            let (chain, diff, blob, media_type, blob_size, size) = row?;
            layers.push(ImageLayer {
                chain_id: parse_digest(&chain)?,
                diff_id: parse_digest(&diff)?,
                blob_digest: parse_digest(&blob)?,
                media_type,
                blob_size: blob_size.max(0) as u64,
                size: size.max(0) as u64,
            });
        }
        Ok(layers)
    }

    /// The overlay lower dirs of an image, top layer first (the order of
    /// overlayfs' `lowerdir=`).
    pub fn snapshot_dirs(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let layers = self.image_layers(id)?;
        Ok(layers
            .iter()
            .rev()
            .map(|l| self.snapshot_path(&l.chain_id).join("fs"))
            .collect())
    }
}

/// The id of the image `name` designates, if any.
pub(crate) fn resolve_id(db: &Connection, name: &str) -> Result<Option<String>> {
    let name = name.trim();
    // A full digest: image id, or manifest digest of an image.
    if let Some(hex) = name.strip_prefix("sha256:") {
        if hex.len() == 64 {
            return by_digest(db, name);
        }
        return by_id_prefix(db, hex);
    }
    if name.len() == 64 && is_hex(name) {
        return by_digest(db, &format!("sha256:{name}"));
    }
    if let Ok(reference) = Reference::parse(name) {
        let found = match &reference.digest {
            Some(digest) => db
                .query_row(
                    "SELECT image_id FROM repo_digests WHERE repo = ?1 AND digest = ?2
                     UNION SELECT id FROM images WHERE manifest_digest = ?2",
                    params![repo_of(&reference), digest.to_string()],
                    |r| r.get(0),
                )
                .optional()?,
            None => db
                .query_row(
                    "SELECT image_id FROM tags WHERE name = ?1",
                    [reference.to_string()],
                    |r| r.get(0),
                )
                .optional()?,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    if name.len() >= 4 && is_hex(name) {
        return by_id_prefix(db, name);
    }
    Ok(None)
}

/// `registry/repository` of a reference, the key of `repo_digests`.
pub(crate) fn repo_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry, reference.repository)
}

fn by_digest(db: &Connection, digest: &str) -> Result<Option<String>> {
    Ok(db
        .query_row(
            "SELECT id FROM images WHERE id = ?1 OR manifest_digest = ?1
             UNION SELECT image_id FROM repo_digests WHERE digest = ?1 LIMIT 1",
            [digest],
            |r| r.get(0),
        )
        .optional()?)
}

fn by_id_prefix(db: &Connection, hex: &str) -> Result<Option<String>> {
    if !is_hex(hex) {
        return Ok(None);
    }
    let pattern = format!("sha256:{}%", hex.to_ascii_lowercase());
    let mut stmt = db.prepare("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
    let ids: Vec<String> = stmt
        .query_map([pattern], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.into_iter().next()),
        _ => Err(StoreError::Ambiguous(hex.to_string())),
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn load_image(db: &Connection, id: &str) -> Result<Image> {
    let row = db
        .query_row(
            "SELECT manifest_digest, created, size, os, architecture, variant FROM images WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let (manifest_digest, created, size, os, architecture, variant) = row;
    let mut tags: Vec<String> = {
        let mut stmt = db.prepare("SELECT name FROM tags WHERE image_id = ?1")?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    tags.sort();
    let mut repo_digests: Vec<String> = {
        let mut stmt =
            db.prepare("SELECT repo || '@' || digest FROM repo_digests WHERE image_id = ?1")?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    repo_digests.sort();
    Ok(Image {
        id: parse_digest(id)?,
        manifest_digest: parse_digest(&manifest_digest)?,
        tags,
        repo_digests,
        created,
        size: size.max(0) as u64,
        os,
        architecture,
        variant,
    })
}

/// Image ids by tag count, for callers deciding what a removal does.
pub(crate) fn tag_counts(db: &Connection) -> Result<BTreeMap<String, i64>> {
    let mut stmt = db.prepare("SELECT i.id, COUNT(t.name) FROM images i LEFT JOIN tags t ON t.image_id = i.id GROUP BY i.id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
