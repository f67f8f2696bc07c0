//! Pull: reference -> manifest (index -> platform) -> config -> layers.
//!
//! Each layer is streamed once: blob body -> digest of the compressed bytes
//! -> tee into a temporary blob file -> decompress -> digest of the tar
//! (diff_id) -> safe unpack into a temporary snapshot directory. Only when
//! both digests match the manifest and the config are the blob and the
//! snapshot renamed into place and recorded; the image and its tag are
//! recorded last, in one transaction. A pull killed at any point leaves
//! temporary files (removed by the next open) and possibly complete layers
//! (reused by the next pull); never a half-visible image.
//!
//! Layers are fetched by a bounded pool of scoped threads. The pull path
//! never forks, so threads are allowed here (see ARCHITECTURE.md).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::compression::{decompress, Compression};
use crate::digest::{Digest, DigestReader};
use crate::manifest::{
    chain_ids, select_platform, Descriptor, ImageConfig, Manifest, ManifestError, ParsedManifest,
    Platform,
};
use crate::progress::{LayerEvent, Progress};
use crate::reference::Reference;
use crate::store::{BlobCommit, LayerCommit, NewImage, Store, StoreError};
use crate::unpack::{unpack_layer, UnpackError, UnpackOptions};

/// An error from the source of an image (a registry, a test double).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Why a pull failed. Messages name the reference or digest involved.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("fetch manifest of {reference}: {source}")]
    Manifest {
        reference: String,
        source: SourceError,
    },
    #[error("manifest of {reference}: {source}")]
    BadManifest {
        reference: String,
        source: ManifestError,
    },
    #[error("manifest of {reference} is an index inside an index; refusing to recurse")]
    NestedIndex { reference: String },
    #[error("fetch {what} {digest}: {source}")]
    Fetch {
        what: &'static str,
        digest: Digest,
        source: SourceError,
    },
    #[error("read {what} {digest}: {source}")]
    Read {
        what: &'static str,
        digest: Digest,
        source: io::Error,
    },
    #[error(
        "{what} {expected}: digest mismatch: the registry sent {size} bytes with digest {actual}"
    )]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error(
        "layer {blob}: uncompressed content has digest {actual}, the image config says {expected}"
    )]
    DiffIdMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("image config {digest}: {reason}")]
    BadConfig { digest: Digest, reason: String },
    #[error("unpack layer {blob}: {source}")]
    Unpack { blob: Digest, source: UnpackError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where images come from: a registry, or a test double.
pub trait ImageSource: Sync {
    /// The manifest bytes, their media type, and their digest (verified
    /// against the reference's digest when it has one).
    fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String, Digest), SourceError>;
    /// A reader of the blob's bytes.
    fn blob<'a>(
        &'a self,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<Box<dyn Read + 'a>, SourceError>;
}

/// Choices of `berth pull`.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Default: the host's platform.
    pub platform: Option<Platform>,
    /// Layers fetched at once (`--max-concurrent-downloads`), at least 1.
    pub max_concurrent: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            max_concurrent: 3,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub id: Digest,
    /// The digest the reference resolved to (index or manifest).
    pub digest: Digest,
    /// The full normalised reference pulled.
    pub name: String,
    /// False when the image was already complete in the store.
    pub downloaded: bool,
}

