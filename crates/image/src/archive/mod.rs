//! Image archives: `save` (docker-archive as `docker save` writes it, and
//! oci-archive), `load` (both, including archives of podman and skopeo) and
//! `import` (a root filesystem tar becomes a one-layer image).
//!
//! Loading goes through the same rules as a pull: every layer is digested
//! while it is unpacked into a temporary snapshot, checked against the
//! config's diff_ids (and the manifest's digests for OCI), then renamed into
//! place and recorded; the image and its names are recorded last.

mod import;
mod load;
mod save;

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

pub use import::import;
pub use load::{load, LoadedImage};
pub use save::save;

use crate::compression::{decompress, Compression};
use crate::digest::{Digest, DigestReader};
use crate::manifest::{ManifestError, MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD};
use crate::pull::Tee;
use crate::store::{BlobCommit, LayerCommit, Store, StoreError};
use crate::unpack::{unpack_layer, UnpackError, UnpackOptions};

/// Archive formats of `save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker save`: manifest.json, `<config>.json`, `<layer>/layer.tar`.
    DockerArchive,
    /// An OCI image layout in a tar: oci-layout, index.json, blobs/.
    OciArchive,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("write archive: {0}")]
    Write(#[source] io::Error),
    #[error("read archive: {0}")]
    Read(#[source] io::Error),
    #[error("archive entry {name:?}: {reason}")]
    BadEntry { name: String, reason: String },
    #[error("archive has neither manifest.json (docker-archive) nor index.json (oci-archive)")]
    UnknownFormat,
    #[error("archive {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("archive {file}: {source}")]
    Manifest { file: String, source: ManifestError },
    #[error("layer {file}: digest {actual}, expected {expected}")]
    DigestMismatch {
        file: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("unpack layer {file}: {source}")]
    Unpack { file: String, source: UnpackError },
}

/// The media type of a layer blob by its codec.
pub(crate) fn layer_media_type(codec: Compression) -> &'static str {
    match codec {
        Compression::None => MEDIA_OCI_LAYER,
        Compression::Gzip => MEDIA_OCI_LAYER_GZIP,
        Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
    }
}

/// A layer taken in from an archive.
pub(crate) struct IngestedLayer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub blob: Digest,
    pub media_type: String,
}

/// What an archive says a layer should be.
pub(crate) struct LayerExpect<'a> {
    /// Name in the archive, for messages.
    pub file: &'a str,
    /// The blob's digest (OCI archives name blobs by digest).
    pub blob: Option<&'a Digest>,
    /// The diff_id from the config (None for import: whatever it is).
    pub diff_id: Option<&'a Digest>,
    pub parent: Option<&'a Digest>,
    /// The blob's media type, when the archive says it.
    pub media_type: Option<&'a str>,
}

/// Streams a layer blob once: tee into a temporary blob, decompress, digest,
/// unpack into a temporary snapshot; checks the digests, then commits.
pub(crate) fn ingest_layer(
    store: &Store,
    blob: impl Read,
    expect: &LayerExpect<'_>,
) -> Result<IngestedLayer, ArchiveError> {
    let (tmp, file) = store.temp_file()?;
    let snapshot = store.temp_dir()?;
    let tee = Tee {
        inner: DigestReader::new(blob),
        out: BufWriter::with_capacity(256 * 1024, file),
    };
    let mut compressed = BufReader::with_capacity(256 * 1024, tee);
    let codec = match expect.media_type.and_then(Compression::from_media_type) {
        Some(c) => c,
        None => Compression::sniff(compressed.fill_buf().map_err(ArchiveError::Read)?),
    };
    let (diff_id, size) = {
        let tar = decompress(&mut compressed, codec).map_err(ArchiveError::Read)?;
        let mut tar = DigestReader::new(tar);
        unpack_layer(
            &mut tar,
            &snapshot.path().join("fs"),
            &UnpackOptions::default(),
        )
        .map_err(|source| ArchiveError::Unpack {
            file: expect.file.to_string(),
            source,
        })?;
        (tar.digest(), tar.bytes_read())
    };
    io::copy(&mut compressed, &mut io::sink()).map_err(ArchiveError::Read)?;
    let tee = compressed.into_inner();
    let (blob_digest, blob_size) = (tee.inner.digest(), tee.inner.bytes_read());
    let mut out = tee.out;
    out.flush().map_err(ArchiveError::Read)?;
    drop(out);
    let mismatch = |expected: &Digest, actual: &Digest| ArchiveError::DigestMismatch {
        file: expect.file.to_string(),
        expected: expected.clone(),
        actual: actual.clone(),
    };
    if let Some(expected) = expect.blob.filter(|e| **e != blob_digest) {
        return Err(mismatch(expected, &blob_digest));
    }
    if let Some(expected) = expect.diff_id.filter(|e| **e != diff_id) {
        return Err(mismatch(expected, &diff_id));
    }
    let chain_id = match expect.parent {
        Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        None => diff_id.clone(),
    };
    let media_type = expect
        .media_type
        .map(str::to_string)
        .unwrap_or_else(|| layer_media_type(codec).to_string());
    let _lock = store.lock_chain(&chain_id)?;
    let snapshot = if store.has_layer(&chain_id)? {
        None
    } else {
        Some(snapshot)
    };
    store.commit_layer(LayerCommit {
        chain_id: chain_id.clone(),
        parent: expect.parent.cloned(),
        diff_id: diff_id.clone(),
        size,
        blob: Some(BlobCommit {
            file: tmp,
            digest: blob_digest.clone(),
            size: blob_size,
            media_type: media_type.clone(),
            source_repo: None,
        }),
        snapshot,
    })?;
    Ok(IngestedLayer {
        chain_id,
        diff_id,
        blob: blob_digest,
        media_type,
    })
}
