//! `inspect` and `history`: the image config seen through Docker's JSON.

use serde_json::{json, Map, Value};

use super::query::normalise;
use super::{Result, Store, StoreError};
use crate::digest::Digest;

/// One line of `berth history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// The image id for the top entry, `<missing>` below (as Docker prints).
    pub id: String,
    pub created: Option<String>,
    pub created_by: String,
    /// Uncompressed size of the layer this step made, 0 for empty layers.
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

impl Store {
    /// The image config blob, parsed.
    pub fn config(&self, id: &Digest) -> Result<Value> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            value: format!("config {id}"),
            reason: e.to_string(),
        })
    }

    /// `docker image inspect` for the fields berth has.
    pub fn inspect(&self, id: &Digest) -> Result<Value> {
        let image = self.image(id)?;
        let config = self.config(id)?;
        let familiar =
            |names: &[String]| -> Vec<String> { names.iter().map(|n| familiar_name(n)).collect() };
        let mut out = Map::new();
        out.insert("Id".into(), json!(image.id.to_string()));
        out.insert("RepoTags".into(), json!(familiar(&image.tags)));
        out.insert("RepoDigests".into(), json!(familiar(&image.repo_digests)));
        out.insert("Parent".into(), json!(""));
        out.insert(
            "Comment".into(),
            config.get("comment").cloned().unwrap_or(json!("")),
        );
        out.insert(
            "Created".into(),
            json!(image.created.clone().unwrap_or_default()),
        );
        out.insert(
            "DockerVersion".into(),
            config.get("docker_version").cloned().unwrap_or(json!("")),
        );
        out.insert(
            "Author".into(),
            config.get("author").cloned().unwrap_or(json!("")),
        );
        out.insert(
            "Config".into(),
            config.get("config").cloned().unwrap_or(Value::Null),
        );
        out.insert("Architecture".into(), json!(image.architecture));
        if let Some(variant) = &image.variant {
            out.insert("Variant".into(), json!(variant));
        }
        out.insert("Os".into(), json!(image.os));
        out.insert("Size".into(), json!(image.size));
        let diff_ids = config
            .pointer("/rootfs/diff_ids")
            .cloned()
            .unwrap_or(json!([]));
        out.insert(
            "RootFS".into(),
            json!({ "Type": "layers", "Layers": diff_ids }),
        );
        out.insert(
            "Metadata".into(),
            json!({ "LastTagTime": "0001-01-01T00:00:00Z" }),
        );
        Ok(Value::Object(out))
    }

    /// `docker history`: the config's history, newest first, with the size
    /// of the layer each non-empty step produced.
    pub fn history(&self, id: &Digest) -> Result<Vec<HistoryEntry>> {
        let config = self.config(id)?;
        let sizes: Vec<u64> = self.image_layers(id)?.iter().map(|l| l.size).collect();
        let steps = config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut layer = 0;
        let mut entries = Vec::new();
        for step in &steps {
            let empty_layer = step
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let size = if empty_layer {
                0
            } else {
                sizes.get(layer).copied().unwrap_or(0)
            };
            if !empty_layer {
                layer += 1;
            }
            let text = |k: &str| {
                step.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            entries.push(HistoryEntry {
                id: "<missing>".into(),
                created: step
                    .get("created")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                created_by: text("created_by"),
                size,
                comment: text("comment"),
                empty_layer,
            });
        }
        if steps.is_empty() {
            // Images without history (imported, some tools): one entry per layer.
            for size in &sizes {
                entries.push(HistoryEntry {
                    id: "<missing>".into(),
                    created: config
                        .get("created")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    created_by: String::new(),
                    size: *size,
                    comment: String::new(),
                    empty_layer: false,
                });
            }
        }
        entries.reverse();
        if let Some(top) = entries.first_mut() {
            top.id = id.to_string();
        }
        Ok(entries)
    }
}

/// `docker.io/library/busybox:latest` -> `busybox:latest`, as Docker prints names.
pub fn familiar_name(full: &str) -> String {
    normalise(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}