/// Pulls `reference` from `source` into `store`.
pub fn pull(
    store: &Store,
    source: &dyn ImageSource,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, PullError> {
    let name = reference.to_string();
    let what = reference
        .tag
        .clone()
        .unwrap_or_else(|| reference.api_reference());
    progress.start(&format!(
        "{what}: Pulling from {}",
        reference.familiar_name()
    ));
    let (resolved, manifest, manifest_bytes, manifest_type) =
        resolve_manifest(source, reference, opts)?;
    let _gc = store.gc_lock(true)?;
    let config_bytes = fetch_small(source, reference, &manifest.config, "config", store)?;
    let config = ImageConfig::parse(&config_bytes).map_err(|e| PullError::BadConfig {
        digest: manifest.config.digest.clone(),
        reason: e.to_string(),
    })?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::BadConfig {
            digest: manifest.config.digest.clone(),
            reason: format!(
                "{} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let chains = chain_ids(diff_ids);
    let job = LayerJob {
        store,
        source,
        reference,
        manifest: &manifest,
        diff_ids,
        chains: &chains,
        progress,
    };
    let fetched = job.run(opts.max_concurrent.max(1))?;
    let source_repo = reference.repo_ref();
    store.put_blob(
        &config_bytes,
        &manifest.config.media_type,
        Some(&source_repo),
    )?;
    let manifest_digest = store.put_blob(&manifest_bytes, &manifest_type, Some(&source_repo))?;
    let existed = store.image(&manifest.config.digest).is_ok();
    let layers = manifest
        .layers
        .iter()
        .zip(&chains)
        .map(|(l, c)| (c.clone(), l.digest.clone(), l.media_type.clone()));
    store.commit_image(&NewImage {
        id: manifest.config.digest.clone(),
        manifest_digest,
        created: config.created.clone(),
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        layers: layers.collect(),
        tag: reference.digest.is_none().then(|| name.clone()),
        repo_digest: Some(format!("{source_repo}@{resolved}")),
    })?;
    let downloaded = fetched > 0 || !existed;
    let status = if downloaded {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    };
    progress.finish(&[
        format!("Digest: {resolved}"),
        format!("Status: {status} {}", reference.familiar()),
    ]);
    Ok(Pulled {
        id: manifest.config.digest.clone(),
        digest: resolved,
        name,
        downloaded,
    })
}

/// Fetches the manifest, following an index to the platform's manifest.
/// Returns the digest the reference resolved to, and the image manifest.
fn resolve_manifest(
    source: &dyn ImageSource,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(Digest, Manifest, Vec<u8>, String), PullError> {
    let fetch = |r: &Reference| -> Result<(Vec<u8>, String, Digest, ParsedManifest), PullError> {
        let (bytes, media_type, digest) =
            source.manifest(r).map_err(|source| PullError::Manifest {
                reference: r.to_string(),
                source,
            })?;
        let parsed = ParsedManifest::parse(&bytes, &media_type).map_err(|source| {
            PullError::BadManifest {
                reference: r.to_string(),
                source,
            }
        })?;
        Ok((bytes, media_type, digest, parsed))
    };
    let (bytes, media_type, resolved, parsed) = fetch(reference)?;
    match parsed {
        ParsedManifest::Manifest(m) => {
            let mt = m.media_type.clone().unwrap_or(media_type);
            Ok((resolved, m, bytes, mt))
        }
        ParsedManifest::Index(index) => {
            let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
            let desc =
                select_platform(&index, &wanted).map_err(|source| PullError::BadManifest {
                    reference: reference.to_string(),
                    source,
                })?;
            let (bytes, media_type, _, parsed) =
                fetch(&reference.with_digest(desc.digest.clone()))?;
            match parsed {
                ParsedManifest::Manifest(m) => {
                    let mt = m.media_type.clone().unwrap_or(media_type);
                    Ok((resolved, m, bytes, mt))
                }
                ParsedManifest::Index(_) => Err(PullError::NestedIndex {
                    reference: reference.to_string(),
                }),
            }
        }
    }
}

/// Fetches a small blob (the config) into memory, verified; from the store
/// when it is already there.
fn fetch_small(
    source: &dyn ImageSource,
    reference: &Reference,
    desc: &Descriptor,
    what: &'static str,
    store: &Store,
) -> Result<Vec<u8>, PullError> {
    if store.has_blob(&desc.digest) {
        let bytes = store.read_blob(&desc.digest)?;
        if Digest::of(&bytes) == desc.digest {
            return Ok(bytes);
        }
    }
    let reader = source
        .blob(reference, desc)
        .map_err(|source| PullError::Fetch {
            what,
            digest: desc.digest.clone(),
            source,
        })?;
    let mut reader = DigestReader::new(reader.take(desc.size.saturating_add(1)));
    let mut bytes = Vec::with_capacity(desc.size.min(1 << 20) as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| PullError::Read {
            what,
            digest: desc.digest.clone(),
            source,
        })?;
    let actual = reader.digest();
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(PullError::DigestMismatch {
            what,
            expected: desc.digest.clone(),
            actual,
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// The layers of one pull, fetched by a pool of threads.
struct LayerJob<'a> {
    store: &'a Store,
    source: &'a dyn ImageSource,
    reference: &'a Reference,
    manifest: &'a Manifest,
    diff_ids: &'a [Digest],
    chains: &'a [Digest],
    progress: &'a dyn Progress,
}

impl LayerJob<'_> {
    /// Runs every layer; returns how many were fetched (not already there).
    fn run(&self, threads: usize) -> Result<usize, PullError> {
        for layer in &self.manifest.layers {
            self.progress.layer(&layer.digest, LayerEvent::Waiting);
        }
        let next = AtomicUsize::new(0);
        let fetched = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<PullError>> = Mutex::new(None);
        let workers = threads.min(self.manifest.layers.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= self.manifest.layers.len() || failed.load(Ordering::SeqCst) {
                        return;
                    }
                    match self.layer(i) {
                        Ok(true) => {
                            fetched.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            self.progress
                                .layer(&self.manifest.layers[i].digest, LayerEvent::Failed);
                            failed.store(true, Ordering::SeqCst);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(fetched.into_inner()),
        }
    }

    /// Makes layer `i` present; `Ok(false)` when it already was.
    fn layer(&self, i: usize) -> Result<bool, PullError> {
        let desc = &self.manifest.layers[i];
        let chain = &self.chains[i];
        let _lock = self.store.lock_chain(chain)?;
        let have_snapshot = self.store.has_layer(chain)?;
        if have_snapshot && self.store.has_blob(&desc.digest) {
            self.progress.layer(&desc.digest, LayerEvent::AlreadyExists);
            return Ok(false);
        }
        let snapshot = if have_snapshot {
            None
        } else {
            Some(self.store.temp_dir()?)
        };
        let (blob, size) = self.stream(
            desc,
            &self.diff_ids[i],
            snapshot.as_ref().map(|s| s.path().join("fs")),
        )?;
        self.store.commit_layer(LayerCommit {
            chain_id: chain.clone(),
            parent: i.checked_sub(1).map(|p| self.chains[p].clone()),
            diff_id: self.diff_ids[i].clone(),
            size,
            blob: Some(blob),
            snapshot,
        })?;
        self.progress.layer(&desc.digest, LayerEvent::PullComplete);
        Ok(true)
    }

    /// Streams one blob: tee to a temp file, decompress, unpack into `dest`
    /// (or just hash when the snapshot exists). Returns the verified blob
    /// and the uncompressed size.
    fn stream(
        &self,
        desc: &Descriptor,
        diff_id: &Digest,
        dest: Option<std::path::PathBuf>,
    ) -> Result<(BlobCommit, u64), PullError> {
        let blob_err = |source| PullError::Fetch {
            what: "layer",
            digest: desc.digest.clone(),
            source,
        };
        let body = self.source.blob(self.reference, desc).map_err(blob_err)?;
        let (tmp, file) = self.store.temp_file()?;
        let counted = Counting {
            inner: body,
            done: 0,
            total: desc.size,
            layer: &desc.digest,
            progress: self.progress,
        };
        let tee = Tee {
            inner: DigestReader::new(counted),
            out: BufWriter::with_capacity(256 * 1024, file),
        };
        let mut compressed = BufReader::with_capacity(256 * 1024, tee);
        let codec = match Compression::from_media_type(&desc.media_type) {
            Some(c) => c,
            None => Compression::sniff(compressed.fill_buf().map_err(|e| self.read_err(desc, e))?),
        };
        let outcome = unpack_or_hash(&mut compressed, codec, dest.as_deref());
        // Read what the decompressor left (padding, or the rest after an
        // error) so the compressed digest covers the whole body.
        let drained = io::copy(&mut compressed, &mut io::sink());
        // A body that could not be read to the end (network, or a full disk
        // under the temporary blob) says so; its partial digest means nothing.
        drained.map_err(|e| self.read_err(desc, e))?;
        let tee = compressed.into_inner();
        let (actual, size) = (tee.inner.digest(), tee.inner.bytes_read());
        if actual != desc.digest || size != desc.size {
            return Err(PullError::DigestMismatch {
                what: "layer",
                expected: desc.digest.clone(),
                actual,
                size,
            });
        }
        let (tar_digest, tar_size) = outcome.map_err(|e| match e {
            StreamError::Read(e) => self.read_err(desc, e),
            StreamError::Unpack(source) => PullError::Unpack {
                blob: desc.digest.clone(),
                source,
            },
        })?;
        if tar_digest != *diff_id {
            return Err(PullError::DiffIdMismatch {
                blob: desc.digest.clone(),
                expected: diff_id.clone(),
                actual: tar_digest,
            });
        }
        let mut out = tee.out;
        out.flush().map_err(|e| self.read_err(desc, e))?;
        let blob = BlobCommit {
            file: tmp,
            digest: desc.digest.clone(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            source_repo: Some(self.reference.repo_ref()),
        };
        Ok((blob, tar_size))
    }

    fn read_err(&self, desc: &Descriptor, source: io::Error) -> PullError {
        PullError::Read {
            what: "layer",
            digest: desc.digest.clone(),
            source,
        }
    }
}

enum StreamError {
    Read(io::Error),
    Unpack(UnpackError),
}

/// Decompresses `compressed` and unpacks it into `dest` (or discards it),
/// returning the digest and size of the tar stream.
fn unpack_or_hash<R: Read>(
    compressed: &mut R,
    codec: Compression,
    dest: Option<&std::path::Path>,
) -> Result<(Digest, u64), StreamError> {
    let tar = decompress(compressed, codec).map_err(StreamError::Read)?;
    let mut tar = DigestReader::new(tar);
    match dest {
        Some(dest) => {
            unpack_layer(&mut tar, dest, &UnpackOptions::default()).map_err(StreamError::Unpack)?;
        }
        None => {
            io::copy(&mut tar, &mut io::sink()).map_err(StreamError::Read)?;
        }
    }
    Ok((tar.digest(), tar.bytes_read()))
}

/// Copies what it reads into `out` (the temporary blob file); shared with
/// `archive::ingest_layer`, which streams a layer the same way.
pub(crate) struct Tee<R, W> {
    pub(crate) inner: R,
    pub(crate) out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out
            .write_all(&buf[..n])
            .map_err(|e| io::Error::new(e.kind(), format!("write the temporary blob: {e}")))?;
        Ok(n)
    }
}

/// Reports bytes received to the progress.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    layer: &'a Digest,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.layer(
            self.layer,
            LayerEvent::Downloading {
                done: self.done,
                total: self.total,
            },
        );
        Ok(n)
    }
}

impl ImageSource for crate::registry::RegistryClient {
    fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String, Digest), SourceError> {
        let m = self.get_manifest(reference)?;
        Ok((m.bytes, m.media_type, m.digest))
    }

    fn blob<'a>(
        &'a self,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<Box<dyn Read + 'a>, SourceError> {
        Ok(Box::new(self.open_blob(reference, desc)?))
    }
}
