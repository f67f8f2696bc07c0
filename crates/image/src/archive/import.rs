//! `import`: a root filesystem tar (plain, gzip or zstd) becomes a
//! one-layer image with a generated config, as `docker import` does.

use std::io::Read;

use serde_json::json;

use super::{ingest_layer, ArchiveError, LayerExpect};
use crate::digest::Digest;
use crate::manifest::{Platform, MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST};
use crate::reference::Reference;
use crate::store::{NewImage, Store};

/// Imports `tar` as a new image, named `reference` if given; `source` is
/// what the history comment says it came from. Returns the image id.
pub fn import(
    store: &Store,
    tar: impl Read,
    reference: Option<&Reference>,
    source: &str,
) -> Result<Digest, ArchiveError> {
    let _gc = store.gc_lock(true)?;
    let layer = ingest_layer(
        store,
        tar,
        &LayerExpect {
            file: source,
            blob: None,
            diff_id: None,
            parent: None,
            media_type: None,
        },
    )?;
    let host = Platform::host();
    let created = sys::time::rfc3339(std::time::SystemTime::now(), false);
    let config = json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": created,
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.to_string()] },
        "history": [{ "created": created, "created_by": "berth import", "comment": format!("Imported from {source}") }],
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ArchiveError::Invalid {
        file: source.into(),
        reason: e.to_string(),
    })?;
    let id = store.put_blob(&config_bytes, MEDIA_OCI_CONFIG, None)?;
    let blob_size = store.blob_info(&layer.blob)?.map(|(s, _)| s).unwrap_or(0);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": { "mediaType": MEDIA_OCI_CONFIG, "digest": id.to_string(), "size": config_bytes.len() },
        "layers": [{ "mediaType": layer.media_type, "digest": layer.blob.to_string(), "size": blob_size }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| ArchiveError::Invalid {
        file: source.into(),
        reason: e.to_string(),
    })?;
    let manifest_digest = store.put_blob(&manifest_bytes, MEDIA_OCI_MANIFEST, None)?;
    store.commit_image(&NewImage {
        id: id.clone(),
        manifest_digest,
        created: Some(created),
        os: host.os,
        architecture: host.architecture,
        variant: host.variant,
        layers: vec![(layer.chain_id, layer.blob, layer.media_type)],
        tag: reference.map(|r| r.to_string()),
        repo_digest: None,
    })?;
    Ok(id)
}
