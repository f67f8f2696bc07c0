//! `load`: docker-archive and oci-archive tars, from berth, docker, podman
//! or skopeo.
//!
//! The archive is a stream whose parts come in any order (docker writes
//! manifest.json last), so it is first extracted into the store's temporary
//! area: regular files only, names checked to stay inside, links recorded
//! and resolved by name (docker 25+ links `<id>/layer.tar` to
//! `blobs/sha256/<hex>`). Then each image is ingested like a pull.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::{ingest_layer, ArchiveError, LayerExpect};
use crate::digest::Digest;
use crate::manifest::{
    select_platform, ImageConfig, ParsedManifest, Platform, MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{NewImage, Store, TempDir};

/// An image an archive held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    /// Full normalised names now pointing at it.
    pub names: Vec<String>,
}

/// Loads every image of the archive read from `input`.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<LoadedImage>, ArchiveError> {
    let _gc = store.gc_lock(true)?;
    let dir = store.temp_dir()?;
    let tree = Extracted::unpack(input, dir)?;
    if tree.exists("manifest.json") {
        load_docker(store, &tree)
    } else if tree.exists("index.json") {
        load_oci(store, &tree)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

/// An archive extracted under a temporary directory.
struct Extracted {
    dir: TempDir,
    /// Link name -> target path inside the archive (already resolved relative
    /// to the archive root).
    links: HashMap<String, String>,
}

impl Extracted {
    fn unpack(input: impl Read, dir: TempDir) -> Result<Extracted, ArchiveError> {
        let root = dir.path().join("fs");
        let mut links = HashMap::new();
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(ArchiveError::Read)? {
            let mut entry = entry.map_err(ArchiveError::Read)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean(&raw) else {
                return Err(ArchiveError::BadEntry {
                    name: raw,
                    reason: "path leaves the archive".into(),
                });
            };
            let kind = entry.header().entry_type();
            match kind {
                tar::EntryType::Directory => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let joined = if kind == tar::EntryType::Symlink && !target.starts_with('/') {
                        match name.rsplit_once('/') {
                            Some((parent, _)) => format!("{parent}/{target}"),
                            None => target,
                        }
                    } else {
                        target
                    };
                    let resolved = clean(&joined).ok_or_else(|| ArchiveError::BadEntry {
                        name: raw.clone(),
                        reason: "link leaves the archive".into(),
                    })?;
                    links.insert(name, resolved);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = root.join(&name);
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)
                            .map_err(|e| io_err("create directory", parent, e))?;
                    }
                    let mut file = File::create(&path).map_err(|e| io_err("create", &path, e))?;
                    io::copy(&mut entry, &mut file).map_err(ArchiveError::Read)?;
                }
                _ => {}
            }
        }
        Ok(Extracted { dir, links })
    }

    /// The file a name designates, links followed.
    fn path(&self, name: &str) -> Result<PathBuf, ArchiveError> {
        let mut name = clean(name).ok_or_else(|| ArchiveError::BadEntry {
            name: name.into(),
            reason: "path leaves the archive".into(),
        })?;
        for _ in 0..16 {
            match self.links.get(&name) {
                Some(target) => name = target.clone(),
                None => return Ok(self.dir.path().join("fs").join(name)),
            }
        }
        Err(ArchiveError::BadEntry {
            name,
            reason: "too many levels of links".into(),
        })
    }

    fn exists(&self, name: &str) -> bool {
        self.path(name).map(|p| p.is_file()).unwrap_or(false)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let path = self.path(name)?;
        fs::read(&path).map_err(|e| io_err("read", &path, e))
    }

    fn open(&self, name: &str) -> Result<File, ArchiveError> {
        let path = self.path(name)?;
        File::open(&path).map_err(|e| io_err("open", &path, e))
    }
}

/// `a/./b/../c` -> `a/c`; `None` when it climbs out or is empty.
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(file: &str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// docker-archive: `manifest.json` = `[{Config, RepoTags, Layers}]`.
fn load_docker(store: &Store, tree: &Extracted) -> Result<Vec<LoadedImage>, ArchiveError> {
    let manifest: Value = serde_json::from_slice(&tree.read("manifest.json")?)
        .map_err(|e| invalid("manifest.json", e.to_string()))?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| invalid("manifest.json", "expected a JSON array"))?;
    let mut loaded = Vec::new();
    for entry in entries {
        let config_name = entry
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("manifest.json", "entry without Config"))?;
        let layers: Vec<&str> = entry
            .get("Layers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let tags: Vec<String> = entry
            .get("RepoTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|t| Reference::parse(t).ok())
                    .map(|r| r.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let config_bytes = tree.read(config_name)?;
        let config =
            ImageConfig::parse(&config_bytes).map_err(|e| invalid(config_name, e.to_string()))?;
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(invalid(
                config_name,
                format!(
                    "{} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    layers.len()
                ),
            ));
        }
        let mut parent: Option<Digest> = None;
        let mut rows = Vec::new();
        let mut descs = Vec::new();
        for (file, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
            let expect = LayerExpect {
                file,
                blob: None,
                diff_id: Some(diff_id),
                parent: parent.as_ref(),
                media_type: None,
            };
            let layer = ingest_layer(store, io::BufReader::new(tree.open(file)?), &expect)?;
            let size = store.blob_info(&layer.blob)?.map(|(s, _)| s).unwrap_or(0);
            descs.push(json!({ "mediaType": layer.media_type, "digest": layer.blob.to_string(), "size": size }));
            rows.push((layer.chain_id.clone(), layer.blob, layer.media_type));
            parent = Some(layer.chain_id);
        }
        let id = store.put_blob(&config_bytes, MEDIA_OCI_CONFIG, None)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": { "mediaType": MEDIA_OCI_CONFIG, "digest": id.to_string(), "size": config_bytes.len() },
            "layers": descs,
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| invalid(config_name, e.to_string()))?;
        let manifest_digest = store.put_blob(&manifest_bytes, MEDIA_OCI_MANIFEST, None)?;
        record(
            store,
            &config,
            id,
            manifest_digest,
            rows,
            &tags,
            &mut loaded,
        )?;
    }
    Ok(loaded)
}

