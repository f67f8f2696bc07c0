//! `save`: images into a docker-archive or an oci-archive tar.
//!
//! docker-archive is what `docker save` (before 25) and `podman save` write:
//! `manifest.json` = `[{Config, RepoTags, Layers}]`, the config as
//! `<id-hex>.json`, each layer uncompressed as `<diff-id-hex>/layer.tar`,
//! and the legacy `repositories` file. Layers are decompressed from the
//! stored blobs while they are written. oci-archive holds the stored blobs
//! as they are, under `blobs/sha256/`, named by `index.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde_json::json;

use super::ArchiveError;
use crate::compression::{decompress, Compression};
use crate::store::{Image, ImageLayer, Store};

/// Writes the images `names` (names, ids or digests) as one archive.
pub fn save<W: Write>(
    store: &Store,
    names: &[String],
    format: super::Format,
    out: W,
) -> Result<(), ArchiveError> {
    let mut images: Vec<(Image, Vec<String>)> = Vec::new();
    for name in names {
        let image = store.resolve(name)?;
        // A name saves that name; an id saves all the image's names.
        let tag = crate::reference::Reference::parse(name)
            .ok()
            .map(|r| r.to_string())
            .filter(|t| image.tags.contains(t));
        let tags = match tag {
            Some(t) => vec![t],
            None => image.tags.clone(),
        };
        match images.iter_mut().find(|(i, _)| i.id == image.id) {
            Some((_, existing)) => existing.extend(tags),
            None => images.push((image, tags)),
        }
    }
    let mut tar = tar::Builder::new(out);
    match format {
        super::Format::DockerArchive => docker_archive(store, &images, &mut tar)?,
        super::Format::OciArchive => oci_archive(store, &images, &mut tar)?,
    }
    tar.into_inner()
        .map_err(ArchiveError::Write)?
        .flush()
        .map_err(ArchiveError::Write)
}

fn docker_archive<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    tar: &mut tar::Builder<W>,
) -> Result<(), ArchiveError> {
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = BTreeSet::new();
    for (image, tags) in images {
        let config_name = format!("{}.json", image.id.hex());
        if written.insert(config_name.clone()) {
            append_bytes(tar, &config_name, &store.read_blob(&image.id)?)?;
        }
        let layers = store.image_layers(&image.id)?;
        let mut layer_names = Vec::new();
        for layer in &layers {
            let name = format!("{}/layer.tar", layer.diff_id.hex());
            if written.insert(name.clone()) {
                append_layer_tar(store, tar, &name, layer)?;
            }
            layer_names.push(name);
        }
        let familiar: Vec<String> = tags
            .iter()
            .map(|t| crate::store::familiar_name(t))
            .collect();
        if let Some(top) = layers.last() {
            for t in &familiar {
                if let Some((repo, tag)) = t.rsplit_once(':') {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), top.diff_id.hex().to_string());
                }
            }
        }
        manifest
            .push(json!({ "Config": config_name, "RepoTags": familiar, "Layers": layer_names }));
    }
    append_bytes(tar, "manifest.json", &to_json(&manifest)?)?;
    append_bytes(tar, "repositories", &to_json(&repositories)?)
}

fn oci_archive<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    tar: &mut tar::Builder<W>,
) -> Result<(), ArchiveError> {
    append_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = BTreeSet::new();
    let mut manifests = Vec::new();
    for (image, tags) in images {
        let mut blobs = vec![image.manifest_digest.clone(), image.id.clone()];
        blobs.extend(
            store
                .image_layers(&image.id)?
                .into_iter()
                .map(|l| l.blob_digest),
        );
        for digest in blobs {
            if written.insert(digest.clone()) {
                let file = store.open_blob(&digest)?;
                let len = file.metadata().map_err(ArchiveError::Read)?.len();
                append_reader(
                    tar,
                    &format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex()),
                    len,
                    file,
                )?;
            }
        }
        let (size, media_type) = store
            .blob_info(&image.manifest_digest)?
            .unwrap_or((0, crate::manifest::MEDIA_OCI_MANIFEST.to_string()));
        let names: Vec<Option<&String>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(Some).collect()
        };
        for name in names {
            let mut desc = json!({ "mediaType": media_type, "digest": image.manifest_digest.to_string(), "size": size });
            if let Some(name) = name {
                desc["annotations"] = json!({
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name,
                });
            }
            manifests.push(desc);
        }
    }
    let index = json!({ "schemaVersion": 2, "mediaType": crate::manifest::MEDIA_OCI_INDEX, "manifests": manifests });
    append_bytes(tar, "index.json", &to_json(&index)?)
}

/// Writes a layer as an uncompressed tar, decompressing the stored blob.
fn append_layer_tar<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    name: &str,
    layer: &ImageLayer,
) -> Result<(), ArchiveError> {
    let file = std::io::BufReader::with_capacity(256 * 1024, store.open_blob(&layer.blob_digest)?);
    let codec = Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
    let data = decompress(file, codec).map_err(ArchiveError::Read)?;
    let mut counted = Exact {
        inner: data,
        left: layer.size,
        name: name.to_string(),
    };
    append_reader(tar, name, layer.size, &mut counted)?;
    if counted.left != 0 {
        return Err(ArchiveError::Invalid {
            file: name.into(),
            reason: format!("layer ended {} bytes early", counted.left),
        });
    }
    Ok(())
}

/// Refuses to yield more than `left` bytes, so a wrong size cannot corrupt the tar.
struct Exact<R> {
    inner: R,
    left: u64,
    name: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(std::io::Error::other(format!(
                    "layer {} is longer than recorded",
                    self.name
                )));
            }
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(len: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> Result<(), ArchiveError> {
    append_reader(tar, name, data.len() as u64, data)
}

fn append_reader<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    data: impl Read,
) -> Result<(), ArchiveError> {
    let mut h = header(len);
    tar.append_data(&mut h, name, data)
        .map_err(ArchiveError::Write)
}

fn to_json(v: &impl serde::Serialize) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(v).map_err(|e| ArchiveError::Write(std::io::Error::other(e)))
}
