//! Push: layers first, up to three at once (skipped when the registry has
//! them, mounted from another repository of the same registry when we know
//! one that has them), then the config, then the manifest last, so a
//! registry never serves a manifest whose blobs are missing.

use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::progress::{LayerEvent, Progress};
use crate::reference::{Reference, ReferenceError};
use crate::registry::{RegistryClient, RegistryError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("push {name}: blob {digest} is not in the store (pull the image again)")]
    MissingBlob { name: String, digest: Digest },
}

/// What a push uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
}

/// Pushes the image `name` (resolved in the store) to the registry and
/// repository the name designates.
pub fn push(
    store: &Store,
    client: &RegistryClient,
    name: &str,
    progress: &dyn Progress,
) -> Result<Pushed, PushError> {
    let target = Reference::parse(name)?;
    let image = store.resolve(name)?;
    progress.start(&format!(
        "The push refers to repository [{}]",
        target.repo_ref()
    ));
    let layers = store
        .image_layers(&image.id)?
        .iter()
        .map(|l| descriptor(store, &l.blob_digest, name))
        .collect::<Result<Vec<_>, _>>()?;
    push_layers(store, client, &target, &layers, name, progress)?;
    let config = descriptor(store, &image.id, name)?;
    push_blob(store, client, &target, &config, name)?;
    let manifest = store.read_blob(&image.manifest_digest)?;
    let media_type = store
        .blob_info(&image.manifest_digest)?
        .map(|(_, m)| m)
        .unwrap_or_else(|| crate::manifest::MEDIA_OCI_MANIFEST.to_string());
    let digest = client.put_manifest(&target, &manifest, &media_type)?;
    let what = target.tag.clone().unwrap_or_else(|| "latest".into());
    progress.finish(&[format!("{what}: digest: {digest} size: {}", manifest.len())]);
    Ok(Pushed {
        digest,
        size: manifest.len() as u64,
    })
}

/// Layers are uploaded by up to this many threads at once (Docker's
/// default for `max-concurrent-uploads` is 5; a push rarely has more).
const PARALLEL_UPLOADS: usize = 3;

/// Pushes the layers on scoped threads; the first error wins.
fn push_layers(
    store: &Store,
    client: &RegistryClient,
    target: &Reference,
    layers: &[Descriptor],
    name: &str,
    progress: &dyn Progress,
) -> Result<(), PushError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_UPLOADS.min(layers.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(desc) = layers.get(i) else { break };
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                match push_blob(store, client, target, desc, name) {
                    Ok(event) => progress.layer(&desc.digest, event),
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

fn descriptor(store: &Store, digest: &Digest, name: &str) -> Result<Descriptor, PushError> {
    let missing = || PushError::MissingBlob {
        name: name.to_string(),
        digest: digest.clone(),
    };
    if !store.has_blob(digest) {
        return Err(missing());
    }
    let (size, media_type) = store.blob_info(digest)?.ok_or_else(missing)?;
    Ok(Descriptor {
        media_type,
        digest: digest.clone(),
        size,
        urls: None,
        annotations: None,
        platform: None,
        artifact_type: None,
    })
}

/// One blob: HEAD, else a cross-repository mount, else an upload.
fn push_blob(
    store: &Store,
    client: &RegistryClient,
    target: &Reference,
    desc: &Descriptor,
    name: &str,
) -> Result<LayerEvent, PushError> {
    if client.blob_exists(target, &desc.digest)? {
        return Ok(LayerEvent::LayerAlreadyExists);
    }
    if let Some(source) = store.blob_source(&desc.digest)? {
        if let Some((registry, repository)) = source.split_once('/') {
            // A failed mount is not an error: the upload below is the fallback.
            if registry == target.registry
                && repository != target.repository
                && client
                    .mount_blob(target, repository, &desc.digest)
                    .unwrap_or(false)
            {
                return Ok(LayerEvent::Mounted);
            }
        }
    }
    let file = store
        .open_blob(&desc.digest)
        .map_err(|_| PushError::MissingBlob {
            name: name.to_string(),
            digest: desc.digest.clone(),
        })?;
    client.push_blob(
        target,
        desc,
        std::io::BufReader::with_capacity(256 * 1024, file),
    )?;
    Ok(LayerEvent::Pushed)
}