/// oci-archive: `index.json` naming manifests (or indexes) under `blobs/`.
fn load_oci(store: &Store, tree: &Extracted) -> Result<Vec<LoadedImage>, ArchiveError> {
    let index_bytes = tree.read("index.json")?;
    let index = match ParsedManifest::parse(&index_bytes, crate::manifest::MEDIA_OCI_INDEX) {
        Ok(ParsedManifest::Index(i)) => i,
        Ok(_) => return Err(invalid("index.json", "not an image index")),
        Err(source) => {
            return Err(ArchiveError::Manifest {
                file: "index.json".into(),
                source,
            })
        }
    };
    let mut loaded = Vec::new();
    for desc in &index.manifests {
        let name = desc.annotations.as_ref().and_then(|a| {
            a.get("io.containerd.image.name").or_else(|| {
                a.get("org.opencontainers.image.ref.name")
                    .filter(|n| n.contains(':') || n.contains('/'))
            })
        });
        let tags: Vec<String> = name
            .and_then(|n| Reference::parse(n).ok())
            .map(|r| r.to_string())
            .into_iter()
            .collect();
        let (mut bytes, mut media_type) = (read_blob(tree, &desc.digest)?, desc.media_type.clone());
        let mut parsed = ParsedManifest::parse(&bytes, &media_type).map_err(|source| {
            ArchiveError::Manifest {
                file: blob_name(&desc.digest),
                source,
            }
        })?;
        if let ParsedManifest::Index(inner) = &parsed {
            let chosen = select_platform(inner, &Platform::host()).map_err(|source| {
                ArchiveError::Manifest {
                    file: blob_name(&desc.digest),
                    source,
                }
            })?;
            bytes = read_blob(tree, &chosen.digest)?;
            media_type = chosen.media_type.clone();
            parsed = ParsedManifest::parse(&bytes, &media_type).map_err(|source| {
                ArchiveError::Manifest {
                    file: blob_name(&chosen.digest),
                    source,
                }
            })?;
        }
        let ParsedManifest::Manifest(manifest) = parsed else {
            return Err(invalid(
                &blob_name(&desc.digest),
                "an index inside an index",
            ));
        };
        let config_bytes = read_blob(tree, &manifest.config.digest)?;
        let config = ImageConfig::parse(&config_bytes)
            .map_err(|e| invalid(&blob_name(&manifest.config.digest), e.to_string()))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(invalid(
                &blob_name(&manifest.config.digest),
                "diff_ids and layers differ in number",
            ));
        }
        let mut parent: Option<Digest> = None;
        let mut rows = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let file = blob_name(&layer.digest);
            let expect = LayerExpect {
                file: &file,
                blob: Some(&layer.digest),
                diff_id: Some(diff_id),
                parent: parent.as_ref(),
                media_type: Some(&layer.media_type),
            };
            let ingested = ingest_layer(store, io::BufReader::new(tree.open(&file)?), &expect)?;
            rows.push((
                ingested.chain_id.clone(),
                ingested.blob,
                ingested.media_type,
            ));
            parent = Some(ingested.chain_id);
        }
        let id = store.put_blob(&config_bytes, &manifest.config.media_type, None)?;
        let mt = manifest.media_type.clone().unwrap_or(media_type);
        let manifest_digest = store.put_blob(&bytes, &mt, None)?;
        record(
            store,
            &config,
            id,
            manifest_digest,
            rows,
            &tags,
            &mut loaded,
        )?;
    }
    Ok(loaded)
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// A small blob of the layout, verified against its digest.
fn read_blob(tree: &Extracted, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
    let name = blob_name(digest);
    let bytes = tree.read(&name)?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(ArchiveError::DigestMismatch {
            file: name,
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Records an image and all its names.
fn record(
    store: &Store,
    config: &ImageConfig,
    id: Digest,
    manifest_digest: Digest,
    layers: Vec<(Digest, Digest, String)>,
    tags: &[String],
    loaded: &mut Vec<LoadedImage>,
) -> Result<(), ArchiveError> {
    store.commit_image(&NewImage {
        id: id.clone(),
        manifest_digest,
        created: config.created.clone(),
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        layers,
        tag: tags.first().cloned(),
        repo_digest: None,
    })?;
    for t in tags.iter().skip(1) {
        store.tag(&id.to_string(), t)?;
    }
    loaded.push(LoadedImage {
        id,
        names: tags.to_vec(),
    });
    Ok(())
}
