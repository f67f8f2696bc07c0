//! The database schema and its migrations.
//!
//! `schema_version` holds one row: the number of migrations applied. Opening
//! a store applies the missing ones in order, each in its own transaction, so
//! a newer berth upgrades an older store in place and an older berth refuses
//! a store it does not understand instead of corrupting it.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    source_repo TEXT
);
CREATE TABLE layers (
    chain_id    TEXT PRIMARY KEY,
    diff_id     TEXT NOT NULL,
    blob_digest TEXT,
    size        INTEGER NOT NULL,
    parent      TEXT
);
CREATE TABLE images (
    id              TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    created         TEXT,
    size            INTEGER NOT NULL,
    os              TEXT NOT NULL,
    architecture    TEXT NOT NULL,
    variant         TEXT,
    added           INTEGER NOT NULL
);
CREATE TABLE image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
    blob_digest TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_chain ON image_layers(chain_id);
CREATE TABLE tags (
    name            TEXT PRIMARY KEY,
    image_id        TEXT NOT NULL REFERENCES images(id),
    manifest_digest TEXT NOT NULL,
    tagged          INTEGER NOT NULL
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE repo_digests (
    repo     TEXT NOT NULL,
    digest   TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_digests_image ON repo_digests(image_id);
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .ok();
        let current = current.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[current as usize])?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [current + 1],
        )?;
        tx.commit()?;
    }
}
